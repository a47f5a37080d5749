"""The master's core: a thin facade over the components that own its state.

Plain Python driven by method calls from the transport adapters (PB, HTTP, in-process links) and
by an injected clock; its effects are calls on links, on the allocator and on the registry.

- :class:`~mesostw.master.tasks.TaskTracker`: every task, indexed by framework and by agent, and the
  custom executors on agents;
- :class:`~mesostw.master.offers.OfferBook`: outstanding offers;
- :class:`~mesostw.master.agents.AgentManager`: agents registering, returning, disconnecting, lost;
- :class:`~mesostw.master.frameworks.FrameworkManager`: frameworks subscribing, failing over, removed;
- :class:`~mesostw.master.calls.SchedulerCalls`: the answers to v1 scheduler Calls;
- :class:`~mesostw.master.operations.ResourceOperations`: RESERVE, UNRESERVE, CREATE and DESTROY, from
  frameworks and operators, with :class:`~mesostw.master.operations.AgentResources`, what the registry
  holds of agents' dynamic reservations and persistent volumes;
- :class:`~mesostw.master.events.MasterEvents`: what the components report to the operator API's
  event subscribers;
- :class:`~mesostw.master.quota.QuotaManager`: the roles' quotas;
- :class:`~mesostw.master.maintenance.Maintenance`: the maintenance schedule, machines down, inverse offers;
- :class:`~mesostw.master.draining.AgentStates`: agents deactivated and drained.

The facade keeps what spans components (status updates, acknowledgements, allocation, teardown,
kills, weights) and the methods the adapters call. It also provides
:class:`~mesostw.interfaces.IMasterEndpoint`, the master as scheduler sessions see it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from mesostw.auth.policy import Security
from mesostw.interfaces import IAgentLink, IAllocator, IFrameworkLink, IMasterEndpoint
from mesostw.master.agents import AgentManager, without_uuid
from mesostw.master.calls import SchedulerCalls
from mesostw.master.collector import CollectorPause
from mesostw.master.draining import AgentStates
from mesostw.master.events import MAX_SUBSCRIBERS, MasterEvents
from mesostw.master.frameworks import FrameworkManager, RegistrationRefused, TeardownOutcome
from mesostw.master.maintenance import Maintenance, agent_ip
from mesostw.master.marks import Marks
from mesostw.master.offers import OfferBook
from mesostw.master.operations import AgentResources, ResourceOperations
from mesostw.master.quota import QuotaManager
from mesostw.master.records import AgentRecord, CompletedFrameworks, FrameworkRecord
from mesostw.master.registry import InMemoryRegistry, IRegistry, Mutation, RegistryState, SetWeights, with_id
from mesostw.master.tasks import KillOutcome, TaskTracker
from mesostw.model import scheduler_api as api
from mesostw.model.info import AgentInfo, ExecutorInfo, FrameworkInfo, MasterInfo
from mesostw.model.task import Offer, Task, TaskStatus
from mesostw.model.validation import ValidationError
from mesostw.scheduler.session import NotLeading, SubscriptionRefused

# pragma: no mutate start (not a security check: see [tool.mutmut] in pyproject.toml)
log = Logger()

#: Who leads, as :meth:`~mesostw.master.http.LeaderRouting.leader_pid` says it while this master is elected
#: and still recovering the registry.
RECOVERING = "this master, once it has recovered the registry"
#: What waits for this master to lead (the agents of a failover) goes on this many per reactor turn.
RELEASE_BATCH = 50

__all__ = ["KillOutcome", "Master", "RegistrationRefused", "TeardownOutcome", "without_uuid"]


@implementer(IMasterEndpoint)
class Master:
    """Everything the leading master knows and decides, behind the methods its adapters call."""

    def __init__(self, config: Any, allocator: IAllocator, clock: Any, master_id: str | None = None,
                 registry: IRegistry | None = None, security: Security | None = None, collector: Any = None):
        self.config = config
        self.clock = clock
        self.allocator = allocator
        self.registry: IRegistry = registry or InMemoryRegistry()
        self.id = master_id or str(uuid.uuid4())
        self.info = MasterInfo(
            id=self.id,
            ip=config.advertise_ip or config.ip,
            port=config.advertise_port or config.port,
            hostname=config.hostname or config.ip,
        )
        self.start_time = clock.seconds()
        self.elected_time: float | None = None
        #: True once elected and recovered; until then nothing registers here
        self.leading = False
        self._leading_waiters: list[defer.Deferred[None]] = []
        #: True once :meth:`stop` was called
        self.stopped = False
        #: the next batch of waiters released (see :meth:`_release`)
        self._releasing: Any = None
        self.metrics: Counter[str] = Counter()
        #: who must authenticate and what ACLs allow (everything, unless built from flags); components
        #: hold it from construction on
        self.security = security or Security()
        #: called when the registry refuses a write: leadership may be lost (the service aborts)
        self.on_registry_failure: Callable[[Failure], None] = lambda failure: None
        #: the operator API's event subscribers, to which the components report
        self.events = MasterEvents(self, getattr(config, "max_operator_event_stream_subscribers", MAX_SUBSCRIBERS))
        #: the agents and frameworks whose part of the state summary changed (see :mod:`~mesostw.master.marks`)
        self.marks = Marks()
        self.tasks = TaskTracker(allocator, self.metrics, config.max_completed_tasks_per_framework,
                                 events=self.events, marks=self.marks)
        self.offers = OfferBook(clock, self.id, config.offer_timeout, allocator, self._offer_expired, marks=self.marks)
        self.framework_manager = FrameworkManager(
            config, clock, allocator, self.security, self.tasks, self.offers, self.persist, self._master_info,
            self.id, self.metrics, self.requestAllocation, self.removeFramework, events=self.events)
        self.agent_resources = AgentResources(self.persist)
        self.agent_manager = AgentManager(
            config, clock, allocator, self.tasks, self.offers, self.framework_manager, self.persist,
            self._master_info, self.id, self.metrics, self.requestAllocation, self.security, events=self.events,
            resources=self.agent_resources)
        self.operations = ResourceOperations(allocator, self.agent_manager, self.offers, self.framework_manager,
                                             self.agent_resources, self.security, self.metrics,
                                             self.requestAllocation)
        self.quota = QuotaManager(allocator, self.tasks, self.offers, self.persist, lambda: self.agents.values(),
                                  lambda: self.frameworks.values(), self.rescindOffer, self.requestAllocation,
                                  lambda: self.config.roles)
        self.maintenance = Maintenance(clock, self.id, self.persist, lambda: self.agents, self.framework_manager,
                                       self.tasks, self.offers, self.agent_manager.removeDown, self.rescindOffer,
                                       self.requestAllocation)
        self.agent_states = AgentStates(self.persist, self.agent_manager, allocator, self.tasks, self.offers,
                                        self.killTask, self.rescindOffer, self.markAgentGone,
                                        self.requestAllocation, marks=self.marks)
        self.calls = SchedulerCalls(self)
        #: ``collector`` (the :mod:`gc` module in a daemon; None: left alone), held back while a failover's
        #: agents re-register (see :mod:`mesostw.master.collector`)
        self.collector = CollectorPause(clock, collector)
        self._allocation_pending: Any = None
        self._allocation_candidates: set[str] | None = set()

    def _master_info(self) -> MasterInfo:
        return self.info

    # -- read-only views for the state and metrics endpoints ----------------------------------

    @property
    def agents(self) -> Mapping[str, AgentRecord]:
        """Agent ID -> AgentRecord of every registered agent (connected or not)."""
        return self.agent_manager.records

    @property
    def frameworks(self) -> Mapping[str, FrameworkRecord]:
        """Framework ID -> FrameworkRecord of every framework not removed."""
        return self.framework_manager.records

    @property
    def completed(self) -> CompletedFrameworks:
        return self.framework_manager.completed

    @property
    def unreachable(self) -> Mapping[str, float]:
        return MappingProxyType(self.agent_manager.unreachable)

    @property
    def recovered_agents(self) -> Mapping[str, AgentInfo]:
        return MappingProxyType(self.agent_manager.recovered)

    @property
    def admitted(self) -> frozenset[str]:
        return frozenset(self.agent_manager.admitted)

    # -- leadership and the registry ---------------------------------------------

    def electing(self) -> None:
        """Elected, this master reads the registry: the agents of the failover come meanwhile, and their
        registrations are read as they arrive. The collector waits until they are back (see :meth:`recover`)."""
        self.collector.pause()

    def recover(self, state: RegistryState) -> None:
        """Take over what the registry holds, as a newly elected leader."""
        self.elected_time = self.clock.seconds()
        self.framework_manager.recover_removed(state.removed_frameworks)
        if state.weights:
            self._apply_weights(state.weights)
        self.quota.recover(state.quotas)
        self.maintenance.recover(state.schedule, state.down_machines)
        self.agent_states.recover(state.agent_states)
        agents: dict[str, AgentInfo] = {}
        for agent_id, data in state.agents.items():
            try:
                agents[agent_id] = AgentInfo.from_json(with_id(agent_id, data) if isinstance(data, dict) else data)
            except ValidationError as exc:
                log.error("Skipping unreadable agent {id} in the registry: {e}", id=agent_id, e=exc)
        for framework_id, data in state.frameworks.items():
            try:
                info = FrameworkInfo.from_json(data)
            except ValidationError as exc:
                log.error("Skipping unreadable framework {id} in the registry: {e}", id=framework_id, e=exc)
                continue
            if info.id != framework_id:
                info = attrs.evolve(info, id=framework_id)
            # A master failover is no reason to drop a framework (Mesos never times out the frameworks a
            # new leader learns of): like its agents, it has at least --agent_reregister_timeout to return.
            self.framework_manager.recover(info, max(info.failover_timeout, self.config.agent_reregister_timeout))
        self.agent_resources.recover(state.resources)
        self.agent_manager.recover(agents, state.unreachable, state.owners, gone=state.gone)
        if self.agent_manager.recovered:
            self.collector.pause()
        else:
            self.collector.resume()
        self.leading = True
        waiters, self._leading_waiters = self._leading_waiters, []
        self._release(waiters)
        log.info("Recovered {a} agents and {f} frameworks from the registry; agents have {t}s to re-register",
                 a=len(agents), f=len(state.frameworks), t=self.config.agent_reregister_timeout)

    def _release(self, waiters: list[defer.Deferred[None]]) -> None:
        """Fire ``waiters`` of :meth:`whenLeading`, :data:`RELEASE_BATCH` per reactor turn.

        After a failover every agent waits here with its re-registration: handled all in one turn, they
        would leave this master deaf for seconds (its HTTP endpoints, the frameworks subscribing, the
        agents' pings), though it leads already."""
        self._releasing = None
        batch, rest = waiters[:RELEASE_BATCH], waiters[RELEASE_BATCH:]
        for waiter in batch:
            waiter.callback(None)
        if rest:
            self._releasing = self.clock.callLater(0, self._release, rest)

    def whenLeading(self) -> defer.Deferred[None]:
        """Fires once this master leads (at once when it does already): after :meth:`recover`."""
        if self.leading:
            return defer.succeed(None)
        waiter: defer.Deferred[None] = defer.Deferred()
        self._leading_waiters.append(waiter)
        return waiter

    def persist(self, mutation: Mutation) -> defer.Deferred:
        """Make a change durable before it is acted on or acknowledged; a refusal is reported here
        (and fails the Deferred with :class:`RegistrationRefused`)."""
        d = self.registry.apply(mutation)

        def failed(failure: Failure) -> None:
            log.failure("The registry refused {m}", failure, m=type(mutation).__name__)
            self.on_registry_failure(failure)
            raise RegistrationRefused(f"could not record the change durably: {failure.getErrorMessage()}")

        return d.addErrback(failed)

    def updateWeights(self, weights: Mapping[str, float]) -> defer.Deferred:
        """Change role weights: the registry holds them before they take effect (the Deferred fails,
        and nothing changes, when it refuses)."""
        updates = dict(weights)
        d = self.persist(SetWeights({**(self.config.weights or {}), **updates}))
        d.addCallback(lambda _: self._apply_weights(updates))
        return d

    def _apply_weights(self, updates: Mapping[str, float]) -> None:
        self.config.weights = {**(self.config.weights or {}), **updates}
        self.allocator.updateWeights(dict(updates))

    # -- agents -----------------------------------------------------------------

    def registerAgent(self, link: IAgentLink, info: AgentInfo, version: str = "",
                      principal: str | None = None) -> defer.Deferred:
        """A new agent; ``principal`` is the one its connection authenticated as (None: it did not)."""
        refusal = self._machine_down(link, info, [], [])
        if refusal is not None:
            return refusal
        d = self.agent_manager.registerAgent(link, info, version, principal)
        d.addCallback(self._agent_joined)
        return d

    def reregisterAgent(self, link: IAgentLink, info: AgentInfo, tasks: list[Task], executors: list[ExecutorInfo],
                        frameworks: list[FrameworkInfo], version: str = "", principal: str | None = None
                        ) -> defer.Deferred:
        """An agent that knows its ID; only the principal that registered the ID may re-register it."""
        refusal = self._machine_down(link, info, tasks, frameworks)
        if refusal is not None:
            return refusal
        d = self.agent_manager.reregisterAgent(link, info, tasks, executors, frameworks, version, principal)
        agent_id = info.id or ""

        def joined(master_info: MasterInfo) -> MasterInfo:
            self.agent_states.joined(agent_id)
            if not self.agent_manager.recovered:
                self.collector.resume()  # the last agent of the failover is back
            return master_info

        return d.addCallback(joined)

    def _machine_down(self, link: IAgentLink, info: AgentInfo, tasks: list[Task],
                      frameworks: list[FrameworkInfo]) -> defer.Deferred | None:
        """A refusal for an agent whose machine is DOWN (it shuts down what it runs), or None."""
        if not self.maintenance.is_down(info.hostname, agent_ip(info.hostname, link)):
            return None
        for framework_id in sorted({t.framework_id for t in tasks} | {f.id for f in frameworks if f.id}):
            link.shutdownFramework(framework_id)
        self.metrics["registrations_refused_machine_down"] += 1
        log.warn("Refused agent {id} at {host}:{port}: its machine is DOWN", id=info.id or "(new)",
                 host=info.hostname, port=info.port)
        return defer.fail(RegistrationRefused("Machine is DOWN"))

    def _agent_joined(self, result: tuple[str, MasterInfo]) -> tuple[str, MasterInfo]:
        self.agent_states.joined(result[0])
        return result

    def agentDisconnected(self, agent_id: str, link: IAgentLink | None = None) -> None:
        """An agent's connection broke; ignored once this master stopped (see :meth:`stop`)."""
        if self.stopped:
            return
        self.agent_manager.agentDisconnected(agent_id, link)

    def agentUnreachable(self, agent_id: str) -> defer.Deferred:
        return self.agent_manager.agentUnreachable(agent_id)

    def unregisterAgent(self, agent_id: str) -> None:
        self.agent_manager.unregisterAgent(agent_id)

    def markAgentGone(self, agent_id: str) -> defer.Deferred:
        """An operator says an agent is gone for good (see :meth:`AgentManager.markGone`)."""
        return self.agent_manager.markGone(agent_id)

    # -- frameworks -----------------------------------------------------------------

    def subscribe(self, link: IFrameworkLink, framework_info: FrameworkInfo, principal: str | None = None,
                  force: bool = False) -> str:
        """Register or fail over a framework whose events go to ``link``; returns its ID or raises
        :class:`SubscriptionRefused` (:class:`NotLeading` before this master leads)."""
        if not self.leading:
            raise NotLeading("this master is not the leader")
        try:
            return self.framework_manager.subscribe(link, framework_info, principal, force)
        except RegistrationRefused as exc:
            raise SubscriptionRefused(str(exc)) from None

    def frameworkDisconnected(self, framework_id: str, link: IFrameworkLink) -> None:
        if self.stopped:
            return
        self.framework_manager.disconnected(framework_id, link)

    def removeFramework(self, framework_id: str) -> None:
        """Tear a framework down: forget it, shut it down on every agent and kill its tasks."""
        offered = {offer.agent_id for offer in self.offers.of_framework(framework_id)}
        framework = self.framework_manager.remove(framework_id)
        if framework is None:
            return
        running = self.tasks.agents_of(framework_id)
        for agent_id in running:
            link = self.agent_manager.reachable_link(agent_id)
            if link is not None:
                link.shutdownFramework(framework_id)
        self.tasks.remove_framework(framework_id, self.clock.seconds())
        self.events.frameworkRemoved(framework.info)  # after its tasks' updates, as Mesos
        # Only the agents where it held resources have anything new to offer.
        self.requestAllocation(offered.union(running))

    # pragma: no mutate end
    def teardown(self, framework_id: str, principal: str | None) -> TeardownOutcome:
        """An operator (``principal``, None when anonymous) asks to tear a framework down; the
        teardown_frameworks ACL decides."""
        framework = self.framework_manager.get(framework_id)
        if framework is None:
            return TeardownOutcome.UNKNOWN_FRAMEWORK
        if not self.security.authorize("teardown_frameworks", principal, framework.info.principal):
            self.metrics["teardowns_denied"] += 1
            return TeardownOutcome.NOT_AUTHORIZED
        self.removeFramework(framework_id)
        return TeardownOutcome.DONE

    # -- tasks ------------------------------------------------------------------------

    # pragma: no mutate start (not a security check: see [tool.mutmut] in pyproject.toml)
    def statusUpdates(self, agent_id: str, updates: Iterable[tuple[str, TaskStatus]]) -> None:
        """Status updates forwarded by an agent; each is passed on to its framework."""
        if self.agent_manager.get(agent_id) is None:
            self.metrics["invalid_status_updates"] += 1
            return
        for framework_id, status in updates:
            self.metrics["messages_status_update"] += 1
            framework = self.framework_manager.get(framework_id)
            if framework is None or status.uuid is None:
                self.metrics["invalid_status_updates"] += 1
                continue
            status = self.agent_states.reported(agent_id, status, framework.info.partition_aware)
            task = framework.tasks.get(status.task_id)  # the TaskTracker's index, read through the record
            if task is not None and task.agent_id == agent_id and task.status_update_uuid != status.uuid:
                if self.tasks.update(task, status):
                    self.requestAllocation([agent_id])
            self.metrics["valid_status_updates"] += 1
            framework.send(api.update_event(status))

    def acknowledge(self, framework_id: str, agent_id: str, task_id: str, uuid_bytes: bytes) -> None:
        """A scheduler acknowledged an update: pass it to the agent, retire acknowledged terminal tasks."""
        self.metrics["messages_status_update_acknowledgement"] += 1
        agent = self.agent_manager.get(agent_id)
        link = agent.reachable_link() if agent is not None else None
        if link is None:
            self.metrics["dropped_messages"] += 1
            return
        link.acknowledge([(framework_id, task_id, uuid_bytes)])
        task = self.tasks.get(framework_id, task_id)
        if task is not None and task.terminal and task.status_update_uuid == uuid_bytes:
            self.tasks.remove(task)
            self.agent_states.check(agent_id)

    def killTask(self, framework_id: str, task_id: str, grace_period: float | None = None) -> KillOutcome:
        """Ask the agent of a task to kill it (a scheduler's KILL, or an operator's)."""
        task = self.tasks.get(framework_id, task_id)
        if task is None:
            return KillOutcome.UNKNOWN_TASK
        link = self.agent_manager.reachable_link(task.agent_id)
        if link is None:
            return KillOutcome.AGENT_NOT_CONNECTED
        link.killTask(framework_id, task_id, grace_period)
        return KillOutcome.SENT

    # pragma: no mutate end
    def operatorKill(self, framework_id: str, task_id: str, principal: str | None) -> KillOutcome:
        """An operator (``principal``, None when anonymous) asks to kill one task: allowed to whoever the
        teardown_frameworks ACL lets tear its framework down (killing its tasks one by one is the same)."""
        task = self.tasks.get(framework_id, task_id)
        framework = self.framework_manager.get(framework_id)
        if task is None or framework is None:
            return KillOutcome.UNKNOWN_TASK
        if not self.security.authorize("teardown_frameworks", principal, framework.info.principal):
            self.metrics["kills_denied"] += 1
            log.warn("Principal {p} may not kill task {t} of framework {f}", p=principal or "(none)", t=task_id,
                     f=framework_id)
            return KillOutcome.NOT_AUTHORIZED
        return self.killTask(framework_id, task_id)

    # pragma: no mutate block (the rest of the class: not a security check)
    def exitedExecutor(self, agent_id: str, framework_id: str, executor_id: str, status: int | None) -> None:
        if self.agent_manager.get(agent_id) is None:
            return
        executor = self.tasks.remove_executor(agent_id, framework_id, executor_id)
        if executor is not None and executor.resources:
            self.allocator.recoverResources(framework_id, agent_id, executor.resources)
            self.requestAllocation([agent_id])
        self.framework_manager.send(framework_id, api.failure_event(agent_id, executor_id, status))

    def executorMessage(self, agent_id: str, framework_id: str, executor_id: str, data: bytes) -> None:
        self.metrics["messages_executor_to_framework"] += 1
        if not self.framework_manager.send(framework_id, api.message_event(agent_id, executor_id, data)):
            self.metrics["dropped_messages"] += 1

    # -- scheduler sessions (IMasterEndpoint) -------------------------------------------------

    def call(self, framework_id: str, call: api.Call) -> None:
        """One Call (not SUBSCRIBE) of a subscribed framework; raises :class:`CallRefused`."""
        self.calls.handle(framework_id, call)

    def disconnected(self, framework_id: str, link: IFrameworkLink) -> None:
        self.frameworkDisconnected(framework_id, link)

    # -- offers -----------------------------------------------------------------

    def requestAllocation(self, agent_ids: Iterable[str] | None = None) -> None:
        """Allocate soon (in the same reactor turn's aftermath), for these agents or for all."""
        if agent_ids is None:
            self._allocation_candidates = None
        elif self._allocation_candidates is not None:
            self._allocation_candidates.update(agent_ids)
        if self._allocation_pending is None:
            self._allocation_pending = self.clock.callLater(0, self._allocate_pending)

    def _allocate_pending(self) -> None:
        self._allocation_pending = None
        candidates, self._allocation_candidates = self._allocation_candidates, set()
        if candidates is None or candidates:
            self.allocate(candidates)

    def allocate(self, agent_ids: Iterable[str] | None = None) -> int:
        """Run the allocator and send the offers it makes; returns how many were made."""
        result = self.allocator.allocate(agent_ids)
        by_framework: dict[str, list[Offer]] = {}
        for framework_id, agent_id, resources in result:
            framework = self.framework_manager.get(framework_id)
            record = self.agent_manager.get(agent_id)
            if framework is None or framework.link is None or record is None:
                self.allocator.recoverResources(framework_id, agent_id, resources)
                continue
            info = record.info
            offer = Offer(self.offers.new_id(), framework_id, agent_id, info.hostname, resources,
                          framework.info.allocation_role, info.attributes,
                          self.tasks.executor_ids(agent_id, framework_id), info.port,
                          self.maintenance.unavailability(record))
            self.offers.add(offer)
            by_framework.setdefault(framework_id, []).append(offer)
        for framework_id, offers in by_framework.items():
            self.framework_manager.send(framework_id, api.offers_event(offers))
        self.maintenance.send_inverse_offers()
        self.agent_states.check_all()
        return len(result)

    def _offer_expired(self, offer: Offer) -> None:
        log.info("Offer {id} timed out; rescinding", id=offer.id)
        self.rescindOffer(offer)

    def rescindOffer(self, offer: Offer) -> None:
        """Withdraw an outstanding offer: its resources go back to the allocator, its framework hears of it."""
        if self.offers.rescind(offer.id) is not None:
            self.framework_manager.send(offer.framework_id, api.rescind_event(offer.id))
        self.requestAllocation([offer.agent_id])

    def stop(self) -> None:
        """Cancel every timer the master holds and end the event subscriptions (for clean shutdown and tests).

        The connections that close afterwards (the agents and frameworks going to the next leader) are
        ignored: a leaving master would otherwise tell frameworks that do not checkpoint that their tasks
        were lost, and spend its last CPU on it while the next leader takes over."""
        self.stopped = True
        self.collector.resume()
        self.events.close_all("the master is stopping")
        if self._releasing is not None and self._releasing.active():
            self._releasing.cancel()
        self._releasing = None
        self.offers.stop()
        self.agent_manager.stop()
        self.framework_manager.stop()
        if self._allocation_pending is not None and self._allocation_pending.active():
            self._allocation_pending.cancel()
        self._allocation_pending = None
