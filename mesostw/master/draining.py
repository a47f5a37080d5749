"""Agents an operator deactivated or drains (DEACTIVATE_AGENT, REACTIVATE_AGENT, DRAIN_AGENT).

A deactivated agent gets no offers (its outstanding ones are rescinded) but keeps what it runs. A
drained agent is deactivated too, and every task on it is killed, each with its kill policy's grace
period, or ``max_grace_period`` when that is shorter; once it has no task left (their terminal
updates acknowledged, as Mesos requires) it is DRAINED, or, with ``mark_gone``, marked gone. Both
states are in the registry before they take effect and outlive a master failover; an agent that
comes back (re-registers) is deactivated again, and a draining one has its tasks killed again. An
unreachable agent may be drained: its tasks are killed when it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from mesostw.interfaces import IAllocator
from mesostw.master.agents import AgentManager, UnknownAgent
from mesostw.master.marks import Marks
from mesostw.master.offers import OfferBook
from mesostw.master.registry import Mutation, SetAgentState
from mesostw.master.tasks import TaskTracker
from mesostw.model import task as T
from mesostw.model.maintenance import DRAINED, DRAINING, DrainInfo
from mesostw.model.task import Offer, TaskStatus
from mesostw.model.validation import ValidationError

log = Logger()


class AgentStateRefused(Exception):
    """A deactivation, reactivation or drain that cannot be done; the message says why (a 400)."""


class AgentStateConflict(AgentStateRefused):
    """The agent is being marked gone (a 409)."""


class AgentStates:
    """Which agents are deactivated and which are draining or drained; the only code that changes that.

    ``kill(framework_id, task_id, grace_period)`` asks an agent to kill a task; ``rescind_offer(offer)``
    withdraws an offer; ``mark_gone(agent_id)`` marks a drained agent gone (a Deferred).
    """

    def __init__(self, persist: Callable[[Mutation], defer.Deferred], agents: AgentManager, allocator: IAllocator,
                 tasks: TaskTracker, offers: OfferBook, kill: Callable[[str, str, float | None], Any],
                 rescind_offer: Callable[[Offer], None], mark_gone: Callable[[str], defer.Deferred],
                 request_allocation: Callable[[list[str]], None], marks: Marks | None = None):
        self._persist = persist
        self._agents = agents
        self._allocator = allocator
        self._tasks = tasks
        self._offers = offers
        self._kill = kill
        self._rescind_offer = rescind_offer
        self._mark_gone = mark_gone
        self._request_allocation = request_allocation
        self.deactivated: set[str] = set()
        self.draining: dict[str, DrainInfo] = {}
        #: how many times ``deactivated`` or ``draining`` changed (what shows them is still valid while this stays)
        self.changes = 0
        #: where the agents whose state changes are marked
        self.marks = marks if marks is not None else Marks()
        self._finishing: set[str] = set()

    def recover(self, states: dict[str, dict[str, Any]]) -> None:
        """What the registry holds (a newly elected master's)."""
        self.changes += 1  # (before any agent joins: nothing shows them yet)
        for agent_id, state in states.items():
            if state.get("deactivated"):
                self.deactivated.add(agent_id)
            if state.get("drain_info"):
                try:
                    self.draining[agent_id] = DrainInfo.from_json(state["drain_info"])
                except ValidationError as exc:
                    log.error("Ignoring the unreadable drain state of agent {id}: {e}", id=agent_id, e=exc)

    def state_json(self, agent_id: str) -> dict[str, Any] | None:
        """What the registry keeps of an agent (None: nothing)."""
        drain = self.draining.get(agent_id)
        if agent_id not in self.deactivated and drain is None:
            return None
        out: dict[str, Any] = {"deactivated": agent_id in self.deactivated}
        if drain is not None:
            out["drain_info"] = drain.to_json()
        return out

    def _known(self, agent_id: str) -> None:
        agents = self._agents
        if agent_id not in agents.records and agent_id not in agents.recovered and agent_id not in agents.unreachable:
            raise UnknownAgent(f"Unknown agent '{agent_id}'")

    # -- changes ----------------------------------------------------------------------------------

    def deactivate(self, agent_id: str) -> defer.Deferred:
        """Offer the agent's resources no more (it keeps running what it runs)."""
        try:
            self._known(agent_id)
        except UnknownAgent as exc:
            return defer.fail(exc)
        state = {"deactivated": True, **({"drain_info": self.draining[agent_id].to_json()}
                                         if agent_id in self.draining else {})}
        d = self._persist(SetAgentState(agent_id, state))
        d.addCallback(lambda _: self._deactivated(agent_id))
        return d

    def _deactivated(self, agent_id: str) -> None:
        self.deactivated.add(agent_id)
        self.changes += 1
        self.marks.agent(agent_id)
        log.info("Agent {id} is deactivated", id=agent_id)
        record = self._agents.get(agent_id)
        if record is not None:
            self._allocator.deactivateAgent(agent_id)
            for offer in self._offers.on_agent(agent_id):
                self._rescind_offer(offer)

    def reactivate(self, agent_id: str) -> defer.Deferred:
        """Offer the agent's resources again (once a drain is over: a DRAINED agent's drain state goes too)."""
        if agent_id not in self.deactivated:
            return defer.fail(AgentStateRefused(f"Agent '{agent_id}' is not deactivated"))
        drain = self.draining.get(agent_id)
        if drain is not None and drain.state == DRAINING:
            return defer.fail(AgentStateRefused(f"Agent '{agent_id}' is still in the DRAINING state"))
        d = self._persist(SetAgentState(agent_id, None))
        d.addCallback(lambda _: self._reactivated(agent_id))
        return d

    def _reactivated(self, agent_id: str) -> None:
        self.deactivated.discard(agent_id)
        self.draining.pop(agent_id, None)
        self.changes += 1
        self.marks.agent(agent_id)
        log.info("Agent {id} is reactivated", id=agent_id)
        record = self._agents.get(agent_id)
        if record is not None and record.connected:
            self._allocator.activateAgent(agent_id)
            self._request_allocation([agent_id])

    def drain(self, agent_id: str, max_grace_period: float | None, mark_gone: bool) -> defer.Deferred:
        """Deactivate the agent and kill its tasks; it is DRAINED (or gone) once none is left."""
        try:
            self._known(agent_id)
        except UnknownAgent as exc:
            return defer.fail(exc)
        if self._agents.marking_gone(agent_id):
            return defer.fail(AgentStateConflict(f"Agent '{agent_id}' is currently being marked gone"))
        info = DrainInfo(DRAINING, max_grace_period, mark_gone)
        d = self._persist(SetAgentState(agent_id, {"deactivated": True, "drain_info": info.to_json()}))
        d.addCallback(lambda _: self._draining(agent_id, info))
        return d

    def _draining(self, agent_id: str, info: DrainInfo) -> None:
        self.draining[agent_id] = info
        self.changes += 1  # (marked as it is deactivated, below)
        log.info("Agent {id} is DRAINING (max grace period {g}, mark gone: {m})", id=agent_id,
                 g=info.max_grace_period, m=info.mark_gone)
        self._deactivated(agent_id)
        self._kill_tasks(agent_id)
        self.check(agent_id)

    def _kill_tasks(self, agent_id: str) -> None:
        info = self.draining[agent_id]
        record = self._agents.get(agent_id)
        if record is None or not record.connected:
            return  # killed once it comes back
        for task in record.all_tasks():
            if task.terminal:
                continue
            grace = task.info.kill_grace_period
            if info.max_grace_period is not None:
                grace = info.max_grace_period if grace is None else min(grace, info.max_grace_period)
            self._kill(task.framework_id, task.task_id, grace)

    def joined(self, agent_id: str) -> None:
        """The agent (re-)registered: deactivated, it stays so; draining, its tasks are killed again."""
        if agent_id in self.deactivated:
            self._deactivated(agent_id)
        drain = self.draining.get(agent_id)
        if drain is not None and drain.state == DRAINING:
            self._kill_tasks(agent_id)
            self.check(agent_id)

    def reported(self, agent_id: str, status: TaskStatus, partition_aware: bool) -> TaskStatus:
        """A task's update from an agent as its framework hears it: while the agent drains, a kill is
        REASON_AGENT_DRAINING, and TASK_GONE_BY_OPERATOR for a partition-aware framework when the drain
        marks the agent gone (as Mesos's agent reports them; a TASK_KILLING keeps its state, so that the
        task has one terminal update)."""
        drain = self.draining.get(agent_id)
        if drain is None or drain.state != DRAINING or status.state not in (T.KILLING, T.KILLED):
            return status
        state = T.GONE_BY_OPERATOR if drain.mark_gone and partition_aware and status.state == T.KILLED else status.state
        return attrs.evolve(status, state=state, reason=T.REASON_AGENT_DRAINING)

    def check(self, agent_id: str) -> None:
        """A draining agent without tasks (their terminal updates acknowledged) is DRAINED, or marked gone."""
        drain = self.draining.get(agent_id)
        record = self._agents.get(agent_id)
        if drain is None or drain.state != DRAINING or record is None or agent_id in self._finishing:
            return
        if record.all_tasks() or self._agents.marking_gone(agent_id):
            return
        self._finishing.add(agent_id)
        if drain.mark_gone:
            log.info("Agent {id} is drained; marking it gone", id=agent_id)
            d = self._mark_gone(agent_id)
            d.addCallback(lambda _: self._forget(agent_id))
        else:
            drained = attrs.evolve(drain, state=DRAINED)
            d = self._persist(SetAgentState(agent_id, {"deactivated": True, "drain_info": drained.to_json()}))
            d.addCallback(lambda _: self._drained(agent_id, drained))
        d.addErrback(lambda failure: log.failure("Could not finish draining agent {id}", failure, id=agent_id))
        d.addBoth(lambda _: self._finishing.discard(agent_id))

    def _drained(self, agent_id: str, drained: DrainInfo) -> None:
        if agent_id in self.draining:
            self.draining[agent_id] = drained
            self.changes += 1
            self.marks.agent(agent_id)
            log.info("Agent {id} is DRAINED", id=agent_id)

    def _forget(self, agent_id: str) -> defer.Deferred:
        self.deactivated.discard(agent_id)
        self.draining.pop(agent_id, None)
        self.changes += 1  # (a gone agent is shown nowhere)
        return self._persist(SetAgentState(agent_id, None))

    def check_all(self) -> None:
        for agent_id in list(self.draining):
            self.check(agent_id)
