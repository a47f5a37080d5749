"""The agent's core in an in-process cluster: executors, queued tasks, kills, environment, held updates.

Classes whose behaviour crosses the wire run twice: on the cluster of direct links, and again (the
``PB...`` subclasses at the end) over the real Perspective Broker adapters (``tests/helpers/pbcluster.py``).
"""

from __future__ import annotations

from typing import Any

from mesostw.agent.state import REGISTERING, RUNNING, TERMINATED
from mesostw.executor import native
from mesostw.model import task as T
from mesostw.model.task import TaskStatus, new_uuid
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task
from tests.helpers.pbcluster import PBCluster

WORK_DIR = "/nonexistent-sandbox-root"


def executor_task(task_id: str, executor_id: str, resources: str = "cpus:0.1;mem:32") -> dict[str, Any]:
    """A task for a custom executor (several tasks may share one)."""
    task = command_task(task_id, "unused", resources)
    del task["command"]
    task["executor"] = {"executor_id": {"value": executor_id}, "name": executor_id,
                        "command": {"value": "./my-executor"}}
    return task


class AgentTestCase(ClockTestCase):
    #: the cluster the tests run on: direct links, or the PB adapters (tests/helpers/pbcluster.py)
    cluster_class: type[Cluster] = Cluster

    def make_cluster(self, **kwargs: Any) -> Cluster:
        cluster = self.cluster_class(agents=1, **kwargs)
        self.useClock(cluster.clock)
        self.addCleanup(cluster.stop)
        return cluster

    def launch(self, cluster: Cluster, *tasks: dict[str, Any], **info: Any):
        scheduler = RecordingScheduler()
        scheduler.pending = list(tasks)
        return cluster.framework(scheduler=scheduler, **info)

    def only_executor(self, cluster: Cluster, framework_id: str):
        (executor,) = cluster.agents[0].frameworks[framework_id].executors.values()
        return executor


class ExecutorLaunchTests(AgentTestCase):
    def test_tasks_queue_until_executor_subscribes(self) -> None:
        """Tasks wait in the executor's queue until it subscribes, then are all launched on it."""
        cluster = self.make_cluster()
        cluster.containerizers[0].subscribe = False
        scheduler, driver = self.launch(cluster, executor_task("t1", "ex"), executor_task("t2", "ex"))
        executor = self.only_executor(cluster, scheduler.framework_id)
        self.assertEqual(executor.state, REGISTERING)
        self.assertEqual(sorted(executor.queued), ["t1", "t2"])
        self.assertEqual(executor.launched, {})
        (fake,) = cluster.containerizers[0].by_executor("ex")
        self.assertEqual(fake.events, [])
        self.assertEqual(scheduler.updates, [])
        self.assertEqual(cluster.master.frameworks[scheduler.framework_id].tasks["t1"].state, T.STAGING)

        fake.subscribe()
        cluster.settle()
        self.assertEqual(executor.state, RUNNING)
        self.assertEqual(executor.queued, {})
        self.assertEqual(sorted(executor.launched), ["t1", "t2"])
        self.assertEqual([e["type"] for e in fake.events], ["SUBSCRIBED", "LAUNCH", "LAUNCH"]
                         + ["ACKNOWLEDGED"] * 2)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])
        self.assertEqual(scheduler.states("t2"), [T.RUNNING])
        self.assertEqual(len(cluster.containerizers[0].executors), 1)

    def test_task_for_running_executor_launches_at_once(self) -> None:
        """A further task for an executor that already runs is sent to it without a new container."""
        cluster = self.make_cluster()
        scheduler, driver = self.launch(cluster, executor_task("t1", "ex", "cpus:0.5;mem:128"))
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])
        scheduler.pending = [executor_task("t2", "ex", "cpus:0.5;mem:128")]
        driver.reviveOffers()
        cluster.settle()
        self.assertEqual(scheduler.states("t2"), [T.RUNNING])
        self.assertEqual(len(cluster.containerizers[0].executors), 1)
        self.assertEqual(sorted(self.only_executor(cluster, scheduler.framework_id).launched), ["t1", "t2"])

    def test_launch_failure_fails_task(self) -> None:
        """If the containerizer cannot start the executor its task ends TASK_FAILED (container launch failed)."""
        cluster = self.make_cluster()
        cluster.containerizers[0].fail_launch = True
        scheduler, driver = self.launch(cluster, command_task("t1", "sleep 100"))
        self.flushLoggedErrors(RuntimeError)
        self.assertEqual(scheduler.states("t1"), [T.FAILED])
        (update,) = scheduler.updates
        self.assertEqual(update.reason, T.REASON_CONTAINER_LAUNCH_FAILED)
        self.assertEqual(update.source, T.SOURCE_AGENT)
        self.assertIsNotNone(update.uuid)
        self.assertIn("no room for containers", update.message)
        framework = cluster.master.frameworks[scheduler.framework_id]
        self.assertEqual(framework.tasks, {})
        self.assertEqual([t.task_id for t in framework.completed_tasks], ["t1"])
        self.assertEqual(cluster.agents[0].frameworks, {})
        self.assertFalse(cluster.agents[0].updates.has_pending(scheduler.framework_id, "t1"))

    def test_executor_that_never_subscribes_is_destroyed(self) -> None:
        """An executor silent for executor_registration_timeout (60 s) is destroyed and its task fails."""
        cluster = self.make_cluster()
        containerizer = cluster.containerizers[0]
        containerizer.subscribe = False
        scheduler, driver = self.launch(cluster, command_task("t1", "sleep 100"))
        (container_id,) = containerizer.executors
        cluster.advance(59)
        self.assertEqual(containerizer.destroyed, [])
        self.assertEqual(scheduler.updates, [])
        cluster.advance(1)
        self.assertEqual(containerizer.destroyed, [container_id])
        self.assertEqual(scheduler.states("t1"), [T.FAILED])
        self.assertEqual(scheduler.updates[0].reason, T.REASON_EXECUTOR_REGISTRATION_TIMEOUT)
        self.assertEqual(scheduler.updates[0].source, T.SOURCE_AGENT)
        self.assertEqual(cluster.agents[0].frameworks, {})
        self.assertEqual(cluster.master.frameworks[scheduler.framework_id].tasks, {})


    def test_health_checks_preloaded_for_the_tasks_that_have_them(self) -> None:
        """The command executor of a task with a health check is launched asking for the health checks'
        modules (which the launcher's child loads before it switches users); other executors ask nothing."""
        cluster = self.make_cluster()
        containerizer = cluster.containerizers[0]
        containerizer.subscribe = False
        checked = command_task("checked", "sleep 100")
        checked["health_check"] = {"type": "COMMAND", "command": {"value": "true"}}
        scheduler, driver = self.launch(cluster, checked, command_task("plain", "sleep 100"))
        by_executor = {executor.executor_id: containerizer.preloads[container_id]
                       for container_id, executor in containerizer.executors.items()}
        self.assertEqual(by_executor, {"checked": ("health",), "plain": ()})

    def test_native_command_executor_for_plain_command_tasks(self) -> None:
        """A plain command task's executor is the native one (when it is built); a task with a health
        check, an agent whose executors speak TLS or reach it by name (the native one has no resolver),
        and an agent run with --native_command_executor=false get the Python one; the agent counts
        which it started."""
        self.assertTrue(native.available(), "the native command executor is not built")
        cluster = self.make_cluster()
        containerizer = cluster.containerizers[0]
        containerizer.subscribe = False
        checked = command_task("checked", "sleep 100")
        checked["health_check"] = {"type": "COMMAND", "command": {"value": "true"}}
        self.launch(cluster, checked, command_task("plain", "sleep 100"))
        by_executor = {executor.executor_id: containerizer.natives[container_id]
                       for container_id, executor in containerizer.executors.items()}
        self.assertEqual(by_executor, {"checked": False, "plain": True})
        agent = cluster.agents[0]
        self.assertEqual((agent.metrics["command_executors_native"], agent.metrics["command_executors_python"]),
                         (1, 1))
        at = {"MESOS_AGENT_ENDPOINT": "127.0.0.1:5051"}
        self.assertTrue(agent.native_command_executor(at))
        self.assertFalse(agent.native_command_executor({"MESOS_AGENT_ENDPOINT": "[::1]:5051"}))
        self.assertTrue(agent.native_command_executor({"MESOS_AGENT_ENDPOINT": "::1:5051"}))
        self.assertFalse(agent.native_command_executor({"MESOS_AGENT_ENDPOINT": "agent.example:5051"}))
        self.assertFalse(agent.native_command_executor({**at, "LIBPROCESS_SSL_ENABLED": "true"}))
        self.assertFalse(agent.native_command_executor({**at, "SSL_ENABLED": "1"}))
        self.assertTrue(agent.native_command_executor({**at, "LIBPROCESS_SSL_ENABLED": "false"}))
        off = cluster.add_agent("cpus:4;mem:4096", port=5060, native_command_executor=False)
        cluster.settle()
        self.assertFalse(off.native_command_executor(at))


class KillAndExitTests(AgentTestCase):
    def test_kill_queued_task(self) -> None:
        """Killing a task that waits for its executor answers TASK_KILLED and drops the idle executor."""
        cluster = self.make_cluster()
        containerizer = cluster.containerizers[0]
        containerizer.subscribe = False
        scheduler, driver = self.launch(cluster, command_task("t1", "sleep 100"))
        (container_id,) = containerizer.executors
        driver.killTask("t1")
        cluster.settle()
        self.assertEqual(scheduler.states("t1"), [T.KILLED])
        self.assertEqual(scheduler.updates[0].reason, T.REASON_TASK_KILLED_DURING_LAUNCH)
        self.assertEqual(containerizer.destroyed, [container_id])
        self.assertEqual(cluster.agents[0].frameworks, {})
        framework = cluster.master.frameworks[scheduler.framework_id]
        self.assertEqual(framework.tasks, {})
        self.assertEqual(framework.completed_tasks[-1].state, T.KILLED)
        # The queued task never reached an executor, even one subscribing late.
        containerizer.executors[container_id].subscribe()
        cluster.settle()
        self.assertEqual([e["type"] for e in containerizer.executors[container_id].events], ["ERROR"])

    def test_kill_running_task(self) -> None:
        """Killing a running task asks its executor, whose TASK_KILLED reaches the scheduler."""
        cluster = self.make_cluster()
        scheduler, driver = self.launch(cluster, command_task("t1", "sleep 100"))
        driver.killTask("t1")
        cluster.settle()
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.KILLED])
        (fake,) = cluster.containerizers[0].by_executor("t1")
        self.assertIn("KILL", [e["type"] for e in fake.events])
        self.assertTrue(fake.exited.called)
        self.assertEqual(cluster.agents[0].frameworks, {})

    def test_executor_exit_fails_running_tasks(self) -> None:
        """An executor that exits under running tasks makes them TASK_FAILED (executor terminated)."""
        cluster = self.make_cluster()
        scheduler, driver = self.launch(cluster, executor_task("t1", "ex"), executor_task("t2", "ex"))
        (fake,) = cluster.containerizers[0].by_executor("ex")
        fake.exit(1 << 8)
        cluster.settle()
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.FAILED])
        self.assertEqual(scheduler.states("t2"), [T.RUNNING, T.FAILED])
        failed = [u for u in scheduler.updates if u.state == T.FAILED]
        self.assertEqual({u.reason for u in failed}, {T.REASON_EXECUTOR_TERMINATED})
        self.assertEqual({u.source for u in failed}, {T.SOURCE_AGENT})
        self.assertIn("status 1", failed[0].message)
        self.assertEqual(scheduler.lost_executors, [("ex", cluster.agents[0].id, 256)])
        framework = cluster.master.frameworks[scheduler.framework_id]
        self.assertEqual(framework.tasks, {})
        self.assertEqual(cluster.agents[0].frameworks, {})
        self.assertEqual(cluster.allocator.agent_allocated(cluster.agents[0].id).scalars().get("cpus", 0), 0)

    def test_shutdown_framework_kills_executors(self) -> None:
        """shutdownFramework shuts every executor of the framework down and forgets the framework."""
        cluster = self.make_cluster()
        agent = cluster.agents[0]
        scheduler, driver = self.launch(cluster, command_task("t1", "sleep 100"), executor_task("t2", "ex"),
                                        executor_task("t3", "ex"))
        framework_id = scheduler.framework_id
        self.assertEqual(len(agent.frameworks[framework_id].executors), 2)
        fakes = list(cluster.containerizers[0].executors.values())
        before = len(scheduler.updates)
        agent.shutdownFramework(framework_id)
        cluster.settle()
        for fake in fakes:
            self.assertIn("SHUTDOWN", [e["type"] for e in fake.events])
            self.assertTrue(fake.exited.called)
        self.assertEqual(agent.frameworks, {})
        (done,) = agent.completed_frameworks
        self.assertEqual(done.id, framework_id)
        executors = list(done.completed_executors)
        self.assertEqual(sorted(e.id for e in executors), ["ex", "t1"])
        self.assertEqual({e.state for e in executors}, {TERMINATED})
        tasks = [t for e in executors for t in e.completed]
        self.assertEqual(sorted(t.task_id for t in tasks), ["t1", "t2", "t3"])
        self.assertEqual({t.state for t in tasks}, {T.KILLED})
        # Updates of a framework being shut down are neither kept nor forwarded.
        self.assertEqual(list(agent.updates.heads()), [])
        cluster.advance(30)
        self.assertEqual(len(scheduler.updates), before)


class EnvironmentTests(AgentTestCase):
    def test_executor_environment(self) -> None:
        """Executors get Mesos's variables: ids, sandbox paths, agent endpoint and pid, checkpoint flag."""
        cluster = self.make_cluster()
        task = command_task("t1", "sleep 100")
        task["command"]["environment"] = {"variables": [{"name": "GREETING", "value": "hello"}]}
        scheduler, driver = self.launch(cluster, task)
        agent = cluster.agents[0]
        ((container_id, fake),) = cluster.containerizers[0].executors.items()
        env = fake.environment
        sandbox = (f"{WORK_DIR}/slaves/{agent.id}/frameworks/{scheduler.framework_id}"
                   f"/executors/t1/runs/{container_id}")
        self.assertEqual(env["MESOS_FRAMEWORK_ID"], scheduler.framework_id)
        self.assertEqual(env["MESOS_EXECUTOR_ID"], "t1")
        self.assertEqual(env["MESOS_DIRECTORY"], sandbox)
        self.assertEqual(env["MESOS_SANDBOX"], sandbox)
        self.assertEqual(env["MESOS_AGENT_ENDPOINT"], "127.0.0.1:5051")
        self.assertEqual(env["MESOS_SLAVE_PID"], "slave(1)@127.0.0.1:5051")
        self.assertEqual(env["MESOS_SLAVE_ID"], agent.id)
        self.assertEqual(env["MESOS_CHECKPOINT"], "0")
        self.assertNotIn("MESOS_RECOVERY_TIMEOUT", env)
        self.assertNotIn("MESOS_TASK_ID", env)
        self.assertEqual(env["GREETING"], "hello")
        self.assertEqual(self.only_executor(cluster, scheduler.framework_id).directory, sandbox)

    def test_checkpointing_framework_environment(self) -> None:
        """A checkpointing framework's executors see MESOS_CHECKPOINT=1 and a recovery timeout."""
        cluster = self.make_cluster()
        scheduler, driver = self.launch(cluster, command_task("t1", "sleep 100"), checkpoint=True)
        (fake,) = cluster.containerizers[0].executors.values()
        self.assertEqual(fake.environment["MESOS_CHECKPOINT"], "1")
        self.assertIn("MESOS_RECOVERY_TIMEOUT", fake.environment)


class MasterLossTests(AgentTestCase):
    def test_updates_held_while_master_gone(self) -> None:
        """Updates made while the master is unreachable are held and all delivered after reconnection."""
        cluster = self.make_cluster()
        agent = cluster.agents[0]
        scheduler, driver = self.launch(cluster, command_task("t1", "sleep 100"), command_task("t2", "sleep 100"),
                                        checkpoint=True)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])
        self.assertEqual(scheduler.states("t2"), [T.RUNNING])
        cluster.cut(agent)
        cluster.settle()
        (fake1,) = cluster.containerizers[0].by_executor("t1")
        (fake2,) = cluster.containerizers[0].by_executor("t2")
        fake1.update("t1", T.FINISHED, "done")
        fake2.update("t2", T.FAILED, "broken")
        cluster.advance(30)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])
        self.assertEqual(scheduler.states("t2"), [T.RUNNING])
        self.assertEqual(sorted(s.task_id for _, s in agent.updates.heads()), ["t1", "t2"])
        agent_id = agent.id
        cluster.connect(agent)
        cluster.settle()
        self.assertEqual(agent.id, agent_id)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.FINISHED])
        self.assertEqual(scheduler.states("t2"), [T.RUNNING, T.FAILED])
        # Acknowledged through the re-registered link: nothing left to retry, both tasks retired.
        self.assertEqual(list(agent.updates.heads()), [])
        framework = cluster.master.frameworks[scheduler.framework_id]
        self.assertEqual(framework.tasks, {})
        self.assertEqual(sorted(t.task_id for t in framework.completed_tasks), ["t1", "t2"])
        cluster.advance(60)
        self.assertEqual(len(scheduler.updates), 4)

    def test_ordered_stream_survives_master_loss(self) -> None:
        """Several updates of one task made during the outage arrive in order, one per acknowledgement."""
        cluster = self.make_cluster()
        agent = cluster.agents[0]
        scheduler, driver = self.launch(cluster, command_task("t1", "sleep 100"), checkpoint=True)
        cluster.cut(agent)
        cluster.settle()
        (fake,) = cluster.containerizers[0].by_executor("t1")
        fake.update("t1", T.RUNNING, "still running")
        fake.update("t1", T.FINISHED, "done")
        cluster.advance(20)
        self.assertEqual([s.state for s in agent.updates.pending(scheduler.framework_id, "t1")],
                         [T.RUNNING, T.FINISHED])
        cluster.connect(agent)
        cluster.settle()
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.RUNNING, T.FINISHED])
        self.assertEqual(agent.updates.pending(scheduler.framework_id, "t1"), [])


class StatusStampTests(AgentTestCase):
    def test_update_without_timestamp_gets_the_agents_time(self) -> None:
        """An executor's update without a timestamp is stamped with the agent's clock (as Mesos's agent does)."""
        cluster = self.make_cluster()
        scheduler, _ = self.launch(cluster, command_task("t1", "sleep 100"))
        cluster.advance(5)
        status = TaskStatus("t1", T.RUNNING, message="sent without a timestamp", uuid=new_uuid())
        self.assertIsNone(status.timestamp)
        self.assertTrue(cluster.agents[0].executorUpdate(scheduler.framework_id, "t1", status))
        cluster.settle()
        [update] = [u for u in scheduler.updates if u.message == "sent without a timestamp"]
        self.assertEqual(update.timestamp, cluster.clock.seconds())


# -- the same behaviours over the real PB adapters ---------------------------------------------------------------------


class PBExecutorLaunchTests(ExecutorLaunchTests):
    cluster_class = PBCluster


class PBKillAndExitTests(KillAndExitTests):
    cluster_class = PBCluster


class PBMasterLossTests(MasterLossTests):
    cluster_class = PBCluster


class PBStatusStampTests(StatusStampTests):
    cluster_class = PBCluster
