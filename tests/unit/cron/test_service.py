"""The cron framework end to end on an in-process cluster: jobs posted through the API run on agents
on schedule, retry, trigger dependents, are killed, and survive the framework's restart."""

from __future__ import annotations

from frameworks.cron.records import FRAMEWORK_ID
from mesostw.model import task as T
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cron import T0, CronOnACluster, job


class EndToEndTests(ClockTestCase):
    def test_a_job_runs_on_its_schedule(self) -> None:
        """Posted at 12:00, the job runs at 12:01 and 12:02 on an agent; GET shows the counts and next run."""
        cron = CronOnACluster(self)
        self.assertEqual(cron.post(job("tick")), 204)
        self.assertEqual(self.successResultOf(cron.host.store.get(FRAMEWORK_ID)),
                         cron.service.framework_id.encode())
        cron.advance(59)
        self.assertEqual(cron.launched("tick"), [])
        cron.advance(62)
        self.assertEqual(cron.launched("tick"), [f"ct:{T0 + 60_000}:0:tick:", f"ct:{T0 + 120_000}:0:tick:"])
        shown = cron.job("tick")
        self.assertEqual((shown["successCount"], shown["errorCount"]), (2, 0))
        self.assertEqual(shown["nextRun"], "2024-05-01T12:03:00.000Z")
        self.assertEqual(shown["schedule"], "R/2024-05-01T12:03:00.000Z/PT1M")

    def test_failed_runs_are_retried(self) -> None:
        """`false` with retries=1 and a 2 s retry delay: two tasks, then one error."""
        cron = CronOnACluster(self, failure_retry=2000)
        cron.post(job("bad", schedule="R1//PT1H", command="false", retries=1))
        cron.advance(5)
        self.assertEqual([t.split(":")[2] for t in cron.launched("bad")], ["0", "1"])
        shown = cron.job("bad")
        self.assertEqual((shown["errorCount"], shown["successCount"]), (1, 0))
        self.assertNotEqual(shown["lastError"], "")

    def test_a_dependent_job_runs_after_its_parent(self) -> None:
        """PUT job/parent runs it; its success triggers the child posted to /dependency."""
        cron = CronOnACluster(self)
        cron.post(job("parent", schedule="R/2024-06-01T00:00:00Z/P1D"))
        self.assertEqual(cron.post(job("child", schedule=None, parents=["parent"]), "/v1/scheduler/dependency"), 204)
        self.assertEqual(cron.client.request("PUT", "/v1/scheduler/job/parent").code, 204)
        cron.advance(2)
        self.assertEqual(len(cron.launched("parent")), 1)
        self.assertEqual(len(cron.launched("child")), 1)
        self.assertEqual(cron.job("child")["successCount"], 1)

    def test_kill_a_running_job(self) -> None:
        """DELETE task/kill/{name} kills the running task; the run ends killed, not failed."""
        cron = CronOnACluster(self)
        cron.post(job("sleepy", schedule="R1//PT1H", command="sleep 1000"))
        cron.advance(2)
        self.assertEqual(cron.client.get_json("/v1/scheduler/jobs/summary")["jobs"][0]["state"], "1 running")
        self.assertEqual(cron.client.request("DELETE", "/v1/scheduler/task/kill/sleepy").code, 204)
        cron.advance(2)
        self.assertEqual(cron.client.get_json("/v1/scheduler/jobs/summary")["jobs"][0]["state"], "idle")
        history = cron.client.get_json("/v1/scheduler/job/history/sleepy")["runs"]
        self.assertEqual(history[0]["status"], "killed")
        self.assertEqual(cron.job("sleepy")["errorCount"], 0)

    def test_disabled_and_non_concurrent_jobs(self) -> None:
        """A disabled job does not run on schedule; a non-concurrent one never overlaps itself."""
        cron = CronOnACluster(self)
        cron.post(job("off", disabled=True))
        cron.post(job("serial", command="sleep 1000", epsilon="PT10S"))
        cron.advance(131)
        self.assertEqual(cron.launched("off"), [])
        self.assertEqual(cron.launched("serial"), [f"ct:{T0 + 60_000}:0:serial:"])
        self.assertEqual(cron.job("serial")["missedCount"], 1)

    def test_a_restart_adopts_running_tasks_and_launches_nothing_twice(self) -> None:
        """The framework fails over mid-run: the new instance re-registers as the same framework, learns
        from the master that the task runs, and does not launch it again."""
        cron = CronOnACluster(self)
        cron.post(job("long", command="sleep 1000", schedule="R1//PT1H"))
        cron.advance(2)
        first_id = cron.service.framework_id
        [task_id] = cron.launched("long")
        cron.restart()
        cron.advance(10)
        self.assertEqual(cron.service.framework_id, first_id)
        self.assertEqual(cron.launched("long"), [task_id])
        self.assertEqual(cron.client.get_json("/v1/scheduler/jobs/summary")["jobs"][0]["state"], "1 running")
        cron.client.request("DELETE", "/v1/scheduler/task/kill/long")
        cron.advance(2)
        self.assertEqual(cron.job("long")["successCount"] + cron.job("long")["errorCount"], 0)
        states = [e.get("status") for e in cron.client.get_json("/v1/scheduler/job/history/long")["runs"]]
        self.assertEqual(states, ["killed"])

    def test_stopping_writes_what_was_decided_first(self) -> None:
        """Writes made just before the framework stops still reach the store, then the driver lets go."""
        cron = CronOnACluster(self)
        cron.post(job("late"))
        service = cron.service
        service.apply(service.planner.run_job("late", None, service.now()))
        stopped = service.stopService()
        self.assertEqual(service.driver.status, "DRIVER_RUNNING")
        cron.cluster.settle()
        self.successResultOf(stopped)
        self.assertEqual(service.driver.status, "DRIVER_STOPPED")
        runs = self.successResultOf(cron.host.store.children("runs"))
        self.assertEqual(runs, [f"late:{int(cron.cluster.clock.seconds() * 1000)}"])

    def test_a_restart_counts_a_success_it_missed_once(self) -> None:
        """The task finishes while no framework is connected: the next instance counts it once."""
        cron = CronOnACluster(self)
        cron.post(job("quick", command="sleep 1000", schedule="R1//PT1H"))
        cron.advance(2)
        [task_id] = cron.launched("quick")
        cron.service.stopService()
        cron.cluster.settle()
        executor = next(e for c in cron.cluster.containerizers for e in c.executors.values() if task_id in e.running)
        executor.update(task_id, T.FINISHED)
        cron.cluster.settle()
        cron.start()
        cron.advance(5)
        self.assertEqual(cron.job("quick")["successCount"], 1)
        self.assertEqual(cron.launched("quick"), [task_id])


class ReconcileCallTests(ClockTestCase):
    def test_reconciliation_passes_agent_ids_to_the_driver(self) -> None:
        """A Reconcile effect reaches the driver as task IDs, with the agent where the planner knows it."""
        from frameworks.cron import effects as fx

        cron = CronOnACluster(self)
        calls: list[list[object]] = []
        cron.service.driver.reconcileTasks = calls.append
        cron.service._act(fx.Reconcile(("t1", "t2"), ("S1", None)))
        [[first, second]] = calls
        self.assertEqual((first.task_id, first.agent_id), ("t1", "S1"))  # type: ignore[attr-defined]
        self.assertEqual(second, "t2")


class ContractTests(ClockTestCase):
    def test_plugin_module_and_scheduler_keep_their_contracts(self) -> None:
        """plugin.py names the framework, its port and flags; the scheduler provides IScheduler; the
        service is an IService whose driver the host made."""
        from twisted.application.service import IService
        from zope.interface.verify import verifyObject

        from frameworks.cron import plugin
        from mesostw.flags import Flag
        from mesostw.interfaces import IScheduler

        self.assertEqual((plugin.NAME, plugin.DEFAULT_PORT), ("cron", 4400))
        self.assertTrue(plugin.DESCRIPTION)
        self.assertTrue(all(isinstance(f, Flag) and not f.name.startswith("cron_") for f in plugin.FLAGS))
        names = {f.name for f in plugin.FLAGS}
        for chronos_flag in ("mesos_framework_name", "failover_timeout", "mesos_task_cpu", "mesos_task_mem",
                             "mesos_task_disk", "failure_retry", "http_notification_url", "mesos_role", "user"):
            self.assertIn(chronos_flag, names)
        cron = CronOnACluster(self)
        verifyObject(IService, cron.service)
        verifyObject(IScheduler, cron.service.scheduler)
        self.assertIs(cron.service.driver, cron.host.drivers[-1])
        self.assertFalse(cron.service.driver.implicit_acknowledgements)
        framework = cron.cluster.master.frameworks[cron.service.framework_id]
        self.assertEqual((framework.info.name, framework.info.failover_timeout, framework.info.checkpoint),
                         ("chronos", 604800.0, True))
