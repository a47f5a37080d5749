"""The cron planner's books: jobs and runs in memory with their indexes, what an event changed and must
write, and the views the API shares.

:class:`RunBook` is the bottom layer of the planner (see :mod:`frameworks.cron.planner`): it keeps the
state and the bookkeeping every event uses, makes no decision of its own, and performs no I/O.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, deque
from typing import Any

import attrs
from sortedcontainers import SortedList

from frameworks.cron import effects as fx
from frameworks.cron.calendar import CronSchedule, format_ms
from frameworks.cron.effects import Effects
from frameworks.cron.graph import Graph
from frameworks.cron.jobs import Defaults
from frameworks.cron.records import JobRecord, job_path, run_path
from frameworks.cron.runs import ACTIVE, PENDING, READY, SCHEDULE, Run
from mesostw.model import task as T

DUE, EXPIRE, DEADLINE, RECONCILE = "due", "expire", "deadline", "reconcile"
#: What the tasks launched on one offer may weigh as JSON: a launch is one call to the master, and a
#: call over the wire's limit (640 KB over PB) could not be sent; the runs left over go on the next offers.
LAUNCH_BYTES = 256 * 1024
MAX_COMPLETION = "maxCompletionTime"
#: A task that ends in one of these states, reported by the master before the task ever reported a
#: state of its own, never ran: its run is launched again without counting a failure.
NOT_STARTED = frozenset({T.LOST, T.DROPPED, T.UNKNOWN, T.GONE, T.UNREACHABLE})


class UnknownJob(KeyError):
    """An API call named a job that does not exist (Chronos answers it with a 400)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.message = f"Job '{name}' not found"


@attrs.frozen
class Settings:
    """The planner's knobs, from the plugin's flags (:func:`frameworks.cron.service.settings_from`)."""

    defaults: Defaults = Defaults()
    role: str = "*"
    retry_delay_ms: int = 60_000
    disable_after_failures: int = 0
    lookahead_ms: int = 5_000
    decline_seconds: float = 5.0
    history_limit: int = 10
    reconcile_retry_ms: int = 5_000
    reconciliation_interval_ms: int = 600_000
    cluster_name: str = ""


class RunBook:
    """Jobs and runs in memory, indexed so that no event scans all jobs."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings()
        self.jobs: dict[str, JobRecord] = {}
        self.names: SortedList = SortedList()
        self.runs: dict[str, Run] = {}
        self.tasks: dict[str, str] = {}
        self.graph = Graph()
        self.active: Counter[str] = Counter()
        self.ready_high: dict[str, None] = {}
        self.ready: dict[str, None] = {}
        self.suppressed = False
        self.revive_pending = False
        self.metrics: Counter[str] = Counter()
        self.lateness: deque[int] = deque(maxlen=10_000)
        self.problems: list[str] = []
        self._slots: list[tuple[int, str, int]] = []
        self._timers: list[tuple[int, int, str, str, int]] = []
        self._order = itertools.count()
        self._reconcile_every = self.settings.reconcile_retry_ms
        self._reconcile_round = 0
        self._now = 0
        self._fx = Effects()
        self._dirty_jobs: set[str] = set()
        self._dirty_runs: set[str] = set()
        self._recorded: list[tuple[str, int]] = []

    # -- batching --------------------------------------------------------------------------------

    def _begin(self, now: int) -> None:
        self._now = max(self._now, now)
        self._fx = Effects()

    def _end(self) -> Effects:
        effects = self._fx
        for name in sorted(self._dirty_jobs):
            record = self.jobs.get(name)
            if record is None:
                effects.delete(job_path(name))
            else:
                effects.put(job_path(name), record.to_store())
        for key in sorted(self._dirty_runs):
            run = self.runs.get(key)
            if run is None:
                effects.delete(run_path(key))
            else:
                effects.put(run_path(key), run.to_json())
        if self._recorded:
            effects.after.append(fx.Recorded(tuple(f"{key}#{launch}" for key, launch in self._recorded)))
        self._dirty_jobs, self._dirty_runs, self._recorded = set(), set(), []
        self._fx = Effects()
        return effects

    def _touch(self, record: JobRecord, durable: bool = True) -> None:
        record.cache = None
        if durable:
            self._dirty_jobs.add(record.name)

    # -- runs ------------------------------------------------------------------------------------

    def _add_record(self, record: JobRecord) -> None:
        self.jobs[record.name] = record
        self.names.add(record.name)

    def _add_run(self, record: JobRecord, run: Run, state: str = PENDING) -> None:
        self.runs[run.key] = run
        self.tasks[run.task_id] = run.key
        record.runs.add(run.key)
        run.state = PENDING
        self._set_state(run, state)

    def _new_run(self, record: JobRecord, due: int, trigger: str, arguments: str | None) -> Run:
        while f"{record.name}:{due}" in self.runs:
            due += 1
        run = Run(record.name, due, trigger, arguments)
        self._add_run(record, run)
        self._dirty_runs.add(run.key)
        self._recorded.append((run.key, run.launch))
        if run.expires:
            self._timer(due + record.job.epsilon_ms + 1, EXPIRE, run.key, run.launch)
        self.metrics[f"runs_{trigger}"] += 1
        return run

    def _set_state(self, run: Run, state: str) -> None:
        was = run.state
        if was == state:
            return
        if was == READY:
            (self.ready_high if run.key in self.ready_high else self.ready).pop(run.key, None)
        run.state = state
        record = self.jobs.get(run.job)
        if state == READY:
            high = record is not None and record.job.high_priority
            (self.ready_high if high else self.ready)[run.key] = None
        if (was in ACTIVE) != (state in ACTIVE):
            self.active[run.job] += 1 if state in ACTIVE else -1
        if record is not None:
            record.cache = None

    def _new_launch(self, run: Run) -> None:
        """The run will be launched again under a new task ID, once that is durable."""
        self.tasks.pop(run.task_id, None)
        run.launch += 1
        self.tasks[run.task_id] = run.key
        run.recorded, run.confirmed, run.agent_id, run.kill_reason = False, False, None, None
        run.launched_at = run.started_at = None
        run.elements = 0
        self._set_state(run, PENDING)
        self._dirty_runs.add(run.key)
        self._recorded.append((run.key, run.launch))
        if run.expires:
            self._timer(run.due + self.jobs[run.job].job.epsilon_ms + 1, EXPIRE, run.key, run.launch)

    def _end_run(self, run: Run) -> None:
        self._set_state(run, PENDING)
        self.runs.pop(run.key, None)
        self.tasks.pop(run.task_id, None)
        record = self.jobs.get(run.job)
        if record is not None:
            record.runs.discard(run.key)
        self._dirty_runs.add(run.key)

    def _push_slot(self, record: JobRecord) -> None:
        cursor = record.cursor
        if cursor is not None and cursor.next_ms is not None and not record.job.disabled:
            heapq.heappush(self._slots, (cursor.next_ms, record.name, record.generation))

    def _timer(self, at: int, kind: str, key: str, token: int) -> None:
        heapq.heappush(self._timers, (at, next(self._order), kind, key, token))

    def _want_offers(self) -> None:
        if not self.revive_pending or self.suppressed:
            self._fx.now.append(fx.Revive())
            self.revive_pending, self.suppressed = True, False

    def _reconcile(self, explicit_only: bool) -> None:
        asked = sorted((r.task_id, r.agent_id) for r in self.runs.values() if r.state in ACTIVE)
        if asked:
            self._fx.now.append(fx.Reconcile(tuple(t for t, _ in asked), tuple(a for _, a in asked)))
        if not explicit_only:
            self._fx.now.append(fx.Reconcile(()))
        self._reconcile_round += 1
        self._timer(self._now + self._reconcile_every, RECONCILE, "", self._reconcile_round)

    # -- views the API shares --------------------------------------------------------------------

    def record(self, name: str) -> JobRecord:
        """The job called ``name`` (UnknownJob if there is none)."""
        record = self.jobs.get(name)
        if record is None:
            raise UnknownJob(name)
        return record

    def _future_slots(self, record: JobRecord, now: int) -> list[int]:
        return sorted(run.due for run in (self.runs[k] for k in record.runs)
                      if run.trigger == SCHEDULE and run.state == PENDING and run.due > now and run.failures == 0)

    def schedule_text(self, record: JobRecord, now: int) -> str | None:
        """The schedule as clients see it: next slot as start, slots left as count (Chronos's moving start)."""
        if record.job.parents is not None:
            return None
        cursor, schedule = record.cursor, record.schedule
        if cursor is None or schedule is None or isinstance(schedule, CronSchedule):
            return record.job.schedule
        ahead = len(self._future_slots(record, now))
        remaining = cursor.remaining + ahead if cursor.remaining >= 0 else -1
        return schedule.render(cursor.index - ahead, remaining)

    def next_run(self, record: JobRecord, now: int) -> int | None:
        if record.job.disabled or record.cursor is None:
            return None
        times = self._future_slots(record, now)
        if record.cursor.next_ms is not None:
            times.append(record.cursor.next_ms)
        return min(times) if times else None

    def current_state(self, record: JobRecord) -> str:
        """``idle``, ``queued`` or ``N running`` (Chronos's graph and summary)."""
        running = self.active[record.name]
        if running:
            return f"{running} running"
        if any(self.runs[k].state == READY or (self.runs[k].state == PENDING and self.runs[k].due <= self._now)
               for k in record.runs):
            return "queued"
        return "idle"

    def job_json(self, record: JobRecord, now: int) -> dict[str, Any]:
        next_run = self.next_run(record, now)
        return record.job.to_json(record.counters, self.schedule_text(record, now),
                                  format_ms(next_run) if next_run is not None else "", mirror=True)
