"""Agent recovery on a Clock: an agent restarted on its checkpoint (a store that outlives it) takes back
its executors, tasks and unacknowledged updates, or gives them up as Mesos does."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet import defer

from mesostw.agent.agent import Agent
from mesostw.agent.checkpoint import Checkpoint, Checkpointer, CheckpointError
from mesostw.agent.containers import Limitation
from mesostw.agent.state import RUNNING
from mesostw.model import executor_api as xapi
from mesostw.model import task as T
from mesostw.model.info import AgentInfo
from mesostw.model.resources import Resources
from mesostw.store import Put
from mesostw.store.memory import MemoryStateStore
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import Cluster, FakeContainerizer, FakeExecutor, RecordingScheduler, command_task

PA = frozenset({"PARTITION_AWARE"})
RESOURCES = Resources.parse("cpus:2;mem:1024;disk:1024;ports:[31000-32000]")


class RecoveryTestCase(ClockTestCase):
    def setUp(self) -> None:
        self.cluster = Cluster(agents=0)
        self.useClock(self.cluster.clock)
        self.addCleanup(self.cluster.stop)
        self.store = MemoryStateStore()
        self.agent = self.add_agent(Checkpointer(self.store))
        self.cluster.connect(self.agent)
        self.cluster.settle()

    def add_agent(self, checkpointer: Checkpointer, **config: Any) -> Agent:
        containerizer = FakeContainerizer(self.cluster.clock)
        info = AgentInfo(hostname="127.0.0.1", port=5051, resources=RESOURCES)
        agent_config = self.cluster.agent_config.replace(**config) if config else self.cluster.agent_config
        agent = Agent(agent_config, info, containerizer, self.cluster.clock, checkpointer)
        containerizer.agent = agent
        self.cluster.agents.append(agent)
        self.cluster.containerizers.append(containerizer)
        return agent

    def launch(self, *tasks: dict[str, Any], **info: Any) -> tuple[RecordingScheduler, Any]:
        scheduler = RecordingScheduler()
        scheduler.pending = list(tasks)
        info.setdefault("failover_timeout", 3600.0)
        return self.cluster.framework(scheduler=scheduler, **info)

    def checkpoint(self) -> Checkpoint:
        return self.successResultOf(Checkpointer(self.store).read())

    def restart(self, alive: set[str] | None = None, mode: str = "reconnect", reconnect: bool = True,
                **config: Any) -> Agent:
        """Kill the agent (its connection breaks, its executors live on) and start a new one on the same
        checkpoint; ``alive`` are the containers still running (all by default); each of their executors
        subscribes again (``reconnect``) with what it holds unacknowledged."""
        old, index = self.agent, self.cluster.agents.index(self.agent)
        old_containerizer = self.cluster.containerizers[index]
        self.cluster.links[id(old)].cut()
        self.cluster.settle()
        old.stop()
        del self.cluster.agents[index], self.cluster.containerizers[index]
        checkpoint = self.checkpoint()
        agent = self.add_agent(Checkpointer(self.store), **config)
        containerizer = self.cluster.containerizers[-1]
        running = set(old_containerizer.executors) if alive is None else alive
        containerizer.alive = running
        for container_id, executor in old_containerizer.executors.items():
            executor.agent = agent
            containerizer.executors[container_id] = executor
            if container_id not in running:
                executor.exit(None)
        agent.recover(checkpoint, self.successResultOf(containerizer.recover(list(checkpoint.containers.values()))),
                      mode)
        self.agent = agent
        if reconnect:
            for container_id in running:
                self.resubscribe(containerizer.executors[container_id])
        self.cluster.settle()
        agent.recovered.addCallback(lambda _: self.cluster.connect(agent))
        self.cluster.settle()
        return agent

    def resubscribe(self, executor: FakeExecutor) -> None:
        call = xapi.Subscribe(unacknowledged_updates=tuple(executor.unacked.values()))
        self.agent.executorSubscribe(executor, executor.framework_id, executor.executor_id, call)


class ReconnectTests(RecoveryTestCase):
    def test_same_id_tasks_running_and_no_updates(self) -> None:
        """The restarted agent re-registers under its ID with its tasks; their executors reconnect; the
        framework hears nothing, and the master lists the agent once."""
        scheduler, _ = self.launch(command_task("t1", "sleep 100"), checkpoint=True, capabilities=PA)
        agent_id = self.agent.id
        seen = len(scheduler.updates)
        agent = self.restart()
        self.assertEqual(agent.id, agent_id)
        self.assertEqual(list(self.cluster.master.agents), [agent_id])
        self.assertEqual(scheduler.updates[seen:], [])
        self.assertEqual(self.cluster.master.frameworks[scheduler.framework_id].tasks["t1"].state, T.RUNNING)
        (executor,) = agent.frameworks[scheduler.framework_id].executors.values()
        self.assertEqual(executor.state, RUNNING)
        self.assertEqual(self.cluster.containerizers[-1].destroyed, [])

    def test_registration_waits_for_executors(self) -> None:
        """The agent registers only once every executor it recovered is back or given up on."""
        self.launch(command_task("t1", "sleep 100"), checkpoint=True)
        agent = self.restart(reconnect=False)
        self.assertFalse(agent.recovered.called)
        self.assertIsNone(self.cluster.master.agents[agent.id].reachable_link())
        (executor,) = self.cluster.containerizers[-1].executors.values()
        self.resubscribe(executor)
        self.cluster.settle()
        self.assertTrue(agent.recovered.called)
        self.assertIsNotNone(self.cluster.master.agents[agent.id].reachable_link())

    def test_update_made_while_away_is_delivered_once(self) -> None:
        """An update the executor could not get acknowledged before the restart is sent again on
        re-subscription and reaches the framework once, even when sent twice."""
        scheduler, _ = self.launch(command_task("t1", "sleep 100"), checkpoint=True)
        (executor,) = self.cluster.containerizers[0].executors.values()
        self.cluster.links[id(self.agent)].cut()
        self.cluster.settle()
        executor.update("t1", T.FINISHED, "Command exited with status 0")
        self.cluster.settle()  # the agent has it (checkpointed) but cannot forward it
        self.restart()
        self.resubscribe(executor)  # a duplicate of what the first re-subscription re-sent
        self.cluster.settle()
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.FINISHED])

    def test_unacknowledged_update_checkpointed_is_resent(self) -> None:
        """An update the agent checkpointed but the master never acknowledged goes out again after the
        restart, although the executor has it acknowledged."""
        scheduler, _ = self.launch(command_task("t1", "sleep 100"), checkpoint=True)
        self.cluster.links[id(self.agent)].cut()
        self.cluster.settle()
        (executor,) = self.cluster.containerizers[0].executors.values()
        executor.update("t1", T.FAILED, "boom")
        self.cluster.settle()
        self.assertEqual(executor.unacked, {})  # acknowledged: the agent checkpointed it
        self.restart()
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.FAILED])

    def test_executor_that_does_not_reconnect_is_destroyed(self) -> None:
        """An executor silent for --executor_reregistration_timeout is destroyed; its task is TASK_GONE
        for a partition-aware framework (TASK_LOST otherwise), reported after the agent re-registers."""
        aware, _ = self.launch(command_task("a1", "sleep 100"), checkpoint=True, capabilities=PA, name="aware")
        plain, _ = self.launch(command_task("p1", "sleep 100"), checkpoint=True, name="plain")
        agent = self.restart(reconnect=False)
        self.cluster.advance(1.5)
        self.assertEqual(self.cluster.containerizers[-1].destroyed, [])
        self.cluster.advance(1.0)
        self.assertEqual(len(self.cluster.containerizers[-1].destroyed), 2)
        self.cluster.settle()
        for scheduler, task_id, state in ((aware, "a1", T.GONE), (plain, "p1", T.LOST)):
            update = [u for u in scheduler.updates if u.task_id == task_id][-1]
            self.assertEqual((update.state, update.reason), (state, T.REASON_EXECUTOR_REREGISTRATION_TIMEOUT))
        self.assertTrue(agent.recovered.called)

    def test_executor_gone_while_away_fails_its_task(self) -> None:
        """A checkpointed executor whose container ended while the agent was down fails its task."""
        scheduler, _ = self.launch(command_task("t1", "sleep 100"), checkpoint=True)
        self.restart(alive=set())
        update = [u for u in scheduler.updates if u.task_id == "t1"][-1]
        self.assertEqual((update.state, update.reason), (T.FAILED, T.REASON_EXECUTOR_TERMINATED))

    def test_non_checkpointing_executors_are_destroyed(self) -> None:
        """Containers of frameworks that do not checkpoint are destroyed on recovery, and forgotten."""
        self.launch(command_task("t1", "sleep 100"), checkpoint=False)
        (container_id,) = self.cluster.containerizers[0].executors
        self.assertIn(container_id, self.checkpoint().containers)
        agent = self.restart()
        self.assertEqual(self.cluster.containerizers[-1].destroyed, [container_id])
        self.assertEqual(agent.frameworks, {})
        self.assertNotIn(container_id, self.checkpoint().containers)

    def test_task_never_delivered_is_launched_on_resubscription(self) -> None:
        """A task checkpointed before the crash but never sent to its (not yet subscribed) executor is
        launched when the executor subscribes to the restarted agent."""
        self.cluster.containerizers[0].subscribe = False
        scheduler, _ = self.launch(command_task("t1", "sleep 100"), checkpoint=True)
        self.restart()
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])

    def test_cleanup_kills_everything(self) -> None:
        """--recover=cleanup destroys every recovered executor; their tasks are gone (the agent restarted)."""
        scheduler, _ = self.launch(command_task("t1", "sleep 100"), checkpoint=True, capabilities=PA)
        agent_id = self.agent.id
        agent = self.restart(mode="cleanup", reconnect=False)
        self.assertEqual(len(self.cluster.containerizers[-1].destroyed), 1)
        update = scheduler.updates[-1]
        self.assertEqual((update.task_id, update.state, update.reason), ("t1", T.GONE, T.REASON_AGENT_RESTARTED))
        self.assertEqual(agent.id, agent_id)

    def test_checkpoint_shrinks_as_tasks_end(self) -> None:
        """Once a task's terminal update is acknowledged and its executor retired, nothing of it is left in
        the checkpoint (it stays bounded by what runs)."""
        scheduler, _ = self.launch(command_task("t1", "true"), checkpoint=True)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.FINISHED])
        checkpoint = self.checkpoint()
        self.assertEqual((checkpoint.frameworks, checkpoint.containers), ({}, {}))
        self.assertEqual(checkpoint.agent.id, self.agent.id)


class LimitationTests(RecoveryTestCase):
    def test_failed_task_of_a_limited_container_fails_for_the_limit(self) -> None:
        """A task that failed in a container that hit its memory limit fails with the limitation's reason,
        and the container is destroyed."""
        scheduler, _ = self.launch(command_task("t1", "sleep 100"))
        containerizer = self.cluster.containerizers[0]
        (container_id, executor), = containerizer.executors.items()
        containerizer.limitations[container_id] = Limitation(T.REASON_CONTAINER_LIMITATION_MEMORY, "Memory limit")
        executor.update("t1", T.FAILED, "Command terminated with signal SIGKILL")
        self.cluster.settle()
        update = scheduler.updates[-1]
        self.assertEqual((update.state, update.reason, update.message),
                         (T.FAILED, T.REASON_CONTAINER_LIMITATION_MEMORY, "Memory limit"))
        self.assertEqual(containerizer.destroyed, [container_id])

    def test_container_resources_include_the_executor_overhead(self) -> None:
        """A command task's container is isolated for its resources plus the command executor's."""
        self.launch(command_task("t1", "sleep 100", "cpus:0.5;mem:64"))
        (resources,) = self.cluster.containerizers[0].resources.values()
        self.assertEqual((resources.scalar("cpus"), resources.scalar("mem")), (0.6, 96))


class CheckpointReadTests(ClockTestCase):
    def test_later_format_is_refused(self) -> None:
        """A checkpoint written in a later format (by a newer agent) is refused, not misread."""
        store = MemoryStateStore()
        store.commit([Put("format", b"99")])
        self.failureResultOf(Checkpointer(store).read(), CheckpointError)

    def test_unreadable_entries_are_listed(self) -> None:
        """Entries that do not parse are skipped and named in ``errors``; the rest is read."""
        store = MemoryStateStore()
        store.commit([Put("containers/c1", b"{not json"), Put("frameworks/F1/info", b'{"user": "u"}'),
                      Put("agent", b'{"hostname": "h", "id": {"value": "S1"}, "resources": []}')])
        checkpoint = self.successResultOf(Checkpointer(store).read())
        self.assertEqual(checkpoint.agent.id, "S1")
        self.assertEqual((checkpoint.frameworks, checkpoint.containers), ({}, {}))
        self.assertEqual(sorted(e.split(":")[0] for e in checkpoint.errors), ["containers/c1", "frameworks/F1/info"])

    def test_effects_wait_for_durability(self) -> None:
        """An effect passed to durable() runs only once every checkpoint write before it is durable, in order;
        container records do not hold effects back."""
        store = _SlowStore()
        checkpointer = Checkpointer(store)
        ran: list[str] = []
        checkpointer.durable(ran.append, "nothing pending")
        checkpointer.framework(attrs.evolve(_framework(), id="F1"))
        checkpointer.durable(ran.append, "after F1")
        checkpointer.framework(attrs.evolve(_framework(), id="F2"))
        checkpointer.durable(ran.append, "after F2")
        self.assertEqual(ran, ["nothing pending"])
        store.release(1)
        self.assertEqual(ran, ["nothing pending", "after F1"])
        checkpointer.container(_record())
        store.release(1)
        self.assertEqual(ran, ["nothing pending", "after F1", "after F2"])
        checkpointer.durable(ran.append, "despite the container record")
        self.assertEqual(ran[-1], "despite the container record")
        store.release(1)


def _framework() -> Any:
    from mesostw.model.info import FrameworkInfo

    return FrameworkInfo(user="u", name="f", checkpoint=True)


def _record() -> Any:
    from mesostw.agent.containers import ContainerRecord

    return ContainerRecord("c1", "F1", "E1", "/sandbox", 42)


class _SlowStore(MemoryStateStore):
    """Commits become durable only when the test says so, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[defer.Deferred] = []

    def commit(self, operations: Any) -> defer.Deferred:
        d = super().commit(operations)
        slow: defer.Deferred = defer.Deferred()
        d.addCallback(lambda _: self.waiting.append(slow))
        return slow

    def release(self, count: int) -> None:
        for _ in range(count):
            self.waiting.pop(0).callback(None)
