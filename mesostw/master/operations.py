"""Operations that change what an agent's resources are: RESERVE, UNRESERVE, CREATE and DESTROY.

Frameworks send them in ACCEPT, on what they were offered; operators through ``/master/reserve``,
``/master/unreserve``, ``/master/create-volumes``, ``/master/destroy-volumes`` and the v1 calls
``RESERVE_RESOURCES``, ``UNRESERVE_RESOURCES``, ``CREATE_VOLUMES``, ``DESTROY_VOLUMES``, on what is
free. Either way an operation is validated as Mesos does (:mod:`mesostw.master.operation_validation`),
authorized (the ``reserve_resources``, ``unreserve_resources``, ``create_volumes`` and
``destroy_volumes`` ACLs), then applied: to the allocator, to the agent's record (its total and its
*checkpointed* resources, the dynamic reservations and persistent volumes), to the registry, and sent to
the agent (``checkpointResources``), which checkpoints them too.

The registry's view of an agent's checkpointed resources wins over the agent's when it re-registers
(the master may have applied an operation the agent never heard of); an agent the registry holds no
such view of (no operation ever changed it, or the registry was lost) is taken at its word.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from mesostw.auth.policy import Security
from mesostw.interfaces import IAllocator
from mesostw.master.operation_validation import (
    validate_create,
    validate_destroy,
    validate_reserve,
    validate_unreserve,
)
from mesostw.master.records import AgentRecord, FrameworkRecord
from mesostw.master.registry import CheckpointResources, Mutation
from mesostw.model import scheduler_api as api
from mesostw.model.info import AgentInfo, Filters, FrameworkInfo
from mesostw.model.operations import (
    CREATE,
    DESTROY,
    RESERVE,
    UNRESERVE,
    Incompatible,
    ResourceOperation,
    apply_checkpointed,
    split_total,
)
from mesostw.model.reservation import disk_of, reservations_of
from mesostw.model.resources import EMPTY, Resources
from mesostw.model.task import Operation
from mesostw.model.validation import ValidationError

if TYPE_CHECKING:
    from mesostw.master.agents import AgentManager
    from mesostw.master.frameworks import FrameworkManager
    from mesostw.master.offers import OfferBook

log = Logger()

#: operation type -> the ACL action that authorizes it
ACTIONS = {RESERVE: "reserve_resources", UNRESERVE: "unreserve_resources", CREATE: "create_volumes",
           DESTROY: "destroy_volumes"}


class OperationRefused(Exception):
    """An operator's operation cannot be applied: ``code`` is the HTTP status Mesos answers with."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class AgentResources:
    """What the registry holds of each agent's checkpointed resources, and where agents stand against it.

    ``persist`` makes a registry mutation durable (the master's, which reports refusals)."""

    def __init__(self, persist: Callable[[Mutation], defer.Deferred]):
        self._persist = persist
        #: agent ID -> checkpointed resources, for agents an operation ever changed
        self.known: dict[str, Resources] = {}

    def recover(self, entries: Mapping[str, Any]) -> None:
        """Take the registry's ``resources`` section (agent ID -> v1 Resource JSON)."""
        for agent_id, data in entries.items():
            try:
                self.known[agent_id] = Resources.from_json(data)
            except ValidationError as exc:
                log.error("Skipping unreadable checkpointed resources of agent {id} in the registry: {e}",
                          id=agent_id, e=exc)

    @staticmethod
    def split(info: AgentInfo) -> tuple[AgentInfo, Resources]:
        """An agent announces its total: (its AgentInfo with its ``--resources``, its checkpointed resources)."""
        static, checkpointed = split_total(info.resources)
        if not checkpointed:
            return info, EMPTY
        return attrs.evolve(info, resources=static), checkpointed

    def place(self, record: AgentRecord, reported: Resources) -> None:
        """Settle the checkpointed resources and total of a (re-)registering agent that reported
        ``reported``: the registry's view when it has one that fits (and the agent is told when it
        differs), else the agent's."""
        static = record.info.resources
        known = self.known.get(record.id)
        if known is not None:
            try:
                record.total = apply_checkpointed(static, known)
                record.checkpointed = known
                if known != reported:
                    log.info("Agent {id} reported checkpointed resources {theirs}; sending it the master's {ours}",
                             id=record.id, theirs=reported, ours=known)
                    link = record.reachable_link()
                    if link is not None:
                        link.checkpointResources(known)
                return
            except Incompatible as exc:
                log.warn("The registry's checkpointed resources of agent {id} no longer fit it ({e}); taking the "
                         "agent's {theirs}", id=record.id, e=exc, theirs=reported)
                self.set(record.id, reported).addErrback(lambda _: None)  # persist has reported it
        record.checkpointed = reported
        record.total = apply_checkpointed(static, reported) if reported else static

    def set(self, agent_id: str, checkpointed: Resources) -> defer.Deferred:
        """Record an agent's new checkpointed resources; fires once the registry holds them."""
        self.known[agent_id] = checkpointed
        return self._persist(CheckpointResources(agent_id, checkpointed.to_json()))

    def forget(self, agent_id: str) -> None:
        """The agent left for good (the registry mutation that removes it removes these too)."""
        self.known.pop(agent_id, None)


class ResourceOperations:
    """Applies RESERVE, UNRESERVE, CREATE and DESTROY from frameworks and operators (see the module)."""

    def __init__(self, allocator: IAllocator, agents: AgentManager, offers: OfferBook, frameworks: FrameworkManager,
                 resources: AgentResources, security: Security, metrics: Counter[str],
                 request_allocation: Callable[[Iterable[str]], None]):
        self._allocator = allocator
        self._agents = agents
        self._offers = offers
        self._frameworks = frameworks
        self._resources = resources
        self._security = security
        self._metrics = metrics
        self._request_allocation = request_allocation

    # -- from frameworks ----------------------------------------------------------------------------

    def accept(self, framework: FrameworkRecord, agent: AgentRecord, operation: Operation,
               remaining: Resources) -> tuple[Resources, defer.Deferred | None]:
        """Apply one operation of an ACCEPT to ``remaining``, what is left of its offers: returns what is
        left after it and the Deferred of its durability, or ``remaining`` and None when it is dropped
        (logged, as Mesos drops invalid operations; later operations of the call still run)."""
        problem = operation.error and f"Operation attempted with invalid resources: {operation.error}"
        if problem is None and operation.id is not None:
            problem = (f"Operation requested feedback, but agent {agent.id} does not have the required "
                       f"RESOURCE_PROVIDER capability")
        if problem is None:
            problem = self._invalid(operation.type, operation.resources, agent, framework.info.principal,
                                    framework.info)
        if problem is None:
            problem = self._unauthorized(operation.type, operation.resources, framework.principal)
        consumed, converted = ResourceOperation(operation.type, operation.resources).conversion()
        if problem is None and not remaining.contains(consumed):
            problem = f"{consumed} are not in the offers (what is left of them: {remaining})"
        if problem is not None:
            self._metrics["operations_dropped"] += 1
            log.warn("Dropping {type} operation of framework {fw} on agent {agent}: {why}", type=operation.type,
                     fw=framework.id, agent=agent.id, why=problem)
            return remaining, None
        log.info("Applying {type} of {r} from framework {fw} to agent {agent}", type=operation.type,
                 r=operation.resources, fw=framework.id, agent=agent.id)
        self._allocator.updateAllocation(framework.id, agent.id, consumed, converted)
        return remaining - consumed + converted, self._apply(agent, consumed, converted)

    # -- from operators ------------------------------------------------------------------------------

    def operate(self, agent_id: str, kind: str, resources: Resources, principal: str | None) -> defer.Deferred:
        """An operator's operation on an agent's free resources: fires once the registry holds it, or fails
        with :class:`OperationRefused` (400 invalid or unknown agent, 403 not authorized, 409 not free)."""
        try:
            return self._operate(agent_id, kind, resources, principal)
        except OperationRefused as refused:
            return defer.fail(refused)

    def _operate(self, agent_id: str, kind: str, resources: Resources, principal: str | None) -> defer.Deferred:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise OperationRefused(400, "No agent found with specified ID")
        problem = self._invalid(kind, resources, agent, principal, None)
        if problem is not None:
            raise OperationRefused(400, f"Invalid {kind} operation on agent {agent.id}: {problem}")
        problem = self._unauthorized(kind, resources, principal)
        if problem is not None:
            raise OperationRefused(403, problem)
        consumed, converted = ResourceOperation(kind, resources).conversion()
        self._rescind_offers(agent.id, consumed)
        if not self._allocator.updateAvailable(agent.id, consumed, converted):
            raise OperationRefused(409, f"Insufficient resources on agent {agent.id}: {consumed} are not all "
                                        f"free (in use by tasks, or unknown to the agent)")
        log.info("Applying {type} of {r} from principal {p} to agent {agent}", type=kind, r=resources,
                 p=principal or "(none)", agent=agent.id)
        d = self._apply(agent, consumed, converted)
        self._request_allocation([agent.id])
        return d

    def _rescind_offers(self, agent_id: str, required: Resources) -> None:
        """Withdraw offers of the agent that hold what an operation needs, until they hold all of it
        (Mesos rescinds, leaving a 5 s refusal so that the frameworks do not get it back at once)."""
        recovered = EMPTY
        for offer in sorted(self._offers.on_agent(agent_id), key=lambda o: o.id):
            if recovered.contains(required):
                break
            if required - offer.resources == required:
                continue  # holds nothing of it
            self._offers.take(offer.id)
            self._allocator.recoverResources(offer.framework_id, agent_id, offer.resources, Filters())
            self._frameworks.send(offer.framework_id, api.rescind_event(offer.id))
            recovered = recovered + offer.resources

    # -- both ------------------------------------------------------------------------------------------

    def _invalid(self, kind: str, resources: Resources, agent: AgentRecord, principal: str | None,
                 framework: FrameworkInfo | None) -> str | None:
        if kind == RESERVE:
            return validate_reserve(resources, principal, framework)
        if kind == UNRESERVE:
            return validate_unreserve(resources)
        if kind == CREATE:
            return validate_create(resources, agent.checkpointed, principal, framework)
        if kind == DESTROY:
            return validate_destroy(resources, agent.checkpointed, agent.used())
        return f"Offer operation {kind} is not supported"

    def _unauthorized(self, kind: str, resources: Resources, principal: str | None) -> str | None:
        """Why ``principal`` may not do this (each resource's object asked once), or None."""
        action = ACTIONS[kind]
        objects: set[str | None] = set()
        for key in resources.keys():
            if kind == RESERVE or kind == CREATE:
                objects.add(key[1])
            elif kind == UNRESERVE:
                objects.add(reservations_of(key)[-1].principal)
            else:
                disk = disk_of(key)
                objects.add(disk.principal if disk is not None else None)
        for obj in sorted(objects, key=lambda o: o or ""):
            if not self._security.authorize(action, principal, obj):
                self._metrics["operations_denied"] += 1
                what = {"reserve_resources": "reserve resources for role", "create_volumes": "create volumes for role",
                        "unreserve_resources": "unreserve resources reserved by principal",
                        "destroy_volumes": "destroy volumes created by principal"}[action]
                return f"Principal {principal or '(none)'} is not authorized to {what} {obj or '(none)'}"
        return None

    def _apply(self, agent: AgentRecord, consumed: Resources, converted: Resources) -> defer.Deferred:
        """Change the agent's resources (the allocator knows already): its record, the registry, the agent."""
        agent.total = agent.total - consumed + converted
        agent.checkpointed = agent.total.checkpointed()
        d = self._resources.set(agent.id, agent.checkpointed)
        link = agent.reachable_link()
        if link is not None:
            link.checkpointResources(agent.checkpointed)
        return d
