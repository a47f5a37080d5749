"""Quota: per-role guarantees and limits, the part of allocation the hierarchical allocator consults.

Pure and synchronous, like the allocator. A role's quota is a :class:`Quota` of scalar quantities
(Mesos's ``QuotaConfig``): **guarantees**, what the role is entitled to (the allocator gives roles
below their guarantee resources first, and holds enough unreserved resources back from everyone else
to satisfy them later), and **limits**, what the role may never exceed. Roles are hierarchical:
``eng/web`` is below ``eng``, and what ``eng/web`` consumes counts against ``eng``'s quota too.

A role's *consumption* is, as in Mesos 1.9+, its reservations (allocated or not) plus the unreserved
resources allocated (offered or in use) to it and to every role below it. Consumption is tracked only
while some quota is set (:attr:`QuotaTracker.active`), so that a cluster without quota pays nothing
for it; setting a quota recomputes it from the allocator's allocations.

Quantities are integer thousandths (the fixed point of :mod:`mesostw.model.resources`), so that
limits compare exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from mesostw.model.resources import Resources, format_scalar, from_millis, to_millis

Quantities = dict[str, int]


def ancestors(role: str) -> list[str]:
    """The roles above ``role``, nearest first: ``a/b/c`` -> ``["a/b", "a"]``."""
    out = []
    while "/" in role:
        role = role.rsplit("/", 1)[0]
        out.append(role)
    return out


def is_within(role: str, top: str) -> bool:
    """Whether ``role`` is ``top`` or below it."""
    return role == top or role.startswith(top + "/")


def quantities(scalars: Mapping[str, float]) -> Quantities:
    """Scalars (name -> amount) as thousandths, without zeros."""
    return {name: millis for name, amount in scalars.items() if (millis := to_millis(amount)) > 0}


def unreserved_quantities(resources: Resources) -> Quantities:
    """The unreserved scalar quantities of ``resources`` (what consumes quota when allocated)."""
    return quantities(resources.unreserved().scalars())


def _add(into: Quantities, amounts: Mapping[str, int], sign: int = 1) -> None:
    for name, amount in amounts.items():
        left = into.get(name, 0) + sign * amount
        if left > 0:
            into[name] = left
        else:
            into.pop(name, None)


def _plain(amounts: Mapping[str, int]) -> dict[str, int]:
    return dict(amounts)


@attrs.frozen
class Quota:
    """A role's guarantees and limits (thousandths per scalar name); an empty one is no quota."""

    guarantees: Mapping[str, int] = attrs.field(factory=dict, converter=_plain)
    limits: Mapping[str, int] = attrs.field(factory=dict, converter=_plain)

    @classmethod
    def of(cls, guarantees: Mapping[str, float] | None = None, limits: Mapping[str, float] | None = None) -> Quota:
        """From amounts in the resources' own units (``{"cpus": 2.5, "mem": 1024}``); a limit may be 0."""
        return cls(quantities(guarantees or {}),
                   {name: max(to_millis(amount), 0) for name, amount in (limits or {}).items()})

    def __bool__(self) -> bool:
        return bool(self.guarantees or self.limits)

    def guarantee_scalars(self) -> dict[str, float]:
        return {name: from_millis(v) for name, v in sorted(self.guarantees.items())}

    def limit_scalars(self) -> dict[str, float]:
        return {name: from_millis(v) for name, v in sorted(self.limits.items())}


class QuotaTracker:
    """Every role's quota, and what the roles with quota consume.

    The allocator tells it what it allocates and gets back (:meth:`charge`, :meth:`uncharge`), the
    agents' totals (:meth:`add_total`, :meth:`remove_total`) and, when quotas change, all it has
    allocated (:meth:`set`); it asks how far a role may go (:meth:`caps`, :meth:`unsatisfied`) and
    how much unreserved capacity is left once the guarantees not yet met are set aside
    (:meth:`surplus`). Answers are cached until a consumption they depend on changes.

    Guarantees nest: a role's guarantee holds those of the roles below it, so what a role still
    needs (:meth:`need`) is, per resource, the larger of its own shortfall and the sum of what the
    guaranteed roles below it need; a role takes towards its own guarantee only what those leave
    (:meth:`unsatisfied`), and under an ancestor's limit every role leaves room for what the
    guaranteed roles beside it still need (:meth:`caps`).
    """

    def __init__(self) -> None:
        self._quotas: dict[str, Quota] = {}
        #: role with quota -> what it and the roles below it consume
        self._consumed: dict[str, Quantities] = {}
        #: role -> the roles with quota it counts against (itself and its ancestors), nearest first
        self._watchers: dict[str, tuple[str, ...]] = {}
        #: role ("" for the top) -> the nearest roles with guarantees below it
        self._children: dict[str, tuple[str, ...]] = {}
        #: the unreserved scalars of every agent, and what of it is allocated (the latter while active)
        self._unreserved_total: Quantities = {}
        self._unreserved_allocated: Quantities = {}
        #: role -> the scalars reserved for it on every agent
        self._reserved: dict[str, Quantities] = {}
        #: answers that depend on consumption: (question, role) -> answer
        self._cache: dict[tuple[str, str], Any] = {}

    # -- configuration -----------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether any role has a quota (otherwise the allocator skips every quota step)."""
        return bool(self._quotas)

    def quotas(self) -> dict[str, Quota]:
        return dict(self._quotas)

    def get(self, role: str) -> Quota:
        return self._quotas.get(role, Quota())

    def set(self, role: str, quota: Quota, allocations: Iterable[tuple[str, Resources]]) -> None:
        """Give ``role`` this quota (an empty one removes it); ``allocations`` are every (role, resources)
        the allocator holds, from which consumption is computed anew."""
        if quota:
            self._quotas[role] = quota
        else:
            self._quotas.pop(role, None)
        self._watchers.clear()
        self._children.clear()
        self._cache.clear()
        self._consumed = {name: {} for name in self._quotas}
        self._unreserved_allocated = {}
        if not self._quotas:
            return
        for reserved_role, amounts in self._reserved.items():
            for watcher in self.watchers(reserved_role):
                _add(self._consumed[watcher], amounts)
        for allocation_role, resources in allocations:
            self.charge(allocation_role, resources)

    def watchers(self, role: str) -> tuple[str, ...]:
        """The roles with quota that ``role`` counts against: itself and its ancestors that have one."""
        found = self._watchers.get(role)
        if found is None:
            found = self._watchers[role] = tuple(r for r in (role, *ancestors(role)) if r in self._quotas)
        return found

    def guaranteed_below(self, role: str) -> tuple[str, ...]:
        """The nearest roles with guarantees strictly below ``role`` ("": the topmost ones)."""
        found = self._children.get(role)
        if found is None:
            below = [r for r, q in self._quotas.items() if q.guarantees and r != role
                     and (not role or is_within(r, role))]
            found = self._children[role] = tuple(sorted(r for r in below if not any(a in below for a in ancestors(r))))
        return found

    # -- accounting --------------------------------------------------------------------

    def add_total(self, total: Resources) -> None:
        """An agent with ``total`` joined: more unreserved capacity, and its reservations."""
        self._total(total, 1)

    def remove_total(self, total: Resources) -> None:
        self._total(total, -1)

    def _total(self, total: Resources, sign: int) -> None:
        _add(self._unreserved_total, unreserved_quantities(total), sign)
        reserved = total.reserved()
        for role in reserved.roles():
            amounts = quantities(reserved.reserved(role).scalars())
            _add(self._reserved.setdefault(role, {}), amounts, sign)
            if not self._reserved[role]:
                del self._reserved[role]
            for watcher in self.watchers(role):
                _add(self._consumed[watcher], amounts, sign)
                self._cache.clear()

    def charge(self, role: str, resources: Resources) -> None:
        """``resources`` were allocated to ``role``."""
        if self._quotas:
            self._charge(role, unreserved_quantities(resources), 1)

    def uncharge(self, role: str, resources: Resources) -> None:
        """``resources`` allocated to ``role`` came back."""
        if self._quotas:
            self._charge(role, unreserved_quantities(resources), -1)

    def _charge(self, role: str, amounts: Quantities, sign: int) -> None:
        if not amounts:
            return
        _add(self._unreserved_allocated, amounts, sign)
        watchers = self.watchers(role)
        for watcher in watchers:
            _add(self._consumed[watcher], amounts, sign)
        if watchers:
            self._cache.clear()

    def consumed(self, role: str) -> Quantities:
        """What a role with quota consumes (nothing is tracked for roles without one)."""
        return dict(self._consumed.get(role, {}))

    # -- decisions ---------------------------------------------------------------------

    def need(self, role: str) -> Quantities:
        """What a role still needs for its guarantees and those of the roles below it: per resource,
        the larger of its own shortfall and the sum of what the guaranteed roles below it need."""
        key = ("need", role)
        found = self._cache.get(key)
        if found is None:
            own: Quantities = {}
            quota = self._quotas.get(role)
            if quota is not None:
                consumed = self._consumed.get(role, {})
                own = {n: g - consumed.get(n, 0) for n, g in quota.guarantees.items() if g > consumed.get(n, 0)}
            below = self._needed_below(role)
            found = self._cache[key] = {n: max(own.get(n, 0), below.get(n, 0)) for n in own.keys() | below.keys()}
        return found

    def _needed_below(self, role: str, apart_from: str | None = None) -> Quantities:
        """The sum of what the nearest guaranteed roles below ``role`` need (but the one holding
        ``apart_from``, when given)."""
        total: Quantities = {}
        for child in self.guaranteed_below(role):
            if apart_from is None or not is_within(apart_from, child):
                _add(total, self.need(child))
        return total

    def required_headroom(self) -> Quantities:
        """Unreserved quantities that must stay unallocated for the guarantees not yet met."""
        key = ("required", "")
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._needed_below("")
        return found

    def surplus(self) -> Quantities | None:
        """How much of each resource is left to allocate beyond the guarantees not yet met (None when
        they are all met: no limit at all)."""
        required = self.required_headroom()
        if not required:
            return None
        total, allocated = self._unreserved_total, self._unreserved_allocated
        return {n: max(total.get(n, 0) - allocated.get(n, 0) - amount, 0) for n, amount in required.items()}

    def unsatisfied(self, role: str) -> Quantities:
        """What a role with guarantees may still take towards them: its shortfall, less what the
        guaranteed roles below it still need (their share of its guarantee)."""
        key = ("unsatisfied", role)
        found = self._cache.get(key)
        if found is None:
            found = {}
            quota = self._quotas.get(role)
            if quota is not None and quota.guarantees:
                consumed = self._consumed.get(role, {})
                below = self._needed_below(role)
                for name, guarantee in quota.guarantees.items():
                    left = guarantee - consumed.get(name, 0) - below.get(name, 0)
                    if left > 0:
                        found[name] = left
            self._cache[key] = found
        return found

    def caps(self, role: str) -> Quantities | None:
        """How much more of each resource ``role`` may be allocated under its limits and its ancestors',
        each leaving room for what the guaranteed roles beside ``role`` under it still need (None: no
        limit applies to it)."""
        key = ("caps", role)
        if key in self._cache:
            return self._cache[key]  # type: ignore[no-any-return]
        caps: Quantities | None = None
        for watcher in self.watchers(role):
            limits = self._quotas[watcher].limits
            if not limits:
                continue
            consumed = self._consumed[watcher]
            beside = self._needed_below(watcher, apart_from=role)
            caps = {} if caps is None else caps
            for name, limit in limits.items():
                left = max(limit - consumed.get(name, 0) - beside.get(name, 0), 0)
                caps[name] = min(caps.get(name, left), left)
        self._cache[key] = caps
        return caps


def shrink(candidate: Resources, offered: Quantities, allowed: Mapping[str, int]) -> Resources:
    """``candidate`` with its unreserved scalars (``offered``) cut down to ``allowed`` where less."""
    cut = {name: amount - allowed[name] for name, amount in offered.items()
           if name in allowed and allowed[name] < amount}
    if not cut:
        return candidate
    if "role" in cut:  # a resource of that name cannot be a keyword of Resources.of
        return candidate - Resources.parse(";".join(f"{name}:{format_scalar(v)}" for name, v in cut.items()))
    return candidate - Resources.of(**{name: from_millis(v) for name, v in cut.items()})  # type: ignore[arg-type]
