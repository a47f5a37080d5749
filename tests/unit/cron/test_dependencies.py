"""Dependent jobs: triggering once every parent has succeeded, durable progress, DAG validation,
deleting parents, and the graph exports."""

from __future__ import annotations

from twisted.trial import unittest

from frameworks.cron import effects as fx
from frameworks.cron import graph
from frameworks.cron.jobs import JobInvalid
from mesostw.model import task as T
from tests.helpers.cron import Harness, job


def dependent(name: str, *parents: str, **fields: object) -> dict[str, object]:
    return job(name, schedule=None, parents=list(parents), **fields)


class TriggerTests(unittest.TestCase):
    def setUp(self) -> None:
        self.h = Harness()
        self.h.put(job("a", schedule="R1/2024-05-01T13:00:00Z/PT1H"))
        self.h.put(job("b", schedule="R1/2024-05-01T13:00:00Z/PT1H"))
        self.h.put(dependent("c", "a", "b"))

    def succeed(self, name: str, h: Harness | None = None) -> None:
        h = h or self.h
        h.apply(h.planner.run_job(name, None, h.now))
        tasks = [t for t in h.offer() if t.name == f"ChronosTask:{name}"]
        self.assertEqual(len(tasks), 1)
        h.finish(tasks[0].task_id)

    def c_runs(self, h: Harness | None = None) -> list[str]:
        return [t.task_id for t in (h or self.h).offer() if t.name == "ChronosTask:c"]

    def test_runs_once_every_parent_has_succeeded(self) -> None:
        """a alone does not trigger c; a then b does, once; the next round needs both again."""
        self.succeed("a")
        self.succeed("a")
        self.assertEqual(self.c_runs(), [])
        self.assertEqual(self.h.stored_job("c")["state"]["progress"], ["a"])
        self.succeed("b")
        [run] = self.c_runs()
        self.assertTrue(run.startswith("ct:"))
        self.assertEqual(self.h.stored_job("c")["state"]["progress"], [])
        self.succeed("b")
        self.assertEqual(self.c_runs(), [])

    def test_progress_survives_a_new_leader(self) -> None:
        """a succeeds, the framework fails over, b succeeds: c runs (Chronos forgets a's success here)."""
        self.succeed("a")
        later = self.h.recover()
        self.succeed("b", later)
        self.assertEqual(len(self.c_runs(later)), 1)

    def test_one_pending_trigger_at_a_time(self) -> None:
        """While c's triggered run waits for resources, further rounds do not queue more runs of it."""
        self.h.put(dependent("c", "a", "b", cpus=100.0))
        for _ in range(3):
            self.succeed("a")
            self.succeed("b")
        runs = [r for r in self.h.planner.runs.values() if r.job == "c"]
        self.assertEqual(len(runs), 1)

    def test_disabled_children_are_skipped(self) -> None:
        """A disabled child neither runs nor keeps progress."""
        self.h.put(dependent("c", "a", "b", disabled=True))
        self.succeed("a")
        self.succeed("b")
        self.assertEqual(self.c_runs(), [])
        self.assertEqual(self.h.record("c").progress, set())

    def test_soft_error_triggers_dependents_after_the_last_failure(self) -> None:
        """softError: a's final failure counts as done for c."""
        self.h.put(job("a", schedule="R1/2024-05-01T13:00:00Z/PT1H", softError=True, retries=0))
        self.h.apply(self.h.planner.run_job("a", None, self.h.now))
        [task] = self.h.offer()
        self.h.finish(task.task_id, T.FAILED)
        self.succeed("b")
        self.assertEqual(len(self.c_runs()), 1)

    def test_mark_success_triggers_dependents(self) -> None:
        """PUT job/success/{name} counts a success and fires the children."""
        ok, effects = self.h.planner.mark_success("a", self.h.now)
        self.h.apply(effects)
        self.assertTrue(ok)
        self.succeed("b")
        self.assertEqual(len(self.c_runs()), 1)
        self.assertEqual(self.h.record("a").counters.success_count, 1)
        self.assertEqual(self.h.planner.mark_success("zz", self.h.now)[0], False)


class ValidationTests(unittest.TestCase):
    def setUp(self) -> None:
        self.h = Harness()
        self.h.put(job("a"))
        self.h.put(dependent("b", "a"))
        self.h.put(dependent("c", "b"))

    def problems(self, body: dict[str, object]) -> list[str]:
        with self.assertRaises(JobInvalid) as caught:
            self.h.put(body)
        return caught.exception.errors

    def test_parents_must_exist(self) -> None:
        """A missing parent is refused (Chronos 3 accepted it and dropped the job later)."""
        self.assertEqual(self.problems(dependent("d", "a", "ghost")), ["parents: parent 'ghost' does not exist"])
        self.assertNotIn("d", self.h.planner.jobs)

    def test_no_cycles_and_no_self(self) -> None:
        """Making a depend on c (a -> b -> c -> a) or on itself is refused, and nothing changes."""
        errors = self.problems(dependent("a", "c"))
        self.assertIn("cycle", errors[0])
        self.assertIn("itself", self.problems(dependent("b", "b"))[0])
        self.assertEqual(self.h.planner.graph.links(), [("a", "b"), ("b", "c")])
        self.assertTrue(self.h.record("a").job.scheduled)

    def test_schedule_or_parents(self) -> None:
        """A job has a schedule or parents, never both, and a dependent job needs a parent."""
        self.assertIn("not both", self.problems(job("x", parents=["a"]))[0])
        self.assertIn("at least one parent", self.problems(dependent("x"))[0])


class DeleteTests(unittest.TestCase):
    def test_children_take_the_parents_of_a_deleted_dependent_job(self) -> None:
        """a -> b -> c, delete b: c depends on a."""
        h = Harness()
        h.put(job("a"))
        h.put(dependent("b", "a"))
        h.put(dependent("c", "b"))
        h.apply(h.planner.delete_job("b", h.now))
        self.assertEqual(h.record("c").job.parents, ("a",))
        self.assertEqual(h.stored_job("c")["job"]["parents"], ["a"])
        self.assertNotIn("jobs/b", h.store)

    def test_an_only_child_of_a_deleted_scheduled_job_takes_its_schedule(self) -> None:
        """s -> d, delete s: d becomes a scheduled job with s's schedule, and runs at s's next slot."""
        h = Harness()
        h.put(job("s"))
        h.put(dependent("d", "s"))
        h.apply(h.planner.delete_job("s", h.now))
        record = h.record("d")
        self.assertEqual((record.job.parents, record.job.schedule), (None, "R/2024-05-01T12:01:00Z/PT1M"))
        h.advance(60_000)
        self.assertEqual([t.name for t in h.offer()], ["ChronosTask:d"])

    def test_deleting_kills_running_tasks(self) -> None:
        """The deleted job's running task is killed; its late updates are only acknowledged."""
        h = Harness()
        h.put(job("a"))
        h.advance(60_000)
        [task] = h.offer()
        h.update(task.task_id, T.RUNNING)
        h.apply(h.planner.delete_job("a", h.now))
        self.assertEqual([k.task_id for k in h.of(fx.Kill)],
                         [task.task_id])
        h.update(task.task_id, T.KILLED)
        self.assertEqual(h.stored_runs(), {})


class ExportTests(unittest.TestCase):
    def test_csv_and_dot(self) -> None:
        """Chronos's CSV rows (node states, then links) and a DOT graph labelled with the same states."""
        nodes = [("a", "success", "idle"), ("b", "fresh", "1 running")]
        links = [("a", "b")]
        self.assertEqual(graph.csv(nodes, links), "node,a,success,idle\nnode,b,fresh,1 running\nlink,a,b\n")
        dot = graph.dot(nodes, links)
        self.assertTrue(dot.startswith("digraph G {"))
        self.assertIn("1 -> 2;", dot)
        self.assertIn('label = "b\\nfresh, 1 running"', dot)
