"""The cron framework's core: jobs, their runs, and every decision about them, without I/O.

Three layers, one concern each: :class:`~frameworks.cron.book.RunBook` keeps the jobs and runs with
their indexes and what an event must write; :class:`~frameworks.cron.lifecycle.RunLifecycle` takes
the clock's and the master's events; :class:`Planner` adds the API's changes to jobs.

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

import shlex
from typing import Any

import attrs

from frameworks.cron import effects as fx
from frameworks.cron.book import Settings, UnknownJob
from frameworks.cron.calendar import format_ms, parse_schedule
from frameworks.cron.cursor import Cursor
from frameworks.cron.effects import Effects
from frameworks.cron.graph import reparent
from frameworks.cron.jobs import Counters, JobInvalid, parse_job
from frameworks.cron.lifecycle import RunLifecycle
from frameworks.cron.records import JobRecord
from frameworks.cron.runs import MANUAL, PENDING, READY, SCHEDULE


class Planner(RunLifecycle):
    """The whole planner: every event, the API's included."""

    # -- the API ---------------------------------------------------------------------------------

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


__all__ = ["Counters", "Planner", "Settings", "UnknownJob"]
