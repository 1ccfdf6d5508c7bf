"""The benchmark targets as ratios to figures of the same run, the one-screen
summary, and the JSON document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["TARGETS", "PG_TARGETS", "evaluate", "summary"]


@dataclass(frozen=True)
class Target:
    """``scenario``'s figure compared with ``ref``'s (ratio) or with an absolute bound."""

    name: str
    scenario: str
    ref: str | None       # None: absolute target on ``key``
    bound: float
    key: str = "req_per_s"
    at_most: bool = False  # True: measured must be <= bound
    unit: str = ""
    over: str | None = None  # absolute target on ``key`` / ``over`` of the same scenario (p99 over p50)


TARGETS = (
    Target("RETRIEVE CSEBase >= 50% of ceiling GET", "retrieve_csebase", "ceiling_get", 0.50),
    Target("RETRIEVE container >= 60% of ceiling GET", "retrieve_container", "ceiling_get", 0.60),
    Target("CREATE cin (durable) >= 40% of ceiling POST", "create_cin", "ceiling_post", 0.40),
    Target("CREATE cin at 100k >= 90% of at 1k", "create_cin_100k", "create_cin", 0.90),
    Target("CREATE cin at 100k: p99 <= 3x p50", "create_cin_100k", None, 3.0, key="p99_ms", at_most=True,
           unit="x", over="p50_ms"),
    Target("session UPDATE >= 60% of plain forwarded", "session_update", "plain_update", 0.60),
    Target("S&F flush >= 3500 req/s, none lost", "sf_flush", None, 3500.0, unit="req/s"),
    Target("start-up with 100k <= 3 s", "startup_100k", None, 3.0, key="value", at_most=True, unit="s"),
    Target("ty+lbl discovery (100 of 100k) >= 25% of RETRIEVE", "disc_tylbl_100k", "disc_retrieve", 0.25),
    Target("ty+lbl discovery at 100k >= 80% of at 10k", "disc_tylbl_100k", "disc_tylbl_10k", 0.80),
    Target("unrestricted discovery at 100k: p50 <= 50 ms", "disc_unrestricted_100k", None, 50.0, key="p50_ms",
           at_most=True, unit="ms"),
    Target("RETRIEVE p99 <= 10 ms while 4 clients discover", "disc_retrieve_during_unrestricted", None, 10.0,
           key="p99_ms", at_most=True, unit="ms"),
    Target("RSS delta for 100k cin <= 150 MB", "rss_per_10k_cin", None, 150.0, key="delta_for_100k_cin_mb",
           at_most=True, unit="MB"),
    # the SDK over MQTT against the SDK over HTTP, one CSE (bench/scenarios/mqtt.py; docs/bindings.md "Throughput")
    Target("MQTT RETRIEVE >= 25% of HTTP (SDK)", "mqtt_retrieve", "mqtt_http_retrieve", 0.25),
    Target("MQTT CREATE >= 25% of HTTP (SDK)", "mqtt_create", "mqtt_http_create", 0.25),
    # the SDK over a WebSocket against the SDK over HTTP, same CSE (bench/scenarios/ws.py; docs/bindings.md
    # "WebSocket"): one small message each way, no HTTP head to write and parse, so at least HTTP's figure
    Target("WebSocket RETRIEVE >= 100% of HTTP (SDK)", "ws_retrieve", "sdk_http_retrieve", 1.0),
    Target("WebSocket CREATE >= 100% of HTTP (SDK)", "ws_create", "sdk_http_create", 1.0),
)

#: The ``pg`` group's targets (run only with ``--only pg``: it needs a PostgreSQL server).
PG_TARGETS = (
    # docs/scaling.md: server CPU (CSE processes + PostgreSQL backends) per request, and two workers' scaling
    Target("PG RETRIEVE CPU/req <= 3x embedded", "pg_retrieve_pg", "pg_retrieve_embedded", 3.0,
           key="cpu_ms_per_req", at_most=True),
    Target("PG CREATE CPU/req <= 3x embedded", "pg_create_pg", "pg_create_embedded", 3.0,
           key="cpu_ms_per_req", at_most=True),
    Target("PG 2 workers RETRIEVE CPU/req <= 3x embedded", "pg_retrieve_workers2", "pg_retrieve_embedded", 3.0,
           key="cpu_ms_per_req", at_most=True),
    Target("PG 2 workers CREATE CPU/req <= 3x embedded", "pg_create_workers2", "pg_create_embedded", 3.0,
           key="cpu_ms_per_req", at_most=True),
    Target("PG 2 workers RETRIEVE >= 1.3x one worker", "pg_retrieve_workers2", "pg_retrieve_shared1", 1.3),
    Target("PG 2 workers CREATE >= 1.3x one worker", "pg_create_workers2", "pg_create_shared1", 1.3),
    Target("PG CREATE at 100k >= 90% of with few", "pg_create_100k", "pg_create_pg", 0.90),
)


def evaluate(results: dict[str, dict[str, Any]], targets: tuple[Target, ...] = TARGETS) -> list[dict[str, Any]]:
    """Each target with its measured value, ratio (if relative) and PASS/MISS."""
    out: list[dict[str, Any]] = []
    for t in targets:
        rec = results.get(t.scenario)
        ref = results.get(t.ref) if t.ref else None
        row: dict[str, Any] = {"target": t.name, "scenario": t.scenario, "reference": t.ref, "bound": t.bound}
        if rec is None or (t.ref and ref is None):
            row.update(measured=None, verdict="n/a")
        elif t.ref:
            ratio = rec[t.key] / ref[t.key] if ref[t.key] else 0.0
            row.update(measured=rec[t.key], reference_value=ref[t.key], ratio=round(ratio, 3),
                       verdict="PASS" if (ratio <= t.bound if t.at_most else ratio >= t.bound) else "MISS")
            a, b = cpu_ms_per_req(rec), cpu_ms_per_req(ref)
            if a and b:
                row["cpu_ratio"] = round(b / a, 3)  # the ratio if both were CPU-bound on one core each
        else:
            v = rec[t.key]
            if t.over is not None:
                v = round(v / rec[t.over], 3) if rec.get(t.over) else float("inf")
            ok = v <= t.bound if t.at_most else v >= t.bound
            if t.scenario == "sf_flush":
                ok = ok and rec.get("lost", 1) == 0
            row.update(measured=v, verdict="PASS" if ok else "MISS")
        out.append(row)
    return out


def cpu_ms_per_req(rec: dict[str, Any]) -> float:
    """CPU ms per request of the server processes (CSEs or the ceiling), summed."""
    return sum(v.get("ms_per_req", 0.0) for k, v in rec.get("cpu", {}).items() if k != "bench_client")


def _cpu(rec: dict[str, Any]) -> str:
    cpu = {k: v for k, v in rec.get("cpu", {}).items() if k != "bench_client"}
    if not cpu:
        return "-"
    return "+".join(f"{v['pct_core']:.0f}" for v in cpu.values())


def _ms_per_req(rec: dict[str, Any]) -> str:
    ms = cpu_ms_per_req(rec)
    return f"{ms:.3f}" if ms else "-"


def _rss(rec: dict[str, Any]) -> str:
    rss = rec.get("rss_mb")
    if isinstance(rss, dict):
        return "+".join(f"{v:.0f}" for v in rss.values())
    return f"{rss:.0f}" if isinstance(rss, (int, float)) else "-"


def summary(doc: dict[str, Any]) -> str:
    """The one-screen text: one row per scenario, then the targets."""
    res = doc["results"]
    lines = [f"oneM2M CSE benchmark  {doc['started']}  mode={doc['mode']}  tool={doc['tool']}  "
             f"connections={doc['options']['connections']}  workers={doc['options']['workers']}  "
             f"cpus={doc['machine']['cpus']}  load avg={doc['machine']['loadavg']}",
             f"{'scenario':<30}{'req/s | value':>14}{'p50 ms':>9}{'p99 ms':>9}{'errors':>7}"
             f"{'CPU %core':>11}{'CPU ms/req':>11}{'RSS MB':>9}"]
    for name, rec in res.items():
        if "req_per_s" in rec:
            val = f"{rec['req_per_s']:.0f}"
            p50, p99 = (f"{rec['p50_ms']:.2f}", f"{rec['p99_ms']:.2f}") if rec.get("p50_ms") else ("-", "-")
        else:
            val, p50, p99 = f"{rec['value']:.2f} {rec['unit']}", "-", "-"
        lines.append(f"{name:<30}{val:>14}{p50:>9}{p99:>9}{rec.get('errors', 0):>7}"
                     f"{_cpu(rec):>11}{_ms_per_req(rec):>11}{_rss(rec):>9}")
    lines.append("")
    lines.append(f"{'target':<46}{'measured':>12}{'ratio':>8}{'cpu ratio':>10}  verdict")
    for row in doc["targets"]:
        m = row["measured"]
        ms = "-" if m is None else (f"{m:.0f}" if m >= 100 else f"{m:.2f}")
        ratio = f"{row['ratio']:.2f}" if "ratio" in row else "-"
        cratio = f"{row['cpu_ratio']:.2f}" if "cpu_ratio" in row else "-"
        lines.append(f"{row['target']:<46}{ms:>12}{ratio:>8}{cratio:>10}  {row['verdict']}")
    lines.append("ratio: req/s over the reference's req/s (the verdict); cpu ratio: the reference's server CPU "
                 "ms/request over this one's (less sensitive to a busy machine)")
    for note in doc.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)
