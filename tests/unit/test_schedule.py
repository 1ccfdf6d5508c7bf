"""scheduleEntry parsing and window search (docs/onem2m.md "Schedule entries"; session policy ``sch``).

All times are fixed UTC epochs built with calendar.timegm; nothing sleeps or
reads the clock. Efficiency is checked through Schedule.last_steps (loop
steps), never wall time.
"""

from __future__ import annotations

import calendar
import random

import pytest

from cse.core.errors import BadRequest
from cse.core.schedule import Schedule, ScheduleEntry, parse_entry


def ts(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> int:
    return calendar.timegm((y, mo, d, h, mi, s))


# 2025-03-01 is a Saturday; 2025-03-02 a Sunday.
SAT = ts(2025, 3, 1)


# -- parsing -------------------------------------------------------------------

def test_star_means_full_range() -> None:
    e = parse_entry("* * * * * * *")
    assert e.second.values == tuple(range(60))
    assert e.minute.values == tuple(range(60))
    assert e.hour.values == tuple(range(24))
    assert e.day.values == tuple(range(1, 32))
    assert e.month.values == tuple(range(1, 13))
    assert e.weekday.values == tuple(range(7))
    assert e.year.values == tuple(range(2000, 10000))


def test_number_range_step_and_list() -> None:
    e = parse_entry("5 0-3 */6 1-31/10 2,4-5 1-5/2 2025,2030-2040/5")
    assert e.second.values == (5,)
    assert e.minute.values == (0, 1, 2, 3)
    assert e.hour.values == (0, 6, 12, 18)
    assert e.day.values == (1, 11, 21, 31)
    assert e.month.values == (2, 4, 5)
    assert e.weekday.values == (1, 3, 5)
    assert e.year.values == (2025, 2030, 2035, 2040)


def test_star_step_starts_at_field_minimum() -> None:
    e = parse_entry("* * * */10 */5 */3 */1000")
    assert e.day.values == (1, 11, 21, 31)
    assert e.month.values == (1, 6, 11)
    assert e.weekday.values == (0, 3, 6)
    assert e.year.values == tuple(range(2000, 10000, 1000))


def test_list_overlaps_are_deduplicated_and_sorted() -> None:
    e = parse_entry("30,10,0-15/5,10 * * * * * *")
    assert e.second.values == (0, 5, 10, 15, 30)


def test_leading_zeros_and_extra_whitespace_accepted() -> None:
    e = parse_entry("  05   00-02 * *\t* * 02025 ")
    assert e.second.values == (5,)
    assert e.minute.values == (0, 1, 2)
    assert e.year.values == (2025,)


def test_step_larger_than_range_keeps_start() -> None:
    assert parse_entry("0-10/60 * * * * * *").second.values == (0,)


def test_entry_keeps_text_and_compares_by_text() -> None:
    e = parse_entry("* * 8-20 * * * *")
    assert e.text == "* * 8-20 * * * *"
    assert e == ScheduleEntry("* * 8-20 * * * *")
    assert hash(e) == hash(parse_entry("* * 8-20 * * * *"))
    with pytest.raises(AttributeError):
        e.text = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("* * * * * *", "expected 7 fields"),
        ("* * * * * * * *", "expected 7 fields"),
        ("", "expected 7 fields"),
        ("60 * * * * * *", "second"),
        ("* 60 * * * * *", "minute"),
        ("* * 24 * * * *", "hour"),
        ("* * * 0 * * *", "day of month"),
        ("* * * 32 * * *", "day of month"),
        ("* * * * 0 * *", "month"),
        ("* * * * 13 * *", "month"),
        ("* * * * * 7 *", "day of week"),
        ("* * * * * * 1999", "year"),
        ("* * * * * * 10000", "year"),
        ("* * 5-2 * * * *", "reversed range"),
        ("* * */0 * * * *", "step 0"),
        ("* * 1-5/0 * * * *", "step 0"),
        ("* * 5/2 * * * *", "hour"),
        ("a * * * * * *", "second"),
        ("* * * * * mon *", "day of week"),
        ("* * -1 * * * *", "hour"),
        ("* * 1- * * * *", "hour"),
        ("* * -5 * * * *", "hour"),
        ("* * 1,,2 * * * *", "hour"),
        ("* * 1, * * * *", "hour"),
        ("* * ** * * * *", "hour"),
        ("* * */ * * * *", "hour"),
        ("* * 1-2-3 * * * *", "hour"),
        ("* * +1 * * * *", "hour"),
        ("* * 1.5 * * * *", "hour"),
        ("* * \u00b2 * * * *", "hour"),          # unicode digit: int() would accept it
        ("* * \u0661 * * * *", "hour"),          # Arabic-Indic one
        pytest.param("* * " + "9" * 5000 + " * * * *", "out of range", id="huge-number"),
        pytest.param("* * 1-" + "9" * 5000 + " * * * *", "out of range", id="huge-range-end"),
    ],
)
def test_invalid_entries_raise_bad_request_naming_entry_and_field(text: str, fragment: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_entry(text)
    msg = info.value.message
    assert fragment in msg
    assert "schedule entry" in msg
    if text.strip():
        assert text[:20].strip()[:10] in msg  # the entry text is named


def test_huge_step_is_accepted_as_just_the_start() -> None:
    assert parse_entry("* * */" + "9" * 5000 + " * * * *").hour.values == (0,)


@pytest.mark.parametrize("bad", [None, 5, b"* * * * * * *", ["* * * * * * *"]])
def test_non_string_entry_is_bad_request(bad: object) -> None:
    with pytest.raises(BadRequest):
        parse_entry(bad)  # type: ignore[arg-type]


def test_schedule_rejects_bad_entry_among_good_ones() -> None:
    with pytest.raises(BadRequest) as info:
        Schedule(["* * 0-5 * * * *", "* * 25 * * * *"])
    assert "* * 25 * * * *" in info.value.message
    assert "hour" in info.value.message


@pytest.mark.parametrize("bad", ["* * 0-5 * * * *", None, 7, {"sce": []}])
def test_schedule_requires_a_list(bad: object) -> None:
    with pytest.raises(BadRequest):
        Schedule(bad)  # type: ignore[arg-type]


def test_schedule_rejects_non_string_items() -> None:
    with pytest.raises(BadRequest):
        Schedule(["* * * * * * *", None])  # type: ignore[list-item]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), "0", None, True])
def test_bad_times_are_bad_request(bad: object) -> None:
    s = Schedule(["* * * * * * *"])
    with pytest.raises(BadRequest):
        s.is_open(bad)  # type: ignore[arg-type]
    with pytest.raises(BadRequest):
        s.next_open(bad)  # type: ignore[arg-type]
    with pytest.raises(BadRequest):
        s.next_close(bad)  # type: ignore[arg-type]
    with pytest.raises(BadRequest):
        s.entries[0].matches(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, float("nan"), "1"])
def test_bad_horizon_is_bad_request(bad: object) -> None:
    s = Schedule(["0 0 0 * * * *"])
    with pytest.raises(BadRequest):
        s.next_open(SAT + 5, bad)  # type: ignore[arg-type]
    with pytest.raises(BadRequest):
        s.next_close(SAT, bad)  # type: ignore[arg-type]


# -- matches -------------------------------------------------------------------

def test_matches_hour_window_boundaries() -> None:
    e = parse_entry("* * 8-20 * * * *")  # docs/onem2m.md "Schedule entries": 08:00-20:59
    assert not e.matches(ts(2025, 3, 1, 7, 59, 59))
    assert e.matches(ts(2025, 3, 1, 8, 0, 0))
    assert e.matches(ts(2025, 3, 1, 20, 59, 59))
    assert e.matches(ts(2025, 3, 1, 20, 59, 59) + 0.999)  # same second
    assert not e.matches(ts(2025, 3, 1, 21, 0, 0))


def test_matches_minutes_of_listed_hours() -> None:
    e = parse_entry("* 0-5 2,6,10 * * * *")  # docs/onem2m.md "Schedule entries"
    for h in (2, 6, 10):
        assert e.matches(ts(2025, 3, 1, h, 0, 0))
        assert e.matches(ts(2025, 3, 1, h, 5, 59))
        assert not e.matches(ts(2025, 3, 1, h, 6, 0))
    assert not e.matches(ts(2025, 3, 1, 3, 0, 0))
    assert not e.matches(ts(2025, 3, 1, 1, 59, 59))


def test_matches_even_weekdays() -> None:
    e = parse_entry("* * * * * */2 *")  # docs/onem2m.md "Schedule entries": Sun/Tue/Thu/Sat
    # 2025-03-01 Sat, 02 Sun, 03 Mon, 04 Tue, 05 Wed, 06 Thu, 07 Fri
    expected = {1: True, 2: True, 3: False, 4: True, 5: False, 6: True, 7: False}
    for day, want in expected.items():
        assert e.matches(ts(2025, 3, day, 12)) is want, day


def test_matches_sessions_forwarding_window() -> None:
    e = parse_entry("* * 0-5 * * * *")  # docs/sessions.md sch: 00:00-05:59
    assert e.matches(ts(2025, 3, 1, 0, 0, 0))
    assert e.matches(ts(2025, 3, 1, 5, 59, 59))
    assert not e.matches(ts(2025, 3, 1, 6, 0, 0))
    assert not e.matches(ts(2025, 3, 1, 23, 59, 59))


def test_day_of_month_and_weekday_are_anded() -> None:
    e = parse_entry("* * * 1 * 0 *")  # the 1st AND a Sunday (cron would OR)
    assert not e.matches(ts(2025, 3, 1))  # 1st, Saturday
    assert not e.matches(ts(2025, 3, 2))  # Sunday, 2nd
    assert e.matches(ts(2025, 6, 1))      # 2025-06-01 is a Sunday


def test_matches_year_and_month() -> None:
    e = parse_entry("* * * * 12 * 2025")
    assert e.matches(ts(2025, 12, 31, 23, 59, 59))
    assert not e.matches(ts(2026, 1, 1))
    assert not e.matches(ts(2024, 12, 31))


def test_matches_outside_representable_years_is_false() -> None:
    e = parse_entry("* * * * * * *")
    assert not e.matches(ts(1999, 12, 31, 23, 59, 59))
    assert e.matches(ts(2000, 1, 1))
    assert e.matches(ts(9999, 12, 31, 23, 59, 59))
    assert not e.matches(ts(9999, 12, 31, 23, 59, 59) + 1)
    assert not e.matches(1e18)
    assert not e.matches(-1e18)


# -- Schedule: is_open ---------------------------------------------------------

def test_multiple_entries_are_ored() -> None:
    s = Schedule(["* * 0-5 * * * *", "* 0-5 2,6,10 * * * *", "* * 22 * * * *"])
    assert s.is_open(ts(2025, 3, 1, 3))
    assert s.is_open(ts(2025, 3, 1, 6, 5, 59))
    assert not s.is_open(ts(2025, 3, 1, 6, 6))
    assert s.is_open(ts(2025, 3, 1, 22, 30))
    assert not s.is_open(ts(2025, 3, 1, 21, 30))


def test_empty_schedule_is_never_open() -> None:
    s = Schedule([])
    assert not s.is_open(SAT)
    assert s.next_open(SAT) is None
    assert s.next_close(SAT) == SAT + 1  # already closed: the next second


def test_tuple_of_entries_accepted() -> None:
    assert Schedule(("* * * * * * *",)).is_open(SAT)


# -- next_open -----------------------------------------------------------------

def test_next_open_when_already_open_returns_epoch() -> None:
    s = Schedule(["* * 0-5 * * * *"])
    assert s.next_open(SAT + 100) == SAT + 100
    assert s.next_open(SAT + 100.25) == SAT + 100.25


def test_next_open_is_a_whole_second() -> None:
    s = Schedule(["* * 8-20 * * * *"])
    assert s.next_open(ts(2025, 3, 1, 7, 59, 59) + 0.5) == ts(2025, 3, 1, 8)


def test_next_open_later_same_day() -> None:
    s = Schedule(["* 0-5 2,6,10 * * * *"])
    assert s.next_open(ts(2025, 3, 1, 2, 6)) == ts(2025, 3, 1, 6)
    assert s.next_open(ts(2025, 3, 1, 10, 5, 59)) == ts(2025, 3, 1, 10, 5, 59)


def test_next_open_across_midnight() -> None:
    s = Schedule(["* * 0-5 * * * *"])
    assert s.next_open(ts(2025, 3, 1, 6)) == ts(2025, 3, 2)
    assert s.next_open(ts(2025, 12, 31, 23, 59, 59)) == ts(2026, 1, 1)


def test_next_open_across_month_end() -> None:
    s = Schedule(["0 0 12 1 * * *"])
    assert s.next_open(ts(2025, 1, 31, 13)) == ts(2025, 2, 1, 12)
    s31 = Schedule(["0 0 0 31 * * *"])  # skips months without a 31st
    assert s31.next_open(ts(2025, 3, 31, 0, 0, 1)) == ts(2025, 5, 31)


def test_next_open_leap_day() -> None:
    s = Schedule(["0 0 0 29 2 * *"])
    start = ts(2025, 3, 1)
    assert s.next_open(start) is None  # not within the default one-year horizon
    assert s.next_open(start, 4 * 366 * 86400) == ts(2028, 2, 29)
    assert s.next_open(ts(2024, 1, 1)) == ts(2024, 2, 29)


def test_next_open_weekday_and_seconds() -> None:
    s = Schedule(["30 15 9 * * 1 *"])  # Mondays 09:15:30
    assert s.next_open(SAT) == ts(2025, 3, 3, 9, 15, 30)
    assert s.next_open(ts(2025, 3, 3, 9, 15, 31)) == ts(2025, 3, 10, 9, 15, 30)


def test_next_open_earliest_of_several_entries() -> None:
    s = Schedule(["0 0 20 * * * *", "0 0 7 * * * *", "0 30 6 * * * *"])
    assert s.next_open(ts(2025, 3, 1, 6, 40)) == ts(2025, 3, 1, 7)
    assert s.next_open(ts(2025, 3, 1, 20, 0, 1)) == ts(2025, 3, 2, 6, 30)


def test_next_open_horizon() -> None:
    s = Schedule(["* * 0-5 * * * *"])
    six = ts(2025, 3, 1, 6)
    midnight = ts(2025, 3, 2)
    assert s.next_open(six, midnight - six) == midnight      # inclusive
    assert s.next_open(six, midnight - six - 1) is None
    assert s.next_open(six, 0) is None


def test_next_open_from_before_2000_and_near_9999() -> None:
    s = Schedule(["* * * * * * *"])
    assert s.next_open(0.0, float("inf")) == ts(2000, 1, 1)
    assert s.next_open(-1e18, float("inf")) == ts(2000, 1, 1)
    last = ts(9999, 12, 31, 23, 59, 59)
    assert s.next_open(last) == last
    assert s.next_open(last + 1, float("inf")) is None
    assert s.next_open(1e18, float("inf")) is None
    assert Schedule(["0 0 0 1 1 * 9999"]).next_open(ts(9999, 1, 1, 0, 0, 1), float("inf")) is None
    assert Schedule(["0 0 0 1 2 * 9999"]).next_open(ts(9999, 3, 1), float("inf")) is None


def test_next_open_with_sparse_years() -> None:
    s = Schedule(["0 0 0 1 1 * 2030,2100"])
    assert s.next_open(SAT, float("inf")) == ts(2030, 1, 1)
    assert s.next_open(ts(2030, 1, 1, 0, 0, 1), float("inf")) == ts(2100, 1, 1)
    assert s.next_open(ts(2100, 1, 1, 0, 0, 1), float("inf")) is None


# -- next_close ----------------------------------------------------------------

def test_next_close_end_of_window() -> None:
    s = Schedule(["* * 0-5 * * * *"])
    assert s.next_close(ts(2025, 3, 1, 5, 59, 30)) == ts(2025, 3, 1, 6)
    assert s.next_close(ts(2025, 3, 1, 0, 0, 0)) == ts(2025, 3, 1, 6)
    assert s.next_close(ts(2025, 3, 1, 5, 59, 59) + 0.5) == ts(2025, 3, 1, 6)


def test_next_close_minute_window() -> None:
    s = Schedule(["* 0-5 2,6,10 * * * *"])
    assert s.next_close(ts(2025, 3, 1, 6, 3, 7)) == ts(2025, 3, 1, 6, 6)


def test_next_close_single_second_window() -> None:
    s = Schedule(["0 0 12 * * * *"])
    assert s.next_close(ts(2025, 3, 1, 12)) == ts(2025, 3, 1, 12, 0, 1)


def test_next_close_when_closed_returns_next_closed_second() -> None:
    s = Schedule(["* * 0-5 * * * *"])
    assert s.next_close(ts(2025, 3, 1, 12)) == ts(2025, 3, 1, 12, 0, 1)
    # closed now, but the following second opens: the one after the window
    assert s.next_close(ts(2025, 3, 1, 23, 59, 59)) == ts(2025, 3, 2, 6)


def test_next_close_over_adjacent_entries() -> None:
    # Two entries that together cover every second of every day except Sunday.
    s = Schedule(["0-29 * * * * 1-6 *", "30-59 * * * * 1-6 *"])
    assert s.next_close(ts(2025, 3, 3, 10)) == ts(2025, 3, 9)  # Mon -> Sun 00:00
    assert s.last_steps < 20


def test_next_close_over_overlapping_day_entries() -> None:
    s = Schedule(["* * 0-12 * * * *", "* * 10-23 * * * *", "* * * 15 3 * *"])
    assert s.next_close(SAT) is None  # open around the clock
    s2 = Schedule(["* * 0-12 * * * *", "* * 10-22 * * * *", "* * 23 * 3 * *"])
    # Open all day every day in March, closes at 23:00 on 1 April.
    assert s2.next_close(SAT) == ts(2025, 4, 1, 23)
    assert s2.last_steps < 100


def test_next_close_always_open_returns_none_within_horizon() -> None:
    s = Schedule(["* * * * * * *"])
    assert s.next_close(SAT) is None
    assert s.last_steps <= 400
    assert s.next_close(SAT, 10) is None


def test_next_close_horizon_inclusive() -> None:
    s = Schedule(["* * 0-5 * * * *"])
    start = ts(2025, 3, 1, 5)
    assert s.next_close(start, 3600) == ts(2025, 3, 1, 6)
    assert s.next_close(start, 3599) is None


def test_next_close_at_end_of_year_9999() -> None:
    s = Schedule(["* * * * * * *"])
    last = ts(9999, 12, 31, 23, 59, 59)
    assert s.next_close(last - 10) == last + 1
    assert s.next_close(1e18) == 1e18 + 1
    assert Schedule(["* * * * * * 9999"]).next_close(ts(9999, 6, 1), float("inf")) == last + 1


def test_next_close_before_2000() -> None:
    assert Schedule(["* * * * * * *"]).next_close(0) == 1.0


# -- efficiency ----------------------------------------------------------------

def test_yearly_entry_search_is_bounded() -> None:
    s = Schedule(["0 0 0 29 2 * *"])
    assert s.next_open(ts(2025, 3, 1), 4 * 366 * 86400) == ts(2028, 2, 29)
    assert s.last_steps < 50
    s = Schedule(["59 59 23 31 12 * *"])
    assert s.next_open(ts(2025, 1, 1)) == ts(2025, 12, 31, 23, 59, 59)
    assert s.last_steps < 50


def test_weekday_and_day_search_is_bounded() -> None:
    # The 13th that is a Friday: the day loop walks one month at a time.
    s = Schedule(["0 0 0 13 * 5 *"])
    assert s.next_open(ts(2025, 7, 1)) == ts(2026, 2, 13)
    assert s.last_steps < 100
    # Sundays of 2025 only, asked on the last Monday: the next Sunday is in 2026.
    s = Schedule(["0 0 0 * * 0 2025"])
    assert s.next_open(ts(2025, 12, 29)) is None
    assert s.last_steps < 50


def test_worst_case_never_matching_year_is_bounded() -> None:
    # Feb 30 never exists: a year-long search visits each month once or twice.
    s = Schedule(["* * * 30 2 * *"])
    assert s.next_open(SAT) is None
    assert s.last_steps < 50
    # A weekday that never coincides forces the day-by-day loop: ~366 steps a year.
    s = Schedule(["0 0 0 1-7 2 3 *"])  # a Wednesday in 1-7 Feb
    assert s.next_open(ts(2025, 2, 6)) == ts(2026, 2, 4)
    assert s.last_steps < 50
    s = Schedule(["0 0 0 * * 3 2024"])
    assert s.next_open(ts(2024, 1, 4), float("inf")) == ts(2024, 1, 10)
    s = Schedule(["0 0 0 1 * 3 2025"])  # 1st that is a Wednesday: Jan and Oct 2025
    assert s.next_open(ts(2025, 1, 1, 0, 0, 1)) == ts(2025, 10, 1)
    assert s.last_steps < 50


def test_dense_time_fields_sparse_days_are_bounded() -> None:
    # Many hours/minutes/seconds allowed but the day only exists once a year.
    s = Schedule(["*/7 */11 */5 29 2 * *"])
    assert s.next_open(ts(2024, 3, 1), 4 * 366 * 86400) == ts(2028, 2, 29)
    assert s.last_steps < 50


# -- cross-check against brute force -------------------------------------------

def _brute_next_open(s: Schedule, epoch: int, horizon: int) -> float | None:
    for t in range(epoch, epoch + horizon + 1):
        if s.is_open(t):
            return float(t)
    return None


def _brute_next_close(s: Schedule, epoch: int, horizon: int) -> float | None:
    for t in range(epoch + 1, epoch + horizon + 1):
        if not s.is_open(t):
            return float(t)
    return None


def _random_field(rng: random.Random, lo: int, hi: int) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        return "*"
    if kind == 1:
        return str(rng.randint(lo, hi))
    a = rng.randint(lo, hi)
    b = rng.randint(a, hi)
    if kind == 2:
        return f"{a}-{b}"
    if kind == 3:
        return f"{a}-{b}/{rng.randint(1, 7)}"
    return f"{rng.randint(lo, hi)},{a}-{b}"


def test_random_entries_agree_with_brute_force() -> None:
    rng = random.Random(20250301)
    horizon = 2 * 3600  # brute force is second by second: keep it small
    bases = [ts(2025, 2, 28, 23), ts(2024, 2, 28, 23), ts(2024, 2, 29, 23), ts(2025, 12, 31, 23)]
    for _ in range(60):
        entries = []
        for _ in range(rng.randint(1, 3)):
            fields = [
                _random_field(rng, 0, 59),
                _random_field(rng, 0, 59),
                _random_field(rng, 0, 23),
                rng.choice(["*", "1-15", "*/2", "28-31"]),
                rng.choice(["*", "2-3", "3", "1,12"]),
                rng.choice(["*", "1-5", "0,6", "*/2"]),
                rng.choice(["*", "2025", "2024-2030/2"]),
            ]
            entries.append(" ".join(fields))
        s = Schedule(entries)
        epoch = rng.choice(bases) + rng.randrange(3600)
        assert s.next_open(epoch, horizon) == _brute_next_open(s, epoch, horizon), entries
        assert s.next_close(epoch, horizon) == _brute_next_close(s, epoch, horizon), entries
