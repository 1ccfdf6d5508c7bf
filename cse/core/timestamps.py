"""oneM2M timestamps (docs/onem2m.md "Timestamps").

``m2m:timestamp`` is ISO-8601 basic format in UTC, ``YYYYMMDDThhmmss`` with an
optional ``,ffffff`` fraction. We always *emit* six fraction digits so that
timestamps compare correctly as strings (the store's expiry index relies on
it). ``m2m:absRelTimestamp`` is either such a timestamp or a relative number
of milliseconds; ISO durations (``PT10S``) are accepted too, as ACME does.
"""

from __future__ import annotations

import functools
import math
import re
import time
from datetime import UTC, datetime

__all__ = [
    "FOREVER",
    "format_ts",
    "parse_ts",
    "normalize_ts",
    "parse_abs_rel",
    "parse_duration",
]

FOREVER = "99991231T235959,000000"

_TS = re.compile(
    r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?:[,.](\d{1,6}))?Z?$"
)
_EXT_TS = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[,.](\d{1,6}))?(?:Z|[+-]00:?00)?$"
)
_DURATION = re.compile(
    r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


_MAX_EPOCH = 253402300799.0  # 9999-12-31T23:59:59


def format_ts(epoch: float) -> str:
    """Seconds since the epoch -> ``YYYYMMDDThhmmss,ffffff`` (UTC).

    Times beyond year 9999 (e.g. ``ct + mia`` with a huge ``mia``) are
    :data:`FOREVER`.
    """
    if not epoch < _MAX_EPOCH:
        return FOREVER
    whole = math.floor(epoch)
    micros = round((epoch - whole) * 1_000_000)
    if micros >= 1_000_000:
        whole += 1
        micros -= 1_000_000
    return f"{_second(whole)},{micros:06d}"


@functools.lru_cache(maxsize=8)
def _second(whole: int) -> str:
    """``YYYYMMDDThhmmss`` of a whole second (requests in the same second
    share it: strftime is most of a timestamp's cost)."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(whole))


def parse_ts(value: str) -> float:
    """A oneM2M (basic or extended ISO) UTC timestamp -> epoch seconds.

    Raises ValueError with a readable message on anything else.
    """
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be a string, got {type(value).__name__}")
    m = _TS.match(value) or _EXT_TS.match(value)
    if m is None:
        raise ValueError(f"'{value}' is not a oneM2M timestamp (YYYYMMDDThhmmss[,ffffff])")
    y, mo, d, h, mi, s, frac = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"'{value}' is not a valid date/time: {exc}") from None
    return dt.timestamp() + (int(frac.ljust(6, "0")) / 1_000_000 if frac else 0.0)


def normalize_ts(value: str) -> str:
    """Re-emit a valid timestamp in the canonical six-digit form."""
    if value == FOREVER or value.startswith("9999"):
        return FOREVER
    return format_ts(parse_ts(value))


def parse_duration(value: str) -> float:
    """An ISO-8601 duration (``PT10S``, ``P1DT2H``) -> seconds.

    Months count as 30 days and years as 365, which is all a CSE needs.
    """
    m = _DURATION.match(value)
    if m is None or value in ("P", "PT"):
        raise ValueError(f"'{value}' is not an ISO-8601 duration")
    y, mo, w, d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return ((((y * 365 + mo * 30 + w * 7 + d) * 24 + h) * 60 + mi) * 60) + s


def parse_abs_rel(value: str, now: float) -> float:
    """An ``m2m:absRelTimestamp`` -> absolute epoch seconds.

    Relative values are milliseconds from ``now``; absolute values are
    timestamps; ISO durations are relative too.
    """
    v = value.strip()
    if re.fullmatch(r"-?\d+", v):
        if len(v) > 15:
            raise ValueError(f"relative time '{v[:20]}...' is out of range")
        return now + int(v) / 1000.0
    if v.startswith("P"):
        return now + parse_duration(v)
    return parse_ts(v)
