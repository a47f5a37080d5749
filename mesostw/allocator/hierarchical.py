"""The hierarchical DRF allocator: roles first, then frameworks within a role.

Pure and synchronous: the master tells it about agents, frameworks and
returned resources, and calls :meth:`HierarchicalAllocator.allocate` (every
``allocation_interval`` and after events); it answers with the offers to make.
Time comes from an injected clock (``seconds()``), used only for refusal
filters, which expire lazily.

Reserved resources go only to frameworks of their role or of its sub-roles
(hierarchical roles: ``eng``'s to ``eng/web`` too), and refined reservations only
to frameworks that can read them (RESERVATION_REFINEMENT). Offer operations
(RESERVE, UNRESERVE, CREATE, DESTROY) convert resources in place: a framework's,
in what it was offered (:meth:`HierarchicalAllocator.updateAllocation`), or an
operator's, in what is free (:meth:`HierarchicalAllocator.updateAvailable`).

Invariant (checked by property tests): for every agent, the resources
allocated to frameworks (offered or in use) never exceed its total, and free
resources are offered to at most one framework at a time.
"""

from __future__ import annotations

import random
from typing import Iterable, Protocol

from zope.interface import implementer

from mesostw.allocator.filters import RefusedResources
from mesostw.allocator.sorter import DRFSorter
from mesostw.interfaces import IAllocator
from mesostw.model.info import Filters
from mesostw.model.resources import EMPTY, Resources, to_millis

#: Mesos offers nothing smaller than this (``MIN_CPUS``/``MIN_MEM``).
MIN_CPUS = to_millis(0.01)
MIN_MEM = to_millis(32)


class Clock(Protocol):
    def seconds(self) -> float: ...


def allocatable(resources: Resources) -> bool:
    """Whether ``resources`` are worth offering: at least 0.01 cpus or 32 MB of memory."""
    cpus = mem = 0
    for name, _role, value in resources:
        if name == "cpus" and isinstance(value, int):
            cpus += value
        elif name == "mem" and isinstance(value, int):
            mem += value
    return cpus >= MIN_CPUS or mem >= MIN_MEM


class _Agent:
    __slots__ = ("id", "total", "allocated", "active", "refined")

    def __init__(self, agent_id: str, total: Resources):
        self.id = agent_id
        self.total = total
        self.allocated = EMPTY
        self.active = True
        #: whether any of its resources have refined reservations (only then are frameworks checked)
        self.refined = total.has_refined()

    @property
    def available(self) -> Resources:
        return self.total - self.allocated


class _Framework:
    __slots__ = ("id", "role", "active", "suppressed", "refused", "allocated", "refinement")

    def __init__(self, framework_id: str, role: str, refinement: bool = True):
        self.id = framework_id
        self.role = role
        self.active = True
        self.suppressed = False
        self.refused = RefusedResources()
        self.allocated: dict[str, Resources] = {}
        #: whether it may be offered refined reservations (the RESERVATION_REFINEMENT capability)
        self.refinement = refinement


@implementer(IAllocator)
class HierarchicalAllocator:
    """Weighted two-level DRF over roles and frameworks."""

    def __init__(self, clock: Clock, weights: dict[str, float] | None = None, randomize: bool = True):
        self._clock = clock
        self._weights = dict(weights or {})
        self._randomize = randomize
        self._agents: dict[str, _Agent] = {}
        self._frameworks: dict[str, _Framework] = {}
        self._roles = DRFSorter()
        self._by_role: dict[str, DRFSorter] = {}
        self._total = EMPTY
        self.allocation_runs = 0

    # -- frameworks -------------------------------------------------------

    def addFramework(self, framework_id: str, role: str, used: dict[str, Resources] | None = None,
                     active: bool = True, refinement: bool = True) -> None:
        if framework_id in self._frameworks:
            return
        framework = _Framework(framework_id, role, refinement)
        self._frameworks[framework_id] = framework
        if role not in self._by_role:
            self._by_role[role] = sorter = DRFSorter()
            sorter.set_total(self._total.scalars())
            self._roles.add(role, self._weights.get(role, 1.0))
        self._by_role[role].add(framework_id)
        for agent_id, resources in (used or {}).items():
            agent = self._agents.get(agent_id)
            if agent is not None:
                resources = _clip(resources, agent.available)
                agent.allocated = agent.allocated + resources
                self._charge(framework, agent_id, resources)
        if not active:
            self.deactivateFramework(framework_id)

    def removeFramework(self, framework_id: str) -> None:
        framework = self._frameworks.pop(framework_id, None)
        if framework is None:
            return
        for agent_id, resources in framework.allocated.items():
            agent = self._agents.get(agent_id)
            if agent is not None:
                agent.allocated = agent.allocated - resources
            self._roles.unallocated(framework.role, resources.scalars())
        sorter = self._by_role[framework.role]
        sorter.remove(framework_id)
        if not len(sorter):
            del self._by_role[framework.role]
            self._roles.remove(framework.role)

    def activateFramework(self, framework_id: str) -> None:
        framework = self._frameworks[framework_id]
        framework.active = True
        self._sync_active(framework)

    def deactivateFramework(self, framework_id: str) -> None:
        framework = self._frameworks[framework_id]
        framework.active = False
        self._sync_active(framework)

    def suppressOffers(self, framework_id: str) -> None:
        framework = self._frameworks[framework_id]
        framework.suppressed = True
        self._sync_active(framework)

    def reviveOffers(self, framework_id: str) -> None:
        framework = self._frameworks[framework_id]
        framework.suppressed = False
        framework.refused.clear()
        self._sync_active(framework)

    def _sync_active(self, framework: _Framework) -> None:
        sorter = self._by_role[framework.role]
        if framework.active and not framework.suppressed:
            sorter.activate(framework.id)
        else:
            sorter.deactivate(framework.id)

    # -- agents -------------------------------------------------------------

    def addAgent(self, agent_id: str, total: Resources, used: dict[str, Resources] | None = None) -> None:
        if agent_id in self._agents:
            self.removeAgent(agent_id)
        agent = _Agent(agent_id, total)
        self._agents[agent_id] = agent
        self._set_total(self._total + total)
        for framework_id, resources in (used or {}).items():
            framework = self._frameworks.get(framework_id)
            if framework is None:
                continue  # nobody could ever give it back
            resources = _clip(resources, agent.available)
            agent.allocated = agent.allocated + resources
            self._charge(framework, agent_id, resources)

    def removeAgent(self, agent_id: str) -> None:
        agent = self._agents.pop(agent_id, None)
        if agent is None:
            return
        for framework in self._frameworks.values():
            resources = framework.allocated.pop(agent_id, None)
            if resources:
                scalars = resources.scalars()
                self._by_role[framework.role].unallocated(framework.id, scalars)
                self._roles.unallocated(framework.role, scalars)
            framework.refused.forget_agent(agent_id)
        self._set_total(self._total - agent.total)

    def activateAgent(self, agent_id: str) -> None:
        self._agents[agent_id].active = True

    def deactivateAgent(self, agent_id: str) -> None:
        self._agents[agent_id].active = False

    def _set_total(self, total: Resources) -> None:
        self._total = total
        scalars = total.scalars()
        self._roles.set_total(scalars)
        for sorter in self._by_role.values():
            sorter.set_total(scalars)

    # -- resources ----------------------------------------------------------

    def recoverResources(self, framework_id: str, agent_id: str, resources: Resources,
                         filters: Filters | None = None) -> None:
        """Give back resources a framework declined, did not use, or whose task ended."""
        agent = self._agents.get(agent_id)
        framework = self._frameworks.get(framework_id)
        # A removed framework's resources were freed when it was removed; freeing them again would
        # take back what has since been offered to someone else.
        if agent is None or framework is None or not resources:
            return
        held = framework.allocated.get(agent_id, EMPTY)
        resources = _clip(resources, held)
        left = held - resources
        if left:
            framework.allocated[agent_id] = left
        else:
            framework.allocated.pop(agent_id, None)
        scalars = resources.scalars()
        self._by_role[framework.role].unallocated(framework_id, scalars)
        self._roles.unallocated(framework.role, scalars)
        if filters is not None and filters.refuse_seconds > 0:
            framework.refused.add(agent_id, resources, self._clock.seconds() + filters.refuse_seconds)
        agent.allocated = agent.allocated - _clip(resources, agent.allocated)

    def updateAllocation(self, framework_id: str, agent_id: str, consumed: Resources,
                         converted: Resources) -> None:
        """A framework's offer operation turned ``consumed``, of what it holds on an agent, into
        ``converted`` (the same quantities): its allocation and the agent's total change alike."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return
        agent.total = agent.total - consumed + converted
        agent.allocated = agent.allocated - _clip(consumed, agent.allocated) + converted
        agent.refined = agent.total.has_refined()
        self._total = self._total - consumed + converted
        framework = self._frameworks.get(framework_id)
        if framework is not None:
            held = framework.allocated.get(agent_id, EMPTY)
            framework.allocated[agent_id] = held - _clip(consumed, held) + converted

    def updateAvailable(self, agent_id: str, consumed: Resources, converted: Resources) -> bool:
        """An operator's operation turns ``consumed`` free resources of an agent into ``converted``;
        False (and nothing changes) when they are not all free."""
        agent = self._agents.get(agent_id)
        if agent is None or not (agent.total - agent.allocated).contains(consumed):
            return False
        agent.total = agent.total - consumed + converted
        agent.refined = agent.total.has_refined()
        self._total = self._total - consumed + converted
        return True

    def updateWeights(self, weights: dict[str, float]) -> None:
        self._weights.update(weights)
        for role, weight in weights.items():
            if role in self._roles:
                self._roles.set_weight(role, weight)

    def _charge(self, framework: _Framework, agent_id: str, resources: Resources) -> None:
        framework.allocated[agent_id] = framework.allocated.get(agent_id, EMPTY) + resources
        scalars = resources.scalars()
        self._by_role[framework.role].allocated(framework.id, scalars)
        self._roles.allocated(framework.role, scalars)

    # -- allocation ---------------------------------------------------------

    def allocate(self, agent_ids: Iterable[str] | None = None) -> list[tuple[str, str, Resources]]:
        """Offer free resources of the given agents (all when ``None``) by hierarchical DRF."""
        self.allocation_runs += 1
        if agent_ids is None:
            candidates = list(self._agents.values())
        else:
            candidates = [self._agents[a] for a in agent_ids if a in self._agents]
        if self._randomize:
            random.shuffle(candidates)
        now = self._clock.seconds()
        offers = []
        for agent in candidates:
            if not agent.active:
                continue
            available = agent.total - agent.allocated
            if not allocatable(available):
                continue
            for role in list(self._roles.sorted()):
                candidate = available.allocatable_to(role)
                if not allocatable(candidate):
                    continue
                picked = self._pick(role, agent, candidate, now)
                if picked is None:
                    continue
                framework_id, candidate = picked
                offers.append((framework_id, agent.id, candidate))
                agent.allocated = agent.allocated + candidate
                available = available - candidate
                self._charge(self._frameworks[framework_id], agent.id, candidate)
                if not allocatable(available):
                    break
        return offers

    def _pick(self, role: str, agent: _Agent, candidate: Resources, now: float) -> tuple[str, Resources] | None:
        """The first framework of ``role`` in DRF order that takes ``candidate`` (without refined
        reservations if it cannot read them), with what it is offered."""
        sorter = self._by_role[role]
        index = 0
        while True:
            framework_id = sorter.first(index)
            if framework_id is None:
                return None
            index += 1
            framework = self._frameworks[framework_id]
            offered = candidate
            if agent.refined and not framework.refinement:
                offered = candidate.without_refined()
                if not allocatable(offered):
                    continue
            if not framework.refused or not framework.refused.filtered(agent.id, offered, now):
                return framework_id, offered

    # -- inspection ---------------------------------------------------------

    def total(self) -> Resources:
        """The sum of every agent's total resources."""
        # Not self._total: agents' ranges and sets overlap (every agent has ports:[31000-32000]), so
        # subtracting a removed agent's total from the running sum drops ports others still have;
        # only the scalars of self._total (all that DRF shares use) stay exact.
        return sum((agent.total for agent in self._agents.values()), EMPTY)

    def agent_allocated(self, agent_id: str) -> Resources:
        return self._agents[agent_id].allocated

    def agent_total(self, agent_id: str) -> Resources:
        return self._agents[agent_id].total

    def framework_allocated(self, framework_id: str) -> dict[str, Resources]:
        return dict(self._frameworks[framework_id].allocated)

    def role_share(self, role: str) -> float:
        return self._roles.share(role) if role in self._roles else 0.0

    def weights(self) -> dict[str, float]:
        return dict(self._weights)


def _clip(resources: Resources, limit: Resources) -> Resources:
    """The part of ``resources`` that ``limit`` holds (guards accounting against stale input)."""
    if limit.contains(resources):
        return resources
    return resources - (resources - limit)
