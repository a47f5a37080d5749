"""The cron planner: scheduled runs, retries, epsilon, kills, concurrency, and what is written when."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from frameworks.cron import effects as fx
from frameworks.cron.calendar import format_ms
from frameworks.cron.jobs import JobInvalid
from frameworks.cron.planner import Settings, UnknownJob
from mesostw.model import task as T
from tests.helpers.cron import MINUTE, T0, Harness, job

SLOT = T0 + MINUTE  # the first slot of the default job


class ScheduledRunTests(unittest.TestCase):
    def setUp(self) -> None:
        self.h = Harness()
        self.h.put(job("report"))

    def test_a_slot_is_recorded_before_it_is_due_and_launched_when_due(self) -> None:
        """The run is in the store (with the cursor past it) lookahead before its time; it launches at its time."""
        self.h.advance_to(SLOT - 5_000)
        self.assertEqual(list(self.h.stored_runs("report")), [f"runs/report:{SLOT}"])
        self.assertEqual(self.h.stored_job("report")["state"]["cursor"]["index"], 1)
        self.assertEqual(self.h.offer(), [], "not before its time")
        self.h.advance_to(SLOT)
        self.assertTrue(self.h.of(fx.Revive))
        tasks = self.h.offer()
        self.assertEqual([t.task_id for t in tasks], [f"ct:{SLOT}:0:report:"])
        self.assertEqual(tasks[0].command.value, "true")
        self.assertEqual(tasks[0].command.environment["CHRONOS_JOB_NAME"], "report")
        self.assertEqual(tasks[0].resources.scalars(), {"cpus": 0.1, "mem": 128.0, "disk": 256.0})

    def test_success_counts_once_and_is_acknowledged_after_it_is_written(self) -> None:
        """FINISHED: counters and history change, the run record goes, then (only then) the ack."""
        self.h.advance_to(SLOT)
        [task] = self.h.offer()
        self.h.advance(1500)
        self.h.update(task.task_id, T.RUNNING)
        self.assertEqual(list(self.h.planner.lateness), [1500])
        self.h.durable = False
        self.h.update(task.task_id, T.FINISHED)
        acks_now = [a for a in self.h.actions if isinstance(a, fx.Acknowledge) and a.status.state == T.FINISHED]
        self.assertEqual(acks_now, [], "no acknowledgement before the outcome is durable")
        self.h.release()
        self.assertEqual(len([a for a in self.h.of(fx.Acknowledge) if a.status.state == T.FINISHED]), 1)
        stored = self.h.stored_job("report")
        self.assertEqual(stored["counters"]["successCount"], 1)
        self.assertEqual(stored["counters"]["lastSuccess"], format_ms(self.h.now))
        self.assertEqual(stored["state"]["history"][-1]["status"], "success")
        self.assertEqual(self.h.stored_runs("report"), {})

    def test_a_run_whose_record_is_not_durable_does_not_launch(self) -> None:
        """A manual run created while the store lags waits for its write before it takes an offer."""
        self.h.durable = False
        self.h.apply(self.h.planner.run_job("report", None, self.h.now))
        self.assertEqual(self.h.offer(), [])
        self.h.release()
        self.assertEqual(len(self.h.offer()), 1)

    def test_each_slot_once_in_order(self) -> None:
        """Ten minutes of a one-minute job: ten runs, one per slot, with their slot in the task ID."""
        launched = []
        for minute in range(1, 11):
            self.h.advance_to(T0 + minute * MINUTE)
            for task in self.h.offer():
                launched.append(task.task_id)
                self.h.finish(task.task_id)
        self.assertEqual(launched, [f"ct:{T0 + m * MINUTE}:0:report:" for m in range(1, 11)])
        self.assertEqual(self.h.record("report").counters.success_count, 10)

    def test_suppresses_when_idle_and_declines_unused_offers(self) -> None:
        """Offers with nothing to run are declined, and the framework asks for no more until something is due."""
        self.h.offer()
        self.assertEqual(len(self.h.of(fx.Decline)), 1)
        self.assertEqual(len(self.h.of(fx.Suppress)), 1)


class EpsilonTests(unittest.TestCase):
    @settings(max_examples=100, deadline=None, database=None)
    @given(st.integers(1, 300), st.integers(0, 400_000))
    def test_a_slot_runs_if_and_only_if_it_can_start_within_epsilon(self, epsilon: int, delay: int) -> None:
        """The first offer comes ``delay`` ms after the slot: it launches when delay <= epsilon, otherwise
        the slot is missed and counted, exactly once either way."""
        h = Harness()
        h.put(job("e", schedule="R1/2024-05-01T12:01:00Z/PT1H", epsilon=f"PT{epsilon}S"))
        h.advance_to(SLOT + delay)
        launched = h.offer()
        counters = h.record("e").counters
        if delay <= epsilon * 1000:
            self.assertEqual((len(launched), counters.missed_count), (1, 0))
        else:
            self.assertEqual((len(launched), counters.missed_count), (0, 1))
        h.advance(2 * 3600_000)
        self.assertEqual(h.offer(), [])
        self.assertEqual(h.record("e").counters.missed_count + len(launched), 1)

    def test_a_slot_that_cannot_start_within_epsilon_is_missed(self) -> None:
        """No offers for longer than epsilon: the run is dropped, counted and in the history."""
        h = Harness()
        h.put(job("late", epsilon="PT30S"))
        h.advance_to(SLOT + 30_001)
        self.assertEqual(h.offer(), [])
        record = h.record("late")
        self.assertEqual(record.counters.missed_count, 1)
        self.assertEqual(record.history[-1]["status"], "missed")
        self.assertEqual(h.stored_job("late")["counters"]["missedCount"], 1)
        self.assertEqual(h.stored_runs("late"), {})

    def test_late_but_within_epsilon_still_runs(self) -> None:
        """An offer 20 seconds late with epsilon PT30S still launches the slot."""
        h = Harness()
        h.put(job("late", epsilon="PT30S"))
        h.advance_to(SLOT + 20_000)
        self.assertEqual(len(h.offer()), 1)

    def test_slots_missed_while_down_are_counted_together(self) -> None:
        """After an hour without a leader, 59 slots are missed (one history entry), the current one runs."""
        h = Harness()
        h.put(job("minutely"))
        h.advance_to(SLOT - 10_000)
        h.now = T0 + 60 * MINUTE + 10_000
        later = h.recover()
        later.advance_to(h.now)
        record = later.record("minutely")
        self.assertEqual(record.counters.missed_count, 59)
        entry = [e for e in record.history if e["status"] == "missed"][-1]
        self.assertEqual((entry["count"], entry["due"]), (59, SLOT))
        self.assertEqual([t.task_id for t in later.offer()], [f"ct:{T0 + 60 * MINUTE}:0:minutely:"])


class RetryTests(unittest.TestCase):
    def test_failed_runs_retry_after_the_delay_then_give_up_and_notify(self) -> None:
        """retries=2: three launches (new task IDs), then errorCount and one webhook-bound notification."""
        h = Harness()
        h.put(job("flaky", retries=2, owner="a@x.org, b@x.org"))
        h.advance_to(SLOT)
        ids = []
        for attempt in range(3):
            [task] = h.offer()
            ids.append(task.task_id)
            self.assertEqual(task.command.environment["CHRONOS_JOB_RUN_ATTEMPT"], str(attempt))
            h.finish(task.task_id, T.FAILED)
            if attempt < 2:
                self.assertEqual(h.offer(), [], "not before the retry delay")
                h.advance(30_000)
        self.assertEqual(ids, [f"ct:{SLOT}:{n}:flaky:" for n in range(3)])
        counters = h.record("flaky").counters
        self.assertEqual((counters.error_count, counters.errors_since_last_success, counters.success_count),
                         (1, 1, 0))
        [notice] = h.of(fx.Notify)
        self.assertEqual((notice.event, notice.owners), ("failed", ("a@x.org", "b@x.org")))
        self.assertIn("[Chronos] job 'flaky' failed!", notice.subject)
        self.assertNotIn(f"runs/flaky:{SLOT}", h.stored_runs("flaky"))

    def test_a_retry_is_written_before_it_is_launched(self) -> None:
        """The retry's new launch number is in the store when its task is launched."""
        h = Harness()
        h.put(job("flaky", retries=1))
        h.advance_to(SLOT)
        [task] = h.offer()
        h.finish(task.task_id, T.FAILED)
        self.assertEqual(h.stored_runs("flaky")[f"runs/flaky:{SLOT}"]["launch"], 1)
        self.assertEqual(h.stored_runs("flaky")[f"runs/flaky:{SLOT}"]["failures"], 1)

    def test_disable_after_failures(self) -> None:
        """--disable_after_failures=2: the second exhausted run disables the job and says so."""
        h = Harness(Settings(disable_after_failures=2, lookahead_ms=5_000))
        h.put(job("bad", retries=0))
        for minute in (1, 2):
            h.advance_to(T0 + minute * MINUTE)
            [task] = h.offer()
            h.finish(task.task_id, T.FAILED)
        self.assertTrue(h.record("bad").job.disabled)
        self.assertEqual([n.event for n in h.of(fx.Notify)], ["failed", "disabled"])

    def test_a_task_refused_before_it_started_is_launched_again_without_a_failure(self) -> None:
        """TASK_LOST from the master for a task that never reported (a stale offer) is not a failure."""
        h = Harness()
        h.put(job("once", retries=0))
        h.advance_to(SLOT)
        [task] = h.offer()
        h.update(task.task_id, T.LOST, source=T.SOURCE_MASTER, reason=T.REASON_INVALID_OFFERS)
        [again] = h.offer()
        self.assertEqual(again.task_id, f"ct:{SLOT}:1:once:")
        self.assertEqual(h.record("once").counters.error_count, 0)

    def test_max_completion_time_kills_and_counts_a_failure(self) -> None:
        """maxCompletionTime=10: the task is killed after 10 s and the run fails (no retries left)."""
        h = Harness()
        h.put(job("slow", retries=0, maxCompletionTime=10))
        h.advance_to(SLOT)
        [task] = h.offer()
        h.update(task.task_id, T.RUNNING)
        h.advance(10_000)
        self.assertEqual([k.task_id for k in h.of(fx.Kill)], [task.task_id])
        h.update(task.task_id, T.KILLED)
        self.assertEqual(h.record("slow").counters.error_count, 1)


class JobLifecycleTests(unittest.TestCase):
    def test_kill_tasks_kills_running_tasks_and_does_not_retry(self) -> None:
        """DELETE task/kill: the running task is killed; KILLED ends the run without a retry or error."""
        h = Harness()
        h.put(job("long", retries=3))
        h.advance_to(SLOT)
        [task] = h.offer()
        h.update(task.task_id, T.RUNNING)
        h.apply(h.planner.kill_tasks("long", h.now))
        self.assertEqual([k.task_id for k in h.of(fx.Kill)], [task.task_id])
        h.update(task.task_id, T.KILLED)
        record = h.record("long")
        self.assertEqual((record.counters.error_count, record.history[-1]["status"]), (0, "killed"))
        self.assertEqual(h.offer(), [])

    def test_disabled_jobs_are_not_scheduled_but_run_by_hand(self) -> None:
        """A disabled job gets no slots; PUT job/{name} still runs it, with its arguments."""
        h = Harness()
        h.put(job("off", disabled=True))
        h.advance_to(SLOT + 5 * MINUTE)
        self.assertEqual(h.stored_runs("off"), {})
        h.apply(h.planner.run_job("off", "--full", h.now))
        [task] = h.offer()
        self.assertEqual(task.command.value, "true --full")
        self.assertTrue(task.task_id.endswith(":off:--full"))

    def test_arguments_of_a_program_job_must_split(self) -> None:
        """shell=false: arguments are split like a shell would; unbalanced quotes are refused up front."""
        h = Harness()
        h.put(job("prog", command="/bin/echo", shell=False, arguments=["echo"]))
        self.assertRaises(JobInvalid, h.planner.run_job, "prog", "'unbalanced", h.now)
        h.apply(h.planner.run_job("prog", "'two words' three", h.now))
        [task] = h.offer()
        self.assertEqual(task.command.arguments, ("echo", "two words", "three"))

    def test_non_concurrent_jobs_never_overlap(self) -> None:
        """concurrent=false: the next slot waits for the running one, then starts if still within epsilon."""
        h = Harness()
        h.put(job("serial", epsilon="PT50S"))
        h.advance_to(SLOT)
        [first] = h.offer()
        h.update(first.task_id, T.RUNNING)
        h.advance_to(SLOT + MINUTE)
        self.assertEqual(h.offer(), [], "the first run is still going")
        h.advance(20_000)
        h.update(first.task_id, T.FINISHED)
        [second] = h.offer()
        self.assertEqual(second.task_id, f"ct:{SLOT + MINUTE}:0:serial:")
        h.update(second.task_id, T.RUNNING)
        h.advance_to(SLOT + 2 * MINUTE + 50_001)
        self.assertEqual(h.record("serial").counters.missed_count, 1, "a slot blocked past epsilon is missed")

    def test_concurrent_jobs_overlap(self) -> None:
        """concurrent=true: two slots run side by side."""
        h = Harness()
        h.put(job("parallel", concurrent=True))
        h.advance_to(SLOT)
        [first] = h.offer()
        h.update(first.task_id, T.RUNNING)
        h.advance_to(SLOT + MINUTE)
        self.assertEqual(len(h.offer()), 1)

    def test_r_counts_down_and_the_job_is_disabled_after_its_last_success(self) -> None:
        """R2: two runs, the schedule shows R1 then R0, and the last success disables the job."""
        h = Harness()
        h.put(job("twice", schedule="R2/2024-05-01T12:01:00Z/PT1M"))
        self.assertEqual(h.planner.job_json(h.record("twice"), h.now)["schedule"],
                         "R2/2024-05-01T12:01:00.000Z/PT1M")
        for minute in (1, 2):
            h.advance_to(T0 + minute * MINUTE)
            [task] = h.offer()
            h.finish(task.task_id)
            if minute == 1:
                self.assertEqual(h.planner.job_json(h.record("twice"), h.now)["schedule"],
                                 "R1/2024-05-01T12:02:00.000Z/PT1M")
        self.assertTrue(h.record("twice").job.disabled)
        self.assertEqual([n.event for n in h.of(fx.Notify)], ["disabled"])
        h.advance(10 * MINUTE)
        self.assertEqual(h.offer(), [])

    def test_a_past_start_runs_once_now_then_keeps_its_phase(self) -> None:
        """R/2024-05-01T11:05:30Z/PT10M defined at 12:00: one run now, then 12:05:30, 12:15:30..."""
        h = Harness()
        h.put(job("catchup", schedule="R/2024-05-01T11:05:30Z/PT10M"))
        [now] = h.offer()
        self.assertEqual(now.task_id, f"ct:{T0}:0:catchup:")
        h.finish(now.task_id)
        self.assertEqual(h.planner.job_json(h.record("catchup"), h.now)["nextRun"], "2024-05-01T12:05:30.000Z")
        h.advance_to(T0 + 5 * MINUTE + 30_000)
        self.assertEqual([t.task_id for t in h.offer()], [f"ct:{T0 + 5 * MINUTE + 30_000}:0:catchup:"])

    def test_posting_back_what_get_shows_changes_nothing(self) -> None:
        """A sync tool posting GET's own JSON (moving start and all) causes no catch-up and keeps the cursor."""
        h = Harness()
        h.put(job("sync", schedule="R/2024-05-01T11:05:30Z/PT10M"))
        h.finish(h.offer()[0].task_id)
        shown = h.planner.job_json(h.record("sync"), h.now)
        h.advance(MINUTE)
        h.put(dict(shown))
        h.put(job("sync", schedule="R/2024-05-01T11:05:30Z/PT10M"))
        self.assertEqual(h.offer(), [], "no second catch-up run")
        self.assertEqual(h.record("sync").counters.success_count, 1, "counters kept")

    def test_a_new_schedule_drops_recorded_future_slots(self) -> None:
        """A slot recorded ahead of time under the old schedule is dropped when the schedule changes."""
        h = Harness()
        h.put(job("moving"))
        h.advance_to(SLOT - 2_000)
        h.put(job("moving", schedule="R/2024-05-01T13:00:00Z/PT1H"))
        self.assertEqual(h.stored_runs("moving"), {})
        h.advance_to(SLOT + 1)
        self.assertEqual(h.offer(), [])

    def test_unknown_jobs_and_invalid_jobs(self) -> None:
        """Unknown names raise UnknownJob; invalid jobs list every problem."""
        h = Harness()
        self.assertRaises(UnknownJob, h.planner.run_job, "nope", None, h.now)
        self.assertRaises(UnknownJob, h.planner.delete_job, "nope", h.now)
        with self.assertRaises(JobInvalid) as caught:
            h.put({"name": "bad name!", "schedule": "R/whenever/P1D", "retries": -1})
        self.assertEqual(len(caught.exception.errors), 3)

    def test_stray_tasks_are_killed(self) -> None:
        """A running task no run knows (a deleted job's, an old launch's) is killed."""
        h = Harness()
        h.update("ct:1:0:gone:", T.RUNNING)
        self.assertEqual([k.task_id for k in h.of(fx.Kill)], ["ct:1:0:gone:"])

    def test_high_priority_first_and_constraints(self) -> None:
        """High-priority runs take offers first; EQUALS hostname keeps a job on its host."""
        h = Harness()
        h.put(job("low", schedule="R1//PT1M"))
        h.put(job("high", schedule="R1//PT1M", highPriority=True, cpus=1.0))
        h.put(job("pinned", schedule="R1//PT1M", constraints=[["hostname", "EQUALS", "host2"]]))
        first = h.offer("cpus:1;mem:1024;disk:1024", host="host1")
        self.assertEqual([t.name for t in first], ["ChronosTask:high"])
        second = h.offer("cpus:1;mem:1024;disk:1024", agent="S2", host="host2")
        self.assertEqual(sorted(t.name for t in second), ["ChronosTask:low", "ChronosTask:pinned"])

    def test_a_burst_is_launched_in_calls_the_wire_takes(self) -> None:
        """A thousand runs due together: each offer's launch stays under LAUNCH_BYTES of task JSON, the rest
        go on the next offers, and every run is launched exactly once."""
        from frameworks.cron import book as P
        from mesostw.store import dump

        h = Harness()
        for n in range(1000):
            h.put(job(f"burst-{n:04d}", schedule=f"R1/{format_ms(SLOT)}/PT1M", cpus=0.01, mem=1, disk=0,
                      environmentVariables=[{"name": "PAD", "value": "x" * 300}]))
        h.advance_to(SLOT)
        launched: list[str] = []
        while len(launched) < 1000:
            tasks = h.offer("cpus:100;mem:100000;disk:1000")
            self.assertTrue(tasks, "every offer takes some of the burst")
            self.assertLessEqual(sum(len(dump(t.to_json())) for t in tasks), P.LAUNCH_BYTES)
            launched += [t.task_id for t in tasks]
        self.assertEqual(len(set(launched)), 1000)
        self.assertGreater(len(h.of(fx.Launch)), 2)
