"""The master's invariants under any sequence of cluster events (hypothesis state machine).

Frameworks launch, kill and tear down tasks; agents disconnect, come back or miss enough pings to be
unreachable; schedulers fail over. After every step each task the master knows is in exactly one
agent's and one framework's index of its TaskTracker, the allocator never hands out more than an
agent has, and every live task is on an agent the master knows or waits for.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from twisted.trial import unittest

from mesostw.model import task as T
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task

COMMANDS = st.sampled_from(["true", "false", "sleep 100", "exit 3"])


class MasterMachine(RuleBasedStateMachine):
    """A two-agent cluster driven by random events."""

    def __init__(self) -> None:
        super().__init__()
        self.cluster = Cluster(agents=2, agent_ping_timeout=5, max_agent_ping_timeouts=2)
        self.frameworks: list[tuple[RecordingScheduler, Any]] = []
        self.next_task = 0

    def teardown(self) -> None:
        self.cluster.stop()

    # -- frameworks ---------------------------------------------------------------------------

    @rule(partition_aware=st.booleans(), checkpoint=st.booleans())
    def add_framework(self, partition_aware: bool, checkpoint: bool) -> None:
        scheduler = RecordingScheduler()
        capabilities = ["PARTITION_AWARE"] if partition_aware else []
        _, driver = self.cluster.framework(f"fw{len(self.frameworks)}", scheduler=scheduler, checkpoint=checkpoint,
                                           capabilities=capabilities, failover_timeout=30)
        self.frameworks.append((scheduler, driver))

    @precondition(lambda self: self.frameworks)
    @rule(data=st.data(), command=COMMANDS)
    def launch(self, data: Any, command: str) -> None:
        scheduler, driver = data.draw(st.sampled_from(self.frameworks))
        self.next_task += 1
        scheduler.pending.append(command_task(f"t{self.next_task}", command))
        driver.reviveOffers()
        self.cluster.settle()

    @precondition(lambda self: self.frameworks)
    @rule(data=st.data())
    def kill(self, data: Any) -> None:
        scheduler, driver = data.draw(st.sampled_from(self.frameworks))
        framework = self.cluster.master.frameworks.get(scheduler.framework_id or "")
        if framework is not None and framework.tasks:
            driver.killTask(data.draw(st.sampled_from(sorted(framework.tasks))))
            self.cluster.settle()

    @precondition(lambda self: self.frameworks)
    @rule(data=st.data())
    def tear_down(self, data: Any) -> None:
        scheduler, _ = data.draw(st.sampled_from(self.frameworks))
        if scheduler.framework_id is not None:
            self.cluster.master.removeFramework(scheduler.framework_id)
            self.cluster.settle()

    @precondition(lambda self: self.frameworks)
    @rule(data=st.data())
    def fail_over(self, data: Any) -> None:
        """The scheduler's connection breaks; it comes back at once or not (its failover timeout runs)."""
        _, driver = data.draw(st.sampled_from(self.frameworks))
        driver.disconnect()
        self.cluster.settle()
        if data.draw(st.booleans()):
            driver.reconnect()
            self.cluster.settle()

    # -- agents --------------------------------------------------------------------------------

    @rule(index=st.integers(0, 1))
    def cut(self, index: int) -> None:
        agent = self.cluster.agents[index]
        if agent.master is not None:
            self.cluster.cut(agent)
            self.cluster.settle()

    @rule(index=st.integers(0, 1))
    def reconnect(self, index: int) -> None:
        agent = self.cluster.agents[index]
        if agent.master is None:
            self.cluster.connect(agent)
            self.cluster.settle()

    @rule(seconds=st.sampled_from([1, 5, 12, 40]))
    def time_passes(self, seconds: int) -> None:
        self.cluster.advance(seconds, step=1)

    # -- what always holds ----------------------------------------------------------------------

    @invariant()
    def indexes_agree(self) -> None:
        assert self.cluster.master.tasks.problems() == []

    @invariant()
    def books_balance(self) -> None:
        allocator = self.cluster.allocator
        for agent_id in self.cluster.master.agents:
            total, allocated = allocator.agent_total(agent_id), allocator.agent_allocated(agent_id)
            assert total.contains(allocated), f"{agent_id}: {allocated} of {total}"
            assert total.contains(self.cluster.master.offers.offered_on(agent_id))

    @invariant()
    def live_tasks_have_agents(self) -> None:
        master = self.cluster.master
        for framework in master.frameworks.values():
            for task in framework.tasks.values():
                if task.state == T.UNREACHABLE:
                    assert task.agent_id in master.unreachable or task.agent_id in master.agents
                else:
                    assert task.agent_id in master.agents, f"{task.task_id} on unknown agent {task.agent_id}"


class MasterInvariantTests(unittest.TestCase):
    def test_invariants_hold_under_any_events(self) -> None:
        """Whatever frameworks, agents and time do, tasks stay in exactly one agent's and one framework's
        index, the allocator's books balance and live tasks are on known agents."""
        run_state_machine_as_test(MasterMachine, settings=settings(
            max_examples=40, stateful_step_count=25, deadline=None, database=None,
            suppress_health_check=list(HealthCheck)))
