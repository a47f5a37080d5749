"""A newly elected master takes over what the registry holds: agents, frameworks, removed IDs, weights."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure
from zope.interface import implementer

from mesostw import flags as flaglib
from mesostw.allocator.hierarchical import HierarchicalAllocator
from mesostw.master.flags import MASTER_FLAGS
from mesostw.master.master import Master, RegistrationRefused
from mesostw.master.registry import (
    AddFramework,
    AdmitAgent,
    IRegistry,
    MarkUnreachable,
    RegistryError,
    RegistryState,
    RemoveFramework,
)
from mesostw.model import task as T
from mesostw.model.info import AgentInfo, CommandInfo, FrameworkInfo
from mesostw.model.resources import Resources
from mesostw.model.task import Task, TaskInfo, TaskStatus, new_uuid
from mesostw.scheduler.local import LocalSchedulerDriver
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import DirectAgentLink, RecordingScheduler

REREGISTER = 60.0
FAILOVER = 3600.0
AGENT_A, AGENT_B = "M1-S0", "M1-S1"
FRAMEWORK = "M1-0000"
REMOVED = "M1-0009"


@implementer(IRegistry)
class RecordingRegistry:
    """Applies mutations at once and keeps them; with ``fail`` set it refuses them, as a fenced registry."""

    def __init__(self, state: RegistryState):
        self.state = state
        self.applied: list[Any] = []
        self.fail = False

    def recover(self) -> defer.Deferred:
        return defer.succeed(self.state)

    def apply(self, mutation: Any) -> defer.Deferred:
        if self.fail:
            return defer.fail(RegistryError("registry write refused by ZooKeeper (NoNodeError)"))
        self.applied.append(mutation)
        mutation(self.state)
        return defer.succeed(None)


def agent_info(agent_id: str | None, hostname: str) -> AgentInfo:
    return AgentInfo(hostname=hostname, port=5051, resources=Resources.parse("cpus:4;mem:4096"), id=agent_id)


def framework_info(framework_id: str | None = FRAMEWORK, failover_timeout: float = FAILOVER) -> FrameworkInfo:
    return FrameworkInfo(user="nobody", name="fw", id=framework_id, failover_timeout=failover_timeout)


def running_task(task_id: str, agent_id: str, framework_id: str = FRAMEWORK) -> Task:
    info = TaskInfo(name=task_id, task_id=task_id, agent_id=agent_id, resources=Resources.parse("cpus:1;mem:128"),
                    command=CommandInfo("sleep 1000"))
    status = TaskStatus(task_id, T.RUNNING, source=T.SOURCE_EXECUTOR, agent_id=agent_id, executor_id=task_id,
                        uuid=new_uuid(), timestamp=1.0)
    return Task(info=info, framework_id=framework_id, executor_id=task_id, state=T.RUNNING, statuses=[status],
                status_update_state=T.RUNNING, status_update_uuid=status.uuid)


def registry_state(framework_failover: float = FAILOVER) -> RegistryState:
    """What the previous leader left: two agents, one framework, one removed framework, a weight."""
    return RegistryState(
        agents={AGENT_A: agent_info(AGENT_A, "a0").registry_json(), AGENT_B: agent_info(AGENT_B, "a1").registry_json()},
        frameworks={FRAMEWORK: framework_info(failover_timeout=framework_failover).to_json()},
        removed_frameworks=OrderedDict({REMOVED: 5.0}),
        weights={"ops": 3.0},
    )


class RecoveringMaster:
    """A master elected on a :class:`task.Clock`, recovered from ``state``, with in-process frameworks."""

    def __init__(self, testcase: ClockTestCase, state: RegistryState, **flags: Any):
        self.clock = testcase.makeClock()
        flags.setdefault("agent_reregister_timeout", REREGISTER)
        self.config = flaglib.defaults(MASTER_FLAGS, hostname="127.0.0.1", **flags)
        self.allocator = HierarchicalAllocator(self.clock, self.config.weights, randomize=False)
        self.registry = RecordingRegistry(state.copy())
        self.master = Master(self.config, self.allocator, self.clock, master_id="M2", registry=self.registry)
        self.master.recover(state)
        testcase.addCleanup(self.master.stop)

    def framework(self, info: FrameworkInfo) -> tuple[RecordingScheduler, LocalSchedulerDriver]:
        scheduler = RecordingScheduler()
        driver = LocalSchedulerDriver(scheduler, info, self.master)
        driver.start()
        self.settle()
        return scheduler, driver

    def reregister(self, agent_id: str, hostname: str, tasks: list[Task]) -> tuple[DirectAgentLink, defer.Deferred]:
        link = DirectAgentLink(None, self.clock)
        frameworks = [framework_info(t.framework_id) for t in tasks]
        d = self.master.reregisterAgent(link, agent_info(agent_id, hostname), tasks, [], frameworks)
        self.settle()
        return link, d

    def settle(self) -> None:
        for _ in range(200):
            if not [c for c in self.clock.getDelayedCalls() if c.getTime() <= self.clock.seconds()]:
                problems = self.master.tasks.problems()
                assert not problems, problems
                return
            self.clock.advance(0)
        raise AssertionError("the master did not settle")

    def advance(self, seconds: float, step: float = 5.0) -> None:
        while seconds > 0:
            delta = min(step, seconds)
            self.clock.advance(delta)
            self.settle()
            seconds -= delta

    def applied(self, kind: type) -> list[Any]:
        return [m for m in self.registry.applied if isinstance(m, kind)]


class RecoveredAgentTests(ClockTestCase):
    def setUp(self) -> None:
        self.cluster = RecoveringMaster(self, registry_state())
        self.master = self.cluster.master

    def reconcile(self, driver: LocalSchedulerDriver, *tasks: tuple[str, str | None]) -> None:
        driver.reconcileTasks([TaskStatus(task_id, T.STAGING, agent_id=agent_id) for task_id, agent_id in tasks])
        self.cluster.settle()

    def test_agents_listed_as_recovered(self) -> None:
        """Both registry agents are admitted and waiting to re-register; the master leads."""
        self.assertTrue(self.master.leading)
        self.assertEqual(set(self.master.recovered_agents), {AGENT_A, AGENT_B})
        self.assertEqual(self.master.recovered_agents[AGENT_A].hostname, "a0")
        self.assertEqual(self.master.admitted, {AGENT_A, AGENT_B})
        self.assertEqual(self.master.agents, {})
        self.assertEqual(self.cluster.registry.applied, [])

    def test_recovered_agents_have_the_ids_of_their_entries(self) -> None:
        """The registry holds an agent's entry without its ID, under it: each agent recovered has its ID (an ID
        an entry read elsewhere still carries is the same)."""
        self.assertNotIn("id", registry_state().agents[AGENT_A])
        self.assertEqual({agent_id: info.id for agent_id, info in self.master.recovered_agents.items()},
                         {AGENT_A: AGENT_A, AGENT_B: AGENT_B})
        state = registry_state()
        state.agents[AGENT_B] = agent_info(AGENT_B, "a1").to_json()
        again = RecoveringMaster(self, state).master
        self.assertEqual(again.recovered_agents[AGENT_B], agent_info(AGENT_B, "a1"))

    def test_reconciliation_is_silent_for_recovered_agents(self) -> None:
        """While agents may still come back, unknown tasks on them (or on no named agent) get no answer."""
        scheduler, driver = self.cluster.framework(framework_info())
        self.reconcile(driver, ("t1", AGENT_A), ("t2", AGENT_B), ("t3", None))
        self.assertEqual(scheduler.updates, [])
        driver.reconcileTasks()
        self.cluster.settle()
        self.assertEqual(scheduler.updates, [])

    def test_reconciliation_answers_for_other_agents(self) -> None:
        """A task on an agent the registry does not hold is reported lost even during the window."""
        scheduler, driver = self.cluster.framework(framework_info())
        self.reconcile(driver, ("t9", "M1-S9"))
        self.assertEqual([(u.task_id, u.state, u.reason) for u in scheduler.updates],
                         [("t9", T.LOST, T.REASON_RECONCILIATION)])

    def test_agent_reregisters_with_its_tasks(self) -> None:
        """A recovered agent re-registers under its ID with its tasks, without a registry write."""
        scheduler, driver = self.cluster.framework(framework_info())
        link, d = self.cluster.reregister(AGENT_A, "a0", [running_task("t1", AGENT_A)])
        self.assertEqual(self.successResultOf(d), self.master.info)
        self.assertNotIn(AGENT_A, self.master.recovered_agents)
        self.assertIn(AGENT_B, self.master.recovered_agents)
        record = self.master.agents[AGENT_A]
        self.assertEqual(record.id, AGENT_A)
        self.assertEqual(list(record.tasks[FRAMEWORK]), ["t1"])
        self.assertEqual(self.master.frameworks[FRAMEWORK].tasks["t1"].state, T.RUNNING)
        self.assertEqual(self.cluster.registry.applied, [])
        self.assertEqual(link.named("killTask") + link.named("shutdownFramework"), [])
        self.reconcile(driver, ("t1", AGENT_A))
        self.assertEqual([(u.task_id, u.state, u.agent_id) for u in scheduler.updates], [("t1", T.RUNNING, AGENT_A)])
        # Offered what its task leaves free.
        offered = [o for o in scheduler.offers if o.agent_id == AGENT_A]
        self.assertEqual([o.resources.scalars()["cpus"] for o in offered], [3.0])

    def test_missing_agent_marked_unreachable_after_timeout(self) -> None:
        """An agent that does not re-register within --agent_reregister_timeout is marked unreachable."""
        scheduler, driver = self.cluster.framework(framework_info())
        self.cluster.reregister(AGENT_A, "a0", [running_task("t1", AGENT_A)])
        self.cluster.advance(REREGISTER - 5)
        self.assertEqual(self.master.unreachable, {})
        self.assertEqual(scheduler.lost_agents, [])
        self.cluster.advance(5)
        self.assertEqual(self.master.recovered_agents, {})
        self.assertEqual(self.master.unreachable, {AGENT_B: REREGISTER})
        self.assertEqual(self.master.admitted, {AGENT_A})
        self.assertEqual(self.cluster.applied(MarkUnreachable), [MarkUnreachable(AGENT_B, REREGISTER)])
        self.assertEqual(scheduler.lost_agents, [AGENT_B])
        self.assertEqual(self.master.metrics["recovery_slave_removals"], 1)
        self.assertIn(AGENT_A, self.master.agents)
        self.assertEqual(self.cluster.registry.state.unreachable, {AGENT_B: REREGISTER})
        self.assertEqual(set(self.cluster.registry.state.agents), {AGENT_A})
        # Reconciliation answers again: tasks on the lost agent, or on no agent, are lost.
        self.reconcile(driver, ("t2", AGENT_B), ("t3", None))
        self.assertEqual([(u.task_id, u.state) for u in scheduler.updates], [("t2", T.LOST), ("t3", T.LOST)])

    def test_lost_agent_may_come_back(self) -> None:
        """An agent marked unreachable after the failover is admitted again (written first) when it returns."""
        self.cluster.advance(REREGISTER)
        link, d = self.cluster.reregister(AGENT_B, "a1", [])
        self.successResultOf(d)
        self.assertEqual(self.cluster.applied(AdmitAgent), [AdmitAgent(AGENT_B, agent_info(AGENT_B, "a1").to_json())])
        self.assertNotIn(AGENT_B, self.master.unreachable)
        self.assertIn(AGENT_B, self.master.admitted)

    def test_no_timer_without_agents(self) -> None:
        """A registry without agents leaves no re-registration timer behind."""
        cluster = RecoveringMaster(self, RegistryState())
        self.assertFalse(cluster.master.agent_manager.awaiting_reregistration)
        self.assertEqual(cluster.master.recovered_agents, {})

    def test_unreadable_agent_is_skipped(self) -> None:
        """An agent entry the master cannot read is skipped; the others are recovered."""
        state = registry_state()
        state.agents["M1-S5"] = {"port": "not a port"}
        cluster = RecoveringMaster(self, state)
        self.assertEqual(set(cluster.master.recovered_agents), {AGENT_A, AGENT_B})
        self.flushLoggedErrors()


class RecoveredFrameworkTests(ClockTestCase):
    def test_framework_resubscribes_with_its_id(self) -> None:
        """A recovered framework that re-subscribes within its failover_timeout keeps its ID and stays."""
        cluster = RecoveringMaster(self, registry_state())
        record = cluster.master.frameworks[FRAMEWORK]
        self.assertTrue(record.recovered)
        self.assertFalse(record.connected)
        cluster.advance(REREGISTER + 30)
        scheduler, driver = cluster.framework(framework_info())
        self.assertEqual(scheduler.framework_id, FRAMEWORK)
        self.assertEqual(scheduler.errors, [])
        self.assertIs(cluster.master.frameworks[FRAMEWORK], record)
        self.assertTrue(record.connected)
        self.assertFalse(record.recovered)
        cluster.advance(FAILOVER, step=600)
        self.assertIn(FRAMEWORK, cluster.master.frameworks)
        self.assertEqual(cluster.applied(RemoveFramework), [])

    def test_framework_removed_after_failover_timeout(self) -> None:
        """A recovered framework that does not come back is removed after its failover_timeout."""
        cluster = RecoveringMaster(self, registry_state())
        link, _ = cluster.reregister(AGENT_A, "a0", [running_task("t1", AGENT_A)])
        cluster.advance(FAILOVER - 600, step=600)
        self.assertIn(FRAMEWORK, cluster.master.frameworks)
        cluster.advance(600, step=600)
        self.assertNotIn(FRAMEWORK, cluster.master.frameworks)
        self.assertIn(FRAMEWORK, cluster.master.completed)
        self.assertEqual(cluster.applied(RemoveFramework), [RemoveFramework(FRAMEWORK, FAILOVER)])
        self.assertNotIn(FRAMEWORK, cluster.registry.state.frameworks)
        self.assertEqual(link.named("shutdownFramework"), [(FRAMEWORK,)])
        scheduler, _ = cluster.framework(framework_info())
        self.assertEqual(scheduler.errors, [f"Framework {FRAMEWORK} has been removed"])
        self.assertIsNone(scheduler.framework_id)

    def test_short_failover_timeout_outlasts_the_failover(self) -> None:
        """A framework with failover_timeout 0 is not torn down by the failover itself: it has as long as agents."""
        cluster = RecoveringMaster(self, registry_state(framework_failover=0.0))
        cluster.advance(REREGISTER - 5)
        self.assertIn(FRAMEWORK, cluster.master.frameworks)
        scheduler, _ = cluster.framework(framework_info(failover_timeout=0.0))
        self.assertEqual(scheduler.framework_id, FRAMEWORK)

    def test_short_failover_timeout_framework_removed_after_reregister_timeout(self) -> None:
        """A framework with failover_timeout 0 that never returns goes with the re-registration window."""
        cluster = RecoveringMaster(self, registry_state(framework_failover=0.0))
        cluster.advance(REREGISTER)
        self.assertNotIn(FRAMEWORK, cluster.master.frameworks)
        self.assertEqual(cluster.applied(RemoveFramework), [RemoveFramework(FRAMEWORK, REREGISTER)])

    def test_removed_framework_cannot_resubscribe(self) -> None:
        """A framework the registry lists as removed is refused, and agents are told to shut it down."""
        cluster = RecoveringMaster(self, registry_state())
        self.assertIn(REMOVED, cluster.master.completed)
        scheduler, driver = cluster.framework(framework_info(REMOVED))
        self.assertEqual(scheduler.errors, [f"Framework {REMOVED} has been removed"])
        self.assertNotIn(REMOVED, cluster.master.frameworks)
        link, d = cluster.reregister(AGENT_A, "a0", [running_task("t7", AGENT_A, REMOVED)])
        self.successResultOf(d)
        self.assertEqual(link.named("shutdownFramework"), [(REMOVED,)])
        self.assertNotIn(REMOVED, cluster.master.frameworks)

    def test_framework_entry_without_id_uses_its_key(self) -> None:
        """A registry framework entry lacking its ID is recovered under its key."""
        state = registry_state()
        state.frameworks[FRAMEWORK] = framework_info(None).to_json()
        cluster = RecoveringMaster(self, state)
        self.assertEqual(cluster.master.frameworks[FRAMEWORK].id, FRAMEWORK)

    def test_new_framework_is_written_before_subscribed(self) -> None:
        """A framework new to this master is in the registry when it learns its ID."""
        cluster = RecoveringMaster(self, registry_state())
        scheduler, _ = cluster.framework(framework_info(None))
        self.assertIsNotNone(scheduler.framework_id)
        self.assertEqual([m.framework_id for m in cluster.applied(AddFramework)], [scheduler.framework_id])
        self.assertIn(scheduler.framework_id, cluster.registry.state.frameworks)


class WeightsTests(ClockTestCase):
    def test_weights_restored_into_allocator(self) -> None:
        """Registry weights are merged over --weights, in the config and in the allocator."""
        cluster = RecoveringMaster(self, registry_state(), weights={"dev": 2.0, "ops": 1.0})
        self.assertEqual(cluster.allocator.weights(), {"dev": 2.0, "ops": 3.0})
        self.assertEqual(cluster.config.weights, {"dev": 2.0, "ops": 3.0})

    def test_no_registry_weights_keep_flags(self) -> None:
        """Without weights in the registry the --weights flag stands."""
        cluster = RecoveringMaster(self, RegistryState(), weights={"dev": 2.0})
        self.assertEqual(cluster.allocator.weights(), {"dev": 2.0})


class RegistryFailureTests(ClockTestCase):
    def setUp(self) -> None:
        self.cluster = RecoveringMaster(self, registry_state())
        self.master = self.cluster.master
        self.failures: list[Failure] = []
        self.master.on_registry_failure = self.failures.append
        self.cluster.registry.fail = True

    def test_agent_registration_refused(self) -> None:
        """When the registry refuses the write, a new agent is refused and the failure is reported."""
        link = DirectAgentLink(None, self.cluster.clock)
        d = self.master.registerAgent(link, agent_info(None, "new"))
        failure = self.failureResultOf(d, RegistrationRefused)
        self.assertIn("could not record the change durably", failure.getErrorMessage())
        self.assertEqual(len(self.failures), 1)
        self.assertTrue(self.failures[0].check(RegistryError))
        self.assertEqual(set(self.master.agents), set())
        self.assertEqual(self.master.admitted, {AGENT_A, AGENT_B})
        self.assertEqual(self.cluster.registry.state.agents.keys(), {AGENT_A, AGENT_B})
        self.assertEqual(len(self.flushLoggedErrors(RegistryError)), 1)

    def test_returning_unreachable_agent_refused(self) -> None:
        """An unreachable agent coming back is refused when its re-admission cannot be written."""
        state = registry_state()
        state.unreachable["M1-S7"] = 1.0
        cluster = RecoveringMaster(self, state)
        cluster.registry.fail = True
        failures: list[Failure] = []
        cluster.master.on_registry_failure = failures.append
        _, d = cluster.reregister("M1-S7", "a7", [])
        self.failureResultOf(d, RegistrationRefused)
        self.assertEqual(len(failures), 1)
        self.assertIn("M1-S7", cluster.master.unreachable)
        self.assertNotIn("M1-S7", cluster.master.agents)
        self.flushLoggedErrors(RegistryError)

    def test_framework_not_subscribed(self) -> None:
        """A new framework whose registration cannot be written is never told SUBSCRIBED."""
        scheduler, _ = self.cluster.framework(framework_info(None))
        self.assertIsNone(scheduler.framework_id)
        self.assertEqual(len(self.failures), 1)
        self.flushLoggedErrors(RegistryError)
