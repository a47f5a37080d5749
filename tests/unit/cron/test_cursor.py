"""A job's position in its schedule: R counts, past starts with one catch-up run, skipping late slots."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from frameworks.cron.calendar import IsoSchedule, parse_schedule, to_ms
from frameworks.cron.cursor import Cursor

SETTINGS = settings(max_examples=150, deadline=None, database=None)
START = to_ms(datetime(2024, 3, 1, 12, tzinfo=UTC))
HOUR = 3600_000

schedules = st.sampled_from(["PT1H", "PT90S", "P1D", "P1M", "P1W", "PT36H"]).flatmap(
    lambda period: st.tuples(st.just(period), st.sampled_from(["", "America/New_York", "Europe/Berlin"])))


def iso(count: int | None, period: str, zone: str = "") -> IsoSchedule:
    repeat = "R" if count is None else f"R{count}"
    schedule = parse_schedule(f"{repeat}/2024-03-01T12:00:00/{period}", zone, 0)
    assert isinstance(schedule, IsoSchedule)
    return schedule


class CountTests(unittest.TestCase):
    @SETTINGS
    @given(st.integers(0, 30), schedules)
    def test_rn_gives_exactly_n_slots_in_order(self, n: int, spec: tuple[str, str]) -> None:
        """A future start: the cursor yields slots 0..n-1 of the schedule, then is exhausted."""
        schedule = iso(n, *spec)
        cursor, catch_up = Cursor.begin(schedule, START - 10 * HOUR)
        self.assertFalse(catch_up)
        taken = []
        while cursor.next_ms is not None:
            taken.append(cursor.take())
        self.assertEqual(taken, [schedule.slot(k) for k in range(n)])
        self.assertEqual(cursor.remaining, 0)

    def test_r_repeats_for_ever_and_r0_never(self) -> None:
        """R keeps going (remaining stays -1); R0 has no slot at all."""
        forever, _ = Cursor.begin(iso(None, "PT1H"), START - 10 * HOUR)
        for _ in range(1000):
            forever.take()
        self.assertEqual((forever.remaining, forever.next_ms), (-1, START + 1000 * HOUR))
        never, catch_up = Cursor.begin(iso(0, "PT1H"), START + 5 * HOUR)
        self.assertEqual((never.next_ms, catch_up), (None, False))

    def test_render_counts_down(self) -> None:
        """The schedule clients see moves its start to the next slot and its count down, as Chronos's."""
        cursor, _ = Cursor.begin(iso(3, "PT1H"), START - 10 * HOUR)
        self.assertEqual(cursor.render(), "R3/2024-03-01T12:00:00.000Z/PT1H")
        cursor.take()
        self.assertEqual(cursor.render(), "R2/2024-03-01T13:00:00.000Z/PT1H")


class PastStartTests(unittest.TestCase):
    @SETTINGS
    @given(schedules, st.integers(1, 400 * 24), st.one_of(st.none(), st.integers(1, 50)))
    def test_one_catch_up_then_the_original_phase(self, spec: tuple[str, str], hours_late: int,
                                                  n: int | None) -> None:
        """A start in the past: one catch-up run now (counting one repetition), then the first slot after
        now in the start's phase; the skipped slots before the definition are not runs."""
        schedule = iso(n, *spec)
        now = schedule.start_ms + hours_late * HOUR + 1
        cursor, catch_up = Cursor.begin(schedule, now)
        self.assertTrue(catch_up)
        k = schedule.first_after(now)
        self.assertEqual(cursor.index, k)
        if n is None:
            self.assertEqual((cursor.remaining, cursor.next_ms), (-1, schedule.slot(k)))
        elif n == 1:
            self.assertEqual((cursor.remaining, cursor.next_ms), (0, None))
        else:
            self.assertEqual((cursor.remaining, cursor.next_ms), (n - 1, schedule.slot(k)))
        if cursor.next_ms is not None:
            self.assertGreater(cursor.next_ms, now)
            self.assertLessEqual(schedule.slot(k - 1), now)

    def test_redefining_does_not_run_a_slot_twice(self) -> None:
        """When the job already ran the newest past slot, a redefinition has no catch-up run."""
        schedule = iso(None, "PT1H")
        now = START + 5 * HOUR + 10
        _, catch_up = Cursor.begin(schedule, now, last_slot=START + 5 * HOUR)
        self.assertFalse(catch_up)
        _, catch_up = Cursor.begin(schedule, now, last_slot=START + 4 * HOUR)
        self.assertTrue(catch_up)

    def test_empty_start_runs_at_once(self) -> None:
        """R5//PT1H: due now (start one second ago), then hourly from that start, four more times."""
        schedule = parse_schedule("R5//PT1H", "", START)
        cursor, catch_up = Cursor.begin(schedule, START)
        self.assertTrue(catch_up)
        self.assertEqual((cursor.next_ms, cursor.remaining), (START - 1000 + HOUR, 4))

    def test_cron_has_no_catch_up(self) -> None:
        """A cron job starts with the first matching time after its definition."""
        cursor, catch_up = Cursor.begin(parse_schedule("0 * * * *", "", 0), START + 10)
        self.assertEqual((catch_up, cursor.next_ms), (False, START + HOUR))


class SkipTests(unittest.TestCase):
    @SETTINGS
    @given(schedules, st.one_of(st.none(), st.integers(1, 40)), st.integers(0, 20), st.integers(0, 24 * 90))
    def test_skip_through_equals_taking_one_by_one(self, spec: tuple[str, str], n: int | None, taken: int,
                                                   hours: int) -> None:
        """Skipping every slot up to t counts and moves exactly as taking them one at a time would."""
        schedule = iso(n, *spec)
        a, _ = Cursor.begin(schedule, START - 10 * HOUR)
        b, _ = Cursor.begin(schedule, START - 10 * HOUR)
        for _ in range(taken):
            if a.next_ms is None:
                break
            a.take()
            b.take()
        t = START + hours * HOUR
        count, first, last = a.skip_through(t)
        slots = []
        while b.next_ms is not None and b.next_ms <= t:
            slots.append(b.take())
        self.assertEqual(count, len(slots))
        self.assertEqual((first, last), (slots[0], slots[-1]) if slots else (None, None))
        self.assertEqual((a.index, a.remaining, a.next_ms), (b.index, b.remaining, b.next_ms))

    def test_skip_through_cron(self) -> None:
        """Cron slots are skipped one by one (they have no index to jump with)."""
        cursor, _ = Cursor.begin(parse_schedule("*/10 * * * *", "", 0), START)
        self.assertEqual(cursor.skip_through(START + HOUR), (6, START + 600_000, START + HOUR))
        self.assertEqual(cursor.next_ms, START + HOUR + 600_000)

    def test_json_round_trip(self) -> None:
        """A cursor survives being stored and read back."""
        schedule = iso(7, "P1D", "America/New_York")
        cursor, _ = Cursor.begin(schedule, START - 10 * HOUR)
        cursor.take()
        back = Cursor.from_json(schedule, cursor.to_json())
        self.assertEqual((back.index, back.remaining, back.next_ms), (1, 6, schedule.slot(1)))
