"""The master's quotas: validated, made durable, handed to the allocator, and enforced on offers.

:class:`QuotaManager` owns the roles' :class:`~mesostw.model.quota.QuotaConfig` s. An update is all or
nothing, checked as Mesos's ``QuotaHandler`` checks it (``src/master/quota_handler.cpp``):

- every config valid (guarantees within limits, scalar resources, sane amounts) and its role in ``--roles``
  when the master has a whitelist;
- unless ``force``: no role's limits below what it consumes already, and the guarantees of all roles
  together within the capacity of the registered agents;
- the hierarchy: a role's guarantees hold the sum of its children's (Mesos's ``QuotaTree``; a child with
  guarantees needs a parent with guarantees), and, since guarantees must be reachable, within the
  limits of every ancestor.

Then the registry holds the change, the allocator gets it, and outstanding offers are rescinded (best
effort, as Mesos) until every role is within its limits and other roles' offers no longer stand in the
way of the new guarantees.

A role's consumption is, as in Mesos 1.9+, its reservations plus the unreserved resources its tasks and
executors (and those of the roles below it) use; offers are not consumption.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from mesostw.allocator.quota import Quota, ancestors, is_within
from mesostw.interfaces import IAllocator
from mesostw.master.offers import OfferBook
from mesostw.master.records import AgentRecord, FrameworkRecord
from mesostw.master.registry import Mutation, SetQuotas
from mesostw.master.tasks import TaskTracker
from mesostw.model.quota import QuotaConfig
from mesostw.model.resources import EMPTY
from mesostw.model.validation import ValidationError

log = Logger()


class QuotaRefused(Exception):
    """An update of quotas is invalid; the message says why (a 400)."""


class QuotaOvercommit(QuotaRefused):
    """A legacy ``SET_QUOTA`` whose guarantees overcommit the cluster (a 409 Conflict, as Mesos)."""


def _fits(amounts: Mapping[str, float], bounds: Mapping[str, float]) -> bool:
    """Whether every amount is within its bound (names without a bound are unbounded)."""
    return all(amount <= bounds[name] + 1e-9 for name, amount in amounts.items() if name in bounds)


def _format(amounts: Mapping[str, float]) -> str:
    return "{" + ", ".join(f"{name}: {value:g}" for name, value in sorted(amounts.items())) + "}"


def _sum(parts: Iterable[Mapping[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for part in parts:
        for name, amount in part.items():
            total[name] = total.get(name, 0.0) + amount
    return total


def check_tree(configs: Mapping[str, QuotaConfig]) -> str | None:
    """Why these quotas do not nest, or None: a parent's guarantees hold the sum of its children's (a
    child's guarantees need guarantees above them), and a role's guarantees fit every ancestor's limits."""
    for role in sorted(configs):
        config = configs[role]
        if config.guarantees:
            parents = ancestors(role)
            if parents:
                parent = configs.get(parents[0])
                children = [c for r, c in configs.items() if r != parents[0] and ancestors(r)[:1] == [parents[0]]]
                total = _sum(c.guarantees for c in children)
                mine = parent.guarantees if parent is not None else {}
                if any(total.get(name, 0.0) > mine.get(name, 0.0) + 1e-9 for name in total):
                    return (f"Parent role '{parents[0]}' with guarantees {_format(mine)} does not contain the sum of "
                            f"its children's guarantees {_format(total)}")
            for ancestor in parents:
                above = configs.get(ancestor)
                if above is not None and not _fits(config.guarantees, above.limits):
                    return (f"Role '{role}' has guarantees {_format(config.guarantees)} beyond the limits "
                            f"{_format(above.limits)} of role '{ancestor}'")
    return None


def total_guarantees(configs: Mapping[str, QuotaConfig]) -> dict[str, float]:
    """All roles' guarantees, each counted once: those of the topmost roles that have guarantees hold the rest."""
    top = [c for r, c in configs.items() if c.guarantees
           and not any(a in configs and configs[a].guarantees for a in ancestors(r))]
    return _sum(c.guarantees for c in top)


class QuotaManager:
    """The roles' quotas, the only code that changes them.

    ``persist(mutation)`` makes a change durable; ``agents()`` and ``frameworks()`` give the registered
    agents and frameworks (for consumption and capacity); ``rescind(offer)`` withdraws an offer (the
    framework is told); ``request_allocation()`` asks for an allocation soon.
    """

    def __init__(self, allocator: IAllocator, tasks: TaskTracker, offers: OfferBook,
                 persist: Callable[[Mutation], defer.Deferred], agents: Callable[[], Iterable[AgentRecord]],
                 frameworks: Callable[[], Iterable[FrameworkRecord]], rescind: Callable[[Any], None],
                 request_allocation: Callable[[], None], whitelist: Callable[[], tuple[str, ...] | None]):
        self._allocator = allocator
        self._tasks = tasks
        self._offers = offers
        self._persist = persist
        self._agents = agents
        self._frameworks = frameworks
        self._rescind = rescind
        self._request_allocation = request_allocation
        self._whitelist = whitelist
        #: role -> its QuotaConfig (roles with the default quota are not here)
        self.configs: dict[str, QuotaConfig] = {}

    def recover(self, quotas: Mapping[str, dict[str, Any]]) -> None:
        """The quotas the registry holds (a newly elected master's)."""
        for role, data in quotas.items():
            try:
                config = QuotaConfig.from_json(data)
            except ValidationError as exc:
                log.error("Skipping the unreadable quota of role {role} in the registry: {e}", role=role, e=exc)
                continue
            self._apply(config)

    def _apply(self, config: QuotaConfig) -> None:
        if config.default:
            self.configs.pop(config.role, None)
        else:
            self.configs[config.role] = config
        self._allocator.updateQuota(config.role, Quota.of(config.guarantees, config.limits))

    # -- queries ------------------------------------------------------------------------

    def sorted(self) -> list[QuotaConfig]:
        return [self.configs[role] for role in sorted(self.configs)]

    def consumed(self, role: str) -> dict[str, float]:
        """What ``role`` and the roles below it consume: reservations and the unreserved resources their
        tasks and executors use (scalars)."""
        total = EMPTY
        for agent in self._agents():
            reserved = agent.total.reserved()
            for reserved_role in reserved.roles():
                if is_within(reserved_role, role):
                    total = total + reserved.reserved(reserved_role)
        for framework in self._frameworks():
            if is_within(framework.info.allocation_role, role):
                total = total + self._tasks.used_by(framework.id).unreserved()
        return {name: amount for name, amount in total.scalars().items() if amount > 0}

    def offered(self, role: str) -> dict[str, float]:
        """The unreserved scalars of the outstanding offers to ``role`` and the roles below it."""
        total = EMPTY
        for offer in self._offers:
            if is_within(offer.role, role):
                total = total + offer.resources.unreserved()
        return {name: amount for name, amount in total.scalars().items() if amount > 0}

    def capacity(self) -> dict[str, float]:
        """The scalars of every registered agent."""
        return _sum(agent.total.scalars() for agent in self._agents())

    # -- changes --------------------------------------------------------------------------

    def check(self, configs: list[QuotaConfig], force: bool, legacy: bool = False) -> None:
        """Raise :class:`QuotaRefused` (:class:`QuotaOvercommit` for a legacy request) unless ``configs`` may
        replace the roles' current quotas."""
        whitelist = self._whitelist()
        for config in configs:
            if whitelist and config.role not in whitelist:
                raise QuotaRefused(f"Invalid QuotaConfig: '{config.role}' is not on the roles whitelist")
        if not force:
            for config in configs:
                consumed = self.consumed(config.role)
                if not _fits(consumed, config.limits):
                    raise QuotaRefused(
                        f"Invalid QuotaConfig: Role '{config.role}' is already consuming {_format(consumed)}; "
                        f"this is more than the requested limits {_format(config.limits)} (use 'force' flag to "
                        f"bypass this check)")
        after = dict(self.configs)
        for config in configs:
            if config.default:
                after.pop(config.role, None)
            else:
                after[config.role] = config
        problem = check_tree(after)
        if problem:
            raise QuotaRefused(f"Invalid QuotaConfig: {problem}")
        if not force:
            guarantees, capacity = total_guarantees(after), self.capacity()
            if any(amount > capacity.get(name, 0.0) + 1e-9 for name, amount in guarantees.items()):
                message = (f"total quota guarantees {_format(guarantees)} exceed cluster capacity "
                           f"{_format(capacity)} (use 'force' flag to bypass this check)")
                if legacy:
                    raise QuotaOvercommit(f"Quota guarantees overcommit the cluster: {message}")
                raise QuotaRefused(f"Invalid QuotaConfig: {message}")

    def update(self, configs: list[QuotaConfig], force: bool = False, legacy: bool = False) -> defer.Deferred:
        """Check ``configs`` (see :meth:`check`), make them durable, apply them and rescind the offers that
        stand in their way; the Deferred fails with :class:`QuotaRefused` (nothing changed), or with the
        registry's refusal."""
        try:
            self.check(configs, force, legacy)
        except QuotaRefused as exc:
            return defer.fail(exc)
        mutation = SetQuotas({c.role: None if c.default else c.to_json() for c in configs})
        d = self._persist(mutation)
        d.addCallback(lambda _: self._updated(configs))
        return d

    def _updated(self, configs: list[QuotaConfig]) -> None:
        for config in configs:
            log.info("Quota of role {role} is now guarantees {g}, limits {lim}", role=config.role,
                     g=_format(config.guarantees), lim=_format(config.limits))
            self._apply(config)
        for config in configs:
            self._enforce(config)
        self._request_allocation()

    def _enforce(self, config: QuotaConfig) -> None:
        """Best effort, as Mesos: rescind offers of the role's subtree until it is within its limits, then
        offers of other roles until what it has and what was rescinded cover its guarantees."""
        role = config.role
        if config.limits:
            held = _sum([self.consumed(role), self.offered(role)])
            for offer in list(self._offers):
                if _fits(held, config.limits):
                    break
                if is_within(offer.role, role):
                    for name, amount in offer.resources.unreserved().scalars().items():
                        held[name] = held.get(name, 0.0) - amount
                    self._rescind(offer)
        if config.guarantees:
            held = _sum([self.consumed(role), self.offered(role)])
            for offer in list(self._offers):
                if all(held.get(n, 0.0) >= amount - 1e-9 for n, amount in config.guarantees.items()):
                    break
                if not is_within(offer.role, role):
                    for name, amount in offer.resources.unreserved().scalars().items():
                        held[name] = held.get(name, 0.0) + amount
                    self._rescind(offer)

    # -- reporting -----------------------------------------------------------------------

    def role_quota(self, role: str) -> dict[str, Any] | None:
        """``/roles``' ``quota`` of a role (Mesos 1.9+): guarantee, limit and consumption; None without one."""
        config = self.configs.get(role)
        if config is None:
            return None
        return {"role": role, "guarantee": dict(sorted(config.guarantees.items())),
                "limit": dict(sorted(config.limits.items())), "consumed": dict(sorted(self.consumed(role).items()))}
