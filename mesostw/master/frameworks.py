"""The frameworks a master knows: subscription, failover, disconnection, removal and recovery."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from mesostw.auth.policy import Security
from mesostw.interfaces import IAllocator, IFrameworkLink
from mesostw.master.admission import framework_refusal, takeover_refusal
from mesostw.master.events import MasterEvents
from mesostw.master.offers import OfferBook
from mesostw.master.records import CompletedFrameworks, FrameworkRecord
from mesostw.master.registry import AddFramework, Mutation, RemoveFramework
from mesostw.master.tasks import TaskTracker
from mesostw.model import scheduler_api as api
from mesostw.model.info import FrameworkInfo, MasterInfo

log = Logger()


class RegistrationRefused(Exception):
    """An agent or framework may not (re-)register; the message says why."""


class TeardownOutcome(enum.Enum):
    """What became of an operator's request to tear a framework down."""

    DONE = "done"
    UNKNOWN_FRAMEWORK = "unknown framework"
    NOT_AUTHORIZED = "not authorized"


class FrameworkManager:
    """Owns the framework records, connected or waiting out their failover timeout, and the removed ones.

    A framework's tasks are the :class:`TaskTracker`'s and its offers the :class:`OfferBook`'s; this
    manager asks them. ``persist(mutation)`` makes a change durable (a Deferred); ``expired(framework_id)``
    is called when a framework's failover timeout passes, to remove it (a teardown). Frameworks that
    subscribe (or are recovered) and subscribe again are reported to ``events`` (FRAMEWORK_ADDED and
    FRAMEWORK_UPDATED); their removal is the caller's to report, once their tasks are settled.
    """

    # pragma: no mutate start (bookkeeping, not a security check: see [tool.mutmut] in pyproject.toml)
    def __init__(self, config: Any, clock: Any, allocator: IAllocator, security: Security, tasks: TaskTracker,
                 offers: OfferBook, persist: Callable[[Mutation], defer.Deferred],
                 master_info: Callable[[], MasterInfo], master_id: str, metrics: Counter[str],
                 request_allocation: Callable[[], None], expired: Callable[[str], Any],
                 events: MasterEvents | None = None):
        self._config = config
        self._events = events if events is not None else MasterEvents(None)
        self._clock = clock
        self._allocator = allocator
        self._security = security
        self._tasks = tasks
        self._offers = offers
        self._persist = persist
        self._master_info = master_info
        self._master_id = master_id
        self._metrics = metrics
        self._request_allocation = request_allocation
        self._expired = expired
        self._records: dict[str, FrameworkRecord] = {}
        #: framework ID -> FrameworkRecord, read-only
        self.records: Mapping[str, FrameworkRecord] = MappingProxyType(self._records)
        self.completed = CompletedFrameworks(config.max_completed_frameworks)
        self._next = 0
        self.get = self._records.get

    def _new_record(self, info: FrameworkInfo, link: IFrameworkLink | None, **fields: Any) -> FrameworkRecord:
        assert info.id is not None
        tasks, completed = self._tasks.track_framework(info.id)
        record = FrameworkRecord(info=info, link=link, registered_time=self._clock.seconds(), tasks=tasks,
                                 completed_tasks=completed, marks=self._tasks.marks, **fields)
        self._records[info.id] = record
        self._allocator.addFramework(info.id, info.allocation_role, active=False,
                                     refinement="RESERVATION_REFINEMENT" in info.capabilities)
        return record

    # -- events to frameworks ---------------------------------------------------------------

    def send(self, framework_id: str, event: dict[str, Any]) -> bool:
        """Send an event to a connected framework; False when it is unknown or not connected."""
        framework = self._records.get(framework_id)
        return framework is not None and framework.send(event)

    def broadcast(self, event: dict[str, Any]) -> None:
        for framework in self._records.values():
            framework.send(event)

    # pragma: no mutate end
    # -- subscription ------------------------------------------------------------------------

    def subscribe(self, link: IFrameworkLink, info: FrameworkInfo, principal: str | None = None,
                  force: bool = False) -> str:
        """Register a framework or take one back; sends SUBSCRIBED once durable and returns its ID.

        ``principal`` is the one the connection authenticated as (None: anonymous)."""
        self._metrics["messages_register_framework"] += 1
        problem = self._check(info)
        if problem:
            raise RegistrationRefused(problem)
        info = self._authorize(info, principal)
        framework = self._records.get(info.id) if info.id else None
        if framework is not None:
            refusal = takeover_refusal(framework.id, framework.principal, principal)
            if refusal is not None:
                self._metrics["frameworks_denied"] += 1
                log.warn("Refused a subscription as framework {id}: {why}", id=framework.id, why=refusal)
                raise RegistrationRefused(refusal)
        added = framework is None
        if framework is None:
            info = attrs.evolve(info, id=info.id or self._new_id())
            framework = self._new_record(info, link, principal=principal)
            log.info("Registered framework {id} ({name}) as {user}", id=framework.id, name=info.name,
                     user=info.user)
            persisted = self._persist(AddFramework(framework.id, info.to_json()))
        else:
            if info.allocation_role != framework.info.allocation_role:
                raise RegistrationRefused("a framework may not change its role when it re-registers")
            if framework.link is not None and framework.link is not link:
                framework.link.send(api.error_event("Framework failed over"))
                framework.link.close()
            info = attrs.evolve(info, id=framework.id)
            changed = info.to_json() != framework.info.to_json()
            framework.info = info
            framework.principal = principal
            framework.link = link
            framework.reregistered_time = self._clock.seconds()
            framework.recovered = False
            framework.cancel_failover()
            # The new scheduler never saw the old offers: withdraw them without RESCIND events.
            self._offers.rescind_framework(framework.id)
            log.info("Framework {id} re-registered", id=framework.id)
            persisted = self._persist(AddFramework(framework.id, info.to_json())) if changed else defer.succeed(None)
        # SUBSCRIBED only once the registry holds the framework (its ID must survive a failover), and
        # offers only after SUBSCRIBED: before it, the framework cannot answer them.
        persisted.addCallbacks(lambda _: self._subscribed(framework, link, added), lambda _: link.close())
        return framework.id

    # pragma: no mutate start (bookkeeping, not a security check: see [tool.mutmut] in pyproject.toml)
    def _new_id(self) -> str:
        framework_id = f"{self._master_id}-{self._next:04d}"
        self._next += 1
        return framework_id

    def _subscribed(self, framework: FrameworkRecord, link: IFrameworkLink, added: bool) -> None:
        if framework.link is not link or self._records.get(framework.id) is not framework:
            return
        link.send(api.subscribed_event(framework.id, self._master_info()))
        framework.active = True
        framework.suppressed = False
        if added:
            self._events.frameworkAdded(framework)
        else:
            self._events.frameworkUpdated(framework)
        self._allocator.activateFramework(framework.id)
        self._allocator.reviveOffers(framework.id)
        self._request_allocation()

    # pragma: no mutate end
    def _check(self, info: FrameworkInfo) -> str | None:
        if not info.user:
            return "framework_info.user must not be empty"
        if not info.name:
            return "framework_info.name must not be empty"
        if info.id and info.id in self.completed:
            return f"Framework {info.id} has been removed"
        roles = self._config.roles
        if roles and info.allocation_role != "*" and info.allocation_role not in roles:
            return f"Role {info.allocation_role!r} is not present in the master's --roles"
        return None

    def _authorize(self, info: FrameworkInfo, principal: str | None) -> FrameworkInfo:
        """Bind the authenticated principal and apply the register_frameworks ACL (see admission)."""
        refusal = framework_refusal(self._security, info, principal, info.allocation_role)
        if refusal is not None:
            self._metrics["frameworks_denied"] += 1
            log.warn("Refused framework {name} of principal {p}: {why}", name=info.name, p=principal or "(none)",
                     why=refusal)
            raise RegistrationRefused(refusal)
        if principal is not None and info.principal is None:
            info = attrs.evolve(info, principal=principal)
        return info

    # pragma: no mutate start (bookkeeping, not a security check: see [tool.mutmut] in pyproject.toml)
    # -- offers ------------------------------------------------------------------------------

    def revive(self, framework_id: str) -> None:
        framework = self._records.get(framework_id)
        if framework is not None:
            framework.suppressed = False
            self._allocator.reviveOffers(framework_id)
            self._request_allocation()

    def suppress(self, framework_id: str) -> None:
        framework = self._records.get(framework_id)
        if framework is not None:
            framework.suppressed = True
            self._allocator.suppressOffers(framework_id)

    # -- going away ------------------------------------------------------------------------------

    def disconnected(self, framework_id: str, link: IFrameworkLink) -> None:
        """The scheduler's connection went away: keep its tasks for its failover timeout."""
        framework = self._records.get(framework_id)
        if framework is None or framework.link is not link:
            return
        log.info("Framework {id} disconnected; failover timeout {t}s", id=framework_id,
                 t=framework.info.failover_timeout)
        framework.link = None
        framework.active = False
        framework.unregistered_time = self._clock.seconds()
        self._allocator.deactivateFramework(framework_id)
        self._offers.rescind_framework(framework_id)
        framework.failover_timer = self._clock.callLater(framework.info.failover_timeout, self._failover_expired,
                                                         framework_id)

    def _failover_expired(self, framework_id: str) -> None:
        framework = self._records.get(framework_id)
        if framework is not None and framework.link is None:
            framework.failover_timer = None
            log.info("Framework {id} did not fail over in time; removing it", id=framework_id)
            self._expired(framework_id)

    def remove(self, framework_id: str) -> FrameworkRecord | None:
        """Forget a framework for good (its tasks are the caller's to settle); returns its record, or None."""
        framework = self._records.pop(framework_id, None)
        if framework is None:
            return None
        framework.cancel_failover()
        self._offers.rescind_framework(framework_id)
        self._allocator.removeFramework(framework_id)
        if framework.link is not None:
            framework.link.close()
            framework.link = None
        framework.active = False
        framework.unregistered_time = self._clock.seconds()
        self.completed.add(framework)
        self._persist(RemoveFramework(framework_id, framework.unregistered_time)).addErrback(lambda _: None)
        log.info("Removed framework {id}", id=framework_id)
        return framework

    # -- recovery ---------------------------------------------------------------------------------

    def recover_removed(self, framework_ids: Iterable[str]) -> None:
        """Frameworks the registry holds as removed: they may never subscribe again."""
        self.completed.ids.update(framework_ids)

    # pragma: no mutate end
    def recover(self, info: FrameworkInfo, failover_timeout: float) -> None:
        """A framework the registry or a re-registering agent knows: wait ``failover_timeout`` for it to
        subscribe again."""
        if info.id is None or info.id in self.completed:
            return
        framework = self._records.get(info.id)
        if framework is None:
            # Where frameworks must authenticate, the principal recorded is the one each proved.
            owner = info.principal if self._security.frameworks_must_authenticate else None
            framework = self._new_record(info, None, active=False, recovered=True, principal=owner)
            self._events.frameworkAdded(framework)
        if framework.link is None and framework.failover_timer is None:
            framework.failover_timer = self._clock.callLater(failover_timeout, self._failover_expired, framework.id)

    def stop(self) -> None:
        for framework in self._records.values():
            framework.cancel_failover()
