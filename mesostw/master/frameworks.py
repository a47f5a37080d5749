"""The master's side of frameworks: subscription, failover, disconnection and removal.

A mixin of :class:`mesostw.master.master.Master`; it shares the master's state.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from mesostw.interfaces import IFrameworkLink
from mesostw.master.agents import RegistrationRefused
from mesostw.master.records import FrameworkRecord
from mesostw.master.registry import AddFramework, RemoveFramework
from mesostw.model import scheduler_api as api
from mesostw.model import task as T
from mesostw.model.info import FrameworkInfo
from mesostw.model.task import TaskStatus

log = Logger()


class FrameworkLifecycle:
    """Frameworks subscribing, failing over, going away and being removed."""

    frameworks: dict[str, FrameworkRecord]
    metrics: Any
    clock: Any
    config: Any

    def subscribe(self, link: IFrameworkLink, info: FrameworkInfo, force: bool = False) -> str:
        """Register a framework or take one back; sends SUBSCRIBED and returns its ID."""
        self.metrics["messages_register_framework"] += 1
        problem = self._check_framework(info)
        if problem:
            raise RegistrationRefused(problem)
        info = self._authorize_framework(link, info)
        now = self.clock.seconds()
        framework = self.frameworks.get(info.id) if info.id else None
        if framework is None:
            framework_id = info.id or self._new_framework_id()
            info = attrs.evolve(info, id=framework_id)
            framework = FrameworkRecord(info=info, link=link, registered_time=now,
                                        max_completed_tasks=self.config.max_completed_tasks_per_framework)
            self.frameworks[framework_id] = framework
            self.allocator.addFramework(framework_id, info.allocation_role, active=False)
            log.info("Registered framework {id} ({name}) as {user}", id=framework_id, name=info.name,
                     user=info.user)
            persisted = self._persist(AddFramework(framework_id, info.to_json()))
        else:
            if info.allocation_role != framework.info.allocation_role:
                raise RegistrationRefused("a framework may not change its role when it re-registers")
            if framework.link is not None and framework.link is not link:
                framework.link.send(api.error_event("Framework failed over"))
                framework.link.close()
            info = attrs.evolve(info, id=framework.id)
            changed = info.to_json() != framework.info.to_json()
            framework.info = info
            framework.link = link
            framework.reregistered_time = now
            framework.recovered = False
            if framework.failover_timer is not None and framework.failover_timer.active():
                framework.failover_timer.cancel()
            framework.failover_timer = None
            # The new scheduler never saw the old offers: withdraw them without RESCIND events.
            self._rescind_framework_offers(framework, notify=False)
            log.info("Framework {id} re-registered", id=framework.id)
            persisted = self._persist(AddFramework(framework.id, info.to_json())) if changed else defer.succeed(None)
        # SUBSCRIBED only once the registry holds the framework (its ID must survive a failover), and
        # offers only after SUBSCRIBED: before it, the framework cannot answer them.
        persisted.addCallbacks(lambda _: self._subscribed(framework, link), lambda _: link.close())
        return framework.id

    def _subscribed(self, framework: FrameworkRecord, link: IFrameworkLink) -> None:
        if framework.link is not link or self.frameworks.get(framework.id) is not framework:
            return
        link.send(api.subscribed_event(framework.id, self.info))
        framework.active = True
        framework.suppressed = False
        self.allocator.activateFramework(framework.id)
        self.allocator.reviveOffers(framework.id)
        self.requestAllocation()

    def _check_framework(self, info: FrameworkInfo) -> str | None:
        if not info.user:
            return "framework_info.user must not be empty"
        if not info.name:
            return "framework_info.name must not be empty"
        if info.id and info.id in self.completed:
            return f"Framework {info.id} has been removed"
        roles = self.config.roles
        if roles and info.allocation_role != "*" and info.allocation_role not in roles:
            return f"Role {info.allocation_role!r} is not present in the master's --roles"
        return None

    def _authorize_framework(self, link: IFrameworkLink, info: FrameworkInfo) -> FrameworkInfo:
        """Bind the authenticated principal and apply the register_frameworks ACL."""
        authenticated = link.principal
        if authenticated is not None and info.principal is not None and info.principal != authenticated:
            raise RegistrationRefused(f"Framework principal '{info.principal}' does not match the authenticated "
                                      f"principal '{authenticated}'")
        if authenticated is not None and info.principal is None:
            info = attrs.evolve(info, principal=authenticated)
        role = info.allocation_role
        if not self.security.authorizer.authorize("register_frameworks", info.principal, role):
            self.metrics["frameworks_denied"] += 1
            log.warn("Principal {p} may not register a framework with role {r}", p=info.principal, r=role)
            raise RegistrationRefused(f"Not authorized to register a framework with role '{role}' "
                                      f"(principal {info.principal or '(none)'})")
        return info

    def frameworkDisconnected(self, framework_id: str, link: IFrameworkLink) -> None:
        """The scheduler's connection went away: keep its tasks for its failover timeout."""
        framework = self.frameworks.get(framework_id)
        if framework is None or framework.link is not link:
            return
        log.info("Framework {id} disconnected; failover timeout {t}s", id=framework_id,
                 t=framework.info.failover_timeout)
        framework.link = None
        framework.active = False
        framework.unregistered_time = self.clock.seconds()
        self.allocator.deactivateFramework(framework_id)
        self._rescind_framework_offers(framework)
        framework.failover_timer = self.clock.callLater(
            framework.info.failover_timeout, self._failover_expired, framework_id)

    def _failover_expired(self, framework_id: str) -> None:
        framework = self.frameworks.get(framework_id)
        if framework is not None and framework.link is None:
            log.info("Framework {id} did not fail over in time; removing it", id=framework_id)
            self.removeFramework(framework_id)

    def removeFramework(self, framework_id: str) -> None:
        """Tear a framework down: kill its tasks everywhere and forget it."""
        framework = self.frameworks.pop(framework_id, None)
        if framework is None:
            return
        if framework.failover_timer is not None and framework.failover_timer.active():
            framework.failover_timer.cancel()
        self._rescind_framework_offers(framework, notify=False)
        for record in self.agents.values():
            if framework_id in record.tasks or any(f == framework_id for f, _ in record.executors):
                if record.link is not None and record.connected:
                    record.link.shutdownFramework(framework_id)
                for task in list(record.tasks.get(framework_id, {}).values()):
                    if not task.terminal:
                        task.record(TaskStatus(task.task_id, T.KILLED, message="Framework removed",
                                               source=T.SOURCE_MASTER, reason=T.REASON_FRAMEWORK_REMOVED,
                                               agent_id=record.id, timestamp=self.clock.seconds()))
                        self.metrics["tasks_killed"] += 1
                    framework.completed_tasks.append(task)
                record.tasks.pop(framework_id, None)
                for key in [k for k in record.executors if k[0] == framework_id]:
                    del record.executors[key]
        framework.tasks.clear()
        self.allocator.removeFramework(framework_id)
        if framework.link is not None:
            framework.link.close()
            framework.link = None
        framework.active = False
        framework.unregistered_time = self.clock.seconds()
        self.completed.add(framework)
        self._persist(RemoveFramework(framework_id, framework.unregistered_time)).addErrback(lambda _: None)
        self.requestAllocation()

    def _recover_framework(self, info: FrameworkInfo) -> None:
        """Learn of a framework from a re-registering agent (e.g. after master failover)."""
        if info.id is None or info.id in self.frameworks or info.id in self.completed:
            return
        record = FrameworkRecord(info=info, link=None, registered_time=self.clock.seconds(), active=False,
                                 recovered=True, max_completed_tasks=self.config.max_completed_tasks_per_framework)
        self.frameworks[info.id] = record
        self.allocator.addFramework(info.id, info.allocation_role, active=False)

    def recover_framework(self, info: FrameworkInfo, failover_timeout: float) -> None:
        """A framework the registry knows: wait ``failover_timeout`` for it to re-subscribe."""
        self._recover_framework(info)
        framework = self.frameworks.get(info.id or "")
        if framework is not None and framework.link is None and framework.failover_timer is None:
            framework.failover_timer = self.clock.callLater(failover_timeout, self._failover_expired, framework.id)
