"""LAUNCH_GROUP through master and agent on the in-process cluster: one executor per group, the whole group
in one LAUNCH_GROUP, resources accounted for executor and tasks, invalid groups refused whole."""

from __future__ import annotations

from typing import Any

from mesostw.model import task as T
from mesostw.model.info import Filters
from mesostw.model.resources import Resources
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task
from tests.helpers.pbcluster import PBCluster

EXECUTOR_RESOURCES = "cpus:0.1;mem:32;disk:10"


def executor(executor_id: str = "group-1", resources: str = EXECUTOR_RESOURCES, **extra: Any) -> dict[str, Any]:
    return {"executor_id": {"value": executor_id}, "type": "DEFAULT",
            "resources": Resources.parse(resources).to_json(), **extra}


def launch_group(agent_id: str, tasks: list[dict[str, Any]], info: dict[str, Any] | None = None) -> dict[str, Any]:
    for task in tasks:
        task["agent_id"] = {"value": agent_id}
    return {"type": "LAUNCH_GROUP", "launch_group": {"executor": info or executor(),
                                                     "task_group": {"tasks": tasks}}}


class TaskGroupCase(ClockTestCase):
    """One agent (cpus:2;mem:1024;disk:1024), a framework holding its offer."""

    cluster_class: Any = Cluster

    def setUp(self) -> None:
        self.cluster = cluster = self.cluster_class(agents=1)
        self.useClock(cluster.clock)
        self.addCleanup(cluster.stop)
        self.master = cluster.master
        self.agent = cluster.agents[0]
        self.scheduler = RecordingScheduler()
        self.scheduler.decline_unused = False
        _, self.driver = cluster.framework("groups", scheduler=self.scheduler)

    def accept(self, *operations: dict[str, Any]) -> None:
        [offer] = self.master.offers.of_framework(self.scheduler.framework_id)
        self.driver.acceptOffers([offer.id], list(operations), Filters(0))
        self.cluster.settle()


class LaunchGroupTests(TaskGroupCase):
    def test_one_executor_gets_the_whole_group(self) -> None:
        """The group's executor is started once, with the executor's and every task's resources, and gets all
        the tasks in one LAUNCH_GROUP; both tasks' updates reach the framework."""
        self.accept(launch_group(self.agent.id, [command_task("a", "sleep 10"), command_task("b", "sleep 10")]))
        [fake] = self.cluster.containerizers[0].executors.values()
        self.assertEqual(fake.executor_id, "group-1")
        [event] = [e for e in fake.events if e["type"].startswith("LAUNCH")]
        self.assertEqual(event["type"], "LAUNCH_GROUP")
        self.assertEqual([t["task_id"]["value"] for t in event["launch_group"]["task_group"]["tasks"]], ["a", "b"])
        self.assertEqual([t["command"]["value"] for t in event["launch_group"]["task_group"]["tasks"]],
                         ["sleep 10", "sleep 10"])
        [container] = self.cluster.containerizers[0].resources.values()
        expected = Resources.parse(EXECUTOR_RESOURCES) + Resources.parse("cpus:0.2;mem:64")
        self.assertEqual(container.scalars(), expected.scalars())
        self.assertEqual((self.scheduler.states("a"), self.scheduler.states("b")), ([T.RUNNING], [T.RUNNING]))
        executor_state = self.agent.frameworks[self.scheduler.framework_id].executors["group-1"]
        self.assertTrue(executor_state.is_default_executor)

    def test_master_accounts_executor_and_tasks(self) -> None:
        """The master charges the executor and the tasks: what is offered afterwards is the rest, and the
        executor is listed as the framework's on the agent."""
        self.accept(launch_group(self.agent.id, [command_task("a", "sleep 10"), command_task("b", "sleep 10")]))
        used = self.master.tasks.used_by(self.scheduler.framework_id)
        self.assertEqual(used.scalars(), (Resources.parse(EXECUTOR_RESOURCES) + Resources.parse("cpus:0.2;mem:64")
                                          ).scalars())
        [offer] = self.master.offers.of_framework(self.scheduler.framework_id)
        self.assertAlmostEqual(offer.resources.scalar("cpus"), 1.7)
        self.assertEqual(self.master.tasks.executor_ids(self.agent.id, self.scheduler.framework_id), ("group-1",))

    def test_second_group_on_the_running_executor(self) -> None:
        """A second group for the same executor goes to it as another LAUNCH_GROUP, without a second executor."""
        self.accept(launch_group(self.agent.id, [command_task("a", "sleep 10")]))
        self.accept(launch_group(self.agent.id, [command_task("b", "sleep 10"), command_task("c", "sleep 10")]))
        [fake] = self.cluster.containerizers[0].executors.values()
        groups = [e for e in fake.events if e["type"] == "LAUNCH_GROUP"]
        self.assertEqual(len(groups), 2)
        self.assertEqual(self.scheduler.states("c"), [T.RUNNING])

    def test_executor_end_returns_its_resources(self) -> None:
        """When the group's tasks end and the executor exits, the master gets the executor's resources back."""
        self.accept(launch_group(self.agent.id, [command_task("a", "true"), command_task("b", "true")]))
        self.cluster.advance(2)
        self.assertEqual((self.scheduler.states("a")[-1], self.scheduler.states("b")[-1]), (T.FINISHED, T.FINISHED))
        self.assertEqual(self.master.tasks.used_by(self.scheduler.framework_id).scalars(), {})
        self.assertEqual(self.master.tasks.executor_ids(self.agent.id, self.scheduler.framework_id), ())


class InvalidGroupTests(TaskGroupCase):
    def assertAllError(self, task_ids: list[str], fragment: str) -> None:
        for task_id in task_ids:
            self.assertEqual(self.scheduler.states(task_id), [T.ERROR])
            update = [u for u in self.scheduler.updates if u.task_id == task_id][-1]
            self.assertEqual(update.reason, T.REASON_TASK_GROUP_INVALID)
            self.assertIn(fragment, update.message)
        self.assertEqual(self.cluster.containerizers[0].executors, {})

    def test_too_big_a_group_is_refused_whole(self) -> None:
        """When the group does not fit the offer, no task of it starts: TASK_ERROR for each."""
        self.accept(launch_group(self.agent.id, [command_task("a", "sleep 1", "cpus:1;mem:32"),
                                                 command_task("b", "sleep 1", "cpus:1;mem:32")]))
        self.assertAllError(["a", "b"], "more resources")

    def test_executor_needs_resources_and_a_kind(self) -> None:
        """An executor below the minimum resources, or CUSTOM without a command, refuses its group."""
        self.accept(launch_group(self.agent.id, [command_task("a", "sleep 1")], executor(resources="cpus:0.1")))
        self.assertAllError(["a"], "less than the minimum")
        self.accept(launch_group(self.agent.id, [command_task("b", "sleep 1")], {**executor(), "type": "CUSTOM"}))
        self.assertAllError(["b"], "needs a command")

    def test_tasks_need_commands_and_distinct_ids(self) -> None:
        """A task without a command, or two tasks with one ID, refuse the group."""
        no_command = command_task("a", "sleep 1")
        del no_command["command"]
        no_command["executor"] = executor()
        self.accept(launch_group(self.agent.id, [no_command, command_task("b", "sleep 1")]))
        self.assertAllError(["a", "b"], "needs a command")
        self.accept(launch_group(self.agent.id, [command_task("c", "sleep 1"), command_task("c", "sleep 1")]))
        self.assertEqual(self.scheduler.states("c"), [T.ERROR, T.ERROR])


class QueuedGroupTests(TaskGroupCase):
    def test_killing_a_queued_task_kills_its_group(self) -> None:
        """A task of a group still waiting for its executor is killed with its whole group."""
        self.cluster.containerizers[0].subscribe = False  # the executor never subscribes
        self.accept(launch_group(self.agent.id, [command_task("a", "sleep 10"), command_task("b", "sleep 10")]))
        self.driver.killTask("a")
        self.cluster.settle()
        for task_id in ("a", "b"):
            self.assertEqual(self.scheduler.states(task_id), [T.KILLED])
            update = [u for u in self.scheduler.updates if u.task_id == task_id][-1]
            self.assertEqual(update.reason, T.REASON_TASK_KILLED_DURING_LAUNCH)


class PBLaunchGroupTests(LaunchGroupTests):
    """The same over Perspective Broker: the group crosses the wire whole, with its executor."""

    cluster_class = PBCluster
