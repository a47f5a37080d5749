"""The life of runs: recovery, time passing, offers and status updates, and what each outcome leads to.

:class:`RunLifecycle` is the middle layer of the planner (see :mod:`frameworks.cron.planner`): the
events from the master and the clock, on top of :class:`~frameworks.cron.book.RunBook`'s state.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

import attrs

from frameworks.cron import effects as fx
from frameworks.cron.book import (
    DEADLINE,
    DUE,
    EXPIRE,
    LAUNCH_BYTES,
    MAX_COMPLETION,
    NOT_STARTED,
    RECONCILE,
    RunBook,
)
from frameworks.cron.calendar import format_ms
from frameworks.cron.effects import Effects
from frameworks.cron.graph import ready as parents_done
from frameworks.cron.jobs import JobInvalid
from frameworks.cron.records import JobRecord
from frameworks.cron.runs import (
    DEPENDENCY,
    LAUNCHED,
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


class RunLifecycle(RunBook):
    """Runs recovered, recorded, started, launched and ended."""

    # -- recovery --------------------------------------------------------------------------------

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

    # -- time ------------------------------------------------------------------------------------

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

    # -- offers ----------------------------------------------------------------------------------

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
                extra = 2 * len(run.arguments or "")
                known = record.task_size[1] + extra if record.task_size and record.task_size[0] is job else None
                for offer in offers:
                    if known is not None and launches[offer.id] and known > room[offer.id]:
                        continue  # full: skip before building a task that would not go
                    if not satisfies(offer, job.constraints):
                        continue
                    taken = take(available[offer.id], job, self.settings.role)
                    if taken is None:
                        continue
                    info = task_info(run, job, offer, taken)
                    size = self._task_size(record, info) + extra
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

    # -- status updates --------------------------------------------------------------------------

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
