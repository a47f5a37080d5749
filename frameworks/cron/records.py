"""A job as the planner keeps it, and the store layout.

Store layout (relative to the framework's own store):

- ``framework_id``: the Mesos framework ID, once registered;
- ``jobs/<name>``: ``{"job": <definition as posted>, "counters": {...}, "state": {...}}`` where the state
  holds the schedule cursor (next slot, slots left), when the schedule was defined (an empty start means
  then), the newest slot run, the dependency progress (the parents that succeeded since the last
  trigger) and the recent history of runs;
- ``runs/<name>:<due ms>``: one pending or running run: trigger, arguments, launches, failures, retry time.

A job's record and the runs an event creates or ends are written in one atomic commit.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import attrs

from frameworks.cron.calendar import Schedule, parse_schedule
from frameworks.cron.cursor import Cursor
from frameworks.cron.jobs import Counters, Defaults, Job, parse_job

FRAMEWORK_ID = "framework_id"
JOBS = "jobs"
RUNS = "runs"


def job_path(name: str) -> str:
    return f"{JOBS}/{name}"


def run_path(key: str) -> str:
    return f"{RUNS}/{key}"


@attrs.define(eq=False)
class JobRecord:
    """One job: its definition, counters, place in its schedule, progress, history and runs."""

    job: Job
    counters: Counters = attrs.field(factory=Counters)
    schedule: Schedule | None = None
    cursor: Cursor | None = None
    last_slot: int | None = None
    progress: set[str] = attrs.field(factory=set)
    history: deque[dict[str, Any]] = attrs.field(factory=deque)
    durations: deque[int] = attrs.field(factory=lambda: deque(maxlen=100))
    runs: set[str] = attrs.field(factory=set)
    defined_at: int = 0
    generation: int = 0
    cache: bytes | None = None
    #: (the job it was measured for, bytes of one of its TaskInfos as JSON), to keep launch calls small
    task_size: tuple[Job, int] | None = None

    @property
    def name(self) -> str:
        return self.job.name

    def remember(self, entry: dict[str, Any], limit: int) -> None:
        self.history.append(entry)
        while len(self.history) > limit:
            self.history.popleft()

    def to_store(self) -> dict[str, Any]:
        state: dict[str, Any] = {"progress": sorted(self.progress), "history": list(self.history),
                                 "definedAt": self.defined_at}
        if self.cursor is not None:
            state["cursor"] = self.cursor.to_json()
        if self.last_slot is not None:
            state["lastSlot"] = self.last_slot
        return {"job": self.job.definition_json(), "counters": self.counters.to_json(), "state": state}

    @classmethod
    def from_store(cls, data: dict[str, Any], defaults: Defaults, now: int, history_limit: int) -> JobRecord:
        job, _ = parse_job(data["job"], defaults, None, now)
        state = data.get("state", {})
        record = cls(job, Counters.from_json(data.get("counters", {})))
        record.progress = set(state.get("progress", ()))
        for entry in state.get("history", [])[-history_limit:]:
            record.history.append(entry)
            if entry.get("status") == "success" and entry.get("start") and entry.get("end"):
                record.durations.append(int(entry["end"]) - int(entry["start"]))
        record.last_slot = state.get("lastSlot")
        # An empty start means "when it was defined": read the schedule as of then.
        record.defined_at = int(state.get("definedAt", now))
        if job.schedule is not None:
            record.schedule = parse_schedule(job.schedule, job.schedule_time_zone, record.defined_at)
            if "cursor" in state:
                record.cursor = Cursor.from_json(record.schedule, state["cursor"])
        return record
