"""The cron calendar: ISO 8601 repeating intervals and cron expressions against brute-force references,
across daylight-saving changes in several zones."""

from __future__ import annotations

import calendar as stdcal
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from frameworks.cron.calendar import (
    CronSchedule,
    IsoSchedule,
    ScheduleError,
    format_ms,
    from_ms,
    parse_duration_ms,
    parse_ms,
    parse_schedule,
    to_ms,
)

SETTINGS = settings(max_examples=150, deadline=None, database=None)
ZONES = ("America/New_York", "Europe/London", "Europe/Berlin", "Australia/Sydney", "Australia/Lord_Howe",
         "America/Sao_Paulo", "Asia/Kolkata", "Pacific/Chatham", "UTC")



def utc(*args: int) -> int:
    return to_ms(datetime(*args, tzinfo=UTC))


def ref_slot(wall: datetime, tz: ZoneInfo | timezone, months: int, days: int, ms: int, k: int) -> int:
    """Slot k computed without dateutil: calendar months clamped to the month's end, then days, on the
    wall clock; the first occurrence of the wall time (fold=0); then the exact part."""
    year, month = divmod(wall.month - 1 + k * months, 12)
    year, month = wall.year + year, month + 1
    day = min(wall.day, stdcal.monthrange(year, month)[1])
    moved = datetime.combine(date(year, month, day) + timedelta(days=k * days), wall.time())
    return to_ms(moved.replace(tzinfo=tz, fold=0)) + k * ms


def exists(wall: datetime, tz: ZoneInfo) -> bool:
    """Whether a wall-clock time happens in ``tz`` (it does not inside a spring-forward gap)."""
    aware = wall.replace(tzinfo=tz)
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall


periods = st.tuples(st.integers(0, 14), st.integers(0, 40), st.sampled_from([0, 0, 1000, 90_000, 3_600_000,
                                                                             5_400_000, 86_400_000]))
walls = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2035, 12, 31)).map(
    lambda moment: moment.replace(microsecond=0))


def period_text(months: int, days: int, ms: int) -> str:
    text = "P" + (f"{months}M" if months else "") + (f"{days}D" if days else "")
    if ms:
        text += f"T{ms // 1000}S"
    return text


def iso(wall: datetime, zone: str, period: tuple[int, int, int], count: str = "") -> IsoSchedule:
    schedule = parse_schedule(f"R{count}/{wall.strftime('%Y-%m-%dT%H:%M:%S')}/{period_text(*period)}", zone, 0)
    assert isinstance(schedule, IsoSchedule)
    return schedule


class IsoSlotTests(unittest.TestCase):
    @SETTINGS
    @given(walls, st.sampled_from(ZONES), periods, st.integers(0, 600))
    def test_slot_matches_the_reference(self, wall: datetime, zone: str, period: tuple[int, int, int],
                                        k: int) -> None:
        """Slot k is the start plus k periods: calendar parts on the wall clock, the rest elapsed."""
        assume(any(period))
        schedule = iso(wall, zone, period)
        self.assertEqual(schedule.slot(k), ref_slot(wall, ZoneInfo(zone), *period, k))

    @SETTINGS
    @given(walls, st.sampled_from(ZONES), periods, st.floats(-3, 500))
    def test_first_after_matches_a_linear_scan(self, wall: datetime, zone: str, period: tuple[int, int, int],
                                               periods_later: float) -> None:
        """The first slot after a time is the one a slot-by-slot scan finds, and slots only increase."""
        assume(any(period))
        schedule = iso(wall, zone, period)
        t = schedule.start_ms + int(periods_later * schedule.period.approx_ms)
        k = schedule.first_after(t)
        self.assertGreater(schedule.slot(k), t)
        if k > 0:
            self.assertLessEqual(schedule.slot(k - 1), t)
        scan = 0
        while ref_slot(wall, ZoneInfo(zone), *period, scan) <= t:
            scan += 1
        self.assertEqual(k, scan)

    @SETTINGS
    @given(walls, st.sampled_from(ZONES), st.integers(0, 3), st.integers(0, 9), st.integers(0, 400))
    def test_calendar_periods_keep_the_wall_clock(self, wall: datetime, zone: str, months: int, days: int,
                                                  k: int) -> None:
        """P1D, P1W, P1M... fire at the start's wall-clock time, or just after a gap that swallows it."""
        assume(months or days)
        tz = ZoneInfo(zone)
        schedule = iso(wall, zone, (months, days, 0))
        expected = ref_slot(wall.replace(tzinfo=None), UTC, months, days, 0, k)
        wall_k = from_ms(expected).replace(tzinfo=None)
        seen = from_ms(schedule.slot(k), tz).replace(tzinfo=None)
        if exists(wall_k, tz):
            self.assertEqual(seen, wall_k)
        else:
            self.assertGreater(seen, wall_k)
            self.assertLessEqual(seen - wall_k, timedelta(hours=1))
        self.assertLess(schedule.slot(k), schedule.slot(k + 1))

    @SETTINGS
    @given(walls, st.sampled_from(ZONES), st.integers(1, 10 * 86400), st.integers(0, 1000))
    def test_elapsed_periods_are_exact(self, wall: datetime, zone: str, seconds: int, k: int) -> None:
        """PT periods are elapsed time: consecutive slots are exactly one period apart in every zone."""
        schedule = iso(wall, zone, (0, 0, seconds * 1000))
        self.assertEqual(schedule.slot(k + 1) - schedule.slot(k), seconds * 1000)


class DaylightSavingTests(unittest.TestCase):
    def slots(self, text: str, zone: str, n: int) -> list[str]:
        schedule = parse_schedule(text, zone, 0)
        assert isinstance(schedule, IsoSchedule)
        return [format_ms(schedule.slot(k), schedule.tz) for k in range(n)]

    def test_a_daily_job_in_the_spring_gap_runs_after_the_gap(self) -> None:
        """02:30 daily in New York runs at 03:30 EDT on the day 02:00-03:00 is skipped, then at 02:30."""
        self.assertEqual(self.slots("R/2024-03-09T02:30:00/P1D", "America/New_York", 3),
                         ["2024-03-09T02:30:00.000-05:00", "2024-03-10T03:30:00.000-04:00",
                          "2024-03-11T02:30:00.000-04:00"])

    def test_twenty_four_hours_is_not_a_day(self) -> None:
        """PT24H drifts by the hour across a DST change, P1D does not (Yelp/paasta#334)."""
        self.assertEqual(self.slots("R/2024-03-09T12:00:00/PT24H", "America/New_York", 2)[1],
                         "2024-03-10T13:00:00.000-04:00")
        self.assertEqual(self.slots("R/2024-03-09T12:00:00/P1D", "America/New_York", 2)[1],
                         "2024-03-10T12:00:00.000-04:00")

    def test_an_ambiguous_time_means_its_first_occurrence(self) -> None:
        """01:30 in London on the day clocks fall back is the BST one (00:30Z), once."""
        schedule = parse_schedule("R/2024-10-26T01:30:00/P1D", "Europe/London", 0)
        assert isinstance(schedule, IsoSchedule)
        self.assertEqual(schedule.slot(1), utc(2024, 10, 27, 0, 30))
        self.assertEqual(schedule.slot(2), utc(2024, 10, 28, 1, 30))

    def test_southern_hemisphere(self) -> None:
        """Sydney jumps forward in October: a 02:30 daily slot runs at 03:30 AEDT that day."""
        self.assertEqual(self.slots("R/2024-10-05T02:30:00/P1D", "Australia/Sydney", 3),
                         ["2024-10-05T02:30:00.000+10:00", "2024-10-06T03:30:00.000+11:00",
                          "2024-10-07T02:30:00.000+11:00"])

    def test_half_hour_daylight_saving(self) -> None:
        """Lord Howe moves its clocks by 30 minutes: 02:15 on the jump day is 02:45."""
        self.assertEqual(self.slots("R/2024-10-05T02:15:00/P1D", "Australia/Lord_Howe", 2)[1],
                         "2024-10-06T02:45:00.000+11:00")

    def test_months_clamp_to_the_month_end_without_drift(self) -> None:
        """P1M from 31 January: 29 February, 31 March, 30 April (from the start, not from the last slot)."""
        self.assertEqual(self.slots("R/2024-01-31T10:00:00+01:00/P1M", "", 4),
                         ["2024-01-31T10:00:00.000+01:00", "2024-02-29T10:00:00.000+01:00",
                          "2024-03-31T10:00:00.000+01:00", "2024-04-30T10:00:00.000+01:00"])

    def test_schedule_time_zone_keeps_the_wall_clock_fields(self) -> None:
        """As Chronos: R/2014-10-10T18:32:00Z/PT60M in Los Angeles fires at 18:32 Pacific."""
        schedule = parse_schedule("R/2014-10-10T18:32:00Z/PT60M", "America/Los_Angeles", 0)
        assert isinstance(schedule, IsoSchedule)
        self.assertEqual(schedule.slot(0), utc(2014, 10, 11, 1, 32))

    def test_java_short_zone_ids(self) -> None:
        """Chronos clients send Java's legacy IDs (PST); they mean the region they always meant."""
        a = parse_schedule("R/2024-07-01T09:00:00/P1D", "PST", 0)
        b = parse_schedule("R/2024-07-01T09:00:00/P1D", "America/Los_Angeles", 0)
        assert isinstance(a, IsoSchedule) and isinstance(b, IsoSchedule)
        self.assertEqual(a.slot(5), b.slot(5))


#: Expressions that fire at least daily, with the (hour, minute) pairs each one means, written out by
#: hand so that the reference does not lean on croniter.
CRONS = {
    "*/15 * * * *": {(h, m) for h in range(24) for m in range(0, 60, 15)},
    "30 2 * * *": {(2, 30)},
    "30 1 * * *": {(1, 30)},
    "0 1 * * *": {(1, 0)},
    "0 */2 * * *": {(h, 0) for h in range(0, 24, 2)},
    "*/7 1-3 * * *": {(h, m) for h in (1, 2, 3) for m in range(0, 60, 7)},
    "0,30,59 2,3 * * *": {(h, m) for h in (2, 3) for m in (0, 30, 59)},
    "15 0-4 * * *": {(h, 15) for h in range(5)},
    "@hourly": {(h, 0) for h in range(24)},
    "@daily": {(0, 0)},
}


def ref_cron(expr: str, tz: ZoneInfo, t: int, days: int) -> list[int]:
    """The slots after t within ``days``: every matching wall-clock minute mapped to its first
    occurrence (gaps moved forward), each instant once, in order."""
    first = from_ms(t, tz).date() - timedelta(days=1)
    found = {to_ms(datetime(d.year, d.month, d.day, hour, minute, tzinfo=tz, fold=0))
             for d in (first + timedelta(days=n) for n in range(days + 2)) for hour, minute in CRONS[expr]}
    return sorted(x for x in found if t < x <= t + days * 86400_000)


class CronTests(unittest.TestCase):
    @SETTINGS
    @given(st.sampled_from(sorted(CRONS)), st.sampled_from(ZONES),
           st.sampled_from([utc(2024, 3, 10, 5, 0), utc(2024, 11, 3, 4, 0), utc(2024, 10, 27, 0, 0),
                            utc(2024, 10, 5, 14, 0), utc(2024, 4, 6, 14, 0), utc(2024, 9, 28, 12, 0)]),
           st.integers(0, 6 * 3600_000))
    def test_next_after_matches_the_wall_clock_table(self, expr: str, zone: str, base: int,
                                                          offset: int) -> None:
        """Walking next_after gives every matching wall-clock minute, each instant once, gaps moved forward."""
        schedule = parse_schedule(expr, zone, 0)
        assert isinstance(schedule, CronSchedule)
        t = base + offset
        expected = ref_cron(expr, ZoneInfo(zone), t, 3)
        walked = []
        cursor = t
        for _ in expected:
            cursor = schedule.next_after(cursor)
            walked.append(cursor)
        self.assertGreaterEqual(len(expected), 2)
        self.assertEqual(walked, expected)

    def test_cron_in_the_spring_gap_runs_once_after_it(self) -> None:
        """30 2 * * * runs at 03:30 EDT on the day New York skips 02:00-03:00."""
        schedule = parse_schedule("30 2 * * *", "America/New_York", 0)
        assert isinstance(schedule, CronSchedule)
        self.assertEqual(schedule.next_after(utc(2024, 3, 10, 5)), utc(2024, 3, 10, 7, 30))

    def test_cron_in_the_repeated_hour_runs_once(self) -> None:
        """30 1 * * * runs once (at the first 01:30) on the day New York repeats 01:00-02:00."""
        schedule = parse_schedule("30 1 * * *", "America/New_York", 0)
        assert isinstance(schedule, CronSchedule)
        first = schedule.next_after(utc(2024, 11, 3, 4))
        self.assertEqual(first, utc(2024, 11, 3, 5, 30))
        self.assertEqual(schedule.next_after(first), utc(2024, 11, 4, 6, 30))

    def test_monthly_and_weekly_expressions(self) -> None:
        """Day-of-month and day-of-week fields: the 1st at midnight London time, Sundays at 03:00."""
        monthly = parse_schedule("0 0 1 * *", "Europe/London", 0)
        weekly = parse_schedule("0 3 * * 0", "America/New_York", 0)
        assert isinstance(monthly, CronSchedule) and isinstance(weekly, CronSchedule)
        self.assertEqual(monthly.next_after(utc(2024, 3, 10)), utc(2024, 3, 31, 23))
        self.assertEqual(monthly.next_after(utc(2024, 3, 31, 23)), utc(2024, 4, 30, 23))
        self.assertEqual(weekly.next_after(utc(2024, 3, 4)), utc(2024, 3, 10, 7))
        self.assertEqual(weekly.next_after(utc(2024, 3, 10, 7)), utc(2024, 3, 17, 7))

    def test_cron_without_zone_is_utc(self) -> None:
        """Without scheduleTimeZone a cron expression reads UTC."""
        schedule = parse_schedule("0 12 * * *", "", 0)
        assert isinstance(schedule, CronSchedule)
        self.assertEqual(schedule.next_after(utc(2024, 1, 1)), utc(2024, 1, 1, 12))


class ParsingTests(unittest.TestCase):
    def test_counts_and_empty_start(self) -> None:
        """R is for ever, Rn is n slots, an empty start is one second before now."""
        forever = parse_schedule("R/2024-01-01T00:00:00Z/PT1H", "", 0)
        five = parse_schedule("R5//PT1H", "", utc(2024, 5, 1))
        assert isinstance(forever, IsoSchedule) and isinstance(five, IsoSchedule)
        self.assertEqual(forever.count, -1)
        self.assertEqual(five.count, 5)
        self.assertEqual(five.start_ms, utc(2024, 5, 1) - 1000)

    def test_errors_say_what_is_wrong(self) -> None:
        """Unparsable schedules, zero periods, fractional months, pre-1970 starts and unknown zones fail."""
        cases = {
            "R/yesterday/PT1H": "Cannot parse start",
            "R5/2024-01-01T00:00:00Z/PT0S": "longer than zero",
            "R/2024-01-01T00:00:00Z/P1.5M": "whole numbers",
            "R/1969-12-31T00:00:00Z/P1D": "before 1970",
            "R/2024-01-01T00:00:00Z/1D": "expected R[n]/start/period",
            "every day": "neither",
            "61 * * * *": "neither",
        }
        for text, message in cases.items():
            with self.assertRaises(ScheduleError) as caught:
                parse_schedule(text, "", 0)
            self.assertIn(message, str(caught.exception), text)
        with self.assertRaises(ScheduleError) as caught:
            parse_schedule("R/2024-01-01T00:00:00Z/P1D", "Mars/Olympus_Mons", 0)
        self.assertIn("Unknown scheduleTimeZone", str(caught.exception))

    @SETTINGS
    @given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)),
           st.sampled_from(["Z", "+00:00", "+05:30", "-08:00", ""]), st.sampled_from([0, 1, 2, 3, 6]),
           st.booleans(), st.sampled_from(["", "America/New_York"]))
    def test_the_fast_reading_of_starts_agrees_with_aniso8601(self, moment: datetime, offset: str, digits: int,
                                                              seconds: bool, zone_name: str) -> None:
        """A start in the usual extended form reads as aniso8601 reads it, with or without seconds,
        fractions, offsets and a scheduleTimeZone."""
        import aniso8601

        from frameworks.cron import calendar as C

        text = moment.strftime("%Y-%m-%dT%H:%M") + (moment.strftime(":%S") if seconds else "")
        if seconds and digits:
            text += "." + f"{moment.microsecond:06d}"[:digits]
        text += offset
        expected = aniso8601.parse_datetime(text)
        tz = C.zone(zone_name)
        if tz is not None:
            expected = expected.replace(tzinfo=tz, fold=0)
        elif expected.tzinfo is None:
            expected = expected.replace(tzinfo=UTC)
        self.assertEqual(C._parse_start(text, tz), expected)
        self.assertEqual(to_ms(C._parse_start(text, tz)), to_ms(expected))

    def test_durations_and_instants(self) -> None:
        """epsilon is a fixed ISO duration; instants print as Joda does and read back."""
        self.assertEqual(parse_duration_ms("PT60S"), 60_000)
        self.assertEqual(parse_duration_ms("P1DT0.5S"), 86_400_500)
        with self.assertRaises(ScheduleError):
            parse_duration_ms("P1M")
        ms = utc(2014, 3, 8, 16, 57, 17) + 507
        self.assertEqual(format_ms(ms), "2014-03-08T16:57:17.507Z")
        self.assertEqual(parse_ms("2014-03-08T16:57:17.507Z"), ms)
        self.assertIsNone(parse_ms(""))
        self.assertIsNone(parse_ms("not a date"))
