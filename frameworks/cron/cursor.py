"""A scheduled job's position in its schedule: which slot comes next and how many are left.

Every slot of a schedule is accounted for exactly once: it becomes a run, or it is missed (too late to
start, past ``epsilon``). Slots before the job was defined are neither: a start in the past gives one
catch-up run at once (Chronos 3's rule), then the slots keep the start's phase. The repetitions of
``Rn`` count the slots that ran or were missed, so ``R5`` counts down to 0 and then stops.
"""

from __future__ import annotations

from typing import Any

from frameworks.cron.calendar import CronSchedule, IsoSchedule, Schedule


class Cursor:
    """The next slot not yet taken of one schedule (``next_ms`` is None once exhausted)."""

    __slots__ = ("schedule", "index", "remaining", "next_ms")

    def __init__(self, schedule: Schedule, index: int, remaining: int, next_ms: int | None):
        self.schedule = schedule
        self.index = index          # ISO: index of the next slot; cron: unused
        self.remaining = remaining  # slots left (-1: for ever)
        self.next_ms = next_ms

    @classmethod
    def begin(cls, schedule: Schedule, now: int, last_slot: int | None = None) -> tuple[Cursor, bool]:
        """A cursor for a schedule defined at ``now``, and whether a catch-up run is due now.

        The catch-up run stands for the newest slot at or before ``now``; there is none when the start
        is in the future, for cron expressions, or when ``last_slot`` (the newest slot the job already
        ran under an earlier definition) is at or after that slot, so that redefining a job never runs
        a slot twice.
        """
        if isinstance(schedule, CronSchedule):
            return cls(schedule, 0, -1, schedule.next_after(now)), False
        count = schedule.count
        if count == 0:
            return cls(schedule, 0, 0, None), False
        if schedule.start_ms > now:
            return cls(schedule, 0, count, schedule.slot(0)), False
        index = schedule.first_after(now)
        newest = schedule.slot(index - 1)
        catch_up = last_slot is None or newest > last_slot
        remaining = count - 1 if catch_up and count > 0 else count
        cursor = cls(schedule, index, remaining, None)
        cursor._settle()
        return cursor, catch_up

    def _settle(self) -> None:
        schedule = self.schedule
        if isinstance(schedule, CronSchedule):
            return
        if self.remaining == 0 or (schedule.period.zero and self.index > 0):
            self.next_ms, self.remaining = None, 0
        else:
            self.next_ms = schedule.slot(self.index)

    def take(self) -> int:
        """The next slot's time; the cursor moves past it."""
        slot = self.next_ms
        assert slot is not None, "the schedule is exhausted"
        if isinstance(self.schedule, CronSchedule):
            self.next_ms = self.schedule.next_after(slot)
            return slot
        self.index += 1
        if self.remaining > 0:
            self.remaining -= 1
        self._settle()
        return slot

    def skip_through(self, t: int) -> tuple[int, int | None, int | None]:
        """Move past every slot at or before ``t``: (how many, the first's time, the last's time).

        Used for slots that can no longer start in time; it costs O(1) schedule computations for ISO
        schedules however many slots are skipped (a framework that was down for a year).
        """
        first = self.next_ms
        if first is None or first > t:
            return 0, None, None
        schedule = self.schedule
        if isinstance(schedule, CronSchedule):
            count, last = 0, first
            slot: int | None = first
            while slot is not None and slot <= t:
                count, last = count + 1, slot
                slot = schedule.next_after(slot)
            self.next_ms = slot
            return count, first, last
        after = schedule.first_after(t)
        count = after - self.index
        if 0 <= self.remaining < count:
            count = self.remaining
        last = schedule.slot(self.index + count - 1)
        self.index += count
        if self.remaining > 0:
            self.remaining -= count
        self._settle()
        return count, first, last

    def render(self) -> str:
        """The schedule as clients see it: the next slot as start, the slots left as repetitions."""
        schedule = self.schedule
        if isinstance(schedule, CronSchedule):
            return schedule.render()
        return schedule.render(self.index, self.remaining)

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "remaining": self.remaining, "next": self.next_ms}

    @classmethod
    def from_json(cls, schedule: Schedule, data: dict[str, Any]) -> Cursor:
        cursor = cls(schedule, int(data.get("index", 0)), int(data.get("remaining", schedule.count)),
                     data.get("next"))
        if isinstance(schedule, IsoSchedule):
            cursor._settle()
        return cursor
