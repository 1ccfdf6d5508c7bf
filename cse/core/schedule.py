"""oneM2M ``scheduleEntry`` strings (docs/onem2m.md "Schedule entries"; session policy ``sch``).

An entry has seven whitespace-separated fields, always in UTC::

    second minute hour day-of-month month day-of-week year
    0-59   0-59   0-23 1-31         1-12  0-6 (0=Sun) 2000-9999

Each field is ``*``, a number ``a``, a range ``a-b``, a stepped range
``a-b/n`` or ``*/n``, or a comma list of those. A second is inside an entry
when *every* field matches -- including day of month AND day of week (unlike
cron, which ORs the two day fields). A :class:`Schedule` is a list of entries
and is open when ANY entry matches.

Everything works at whole-second resolution: a fractional epoch is inside the
schedule when the second it falls in is. Invalid entries (and non-finite or
non-numeric times) raise :class:`~cse.core.errors.BadRequest` naming the entry
and the field, so callers can hand the message straight back as ``m2m:dbg``.

The searches (:meth:`Schedule.next_open`, :meth:`Schedule.next_close`) never
walk second by second: they skip whole years, months, days, hours and minutes
that cannot change the answer, so a search over a year costs a few hundred
loop steps (recorded in :attr:`Schedule.last_steps` so tests can check it
without timing anything).
"""

from __future__ import annotations

import calendar
import math
import re
import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from .errors import BadRequest

__all__ = ["ScheduleEntry", "parse_entry", "Schedule", "DEFAULT_HORIZON_S"]

DEFAULT_HORIZON_S: float = 366 * 86400
"""Default search horizon: one (leap) year, so any yearly pattern is found."""

# (name used in error messages, lowest value, highest value), in entry order.
_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
    ("year", 2000, 9999),
)

# Only years 2000-9999 can match; outside [_START, _END) nothing is open.
# Clamping to this window also keeps time.gmtime/calendar.timegm away from
# values they cannot represent (they raise OverflowError/ValueError there).
_START: int = calendar.timegm((2000, 1, 1, 0, 0, 0))
_END: int = calendar.timegm((9999, 12, 31, 23, 59, 59)) + 1

_ITEM = re.compile(r"^(?:(\*)|([0-9]+)(?:-([0-9]+))?)(?:/([0-9]+))?$")
_MAX_SHOWN = 80


def _clip(text: str) -> str:
    """Entry text for error messages, shortened so a huge input stays readable."""
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


@dataclass(frozen=True, slots=True)
class _Field:
    """The allowed values of one field, precomputed at parse time.

    ``values`` is sorted so the searches can find "the next allowed value"
    with a bisection; ``mask`` (bit v set when v is allowed) gives O(1)
    membership without a large frozenset (``*`` in the year field is 8000
    values, and parsed fields are cached and shared between entries).
    """

    values: tuple[int, ...]
    mask: int

    def __contains__(self, value: int) -> bool:
        return value >= 0 and (self.mask >> value) & 1 == 1

    def next_from(self, value: int) -> int | None:
        """Smallest allowed value >= ``value``; None when there is none."""
        i = bisect_left(self.values, value)
        return self.values[i] if i < len(self.values) else None


def _parse_field(spec: str, index: int, entry: str) -> _Field:
    """Parse field number ``index`` of ``entry``; errors name both."""
    try:
        return _parse_field_cached(spec, index)
    except _FieldError as exc:
        # Re-raised here (not inside the cache) so the message names the entry.
        name = _FIELDS[index][0]
        raise BadRequest(
            f"schedule entry '{_clip(entry)}': {name} field '{_clip(spec)}' "
            f"{exc.reason}") from None


class _FieldError(Exception):
    """Internal: why a field spec is invalid, without the entry context."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@lru_cache(maxsize=1024)
def _parse_field_cached(spec: str, index: int) -> _Field:
    """Parse one field spec; cached because the same specs recur constantly.

    Raises _FieldError (never cached by lru_cache) on invalid input.
    """
    name, lo, hi = _FIELDS[index]
    allowed: set[int] = set()
    for item in spec.split(","):
        m = _ITEM.match(item)
        if m is None:
            raise _FieldError(
                f"has invalid item '{_clip(item)}' (expected *, a number, a-b, "
                f"a-b/n, */n or a comma list of these)")
        star, first, last, step_s = m.groups()
        if star is not None:
            start, stop = lo, hi
        elif first is not None and last is None and step_s is not None:
            raise _FieldError(
                f"has invalid item '{_clip(item)}': a step needs a range or * (a-b/n, */n)")
        else:
            start = _num(first, name, lo, hi)
            stop = start if last is None else _num(last, name, lo, hi)
            if stop < start:
                raise _FieldError(f"has reversed range '{_clip(item)}'")
        step = 1
        if step_s is not None:
            stripped = step_s.lstrip("0") or "0"
            step = int(stripped) if len(stripped) <= 6 else hi + 1
            if step == 0:
                raise _FieldError(f"has step 0 in '{_clip(item)}'")
        allowed.update(range(start, stop + 1, step))
    values = tuple(sorted(allowed))
    mask = 0
    for v in values:
        mask |= 1 << v
    return _Field(values, mask)


def _num(digits: str, name: str, lo: int, hi: int) -> int:
    """A digit string as an int inside [lo, hi], else _FieldError."""
    stripped = digits.lstrip("0") or "0"
    value = int(stripped) if len(stripped) <= 6 else hi + 1
    if not lo <= value <= hi:
        raise _FieldError(f"value {_clip(digits)} is out of range {lo}-{hi}")
    return value


def _check_epoch(epoch: object) -> float:
    """A usable time or BadRequest (NaN/inf would break floor and gmtime)."""
    if isinstance(epoch, bool) or not isinstance(epoch, (int, float)):
        raise BadRequest(f"schedule: time must be a number, got {type(epoch).__name__}")
    if not math.isfinite(epoch):
        raise BadRequest(f"schedule: time must be finite, got {epoch}")
    return float(epoch)


def _check_horizon(horizon_s: object) -> float:
    """A non-negative horizon (inf allowed: the year-9999 limit bounds it)."""
    if isinstance(horizon_s, bool) or not isinstance(horizon_s, (int, float)):
        raise BadRequest(
            f"schedule: horizon must be a number, got {type(horizon_s).__name__}")
    if math.isnan(horizon_s) or horizon_s < 0:
        raise BadRequest(f"schedule: horizon must be >= 0, got {horizon_s}")
    return float(horizon_s)


def _limit(epoch: float, horizon_s: float) -> int:
    """Last whole second a search may return: t <= epoch + horizon_s.

    An infinite horizon becomes a second past every possible answer: nothing
    opens from year 10000 on, and everything is closed there.
    """
    end = epoch + horizon_s
    if math.isinf(end):
        return max(_END, math.floor(epoch) + 1)
    return math.floor(end)


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """One parsed 7-field entry: ``sec min hour dom month dow year``, UTC.

    Constructing it parses ``text`` (so no unparsed entry can exist); use
    :func:`parse_entry` in application code. Equality is on ``text``.
    """

    text: str
    second: _Field = field(init=False, repr=False, compare=False)
    minute: _Field = field(init=False, repr=False, compare=False)
    hour: _Field = field(init=False, repr=False, compare=False)
    day: _Field = field(init=False, repr=False, compare=False)
    month: _Field = field(init=False, repr=False, compare=False)
    weekday: _Field = field(init=False, repr=False, compare=False)
    year: _Field = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        text = self.text
        if not isinstance(text, str):
            raise BadRequest(
                f"schedule entry must be a string, got {type(text).__name__}")
        parts = text.split()
        if len(parts) != len(_FIELDS):
            raise BadRequest(
                f"schedule entry '{_clip(text)}': expected 7 fields (second minute "
                f"hour day-of-month month day-of-week year), got {len(parts)}")
        names = ("second", "minute", "hour", "day", "month", "weekday", "year")
        for index, (attr, spec) in enumerate(zip(names, parts, strict=True)):
            object.__setattr__(self, attr, _parse_field(spec, index, text))

    def _day_matches(self, tm: time.struct_time) -> bool:
        """Year, month, day of month AND day of week (not cron's OR)."""
        return (tm.tm_year in self.year and tm.tm_mon in self.month
                and tm.tm_mday in self.day and (tm.tm_wday + 1) % 7 in self.weekday)

    def matches(self, epoch: float) -> bool:
        """Whether the UTC second containing ``epoch`` satisfies every field."""
        t = math.floor(_check_epoch(epoch))
        if not _START <= t < _END:
            return False
        tm = time.gmtime(t)
        return (self._day_matches(tm) and tm.tm_hour in self.hour
                and tm.tm_min in self.minute and tm.tm_sec in self.second)

    def _next_match(self, t: int, limit: int, counter: list[int]) -> int | None:
        """Smallest whole second in [t, limit] matching this entry, or None.

        Skips field by field, largest first: a wrong year jumps to the next
        allowed year, a wrong month to the next allowed month (or next
        year), a wrong day to the next allowed day of month (or the next
        day when only the weekday is wrong), then likewise hour, minute and
        second. Every jump only passes over seconds that cannot match, so
        the first second that survives all checks is the answer. One year
        costs at most ~12 month + ~366 day + a few hour/minute/second steps.
        ``counter[0]`` is incremented per loop step.
        """
        t = max(t, _START)
        limit = min(limit, _END - 1)
        while t <= limit:
            counter[0] += 1
            tm = time.gmtime(t)
            y, mo, d = tm.tm_year, tm.tm_mon, tm.tm_mday
            if y not in self.year:
                ny = self.year.next_from(y + 1)
                if ny is None:
                    return None
                t = calendar.timegm((ny, 1, 1, 0, 0, 0))
                continue
            if mo not in self.month:
                nm = self.month.next_from(mo + 1)
                if nm is None:
                    if y + 1 > 9999:
                        return None
                    t = calendar.timegm((y + 1, 1, 1, 0, 0, 0))
                else:
                    t = calendar.timegm((y, nm, 1, 0, 0, 0))
                continue
            day_start = t - t % 86400
            if d not in self.day:
                nd = self.day.next_from(d + 1)
                if nd is not None and nd <= calendar.monthrange(y, mo)[1]:
                    t = day_start + (nd - d) * 86400
                else:  # first day of the next month
                    t = day_start + (calendar.monthrange(y, mo)[1] - d + 1) * 86400
                continue
            if (tm.tm_wday + 1) % 7 not in self.weekday:
                t = day_start + 86400
                continue
            h, mi, s = tm.tm_hour, tm.tm_min, tm.tm_sec
            if h not in self.hour:
                nh = self.hour.next_from(h + 1)
                t = day_start + (86400 if nh is None else nh * 3600)
                continue
            hour_start = day_start + h * 3600
            if mi not in self.minute:
                nmi = self.minute.next_from(mi + 1)
                t = hour_start + (3600 if nmi is None else nmi * 60)
                continue
            minute_start = hour_start + mi * 60
            if s not in self.second:
                ns = self.second.next_from(s + 1)
                t = minute_start + (60 if ns is None else ns)
                continue
            return t
        return None


def parse_entry(text: str) -> ScheduleEntry:
    """Parse one scheduleEntry string; BadRequest names the entry and field."""
    return ScheduleEntry(text)


_FULL_MINUTE = (1 << 60) - 1
_MAX_MEMO = 4096


class Schedule:
    """A list of entries; a time is inside the schedule when ANY entry matches.

    An EMPTY list means "never open" (no entry can match). A missing schedule
    ("no restriction") is a different thing that callers must handle
    themselves, e.g. by not building a Schedule at all.

    ``last_steps`` holds the number of loop steps of the most recent
    :meth:`next_open` / :meth:`next_close` call: a diagnostic that lets tests
    prove the searches are bounded without timing them.
    """

    __slots__ = ("entries", "last_steps", "_cover")

    def __init__(self, entries: Sequence[str]) -> None:
        """Parse every entry; BadRequest on the first bad one (or a non-list)."""
        if isinstance(entries, (str, bytes)) or not isinstance(entries, Sequence):
            # A bare string is a Sequence[str] of characters: reject it
            # explicitly rather than reporting 30 one-character entries.
            raise BadRequest(
                f"schedule must be a list of entry strings, got {type(entries).__name__}")
        self.entries: tuple[ScheduleEntry, ...] = tuple(parse_entry(e) for e in entries)
        self.last_steps: int = 0
        # Memo for next_close: (level, entry indices) -> fully covered?
        self._cover: dict[tuple[int, tuple[int, ...]], bool] = {}

    def __repr__(self) -> str:
        return f"Schedule({[e.text for e in self.entries]!r})"

    def is_open(self, epoch: float) -> bool:
        """Whether any entry matches the second containing ``epoch``."""
        _check_epoch(epoch)
        return any(e.matches(epoch) for e in self.entries)

    def next_open(self, epoch: float, horizon_s: float = DEFAULT_HORIZON_S) -> float | None:
        """Smallest t >= epoch with is_open(t), or None if none within horizon.

        Returns ``epoch`` itself when open now, else a whole second
        t <= epoch + horizon_s: the earliest match of any entry (each entry
        is searched with a field-by-field skip, see ScheduleEntry).
        """
        epoch = _check_epoch(epoch)
        horizon_s = _check_horizon(horizon_s)
        self.last_steps = 0
        if self.is_open(epoch):
            return epoch
        counter = [0]
        best: int | None = None
        limit = _limit(epoch, horizon_s)
        start = math.floor(epoch) + 1  # the second containing epoch is closed
        for entry in self.entries:
            found = entry._next_match(start, limit if best is None else best - 1, counter)
            if found is not None:
                best = found
        self.last_steps = counter[0]
        return None if best is None else float(best)

    def next_close(self, epoch: float, horizon_s: float = DEFAULT_HORIZON_S) -> float | None:
        """Smallest whole second t > epoch with not is_open(t), or None.

        Meant for "open now, when does the window end?"; None means it stays
        open up to epoch + horizon_s. (If closed at epoch it simply returns
        the next closed second.) Entries may overlap or abut, so the search
        works on their union: a whole day, hour or minute that the union
        covers completely is skipped in one step. Whether a day/hour/minute
        is covered depends only on which entries match at that level, so it
        is computed once per such set of entries and memoized.
        """
        epoch = _check_epoch(epoch)
        horizon_s = _check_horizon(horizon_s)
        steps = 0
        limit = _limit(epoch, horizon_s)
        t = math.floor(epoch) + 1
        result: int | None = None
        while t <= limit:
            steps += 1
            if not _START <= t < _END:
                result = t
                break
            tm = time.gmtime(t)
            day_set = tuple(i for i, e in enumerate(self.entries) if e._day_matches(tm))
            day_start = t - t % 86400
            if not day_set:
                result = t
                break
            if self._day_covered(day_set):
                t = day_start + 86400
                continue
            hour_set = self._at_hour(day_set, tm.tm_hour)
            hour_start = day_start + tm.tm_hour * 3600
            if not hour_set:
                result = t
                break
            if self._hour_covered(hour_set):
                t = hour_start + 3600
                continue
            minute_set = self._at_minute(hour_set, tm.tm_min)
            minute_start = hour_start + tm.tm_min * 60
            if not minute_set:
                result = t
                break
            seconds = self._seconds_mask(minute_set)
            gap = next((s for s in range(tm.tm_sec, 60) if not (seconds >> s) & 1), None)
            if gap is None:  # open for the rest of this minute
                t = minute_start + 60
                continue
            t = minute_start + gap
            result = t if t <= limit else None
            break
        self.last_steps = steps
        return None if result is None else float(result)

    # -- coverage helpers for next_close ------------------------------------

    def _at_hour(self, indices: tuple[int, ...], hour: int) -> tuple[int, ...]:
        return tuple(i for i in indices if hour in self.entries[i].hour)

    def _at_minute(self, indices: tuple[int, ...], minute: int) -> tuple[int, ...]:
        return tuple(i for i in indices if minute in self.entries[i].minute)

    def _seconds_mask(self, indices: tuple[int, ...]) -> int:
        mask = 0
        for i in indices:
            mask |= self.entries[i].second.mask
        return mask

    def _remember(self, key: tuple[int, tuple[int, ...]], value: bool) -> None:
        """Store a coverage result; the memo is capped so it cannot grow unbounded."""
        if len(self._cover) >= _MAX_MEMO:
            self._cover.clear()
        self._cover[key] = value

    def _hour_covered(self, indices: tuple[int, ...]) -> bool:
        """Every second of an hour is open given these entries match the hour."""
        key = (1, indices)
        cached = self._cover.get(key)
        if cached is None:
            cached = all(
                self._seconds_mask(self._at_minute(indices, m)) == _FULL_MINUTE
                for m in range(60))
            self._remember(key, cached)
        return cached

    def _day_covered(self, indices: tuple[int, ...]) -> bool:
        """Every second of a day is open given these entries match the day."""
        key = (0, indices)
        cached = self._cover.get(key)
        if cached is None:
            cached = all(self._hour_covered(self._at_hour(indices, h)) for h in range(24))
            self._remember(key, cached)
        return cached
