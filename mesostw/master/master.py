"""The master's state machine: agents, frameworks, tasks and status updates.

Plain Python driven by method calls from the transport adapters (PB, HTTP,
in-process links) and by an injected clock; its effects are calls on links,
on the allocator and on the registry. Agents are handled by
:class:`mesostw.master.agents.AgentLifecycle`, frameworks by
:class:`mesostw.master.frameworks.FrameworkLifecycle`, scheduler calls by
:class:`mesostw.master.calls.SchedulerCalls`, agent health by
:class:`mesostw.master.health.AgentHealth`.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from mesostw.auth.policy import Security
from mesostw.interfaces import IAllocator
from mesostw.master.agents import AgentLifecycle, RegistrationRefused, without_uuid
from mesostw.master.frameworks import FrameworkLifecycle
from mesostw.master.health import AgentHealth
from mesostw.master.offers import OfferManager
from mesostw.master.records import AgentRecord, CompletedFrameworks, FrameworkRecord
from mesostw.master.registry import InMemoryRegistry, IRegistry, Mutation, RegistryState
from mesostw.model import scheduler_api as api
from mesostw.model import task as T
from mesostw.model.info import AgentInfo, FrameworkInfo, MasterInfo
from mesostw.model.resources import EMPTY, Resources
from mesostw.model.task import Offer, Task, TaskStatus
from mesostw.model.validation import ValidationError

log = Logger()

__all__ = ["Master", "RegistrationRefused", "without_uuid"]


class Master(AgentLifecycle, FrameworkLifecycle):
    """Everything the leading master knows and decides."""

    def __init__(self, config: Any, allocator: IAllocator, clock: Any, master_id: str | None = None,
                 registry: IRegistry | None = None):
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
        self.agents: dict[str, AgentRecord] = {}
        #: IDs of the agents the registry holds as admitted
        self.admitted: set[str] = set()
        #: agents the registry knows that have not re-registered since this master took over
        self.recovered_agents: dict[str, AgentInfo] = {}
        self.unreachable: dict[str, float] = {}
        self.frameworks: dict[str, FrameworkRecord] = {}
        self.completed = CompletedFrameworks(config.max_completed_frameworks)
        self.offers = OfferManager(clock, self.id, config.offer_timeout, self._offer_timed_out)
        self.health = AgentHealth(clock, config.agent_ping_timeout, config.max_agent_ping_timeouts,
                                  self.agentUnreachable)
        self.metrics: Counter[str] = Counter()
        #: who must authenticate and what ACLs allow (everything, unless the service sets it from flags)
        self.security = Security()
        #: called when the registry refuses a write: leadership may be lost (the service aborts)
        self.on_registry_failure: Callable[[Failure], None] = lambda failure: None
        self._next_framework = 0
        self._next_agent = 0
        self._allocation_pending: Any = None
        self._allocation_candidates: set[str] | None = set()
        self._reregistration_timer: Any = None

    # -- leadership and the registry ---------------------------------------------

    def recover(self, state: RegistryState) -> None:
        """Take over what the registry holds, as a newly elected leader."""
        self.elected_time = self.clock.seconds()
        self.unreachable.update(state.unreachable)
        self.completed.ids.update(state.removed_frameworks)
        if state.weights:
            self.config.weights = {**self.config.weights, **state.weights}
            self.allocator.updateWeights(state.weights)
        for agent_id, data in state.agents.items():
            try:
                self.recovered_agents[agent_id] = AgentInfo.from_json(data)
                self.admitted.add(agent_id)
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
            self.recover_framework(info, max(info.failover_timeout, self.config.agent_reregister_timeout))
        if self.recovered_agents:
            self._reregistration_timer = self.clock.callLater(self.config.agent_reregister_timeout,
                                                              self._reregistration_timed_out)
        self.leading = True
        log.info("Recovered {a} agents and {f} frameworks from the registry; agents have {t}s to re-register",
                 a=len(self.recovered_agents), f=len(state.frameworks), t=self.config.agent_reregister_timeout)

    def _persist(self, mutation: Mutation) -> defer.Deferred:
        """Make a change durable before it is acted on or acknowledged."""
        d = self.registry.apply(mutation)

        def failed(failure: Failure) -> None:
            log.failure("The registry refused {m}", failure, m=type(mutation).__name__)
            self.on_registry_failure(failure)
            raise RegistrationRefused(f"could not record the change durably: {failure.getErrorMessage()}")

        return d.addErrback(failed)

    # -- identity -------------------------------------------------------------

    def _new_framework_id(self) -> str:
        framework_id = f"{self.id}-{self._next_framework:04d}"
        self._next_framework += 1
        return framework_id

    def _new_agent_id(self) -> str:
        agent_id = f"{self.id}-S{self._next_agent}"
        self._next_agent += 1
        return agent_id

    # -- status updates --------------------------------------------------------

    def statusUpdates(self, agent_id: str, updates: Iterable[tuple[str, TaskStatus]]) -> None:
        """Status updates forwarded by an agent; each is passed on to its framework."""
        record = self.agents.get(agent_id)
        if record is None:
            self.metrics["invalid_status_updates"] += 1
            return
        for framework_id, status in updates:
            self.metrics["messages_status_update"] += 1
            framework = self.frameworks.get(framework_id)
            if framework is None or status.uuid is None:
                self.metrics["invalid_status_updates"] += 1
                continue
            task = framework.tasks.get(status.task_id)
            if task is not None and task.agent_id == agent_id:
                if task.status_update_uuid != status.uuid:
                    self._apply_update(record, framework, task, status)
            self.metrics["valid_status_updates"] += 1
            framework.send(api.update_event(status))

    def _apply_update(self, record: AgentRecord, framework: FrameworkRecord, task: Task, status: TaskStatus) -> None:
        was_terminal = task.terminal
        task.record(status)
        task.status_update_state = status.state
        task.status_update_uuid = status.uuid
        if status.terminal and not was_terminal:
            self.metrics[f"tasks_{status.state[5:].lower()}"] += 1
            self.allocator.recoverResources(framework.id, record.id, task.resources)
            self.requestAllocation([record.id])
        elif status.state == T.RUNNING:
            self.metrics["tasks_started"] += 1

    def acknowledge(self, framework: FrameworkRecord, agent_id: str, task_id: str, uuid_bytes: bytes) -> None:
        """A scheduler acknowledged an update: pass it to the agent, retire acknowledged terminal tasks."""
        self.metrics["messages_status_update_acknowledgement"] += 1
        record = self.agents.get(agent_id)
        if record is None or not record.connected or record.link is None:
            self.metrics["dropped_messages"] += 1
            return
        record.link.acknowledge([(framework.id, task_id, uuid_bytes)])
        task = framework.tasks.get(task_id)
        if task is not None and task.terminal and task.status_update_uuid == uuid_bytes:
            self._remove_task(record, task)

    def exitedExecutor(self, agent_id: str, framework_id: str, executor_id: str, status: int | None) -> None:
        record = self.agents.get(agent_id)
        if record is None:
            return
        executor = record.executors.pop((framework_id, executor_id), None)
        if executor is not None and executor.resources:
            self.allocator.recoverResources(framework_id, agent_id, executor.resources)
            self.requestAllocation([agent_id])
        framework = self.frameworks.get(framework_id)
        if framework is not None:
            framework.send(api.failure_event(agent_id, executor_id, status))

    def executorMessage(self, agent_id: str, framework_id: str, executor_id: str, data: bytes) -> None:
        framework = self.frameworks.get(framework_id)
        self.metrics["messages_executor_to_framework"] += 1
        if framework is None or not framework.send(api.message_event(agent_id, executor_id, data)):
            self.metrics["dropped_messages"] += 1

    def operatorKill(self, framework_id: str, task_id: str) -> str | None:
        """An operator asks to kill a task (a mesostw extension); returns why not, or None."""
        framework = self.frameworks.get(framework_id)
        task = framework.tasks.get(task_id) if framework is not None else None
        if task is None:
            return f"Task {task_id} of framework {framework_id} is not known"
        agent = self.agents.get(task.agent_id)
        if agent is None or not agent.connected or agent.link is None:
            return f"Agent {task.agent_id} of task {task_id} is not connected"
        agent.link.killTask(framework_id, task_id)
        return None

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
            framework = self.frameworks.get(framework_id)
            record = self.agents.get(agent_id)
            if framework is None or framework.link is None or record is None:
                self.allocator.recoverResources(framework_id, agent_id, resources)
                continue
            executor_ids = tuple(e for f, e in record.executors if f == framework_id)
            offer = Offer(self.offers.new_id(), framework_id, agent_id, record.info.hostname, resources,
                          framework.info.allocation_role, record.info.attributes, executor_ids,
                          record.info.port)
            self.offers.add(offer)
            framework.offers.add(offer.id)
            record.offered = record.offered + resources
            by_framework.setdefault(framework_id, []).append(offer)
        for framework_id, offers in by_framework.items():
            self.frameworks[framework_id].send(api.offers_event(offers))
        return len(result)

    def take_offer(self, offer_id: str) -> Offer | None:
        """Remove an offer because it is being answered; the caller owns its resources now."""
        offer = self.offers.remove(offer_id)
        if offer is None:
            return None
        framework = self.frameworks.get(offer.framework_id)
        if framework is not None:
            framework.offers.discard(offer_id)
        record = self.agents.get(offer.agent_id)
        if record is not None:
            record.offered = record.offered - offer.resources
        return offer

    def rescind(self, offer_id: str, notify: bool = True) -> None:
        offer = self.take_offer(offer_id)
        if offer is None:
            return
        self.allocator.recoverResources(offer.framework_id, offer.agent_id, offer.resources)
        framework = self.frameworks.get(offer.framework_id)
        if notify and framework is not None:
            framework.send(api.rescind_event(offer_id))

    def _offer_timed_out(self, offer: Offer) -> None:
        log.info("Offer {id} timed out; rescinding", id=offer.id)
        self.rescind(offer.id)
        self.requestAllocation([offer.agent_id])

    def _rescind_agent_offers(self, agent_id: str) -> None:
        for offer in self.offers.on_agent(agent_id):
            self.rescind(offer.id)

    def _forget_agent_offers(self, agent_id: str, rescind: bool = False) -> None:
        for offer in self.offers.on_agent(agent_id):
            self.take_offer(offer.id)
            framework = self.frameworks.get(offer.framework_id)
            if rescind and framework is not None:
                framework.send(api.rescind_event(offer.id))

    def _rescind_framework_offers(self, framework: FrameworkRecord, notify: bool = True) -> None:
        for offer_id in list(framework.offers):
            self.rescind(offer_id, notify=notify and framework.link is not None)

    # -- queries -----------------------------------------------------------------

    def framework_used(self, framework_id: str) -> Resources:
        used = EMPTY
        for record in self.agents.values():
            used = used + record.used_by(framework_id)
        return used

    def framework_offered(self, framework: FrameworkRecord) -> Resources:
        offered = EMPTY
        for offer in self.offers.of(framework.offers):
            offered = offered + offer.resources
        return offered

    def stop(self) -> None:
        """Cancel every timer the master holds (for clean shutdown and tests)."""
        self.offers.stop()
        self.health.stop()
        if self._allocation_pending is not None and self._allocation_pending.active():
            self._allocation_pending.cancel()
        self._allocation_pending = None
        for framework in self.frameworks.values():
            if framework.failover_timer is not None and framework.failover_timer.active():
                framework.failover_timer.cancel()
        if self._reregistration_timer is not None and self._reregistration_timer.active():
            self._reregistration_timer.cancel()
        self._reregistration_timer = None

