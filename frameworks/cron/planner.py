"""The cron framework's core: jobs, their runs, and every decision about them, without I/O.

Events come in by method call with the time in milliseconds (time passes, offers, status updates, API
calls); each returns :class:`~frameworks.cron.effects.Effects`. The rules that make each slot run
exactly once:

1. A run is written to the store, atomically with the schedule cursor that produced it, before it may
   be launched (:class:`~frameworks.cron.effects.Recorded` tells the planner its record is durable).
   Slots are recorded a little ahead of time (``lookahead``) so that this write is not on the launch path.
2. A run's task IDs are derived from its record, and a new launch of a run (a retry, or a relaunch of a
   task the master never saw) is written before it happens.
3. A terminal status update is acknowledged only once its outcome is durable, so the master keeps
   reporting a task until the framework has taken its result.
4. Runs recovered from the store launch nothing until the master has said what became of their tasks
   (explicit reconciliation); a task the master does not know never ran, and is launched again.
5. A slot that cannot start within ``epsilon`` of its time is recorded as missed; nothing is dropped
   silently.
"""

from __future__ import annotations

import heapq
import itertools
import shlex
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

import attrs
from sortedcontainers import SortedList

from frameworks.cron import effects as fx
from frameworks.cron.calendar import CronSchedule, format_ms, parse_schedule
from frameworks.cron.cursor import Cursor
from frameworks.cron.effects import Effects
from frameworks.cron.graph import Graph, reparent
from frameworks.cron.graph import ready as parents_done
from frameworks.cron.jobs import Counters, Defaults, JobInvalid, parse_job
from frameworks.cron.records import JobRecord, job_path, run_path
from frameworks.cron.runs import (
    ACTIVE,
    DEPENDENCY,
    LAUNCHED,
    MANUAL,
    PENDING,
    READY,
    RECONCILING,
    RUNNING,
    SCHEDULE,
    Run,
    satisfies,
    take,
    task_info,
)
from mesostw.model import task as T
from mesostw.model.task import Offer, TaskInfo, TaskStatus
from mesostw.store import dump

DUE, EXPIRE, DEADLINE, RECONCILE = "due", "expire", "deadline", "reconcile"
#: What the tasks launched on one offer may weigh as JSON: a launch is one call to the master, and a
#: call over the wire's limit (640 KB over PB) could not be sent; the runs left over go on the next offers.
LAUNCH_BYTES = 256 * 1024
MAX_COMPLETION = "maxCompletionTime"
#: A task that ends in one of these states, reported by the master before the task ever reported a
#: state of its own, never ran: its run is launched again without counting a failure.
NOT_STARTED = frozenset({T.LOST, T.DROPPED, T.UNKNOWN, T.GONE, T.UNREACHABLE})


class UnknownJob(KeyError):
    def __init__(self, name: str):
        super().__init__(name)
        self.message = f"Job '{name}' not found"


@attrs.frozen
class Settings:
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


class Planner:
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

    # -- batching -----------------------------------------------------------------------------------

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

    # -- recovery -----------------------------------------------------------------------------------

    def recover(self, jobs: dict[str, Any], runs: dict[str, Any], now: int) -> Effects:
        """Rebuild from the store. Recovered runs wait for reconciliation (:meth:`registered`)."""
        self._begin(now)
        for name, data in sorted(jobs.items()):
            try:
                record = JobRecord.from_store(data, self.settings.defaults, now, self.settings.history_limit)
            except (JobInvalid, KeyError, TypeError, ValueError) as exc:
                self.problems.append(f"job {name} could not be read and is left in the store: {exc}")
                continue
            self._add_record(record)
        for record in self.jobs.values():
            if record.job.parents is not None:
                parents = [p for p in record.job.parents if p in self.jobs and p != record.name]
                if len(parents) != len(record.job.parents):
                    self.problems.append(f"job {record.name} lost parents that are gone")
                self.graph.set_parents(record.name, parents)
        for key, data in sorted(runs.items()):
            try:
                run = Run.from_json(data)
            except (KeyError, TypeError, ValueError) as exc:
                self.problems.append(f"run {key} could not be read: {exc}")
                continue
            owner = self.jobs.get(run.job)
            if owner is None or run.key != key:
                self._dirty_runs.add(key)  # a run of a job that is gone
                continue
            run.recorded = True
            self._add_run(owner, run, RECONCILING)
            if run.trigger == SCHEDULE and run.due <= now:
                owner.last_slot = max(owner.last_slot or run.due, run.due)
        for record in self.jobs.values():
            self._push_slot(record)
        return self._end()

    def registered(self, now: int) -> Effects:
        """Subscribed to a master (first time or after a master failover): ask about every task we may have."""
        self._begin(now)
        self._reconcile_every = self.settings.reconcile_retry_ms
        self._reconcile(explicit_only=False)
        self.revive_pending = False
        if self.ready or self.ready_high:
            self._want_offers()
        return self._end()

    def _reconcile(self, explicit_only: bool) -> None:
        ids = tuple(sorted(r.task_id for r in self.runs.values() if r.state in ACTIVE))
        if ids:
            self._fx.now.append(fx.Reconcile(ids))
        if not explicit_only:
            self._fx.now.append(fx.Reconcile(()))
        self._reconcile_round += 1
        self._timer(self._now + self._reconcile_every, RECONCILE, "", self._reconcile_round)

    # -- time ---------------------------------------------------------------------------------------

    def next_wakeup(self) -> int | None:
        """When :meth:`tick` has something to do next (it may be a little early, never late)."""
        times = []
        if self._slots:
            times.append(self._slots[0][0] - self.settings.lookahead_ms)
        if self._timers:
            times.append(self._timers[0][0])
        return min(times) if times else None

    def tick(self, now: int) -> Effects:
        """Time has passed: record the slots coming due, start runs whose time has come, expire late ones."""
        self._begin(now)
        self._materialize(now)
        while self._timers and self._timers[0][0] <= now:
            _, _, kind, key, token = heapq.heappop(self._timers)
            if kind == RECONCILE:
                if token != self._reconcile_round:
                    continue
                if any(r.state == RECONCILING for r in self.runs.values()):
                    self._reconcile_every = min(2 * self._reconcile_every, self.settings.reconciliation_interval_ms)
                    self._reconcile(explicit_only=True)
                else:
                    self._reconcile_every = self.settings.reconciliation_interval_ms
                    self._reconcile(explicit_only=False)
                continue
            run = self.runs.get(key)
            if run is None or run.launch != token:
                continue
            if kind == DUE:
                self.jobs[run.job].cache = None  # the slot is no longer the job's next run
                self._consider(run)
            elif kind == EXPIRE and run.state in (PENDING, READY):
                self._miss(run)
            elif kind == DEADLINE and run.state in (LAUNCHED, RUNNING):
                run.kill_reason = MAX_COMPLETION
                self._fx.now.append(fx.Kill(run.task_id, run.agent_id))
        return self._end()

    def _materialize(self, now: int) -> None:
        horizon = now + self.settings.lookahead_ms
        while self._slots and self._slots[0][0] <= horizon:
            _, name, generation = heapq.heappop(self._slots)
            record = self.jobs.get(name)
            if record is None or record.generation != generation or record.cursor is None or record.job.disabled:
                continue
            cursor = record.cursor
            missed, first, last = cursor.skip_through(now - record.job.epsilon_ms - 1)
            if missed:
                record.counters.missed_count += missed
                self.metrics["runs_missed"] += missed
                record.remember({"status": "missed", "due": first, "until": last, "count": missed,
                                 "trigger": SCHEDULE}, self.settings.history_limit)
            while cursor.next_ms is not None and cursor.next_ms <= horizon:
                slot = cursor.take()
                self._new_run(record, slot, SCHEDULE, None)
                if slot <= now:
                    record.last_slot = max(record.last_slot or slot, slot)
            self._touch(record)
            self._push_slot(record)

    def _push_slot(self, record: JobRecord) -> None:
        cursor = record.cursor
        if cursor is not None and cursor.next_ms is not None and not record.job.disabled:
            heapq.heappush(self._slots, (cursor.next_ms, record.name, record.generation))

    def _timer(self, at: int, kind: str, key: str, token: int) -> None:
        heapq.heappush(self._timers, (at, next(self._order), kind, key, token))

    # -- runs ---------------------------------------------------------------------------------------

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

    def recorded(self, tokens: Iterable[str], now: int) -> Effects:
        """These run records (``key#launch``) are durable: their runs may start."""
        self._begin(now)
        for token in tokens:
            key, _, launch = token.rpartition("#")
            run = self.runs.get(key)
            if run is not None and run.launch == int(launch) and not run.recorded:
                run.recorded = True
                self._consider(run)
        return self._end()

    def _consider(self, run: Run) -> None:
        """Make a run ready for offers if it is recorded, its time has come and its job may run."""
        if run.state != PENDING or not run.recorded:
            return
        at = max(run.due, run.not_before)
        if at > self._now:
            self._timer(at, DUE, run.key, run.launch)
            return
        record = self.jobs[run.job]
        if not record.job.concurrent and self.active[run.job] > 0:
            return  # woken when the active run ends
        self._set_state(run, READY)
        self._want_offers()

    def _wake(self, record: JobRecord) -> None:
        for key in sorted(record.runs, key=lambda k: self.runs[k].due):
            self._consider(self.runs[key])

    def _want_offers(self) -> None:
        if not self.revive_pending or self.suppressed:
            self._fx.now.append(fx.Revive())
            self.revive_pending, self.suppressed = True, False

    # -- offers -------------------------------------------------------------------------------------

    def offers(self, offers: list[Offer], now: int) -> Effects:
        """Launch ready runs on these offers (high priority first, then oldest first); decline the rest."""
        self._begin(now)
        self.revive_pending = False
        available = {offer.id: offer.resources for offer in offers}
        launches: dict[str, list[TaskInfo]] = {offer.id: [] for offer in offers}
        room = {offer.id: LAUNCH_BYTES for offer in offers}
        for queue in (self.ready_high, self.ready):
            for key in list(queue):
                run = self.runs[key]
                record = self.jobs[run.job]
                job = record.job
                if not job.concurrent and self.active[run.job] > 0:
                    self._set_state(run, PENDING)  # another run of the job started first
                    continue
                for offer in offers:
                    if not satisfies(offer, job.constraints):
                        continue
                    taken = take(available[offer.id], job, self.settings.role)
                    if taken is None:
                        continue
                    info = task_info(run, job, offer, taken)
                    size = self._task_size(record, info) + 2 * len(run.arguments or "")
                    if launches[offer.id] and size > room[offer.id]:
                        continue
                    room[offer.id] -= size
                    available[offer.id] = available[offer.id] - taken
                    launches[offer.id].append(info)
                    run.agent_id, run.hostname, run.launched_at = offer.agent_id, offer.hostname, now
                    self._set_state(run, LAUNCHED)
                    self.metrics["launches"] += 1
                    if job.max_completion_time:
                        self._timer(now + 1000 * job.max_completion_time, DEADLINE, run.key, run.launch)
                    break
        for offer in offers:
            if launches[offer.id]:
                self._fx.now.append(fx.Launch((offer.id,), tuple(launches[offer.id])))
            else:
                self._fx.now.append(fx.Decline((offer.id,), self.settings.decline_seconds))
        if not self.ready and not self.ready_high and not self.suppressed:
            self._fx.now.append(fx.Suppress())
            self.suppressed = True
        return self._end()

    @staticmethod
    def _task_size(record: JobRecord, info: TaskInfo) -> int:
        """About how many bytes a task of ``record``'s job takes in a launch (measured once per definition)."""
        if record.task_size is None or record.task_size[0] is not record.job:
            record.task_size = (record.job, len(dump(info.to_json())))
        return record.task_size[1]

    # -- status updates -----------------------------------------------------------------------------

    def status(self, status: TaskStatus, now: int) -> Effects:
        """A task's state; terminal ones end or retry its run, and are acknowledged once that is durable."""
        self._begin(now)
        key = self.tasks.get(status.task_id)
        run = self.runs.get(key) if key is not None else None
        terminal = status.state in T.TERMINAL_STATES
        if run is None:
            if not terminal:  # a deleted job's task, or an old launch: it must not run on
                self._fx.now.append(fx.Kill(status.task_id, status.agent_id))
            if status.uuid is not None:
                self._fx.now.append(fx.Acknowledge(status))
            self.metrics["stray_updates"] += 1
            return self._end()
        record = self.jobs[run.job]
        if not terminal:
            if status.source != T.SOURCE_MASTER or status.state != T.STAGING:
                run.confirmed = True
            run.agent_id = status.agent_id or run.agent_id
            if status.state == T.RUNNING:
                if run.started_at is None:
                    run.started_at = now
                    if run.launched_at is not None and run.trigger == SCHEDULE and run.failures == 0:
                        self.lateness.append(now - run.due)
                self._set_state(run, RUNNING)
            elif run.state not in (LAUNCHED, RUNNING):
                self._set_state(run, LAUNCHED)
            if status.uuid is not None:
                self._fx.now.append(fx.Acknowledge(status))
            return self._end()
        if status.state in NOT_STARTED and status.source == T.SOURCE_MASTER and not run.confirmed:
            self.metrics["relaunches"] += 1
            if run.expires and run.due + record.job.epsilon_ms < now:
                self._miss(run)
            else:
                self._new_launch(run)
        elif status.state == T.FINISHED:
            self._succeeded(record, run, status)
        elif status.state == T.KILLED and run.kill_reason != MAX_COMPLETION:
            self._history(record, run, "killed", status)
            self.metrics["runs_killed"] += 1
            self._end_run(run)
        else:
            self._failed(record, run, status)
        self._touch(record)
        self._wake(record)
        if status.uuid is not None:
            self._fx.after.append(fx.Acknowledge(status))
        return self._end()

    def _history(self, record: JobRecord, run: Run, outcome: str, status: TaskStatus | None = None) -> None:
        entry: dict[str, Any] = {"taskId": run.task_id, "due": run.due, "trigger": run.trigger,
                                 "attempt": run.failures, "status": outcome, "end": self._now}
        if run.started_at is not None or run.launched_at is not None:
            entry["start"] = run.started_at if run.started_at is not None else run.launched_at
        if run.agent_id:
            entry["agentId"] = run.agent_id
        if run.hostname:
            entry["host"] = run.hostname
        if status is not None and status.message:
            entry["message"] = status.message[:500]
        if run.arguments:
            entry["arguments"] = run.arguments
        if run.elements:
            entry["elements"] = run.elements
        record.remember(entry, self.settings.history_limit)

    def _succeeded(self, record: JobRecord, run: Run, status: TaskStatus) -> None:
        counters = record.counters
        counters.success_count += 1
        counters.errors_since_last_success = 0
        counters.last_success = format_ms(self._now)
        started = run.started_at if run.started_at is not None else run.launched_at
        if started is not None:
            record.durations.append(self._now - started)
        self._history(record, run, "success", status)
        self.metrics["runs_succeeded"] += 1
        self._end_run(run)
        self._fire_dependents(record)
        cursor = record.cursor
        if (cursor is not None and cursor.next_ms is None and not record.job.disabled
                and not any(self.runs[k].trigger == SCHEDULE for k in record.runs)):
            record.job = attrs.evolve(record.job, disabled=True)
            self._notify(record, "disabled", f"[Chronos] job '{record.name}' disabled",
                         f"Job '{record.name}' has exhausted all of its recurrences and has been disabled.\n"
                         "Please consider either removing your job, or updating its schedule and re-enabling it.")

    def _failed(self, record: JobRecord, run: Run, status: TaskStatus) -> None:
        self._history(record, run, "failure", status)
        job = record.job
        if run.failures < job.retries:
            self.metrics["runs_retried"] += 1
            run.failures += 1
            run.not_before = self._now + self.settings.retry_delay_ms
            self._new_launch(run)
            return
        counters = record.counters
        counters.error_count += 1
        counters.errors_since_last_success += 1
        counters.last_error = format_ms(self._now)
        self.metrics["runs_failed"] += 1
        self._end_run(run)
        detail = f"Task id: {run.task_id}\n" + (f"The scheduler provided this message:\n\n{status.message}"
                                                if status.message else "")
        limit = self.settings.disable_after_failures
        if limit > 0 and counters.errors_since_last_success >= limit and not job.disabled:
            record.job = attrs.evolve(job, disabled=True)
            self._notify(record, "disabled", f"[Chronos] job '{job.name}' disabled",
                         f"\nFailed at '{format_ms(self._now)}', {counters.errors_since_last_success} failures "
                         f"since last success\n{detail}")
        else:
            self._notify(record, "failed", f"[Chronos] job '{job.name}' failed!",
                         f"\n'{format_ms(self._now)}'. Retries attempted: {job.retries}.\n{detail}")
        if job.soft_error:
            self._fire_dependents(record)

    def _miss(self, run: Run) -> None:
        record = self.jobs[run.job]
        record.counters.missed_count += 1
        self.metrics["runs_missed"] += 1
        record.remember({"status": "missed", "due": run.due, "count": 1, "trigger": run.trigger,
                         "end": self._now}, self.settings.history_limit)
        self._end_run(run)
        self._touch(record)

    def _fire_dependents(self, record: JobRecord) -> None:
        """``record`` succeeded: each child records it, and runs once all of its parents have."""
        for name in self.graph.children_of(record.name):
            child = self.jobs[name]
            if child.job.disabled or child.job.parents is None:
                continue
            child.progress.add(record.name)
            if parents_done(child.progress, child.job.parents):
                child.progress.clear()
                if not any(self.runs[k].trigger == DEPENDENCY and self.runs[k].state in (PENDING, READY)
                           for k in child.runs):
                    self._new_run(child, self._now, DEPENDENCY, None)
            self._touch(child)

    def _notify(self, record: JobRecord, event: str, subject: str, message: str) -> None:
        prefix = f"[{self.settings.cluster_name}] " if self.settings.cluster_name else ""
        self._fx.after.append(fx.Notify(event, prefix + subject, message, record.job.to_json(record.counters),
                                        tuple(record.job.owners)))

    # -- the API ------------------------------------------------------------------------------------

    def put_job(self, body: Any, kind: str | None, now: int) -> Effects:
        """Create or replace a job (``kind``: the endpoint, ``iso8601`` or ``dependency``)."""
        self._begin(now)
        job, given = parse_job(body, self.settings.defaults, kind, now)
        if job.parents is not None:
            problems = self.graph.problems(job.name, job.parents, lambda name: name in self.jobs)
            if problems:
                raise JobInvalid(problems)
        record = self.jobs.get(job.name)
        old = record.job if record is not None else None
        if record is None:
            record = JobRecord(job, defined_at=now)
            self._add_record(record)
            self.metrics["jobs_created"] += 1
        record.counters.update(given)
        self.graph.set_parents(job.name, job.parents)
        record.progress &= set(job.parents or ())
        if job.scheduled:
            unchanged = (old is not None and old.scheduled and record.cursor is not None
                         and old.schedule_time_zone == job.schedule_time_zone
                         and job.schedule in (old.schedule, self.schedule_text(record, now)))
            if unchanged:
                job = attrs.evolve(job, schedule=old.schedule)  # type: ignore[union-attr]
                record.job = job
                if old.disabled and not job.disabled and record.cursor is not None:  # type: ignore[union-attr]
                    record.cursor.skip_through(now)  # slots passed while disabled are not runs
            else:
                record.job = job
                self._drop_future_slots(record, now)
                assert job.schedule is not None
                record.schedule = parse_schedule(job.schedule, job.schedule_time_zone, now)
                record.defined_at = now
                record.cursor, catch_up = Cursor.begin(record.schedule, now, record.last_slot)
                if catch_up and not job.disabled:
                    self._new_run(record, now, SCHEDULE, None)
                    record.last_slot = now
        else:
            record.job = job
            self._drop_future_slots(record, now, everything=True)
            record.schedule = record.cursor = None
        if job.disabled and not (old is not None and old.disabled):
            self._drop_future_slots(record, now)
        record.generation += 1
        self._push_slot(record)
        self._touch(record)
        return self._end()

    def _drop_future_slots(self, record: JobRecord, now: int, everything: bool = False) -> None:
        """Forget scheduled runs not yet due (all not yet started when ``everything``)."""
        for key in list(record.runs):
            run = self.runs[key]
            if run.trigger == SCHEDULE and run.state in (PENDING, READY) and (everything or run.due > now):
                self._end_run(run)

    def delete_job(self, name: str, now: int) -> Effects:
        """Delete a job: children take its parents (or its schedule), its tasks are killed."""
        self._begin(now)
        record = self.jobs.get(name)
        if record is None:
            raise UnknownJob(name)
        for child_name in self.graph.children_of(name):
            child = self.jobs[child_name]
            parents = reparent(child.job.parents or (), name, record.job.parents)
            if parents:
                child.job = attrs.evolve(child.job, parents=tuple(parents))
                self.graph.set_parents(child_name, parents)
                child.progress &= set(parents)
            else:
                child.job = attrs.evolve(child.job, parents=None, schedule=record.job.schedule,
                                         schedule_time_zone=record.job.schedule_time_zone)
                self.graph.set_parents(child_name, None)
                child.progress.clear()
                child.schedule, child.defined_at = record.schedule, record.defined_at
                if record.schedule is not None and record.cursor is not None:
                    child.cursor = Cursor.from_json(record.schedule, record.cursor.to_json())
                child.generation += 1
                self._push_slot(child)
            self._touch(child)
        for key in list(record.runs):
            run = self.runs[key]
            if run.active:
                self._fx.now.append(fx.Kill(run.task_id, run.agent_id))
            self._end_run(run)
        self.graph.remove(name)
        del self.jobs[name]
        self.names.remove(name)
        self._dirty_jobs.add(name)
        self.metrics["jobs_deleted"] += 1
        self._notify(record, "deleted", f"[Chronos] Your job '{name}' was deleted!", "")
        return self._end()

    def run_job(self, name: str, arguments: str | None, now: int) -> Effects:
        """Run a job now (a disabled one too), with optional arguments."""
        self._begin(now)
        record = self.record(name)
        arguments = arguments if arguments and arguments.strip() else None
        if arguments is not None and not record.job.shell:
            try:
                shlex.split(arguments)
            except ValueError as exc:
                raise JobInvalid([f"arguments: {exc} in {arguments!r}"]) from None
        self._new_run(record, now, MANUAL, arguments)
        self._touch(record)
        return self._end()

    def kill_tasks(self, name: str, now: int) -> Effects:
        """Kill the job's running tasks (queued runs stay queued, as in Chronos)."""
        self._begin(now)
        record = self.record(name)
        for key in sorted(record.runs):
            run = self.runs[key]
            if run.active:
                run.kill_reason = "api"
                self._fx.now.append(fx.Kill(run.task_id, run.agent_id))
        return self._end()

    def mark_success(self, name: str, now: int) -> tuple[bool, Effects]:
        """Count a success without running the job, and trigger its dependents."""
        self._begin(now)
        record = self.jobs.get(name)
        if record is None:
            return False, self._end()
        record.counters.success_count += 1
        record.counters.errors_since_last_success = 0
        record.counters.last_success = format_ms(now)
        record.progress.clear()
        self._fire_dependents(record)
        self._touch(record)
        return True, self._end()

    def progress(self, name: str, task_id: str, elements: int, now: int) -> Effects:
        """Elements a data-processing job's task reports having processed: written with its run while it
        runs, then kept in the job's history (a task that ended already adds to its history entry)."""
        self._begin(now)
        record = self.record(name)
        if not record.job.data_processing:
            raise JobInvalid([f"JobSchedule '{name}' is not enabled to track data"])
        if elements < 0:
            raise JobInvalid([f"numAdditionalElementsProcessed ({elements}) is not positive"])
        run = self.runs.get(self.tasks.get(task_id, ""))
        if run is not None and run.job == name:
            run.elements += elements
            self._dirty_runs.add(run.key)
            return self._end()
        entry = next((e for e in reversed(record.history) if e.get("taskId") == task_id), None)
        if entry is None:
            raise JobInvalid([f"Task {task_id} is neither running nor in the recent history of job '{name}'"])
        entry["elements"] = entry.get("elements", 0) + elements
        self._touch(record)
        return self._end()

    def record(self, name: str) -> JobRecord:
        """The job called ``name`` (UnknownJob if there is none)."""
        record = self.jobs.get(name)
        if record is None:
            raise UnknownJob(name)
        return record

    # -- views the API shares -----------------------------------------------------------------------

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


__all__ = ["Counters", "Planner", "Settings", "UnknownJob"]
