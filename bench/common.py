"""What every load generator returns and takes: :class:`LoadSpec` (the HTTP
requests to repeat) and :class:`LoadResult` (totals and latency percentiles)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["LoadSpec", "LoadResult", "percentile", "m2m_headers"]


def m2m_headers(origin: str, ty: int | None = None, rqi: str = "bench") -> dict[str, str]:
    """The oneM2M request headers of a plain (non-session) request."""
    h = {"X-M2M-Origin": origin, "X-M2M-RI": rqi, "X-M2M-RVI": "3", "Accept": "application/json"}
    if ty is not None:
        h["Content-Type"] = f"application/json;ty={ty}"
    return h


@dataclass(frozen=True)
class LoadSpec:
    """The same request repeated, rotating over ``paths``."""

    method: str
    paths: tuple[str, ...]
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    ok_status: tuple[int, ...] = (200, 201)


@dataclass
class LoadResult:
    """One measured run: completed requests, errors, wall time, latency (ms)."""

    tool: str
    connections: int
    requests: int
    errors: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    error_detail: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["req_per_s"] = round(self.rps, 1)
        for k in ("duration_s", "p50_ms", "p99_ms", "mean_ms"):
            d[k] = round(d[k], 3)
        return d


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q`` (0-100) percentile of an already sorted list (nearest rank)."""
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]
