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

Quota (:mod:`mesostw.allocator.quota`) is its own concern, which the allocator
consults only once some role has one: allocation then runs in two stages, as in
Mesos 1.9+. First, roles below their guarantees are offered resources towards
them; then everyone by DRF, never beyond a role's limits (or its ancestors'),
and holding back the unreserved resources the unmet guarantees still need. A
role's reservations (static, dynamic, refined to it) count towards its quota
whether allocated or not, so offer operations keep the quota's accounting in
step with the agents' totals.

Speed: an allocation cycle over every agent costs a few dictionary look-ups per
agent and framework considered. Each agent keeps what is free on it (and whether
that is worth offering) up to date as its total and allocation change, and
which frameworks have refusals on it; the DRF orders re-position only what a
cycle changed (see :mod:`mesostw.allocator.sorter`); resources' scalar totals
are computed once per value. A single agent's allocation
(``allocate([agent_id])``, what the master runs on an event) costs what that
agent's offers cost, not a cycle.
"""

from __future__ import annotations

import random
from typing import Iterable, Protocol

from zope.interface import implementer

from mesostw.allocator.filters import RefusedResources
from mesostw.allocator.quota import Quota, QuotaTracker, shrink, unreserved_quantities
from mesostw.allocator.sorter import DRFSorter
from mesostw.interfaces import IAllocator
from mesostw.model.info import Filters
from mesostw.model.resources import EMPTY, UNRESERVED, Resources, from_millis, to_millis

#: Mesos offers nothing smaller than this (``MIN_CPUS``/``MIN_MEM``).
MIN_CPUS = to_millis(0.01)
MIN_MEM = to_millis(32)


class Clock(Protocol):
    def seconds(self) -> float: ...


def allocatable(resources: Resources) -> bool:
    """Whether ``resources`` are worth offering: at least 0.01 cpus or 32 MB of memory."""
    sums = resources.scalar_sums()
    return sums.get("cpus", 0) >= MIN_CPUS or sums.get("mem", 0) >= MIN_MEM


class _Agent:
    """An agent's resources: ``total`` and ``allocated`` (offered or in use) are the state; assigning
    either updates what is derived from them (``available`` and the flags), which allocation reads
    for every agent it considers."""

    __slots__ = ("id", "_total", "_allocated", "available", "offerable", "reserved", "refined", "active",
                 "refusers")

    def __init__(self, agent_id: str, total: Resources):
        self.id = agent_id
        self.active = True
        #: framework ID -> its refusals, for the frameworks that have refusals (maybe expired) on it; no
        #: other framework refuses anything here
        self.refusers: dict[str, RefusedResources] = {}
        self._allocated = EMPTY
        self.total = total

    @property
    def total(self) -> Resources:
        return self._total

    @total.setter
    def total(self, total: Resources) -> None:
        self._total = total
        #: whether any of its resources are reserved (only then do roles see different parts of it)
        self.reserved = any(key[1] != UNRESERVED for key in total.keys())
        #: whether any of its resources have refined reservations (only then are frameworks checked)
        self.refined = total.has_refined()
        self._derive()

    @property
    def allocated(self) -> Resources:
        return self._allocated

    @allocated.setter
    def allocated(self, allocated: Resources) -> None:
        self._allocated = allocated.interned()
        self._derive()

    def _derive(self) -> None:
        #: total - allocated, and whether it is worth offering. Both kept interned when set here (resources
        #: coming back, not the allocation loop's :meth:`take`): the agents of a quiet cluster mostly hold the
        #: same few shapes, one bag each instead of two per agent.
        self.available = (self._total - self._allocated).interned()
        self.offerable = allocatable(self.available)

    def take(self, resources: Resources) -> None:
        """Allocate ``resources``, part of :attr:`available`: the same as adding them to ``allocated``,
        without working out again what is left."""
        self._allocated = self._allocated + resources
        if resources is self.available:
            self.available = EMPTY
            self.offerable = False
        else:
            # (total - allocated) - resources == total - (allocated + resources), key by key
            self.available = self.available - resources
            self.offerable = allocatable(self.available)


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
        #: the roles' quotas and what the roles with one consume
        self._quota = QuotaTracker()
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
            self._roles.unallocated(framework.role, resources.scalars_view())
            self._quota.uncharge(framework.role, resources)
        self._forget_refusals(framework)
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
        self._forget_refusals(framework)
        self._sync_active(framework)

    def _forget_refusals(self, framework: _Framework) -> None:
        for agent_id in framework.refused.agents():
            agent = self._agents.get(agent_id)
            if agent is not None:
                agent.refusers.pop(framework.id, None)
        framework.refused.clear()

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
        self._quota.add_total(total)
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
                scalars = resources.scalars_view()
                self._by_role[framework.role].unallocated(framework.id, scalars)
                self._roles.unallocated(framework.role, scalars)
                self._quota.uncharge(framework.role, resources)
            framework.refused.forget_agent(agent_id)
        self._set_total(self._total - agent.total)
        self._quota.remove_total(agent.total)

    def activateAgent(self, agent_id: str) -> None:
        self._agents[agent_id].active = True

    def deactivateAgent(self, agent_id: str) -> None:
        self._agents[agent_id].active = False

    def _set_total(self, total: Resources) -> None:
        self._total = total
        scalars = total.scalars_view()
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
            # What a framework keeps on an agent (its tasks' resources) has a few shapes over all agents.
            framework.allocated[agent_id] = left.interned()
        else:
            framework.allocated.pop(agent_id, None)
        scalars = resources.scalars_view()
        self._by_role[framework.role].unallocated(framework_id, scalars)
        self._roles.unallocated(framework.role, scalars)
        self._quota.uncharge(framework.role, resources)
        if filters is not None and filters.refuse_seconds > 0:
            framework.refused.add(agent_id, resources, self._clock.seconds() + filters.refuse_seconds)
            agent.refusers[framework_id] = framework.refused
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
        self._total = self._total - consumed + converted
        # Quota: a RESERVE moves what the role consumes from its allocation to its reservations (an
        # UNRESERVE back); CREATE and DESTROY change neither.
        self._quota.remove_total(consumed)
        self._quota.add_total(converted)
        framework = self._frameworks.get(framework_id)
        if framework is not None:
            held = framework.allocated.get(agent_id, EMPTY)
            framework.allocated[agent_id] = (held - _clip(consumed, held) + converted).interned()
            self._quota.uncharge(framework.role, _clip(consumed, held))
            self._quota.charge(framework.role, converted)

    def updateAvailable(self, agent_id: str, consumed: Resources, converted: Resources) -> bool:
        """An operator's operation turns ``consumed`` free resources of an agent into ``converted``;
        False (and nothing changes) when they are not all free."""
        agent = self._agents.get(agent_id)
        if agent is None or not agent.available.contains(consumed):
            return False
        agent.total = agent.total - consumed + converted
        self._total = self._total - consumed + converted
        # Quota: an operator's reservation counts towards its role's quota at once, allocated or not.
        self._quota.remove_total(consumed)
        self._quota.add_total(converted)
        return True

    def updateWeights(self, weights: dict[str, float]) -> None:
        self._weights.update(weights)
        for role, weight in weights.items():
            if role in self._roles:
                self._roles.set_weight(role, weight)

    def updateQuota(self, role: str, quota: Quota) -> None:
        """Give ``role`` a quota (guarantees and limits); an empty one removes it."""
        allocations = [(framework.role, resources) for framework in self._frameworks.values()
                       for resources in framework.allocated.values()]
        self._quota.set(role, quota, allocations)

    def _charge(self, framework: _Framework, agent_id: str, resources: Resources) -> None:
        framework.allocated[agent_id] = framework.allocated.get(agent_id, EMPTY) + resources
        scalars = resources.scalars_view()
        self._by_role[framework.role].allocated(framework.id, scalars)
        self._roles.allocated(framework.role, scalars)
        if self._quota.active:
            self._quota.charge(framework.role, resources)

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
        if self._quota.active:
            return self._allocate_with_quota(candidates, now)
        offers = []
        for agent in candidates:
            if not (agent.active and agent.offerable):
                continue
            # The roles' order as it stands for this agent: charges below re-position a role only at the
            # next read of the order, for the next agent.
            for key in self._roles.ordered():
                role = key[2]
                while True:
                    candidate = agent.available
                    if agent.reserved:
                        candidate = candidate.allocatable_to(role)
                        if not allocatable(candidate):
                            break
                    picked = self._pick(role, agent, candidate, now)
                    if picked is None:
                        break
                    framework_id, offered = picked
                    offers.append((framework_id, agent.id, offered))
                    agent.take(offered)
                    self._charge(self._frameworks[framework_id], agent.id, offered)
                    if offered is candidate or not agent.offerable:
                        break
                    # A framework that cannot read refined reservations took the rest: those go to the
                    # next framework of the role that can (as in Mesos, every framework of a role gets
                    # what it may have of what is left).
                if not agent.offerable:
                    break
        return offers

    def _allocate_with_quota(self, candidates: list[_Agent], now: float) -> list[tuple[str, str, Resources]]:
        """Mesos's two stages: guarantees first, then DRF within limits and guarantees' headroom."""
        offers: list[tuple[str, str, Resources]] = []
        quota = self._quota
        guaranteed = [role for role, q in quota.quotas().items() if q.guarantees and role in self._by_role]
        for agent in candidates:
            if not guaranteed:
                break
            if agent.active:
                guaranteed = self._guarantees_stage(agent, guaranteed, now, offers)
        if self._randomize:
            random.shuffle(candidates)  # spread what the first stage took from the front of the list
        for agent in candidates:
            if agent.active:
                self._limits_stage(agent, now, offers)
        return offers

    def _guarantees_stage(self, agent: _Agent, roles: list[str], now: float,
                          offers: list[tuple[str, str, Resources]]) -> list[str]:
        """Offer ``agent``'s resources to the roles below their guarantees (up to them, and beyond within
        limits and headroom, so that offers stay usable); returns the roles still below them."""
        quota = self._quota
        below = [role for role in roles if quota.unsatisfied(role)]
        for role in sorted(below, key=lambda r: (self._roles.share(r), r)):
            available = agent.available
            if not allocatable(available):
                break
            unsatisfied = quota.unsatisfied(role)
            if not unsatisfied:
                continue
            candidate = available.allocatable_to(role)
            offered = unreserved_quantities(candidate)
            caps = quota.caps(role)
            toward = {}
            for name, amount in offered.items():
                share = min(amount, unsatisfied.get(name, 0))
                if caps is not None and name in caps:
                    share = min(share, caps[name])
                if share > 0:
                    toward[name] = share
            if not toward:
                continue  # nothing here helps this role towards its guarantees
            surplus = quota.surplus()
            allowed = {}
            for name, amount in offered.items():
                extra = amount - toward.get(name, 0)
                if caps is not None and name in caps:
                    extra = min(extra, max(caps[name] - toward.get(name, 0), 0))
                if surplus is not None and name in surplus:
                    extra = min(extra, surplus[name])
                allowed[name] = toward.get(name, 0) + extra
            candidate = shrink(candidate, offered, allowed)
            if allocatable(candidate):
                self._offer_to_role(role, agent, candidate, now, offers)
        return [role for role in below if quota.unsatisfied(role)]

    def _limits_stage(self, agent: _Agent, now: float, offers: list[tuple[str, str, Resources]]) -> None:
        """Offer ``agent``'s resources by DRF, each role within its limits (and its ancestors'), and
        leaving unallocated the unreserved resources that unmet guarantees need."""
        quota = self._quota
        available = agent.available
        surplus = quota.surplus()
        if not allocatable(available):
            return
        if surplus is not None and not available.reserved() and not allocatable(_cut(available, surplus)):
            return  # everything free here is held back for guarantees
        for role in list(self._roles.sorted()):
            caps = quota.caps(role)
            while True:
                candidate = available.allocatable_to(role)
                if caps is not None or surplus is not None:
                    offered = unreserved_quantities(candidate)
                    allowed = {}
                    for name, amount in offered.items():
                        left = amount
                        if caps is not None and name in caps:
                            left = min(left, caps[name])
                        if surplus is not None and name in surplus:
                            left = min(left, surplus[name])
                        if left < amount:
                            allowed[name] = left
                    if allowed:
                        candidate = shrink(candidate, offered, allowed)
                if not allocatable(candidate):
                    break
                taken = self._offer_to_role(role, agent, candidate, now, offers)
                if taken is None:
                    break
                available = agent.available
                surplus = quota.surplus()
                caps = quota.caps(role)
                if taken is candidate or not allocatable(available):
                    break
                # A framework that cannot read refined reservations took the rest: those go to the
                # role's next framework that can, as in the stage without quota.
            if not allocatable(available):
                break

    def _offer_to_role(self, role: str, agent: _Agent, candidate: Resources, now: float,
                       offers: list[tuple[str, str, Resources]]) -> Resources | None:
        """Offer ``candidate`` to the first framework of ``role`` that does not refuse it (without refined
        reservations to one that cannot read them); what it was offered, or None."""
        picked = self._pick(role, agent, candidate, now)
        if picked is None:
            return None
        framework_id, offered = picked
        offers.append((framework_id, agent.id, offered))
        agent.take(offered)
        self._charge(self._frameworks[framework_id], agent.id, offered)
        return offered

    def _pick(self, role: str, agent: _Agent, candidate: Resources, now: float) -> tuple[str, Resources] | None:
        """The first framework of ``role`` in DRF order that takes ``candidate`` (without refined
        reservations if it cannot read them), with what it is offered."""
        refusers = agent.refusers
        for key in self._by_role[role].ordered():
            framework_id = key[2]
            offered = candidate
            if agent.refined and not self._frameworks[framework_id].refinement:
                offered = candidate.without_refined()
                if not allocatable(offered):
                    continue
            refused = refusers.get(framework_id)
            if refused is not None:
                hidden = refused.hides(agent.id, offered, now)
                if hidden:
                    continue
                if hidden is None:  # all its refusals here expired
                    del refusers[framework_id]
            return framework_id, offered
        return None

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

    def quota(self, role: str) -> Quota:
        """The quota of ``role`` (empty when it has none)."""
        return self._quota.get(role)

    def quota_consumed(self, role: str) -> dict[str, float]:
        """What a role with quota consumes: its reservations and the unreserved resources allocated
        (offered or in use) to it and to the roles below it."""
        return {name: from_millis(v) for name, v in sorted(self._quota.consumed(role).items())}

    def role_share(self, role: str) -> float:
        return self._roles.share(role) if role in self._roles else 0.0

    def weights(self) -> dict[str, float]:
        return dict(self._weights)


def _clip(resources: Resources, limit: Resources) -> Resources:
    """The part of ``resources`` that ``limit`` holds (guards accounting against stale input)."""
    if limit.contains(resources):
        return resources
    return resources - (resources - limit)


def _cut(resources: Resources, allowed: dict[str, int]) -> Resources:
    """The unreserved part of ``resources`` with its scalars cut down to ``allowed`` (thousandths)."""
    unreserved = resources.unreserved()
    return shrink(unreserved, unreserved_quantities(unreserved), allowed)
