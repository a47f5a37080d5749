"""The agents a master knows: registration, re-registration, disconnection, loss and removal."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from mesostw.auth.policy import Security
from mesostw.interfaces import IAgentLink, IAllocator
from mesostw.master.admission import agent_refusal
from mesostw.master.events import MasterEvents
from mesostw.master.frameworks import FrameworkManager, RegistrationRefused
from mesostw.master.health import AgentHealth
from mesostw.master.offers import OfferBook
from mesostw.master.operations import AgentResources
from mesostw.master.records import AgentRecord
from mesostw.master.registry import AdmitAgent, MarkGone, MarkUnreachable, Mutation, RemoveAgent
from mesostw.master.tasks import TaskTracker
from mesostw.model import scheduler_api as api
from mesostw.model import task as T
from mesostw.model.info import AgentInfo, ExecutorInfo, FrameworkInfo, MasterInfo
from mesostw.model.resources import EMPTY, Resources
from mesostw.model.task import Offer, Task, TaskStatus

log = Logger()

#: What a gone agent is told, and what its tasks' updates say.
GONE_MESSAGE = "Agent has been marked gone"


class UnknownAgent(Exception):
    """No agent with this ID is registered, recovered or unreachable."""


class AgentTransitioning(Exception):
    """The agent is being marked gone already; try again (a retryable refusal, 503 in Mesos)."""


class AgentManager:
    """Owns the agent records and what the registry says of agents: admitted, recovered, unreachable.

    ``persist(mutation)`` makes a change durable (a Deferred that fails once reported when the registry
    refuses). Tasks on agents are the :class:`TaskTracker`'s, offers the :class:`OfferBook`'s, and what
    frameworks hear goes through the :class:`FrameworkManager`. Agents admitted and leaving are
    reported to ``events`` (the operator API's AGENT_ADDED and AGENT_REMOVED).
    """

    # pragma: no mutate start (bookkeeping, not a security check: see [tool.mutmut] in pyproject.toml)
    def __init__(self, config: Any, clock: Any, allocator: IAllocator, tasks: TaskTracker, offers: OfferBook,
                 frameworks: FrameworkManager, persist: Callable[[Mutation], defer.Deferred],
                 master_info: Callable[[], MasterInfo], master_id: str, metrics: Counter[str],
                 request_allocation: Callable[[Iterable[str]], None], security: Security | None = None,
                 events: MasterEvents | None = None, resources: AgentResources | None = None):
        self._config = config
        #: each agent's checkpointed resources (dynamic reservations, volumes) as the registry holds them
        self._resources = resources if resources is not None else AgentResources(persist)
        self._security = security or Security()
        self._events = events if events is not None else MasterEvents(None)
        self._clock = clock
        self._allocator = allocator
        self._tasks = tasks
        self._offers = offers
        self._frameworks = frameworks
        self._persist = persist
        self._master_info = master_info
        self._master_id = master_id
        self._metrics = metrics
        self._request_allocation = request_allocation
        self._records: dict[str, AgentRecord] = {}
        #: agent ID -> AgentRecord of registered agents (connected or not), read-only
        self.records: Mapping[str, AgentRecord] = MappingProxyType(self._records)
        #: IDs of the agents the registry holds as admitted
        self.admitted: set[str] = set()
        #: agents the registry knows that have not re-registered since this master took over
        self.recovered: dict[str, AgentInfo] = {}
        #: agent ID -> when it was marked unreachable
        self.unreachable: dict[str, float] = {}
        #: agent ID -> the principal that registered it (None: it did not authenticate); kept in the registry
        self.owners: dict[str, str | None] = {}
        #: agent ID -> when an operator marked it gone; such an agent may never come back
        self.gone: dict[str, float] = {}
        self._marking_gone: set[str] = set()
        self.health = AgentHealth(clock, config.agent_ping_timeout, config.max_agent_ping_timeouts,
                                  self.agentUnreachable)
        self._next = 0
        self._reregistration_timer: Any = None
        self.get = self._records.get

    def reachable_link(self, agent_id: str) -> IAgentLink | None:
        """The link to send an agent messages on, or None when it is unknown or disconnected."""
        record = self._records.get(agent_id)
        return record.reachable_link() if record is not None else None

    def marking_gone(self, agent_id: str) -> bool:
        """Whether the agent is being marked gone (the registry has yet to hold it)."""
        return agent_id in self._marking_gone

    @property
    def awaiting_reregistration(self) -> bool:
        """Whether agents from the registry may still re-register (after a master failover)."""
        return self._reregistration_timer is not None

    # -- leadership ----------------------------------------------------------------------------

    def recover(self, agents: Mapping[str, AgentInfo], unreachable: Mapping[str, float],
                owners: Mapping[str, str] | None = None, *, gone: Mapping[str, float] | None = None) -> None:
        """Agents the registry holds: admitted, they get --agent_reregister_timeout to come back; gone
        ones never may."""
        self.owners.update(owners or {})
        self.gone.update(gone or {})
        self.unreachable.update(unreachable)
        self.recovered.update(agents)
        self.admitted.update(agents)
        if self.recovered:
            self._reregistration_timer = self._clock.callLater(self._config.agent_reregister_timeout,
                                                               self._reregistration_timed_out)

    def _reregistration_timed_out(self) -> None:
        """Agents from the registry that did not come back after a failover are unreachable."""
        self._reregistration_timer = None
        now = self._clock.seconds()
        for agent_id in list(self.recovered):
            del self.recovered[agent_id]
            log.warn("Agent {id} did not re-register within --agent_reregister_timeout", id=agent_id)
            self._metrics["recovery_slave_removals"] += 1
            d = self._persist(MarkUnreachable(agent_id, now))
            d.addCallback(self._recovered_agent_lost, agent_id, now)
            d.addErrback(lambda _: None)  # persist has reported it (and the master aborts)

    def _recovered_agent_lost(self, _: object, agent_id: str, now: float) -> None:
        self.admitted.discard(agent_id)
        self.unreachable[agent_id] = now
        self._frameworks.broadcast(api.failure_event(agent_id=agent_id))

    # pragma: no mutate end
    # -- registration ----------------------------------------------------------------------------

    def registerAgent(self, link: IAgentLink, info: AgentInfo, version: str = "",
                      principal: str | None = None) -> defer.Deferred:
        """Admit a new agent once the registry holds it; fires with (agent_id, MasterInfo).

        ``principal`` is the one the agent's connection authenticated as (None: it did not); the new
        ID belongs to it."""
        self._metrics["messages_register_slave"] += 1
        problem = _check_agent(info) or self._refusal(principal, None, info)
        if problem:
            return defer.fail(RegistrationRefused(problem))
        agent_id = self._new_id()
        info, reported = self._resources.split(attrs.evolve(info, id=agent_id))
        self.owners[agent_id] = principal
        d = self._persist(AdmitAgent(agent_id, info.registry_json(), principal))
        d.addCallback(lambda _: self._admitted(link, info, version, reported))
        return d

    def _refusal(self, principal: str | None, agent_id: str | None, info: AgentInfo) -> str | None:
        """Why this principal may not (re-)register (as) this agent; logged (see admission)."""
        refusal = agent_refusal(self._security, principal, agent_id, self.owners)
        if refusal is not None:
            self._metrics["slave_registrations_denied"] += 1
            log.warn("Refused the registration of agent {id} at {host}:{port}: {why}", id=agent_id or "(new)",
                     host=info.hostname, port=info.port, why=refusal)
        return refusal

    # pragma: no mutate start (bookkeeping, not a security check: see [tool.mutmut] in pyproject.toml)
    def _new_id(self) -> str:
        agent_id = f"{self._master_id}-S{self._next}"
        self._next += 1
        return agent_id

    def _new_record(self, info: AgentInfo, link: IAgentLink, **fields: Any) -> AgentRecord:
        assert info.id is not None
        tasks, executors, usage = self._tasks.track_agent(info.id)
        record = AgentRecord(info=info, link=link, tasks=tasks, executors=executors, usage=usage,
                             marks=self._tasks.marks, **fields)
        self._records[info.id] = record
        self._tasks.marks.agent(info.id)  # it joins the lists of agents
        return record

    def _admitted(self, link: IAgentLink, info: AgentInfo, version: str,
                  reported: Resources = EMPTY) -> tuple[str, MasterInfo]:
        record = self._new_record(info, link, registered_time=self._clock.seconds(), version=version)
        self._resources.place(record, reported)
        self.admitted.add(record.id)
        self._allocator.addAgent(record.id, record.total)
        self.health.watch(record.id, link)
        self._metrics["slave_registrations"] += 1
        log.info("Registered agent {id} at {host}:{port} with {res}", id=record.id, host=info.hostname,
                 port=info.port, res=record.total)
        self._events.agentAdded(record)
        self._request_allocation([record.id])
        return record.id, self._master_info()

    # pragma: no mutate end
    def reregisterAgent(self, link: IAgentLink, info: AgentInfo, tasks: list[Task], executors: list[ExecutorInfo],
                        frameworks: list[FrameworkInfo], version: str = "", principal: str | None = None
                        ) -> defer.Deferred:
        """Take back an agent that knows its ID, with what it is running; fires with MasterInfo.

        Only the principal that registered the ID may re-register it (see :mod:`mesostw.master.admission`)."""
        self._metrics["messages_reregister_slave"] += 1
        agent_id = info.id
        assert agent_id is not None
        problem = _check_agent(info) or self._refusal(principal, agent_id, info)
        if problem:
            return defer.fail(RegistrationRefused(problem))
        info, reported = self._resources.split(info)
        if agent_id in self.gone:
            # As Mesos's ShutdownMessage: whatever it still runs is shut down, and it stays out.
            for framework_id in sorted({t.framework_id for t in tasks} | {f.id for f in frameworks if f.id}):
                link.shutdownFramework(framework_id)
            log.warn("Refused agent {id} at {host}:{port}: it was marked gone", id=agent_id, host=info.hostname,
                     port=info.port)
            return defer.fail(RegistrationRefused(GONE_MESSAGE))
        claimed = principal is not None and self.owners.get(agent_id) is None
        if claimed:
            # An ID without an owner (from before owners were kept, or admitted anonymously) is
            # taken by the first principal that proves itself with it.
            self.owners[agent_id] = principal
        if agent_id in self.admitted and agent_id not in self.unreachable and not claimed:
            return defer.succeed(self._readmitted(link, info, tasks, executors, frameworks, version, reported))
        # Unknown here (a registry lost or never kept), back from unreachable, or newly owned: record it first.
        self.owners.setdefault(agent_id, principal)
        d = self._persist(AdmitAgent(agent_id, info.registry_json(), principal))
        d.addCallback(lambda _: self._readmitted(link, info, tasks, executors, frameworks, version, reported))
        return d

    # pragma: no mutate block (the rest of the class: bookkeeping, not a security check)
    def _readmitted(self, link: IAgentLink, info: AgentInfo, tasks: list[Task], executors: list[ExecutorInfo],
                    frameworks: list[FrameworkInfo], version: str, checkpointed: Resources = EMPTY) -> MasterInfo:
        agent_id = info.id
        assert agent_id is not None
        self.admitted.add(agent_id)
        self.recovered.pop(agent_id, None)
        now = self._clock.seconds()
        for framework_info in frameworks:
            # Learned from the agent: it gets as long to re-subscribe as agents get to come back.
            self._frameworks.recover(framework_info, max(framework_info.failover_timeout,
                                                         self._config.agent_reregister_timeout))
        record = self._records.get(agent_id)
        if record is not None:
            self._offers.forget_agent(agent_id)
            self._allocator.removeAgent(agent_id)
            known = record.all_tasks()
            record.info, record.link, record.connected, record.active = info, link, True, True
            record.reregistered_time = now
            self._resources.place(record, checkpointed)
        else:
            known = []
            record = self._new_record(info, link, registered_time=now, reregistered_time=now, version=version)
            self._resources.place(record, checkpointed)
            self._events.agentAdded(record)  # back after a failover or from unreachable; before its tasks
        returning = self.unreachable.pop(agent_id, None) is not None
        reported = {(t.framework_id, t.task_id) for t in tasks}
        for task in known:
            if (task.framework_id, task.task_id) not in reported and not task.terminal:
                self._lose(task, "Task was not found on the agent when it re-registered", T.REASON_AGENT_RESTARTED,
                           agent_removed=False)
        self._tasks.reset_executors(agent_id, executors)
        doomed: set[str] = set()
        for task in tasks:
            framework = self._frameworks.get(task.framework_id)
            if framework is None:
                doomed.add(task.framework_id)
                continue
            if returning and not framework.info.partition_aware:
                # Its framework was told TASK_LOST already; Mesos kills such tasks on return.
                link.killTask(task.framework_id, task.task_id)
                continue
            # What the agent says now, not what the master last recorded (e.g. TASK_UNREACHABLE).
            latest = task.statuses[-1] if task.statuses else TaskStatus(task.task_id, task.state, timestamp=now)
            if self._tasks.adopt(agent_id, task, latest if returning else None) is None:
                log.warn("Agent {a} reports task {t} which runs on another agent; ignoring the report",
                         a=agent_id, t=task.task_id)
                continue
            if returning and framework.connected:
                framework.send(api.update_event(without_uuid(latest, agent_id)))
        for framework_id in doomed:
            if framework_id in self._frameworks.completed:
                link.shutdownFramework(framework_id)
        self._allocator.addAgent(agent_id, record.total, self._tasks.usage_on(agent_id))
        self.health.watch(agent_id, link)
        self._metrics["slave_reregistrations"] += 1
        log.info("Re-registered agent {id} with {n} tasks", id=agent_id, n=len(tasks))
        self._request_allocation([agent_id])
        return self._master_info()

    # -- going away -------------------------------------------------------------------------------

    def agentDisconnected(self, agent_id: str, link: IAgentLink | None = None) -> None:
        """The agent's connection broke: stop offering it and lose tasks of frameworks that
        do not checkpoint (as Mesos does), then wait for it or for its ping timeouts."""
        record = self._records.get(agent_id)
        if record is None or (link is not None and record.link is not link) or not record.connected:
            return
        log.info("Agent {id} disconnected", id=agent_id)
        record.connected = False
        record.active = False
        self._allocator.deactivateAgent(agent_id)
        self._rescinded(self._offers.rescind_agent(agent_id))
        for task in record.all_tasks():
            framework = self._frameworks.get(task.framework_id)
            if framework is not None and not framework.info.checkpoint and not task.terminal:
                self._lose(task, "Agent disconnected", T.REASON_AGENT_DISCONNECTED, agent_removed=False)

    def agentUnreachable(self, agent_id: str) -> defer.Deferred:
        """The agent missed too many pings: once the registry says so, report its tasks."""
        if agent_id not in self._records:
            return defer.succeed(None)
        self.health.unwatch(agent_id)
        now = self._clock.seconds()
        d = self._persist(MarkUnreachable(agent_id, now))
        d.addCallback(lambda _: self._unreachable(agent_id, now))
        d.addErrback(lambda _: None)  # persist has reported it (and the master aborts)
        return d

    def _unreachable(self, agent_id: str, now: float) -> None:
        record = self._records.pop(agent_id, None)
        self._tasks.marks.agent(agent_id)  # it leaves the lists of agents
        if record is None:
            return
        log.warn("Agent {id} is unreachable; marking its tasks lost", id=agent_id)
        self.admitted.discard(agent_id)
        self.unreachable[agent_id] = now
        self._metrics["slave_removals"] += 1
        self._metrics["slave_removals/reason_unhealthy"] += 1
        self._rescinded(self._offers.forget_agent(agent_id))
        for task in record.all_tasks():
            if not task.terminal:
                self._lose(task, "Agent was removed", T.REASON_AGENT_REMOVED, agent_removed=True)
            if task.state != T.UNREACHABLE:
                # Unreachable tasks of partition-aware frameworks stay known (for reconciliation,
                # and to resume if the agent comes back), as in Mesos 1.1+.
                self._tasks.remove(task)
        self._tasks.release_agent(agent_id)
        self._allocator.removeAgent(agent_id)
        self._frameworks.broadcast(api.failure_event(agent_id=agent_id))
        self._events.agentRemoved(agent_id)
        link = record.reachable_link()
        if link is not None:
            link.removed("Agent was marked unreachable after missing health checks")

    def unregisterAgent(self, agent_id: str) -> None:
        """The agent left on purpose: its tasks are gone."""
        record = self._records.pop(agent_id, None)
        self._tasks.marks.agent(agent_id)  # it leaves the lists of agents
        if record is None:
            return
        self.health.unwatch(agent_id)
        self.admitted.discard(agent_id)
        self.owners.pop(agent_id, None)
        self._resources.forget(agent_id)
        self._persist(RemoveAgent(agent_id)).addErrback(lambda _: None)
        self._metrics["slave_removals/reason_unregistered"] += 1
        self._rescinded(self._offers.forget_agent(agent_id))
        for task in record.all_tasks():
            if not task.terminal:
                self._lose(task, "Agent shut down", T.REASON_AGENT_REMOVED, agent_removed=True)
            self._tasks.remove(task)
        self._tasks.release_agent(agent_id)
        self._allocator.removeAgent(agent_id)
        self._frameworks.broadcast(api.failure_event(agent_id=agent_id))
        self._events.agentRemoved(agent_id)

    def markGone(self, agent_id: str) -> defer.Deferred:
        """An operator asserts the agent is gone for good (MARK_AGENT_GONE). Once the registry holds it,
        its tasks end (TASK_GONE_BY_OPERATOR for partition-aware frameworks, TASK_LOST for others), a
        connected agent is told to shut its frameworks down, and it may never register again.

        Fires once done (at once for an agent gone already); fails with :class:`UnknownAgent` for an
        agent neither registered, recovered nor unreachable, :class:`AgentTransitioning` while it is
        being marked gone, or RegistrationRefused when the registry refuses.
        """
        if agent_id in self.gone:
            log.warn("Not marking agent {id} gone: it is gone already", id=agent_id)
            return defer.succeed(None)
        if agent_id in self._marking_gone:
            return defer.fail(AgentTransitioning(f"Agent '{agent_id}' is already being transitioned to gone"))
        if agent_id not in self._records and agent_id not in self.recovered and agent_id not in self.unreachable:
            return defer.fail(UnknownAgent(f"Agent '{agent_id}' not found"))
        log.info("Marking agent {id} gone", id=agent_id)
        self._marking_gone.add(agent_id)
        now = self._clock.seconds()
        d = self._persist(MarkGone(agent_id, now))

        def done(result: Any) -> Any:
            self._marking_gone.discard(agent_id)
            return result

        d.addBoth(done)
        d.addCallback(lambda _: self._gone(agent_id, now))
        return d

    def _gone(self, agent_id: str, now: float) -> None:
        self.gone[agent_id] = now
        self.admitted.discard(agent_id)
        self._resources.forget(agent_id)
        self._metrics["slave_removals/reason_gone"] += 1
        if self.recovered.pop(agent_id, None) is not None:
            return  # no task of it is known until it comes back, and it never will
        self.unreachable.pop(agent_id, None)
        self._remove_by_operator(agent_id, now, GONE_MESSAGE)

    def removeDown(self, agent_id: str, message: str) -> defer.Deferred:
        """An operator took the agent's machine down (START_MAINTENANCE): once the registry no longer holds
        the agent, its tasks end as for an agent marked gone, it is told to shut its frameworks down, and it
        may register again once its machine is up."""
        if agent_id not in self._records:
            return defer.succeed(None)
        d = self._persist(RemoveAgent(agent_id))
        d.addCallback(lambda _: self._down(agent_id, message))
        return d

    def _down(self, agent_id: str, message: str) -> None:
        if agent_id not in self._records:
            return
        log.info("Removing agent {id}: {why}", id=agent_id, why=message)
        self.admitted.discard(agent_id)
        self.owners.pop(agent_id, None)
        self._metrics["slave_removals"] += 1
        self._metrics["slave_removals/reason_unregistered"] += 1
        self._remove_by_operator(agent_id, self._clock.seconds(), message)

    def _remove_by_operator(self, agent_id: str, now: float, message: str) -> None:
        """Forget an agent an operator removed: rescind its offers, end its tasks (:meth:`_lose_gone`), tell
        frameworks it is lost, and tell it, if connected, to shut its frameworks down."""
        record = self._records.pop(agent_id, None)
        self._tasks.marks.agent(agent_id)  # it leaves the lists of agents
        if record is not None:
            self.health.unwatch(agent_id)
            self._rescinded(self._offers.forget_agent(agent_id))
        link = record.reachable_link() if record is not None else None
        # Unreachable tasks of an unreachable agent are still indexed (partition-aware frameworks').
        tasks = self._tasks.on_agent(agent_id)
        frameworks = sorted({t.framework_id for t in tasks} | {f for f, _ in (record.executors if record else ())})
        for task in tasks:
            if not task.terminal:
                self._lose_gone(task, now, message)
            self._tasks.remove(task)
        self._tasks.release_agent(agent_id)
        if record is not None:
            self._allocator.removeAgent(agent_id)
            self._frameworks.broadcast(api.failure_event(agent_id=agent_id))
            self._events.agentRemoved(agent_id)
        if link is not None:
            for framework_id in frameworks:
                link.shutdownFramework(framework_id)
            link.removed(message)

    def _lose_gone(self, task: Task, now: float, message: str = GONE_MESSAGE) -> None:
        """Mesos's ``markGone``: TASK_GONE_BY_OPERATOR for partition-aware frameworks, else TASK_LOST."""
        framework = self._frameworks.get(task.framework_id)
        if framework is not None and framework.info.partition_aware:
            state, reason = T.GONE_BY_OPERATOR, T.REASON_AGENT_REMOVED_BY_OPERATOR
        else:
            state, reason = T.LOST, T.REASON_AGENT_REMOVED
        status = self._tasks.lose(task, state, message, reason, now)
        if framework is not None:
            framework.send(api.update_event(status))

    def _lose(self, task: Task, message: str, reason: str, agent_removed: bool) -> None:
        """Report a task lost to its framework (unreliably: it has no UUID) and free it."""
        framework = self._frameworks.get(task.framework_id)
        if framework is not None and framework.info.partition_aware:
            state = T.UNREACHABLE if agent_removed else T.GONE
        else:
            state = T.LOST
        status = self._tasks.lose(task, state, message, reason, self._clock.seconds())
        if framework is not None:
            framework.send(api.update_event(status))

    def _rescinded(self, offers: list[Offer]) -> None:
        for offer in offers:
            self._frameworks.send(offer.framework_id, api.rescind_event(offer.id))

    def stop(self) -> None:
        self.health.stop()
        if self._reregistration_timer is not None and self._reregistration_timer.active():
            self._reregistration_timer.cancel()
        self._reregistration_timer = None


def _check_agent(info: AgentInfo) -> str | None:
    if not info.hostname:
        return "agent_info.hostname must not be empty"
    scalars = info.resources.scalars()
    if "cpus" not in scalars or "mem" not in scalars:
        return "an agent must offer cpus and mem"
    return None


# pragma: no mutate block (reconciliation, not a security check)
def without_uuid(status: TaskStatus, agent_id: str) -> TaskStatus:
    """A status as the master replays it: unreliable (no UUID), as a reconciliation answer."""
    return attrs.evolve(status, uuid=None, agent_id=agent_id, reason=T.REASON_RECONCILIATION)
