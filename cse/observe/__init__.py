"""Seeing a running CSE: health (readiness) and Prometheus metrics (docs/configuration.md "[metrics]")."""
