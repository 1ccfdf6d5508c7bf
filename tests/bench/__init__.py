"""The benchmark runner's smoke test (bench/run.py --quick)."""
