"""A new leader (or a restarted framework) takes over from the store and the master's word."""

from __future__ import annotations

from twisted.trial import unittest

from frameworks.cron import effects as fx
from mesostw.model import task as T
from tests.helpers.cron import MINUTE, T0, Harness, job

SLOT = T0 + MINUTE


def answer(h: Harness, task_id: str, state: str | None) -> None:
    """The master's reconciliation answer: the task's state, or unknown (TASK_LOST)."""
    h.update(task_id, state or T.LOST, source=T.SOURCE_MASTER, reason=T.REASON_RECONCILIATION, uuid=False)


class RecoveryTests(unittest.TestCase):
    def setUp(self) -> None:
        self.h = Harness()
        self.h.put(job("j", retries=0))
        self.h.advance_to(SLOT)

    def test_a_running_task_is_adopted_not_launched_again(self) -> None:
        """The new leader asks about the run's task, waits, adopts it RUNNING, and counts its success once."""
        [task] = self.h.offer()
        self.h.update(task.task_id, T.RUNNING)
        later = self.h.recover()
        [explicit] = [r for r in later.of(fx.Reconcile) if r.task_ids]
        self.assertEqual(explicit.task_ids, (task.task_id,))
        self.assertEqual(later.offer(), [], "nothing launches before the master answers")
        answer(later, task.task_id, T.RUNNING)
        self.assertEqual(later.offer(), [])
        later.update(task.task_id, T.FINISHED)
        self.assertEqual(later.record("j").counters.success_count, 1)
        later.advance(1000)
        self.assertEqual(later.stored_runs("j"), {})

    def test_a_recorded_run_the_master_never_saw_is_launched_under_a_new_id(self) -> None:
        """Recorded, then the leader died before launching: unknown to the master, so launch #1 runs it."""
        later = self.h.recover()
        answer(later, f"ct:{SLOT}:0:j:", None)
        [task] = later.offer()
        self.assertEqual(task.task_id, f"ct:{SLOT}:1:j:")
        self.assertEqual(later.stored_runs("j")[f"runs/j:{SLOT}"]["launch"], 1)

    def test_a_success_the_old_leader_did_not_write_is_counted_once(self) -> None:
        """FINISHED reached the old leader but its write did not: the master still reports it; one success."""
        [task] = self.h.offer()
        self.h.update(task.task_id, T.RUNNING)
        self.h.durable = False
        self.h.update(task.task_id, T.FINISHED)
        self.assertFalse([a for a in self.h.actions if isinstance(a, fx.Acknowledge) and a.status.state == T.FINISHED])
        later = self.h.recover()
        answer(later, task.task_id, T.FINISHED)
        later.update(task.task_id, T.FINISHED)  # the agent retries the unacknowledged update
        self.assertEqual(later.record("j").counters.success_count, 1)
        self.assertEqual(later.offer(), [])

    def test_unanswered_runs_are_asked_about_again_with_backoff(self) -> None:
        """No answer (the agent has not re-registered): reconcile again after 5 s, then 10 s."""
        later = self.h.recover()
        later.clear()
        later.advance(5_000)
        self.assertEqual([r.task_ids for r in later.of(fx.Reconcile)], [(f"ct:{SLOT}:0:j:",)])
        later.clear()
        later.advance(9_000)
        self.assertEqual(later.of(fx.Reconcile), [])
        later.advance(1_000)
        self.assertEqual(len(later.of(fx.Reconcile)), 1)

    def test_schedule_counters_and_empty_starts_are_restored(self) -> None:
        """The cursor, counters and an empty start's moment come back as they were."""
        h = Harness()
        h.put(job("e", schedule="R3//PT10M"))
        h.finish(h.offer()[0].task_id)
        before = h.planner.job_json(h.record("e"), h.now)
        h.advance(3 * MINUTE)
        later = h.recover()
        after = later.planner.job_json(later.record("e"), later.now)
        self.assertEqual(after["schedule"], before["schedule"])
        self.assertEqual((after["successCount"], after["nextRun"]), (1, before["nextRun"]))

    def test_unreadable_records_are_reported_and_orphan_runs_removed(self) -> None:
        """A corrupt job record is left alone and reported; a run of a job that is gone is deleted."""
        self.h.store["jobs/broken"] = {"job": {"name": "broken", "schedule": "R/never/P1D"}}
        self.h.store["runs/ghost:1"] = {"job": "ghost", "due": 1}
        later = self.h.recover()
        self.assertEqual(len(later.planner.problems), 1)
        self.assertIn("broken", later.planner.problems[0])
        self.assertNotIn("runs/ghost:1", later.store)
        self.assertIn("jobs/broken", later.store)
        self.assertIn("j", later.planner.jobs)


class DataProgressTests(unittest.TestCase):
    def test_progress_is_written_with_the_run_and_survives_a_new_leader(self) -> None:
        """Elements a data-processing task reports are written with its run, carried over by a new leader,
        and kept in the history once the task ends; later reports add to that entry."""
        h = Harness()
        h.put(job("etl", schedule="R1//PT1H", dataProcessingJobType=True))
        [task] = h.offer()
        h.update(task.task_id, T.RUNNING)
        h.apply(h.planner.progress("etl", task.task_id, 5, h.now))
        [stored] = h.stored_runs("etl").values()
        self.assertEqual(stored["elements"], 5)
        later = h.recover()
        answer(later, task.task_id, T.RUNNING)
        later.apply(later.planner.progress("etl", task.task_id, 7, later.now))
        later.update(task.task_id, T.FINISHED)
        later.apply(later.planner.progress("etl", task.task_id, 3, later.now))
        [entry] = later.stored_job("etl")["state"]["history"]
        self.assertEqual((entry["status"], entry["elements"]), ("success", 15))

    def test_progress_of_unknown_tasks_and_plain_jobs_is_refused(self) -> None:
        """A task neither running nor in the history, a negative count, or a job that does not track data
        is a JobInvalid (the API's 400)."""
        from frameworks.cron.jobs import JobInvalid

        h = Harness()
        h.put(job("etl", schedule="R1//PT1H", dataProcessingJobType=True))
        h.put(job("plain", schedule="R1//PT1H"))
        [first, second] = h.offer()
        etl = first if ":etl:" in first.task_id else second
        for name, task_id, count in (("etl", "ct:1:0:etl:", 1), ("etl", etl.task_id, -1),
                                     ("plain", etl.task_id.replace("etl", "plain"), 1)):
            with self.assertRaises(JobInvalid):
                h.planner.progress(name, task_id, count, h.now)


class ReconcileTests(unittest.TestCase):
    def test_reconciliation_names_the_agent_where_it_is_known(self) -> None:
        """After a master failover the same leader asks about its tasks with their agents (so the master
        need not wait for every agent); a new leader knows no agents and asks by task alone."""
        h = Harness()
        h.put(job("j", schedule="R1//PT1H", command="sleep 100"))
        [task] = h.offer(agent="S7")
        h.clear()
        h.apply(h.planner.registered(h.now))
        [explicit] = [r for r in h.of(fx.Reconcile) if r.task_ids]
        self.assertEqual(explicit.tasks(), [(task.task_id, "S7")])
        [explicit] = [r for r in h.recover().of(fx.Reconcile) if r.task_ids]
        self.assertEqual(explicit.tasks(), [(task.task_id, None)])
