"""The runtime: offers, launches, status updates, kills, health results, the periodic sweep.

Everything that happens to instances goes through here; after any change the apps
concerned are handed to the :class:`~frameworks.service.deployer.Deployer`, which
decides what they need next, and offers are then suppressed or revived. Instance
records are written before their task is launched, so a new leader never loses or
duplicates one; kills decided before a failover are sent again after it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure

from frameworks.service.appdef import HealthCheck, ReadinessCheck
from frameworks.service.deployer import Deployer
from frameworks.service.events import EventBus, ip_addresses
from frameworks.service.health import HealthState, ReadinessState, Result
from frameworks.service.instances import CONDITIONS, RUNNING_GOAL, STOPPED_GOAL, Instance, new_task_id
from frameworks.service.matching import Candidate, Launch, match_offer
from frameworks.service.monitor import HealthMonitor
from frameworks.service.pathid import unsafe
from frameworks.service.probes import Prober
from frameworks.service.state import ServiceState
from frameworks.service.storage import Storage
from frameworks.service.taskinfo import task_info
from frameworks.service.timestamps import format_ts
from mesostw.model import task as T
from mesostw.model.info import Filters
from mesostw.model.task import Offer, TaskStatus

log = Logger()

#: Seconds after which a kill that brought no terminal update is sent again.
KILL_RESEND = 30.0


class Runtime:
    def __init__(self, state: ServiceState, storage: Storage, bus: EventBus, clock: Any, config: Any,
                 prober: Prober):
        self.state = state
        self.storage = storage
        self.bus = bus
        self.clock = clock
        self.config = config
        self.monitor = HealthMonitor(clock, prober, config.health_check_concurrency, self.health_result,
                                     self.readiness_result)
        self.driver: Any = None
        self.registered = False
        self.suppressed = False
        self.declined = False
        self.want_revive = False
        self.metrics: Counter[str] = Counter()
        self._tick: Any = None
        self._wakeup: Any = None
        self._last_reconcile = 0.0
        self.deployer = Deployer(self, state, storage, bus, clock)

    # -- lifecycle -----------------------------------------------------------------------------

    def attach(self, driver: Any) -> None:
        self.driver = driver
        self._tick = self.clock.callLater(self.config.scale_apps_interval, self._periodic)

    def stop(self) -> None:
        for call in (self._tick, self._wakeup):
            if call is not None and call.active():
                call.cancel()
        self._tick = self._wakeup = None
        self.deployer.stop()
        self.monitor.stop()

    def recovered(self) -> None:
        """Resume checks of instances a new leader found running."""
        for instance in self.state.instances:
            spec = self.state.spec_of(instance)
            if instance.running and instance.kill_reason is None and spec is not None:
                self.monitor.watch(instance, spec)

    # -- scheduler callbacks -------------------------------------------------------------------

    def registered_as(self, framework_id: str) -> None:
        if self.state.framework_id != framework_id:
            self.state.framework_id = framework_id
            self.storage.framework_id(framework_id).addErrback(self.write_failed, "the framework ID")
        self.reregistered()

    def reregistered(self) -> None:
        self.registered = True
        self.suppressed = False
        self.reconcile()
        self._resend_kills()
        self.converge(self.deployer.all_apps())

    def _resend_kills(self) -> None:
        """Kills decided before a failover (or lost with a master) are sent again."""
        now = self.clock.seconds()
        for instance in self.state.instances:
            if instance.launched and (instance.killing or instance.kill_reason is not None):
                instance.kill_sent_at = now
                self.monitor.unwatch(instance.task_id)
                self._send_kill(instance)

    def disconnected(self) -> None:
        self.registered = False

    def reconcile(self) -> None:
        """Ask the master for every known task, then for whatever else it holds of ours."""
        if self.driver is None:
            return
        self._last_reconcile = self.clock.seconds()
        known = [TaskStatus(i.task_id, i.state, agent_id=i.agent_id, timestamp=self._last_reconcile)
                 for i in self.state.instances if i.launched]
        if known:
            self.driver.reconcileTasks(known)
        self.driver.reconcileTasks([])

    def resource_offers(self, offers: list[Offer]) -> None:
        now = self.clock.seconds()
        self.metrics["offers_received"] += len(offers)
        for offer in offers:
            candidates = self._candidates(now)
            if not candidates:
                self._decline(offer)
                continue
            match = match_offer(offer, candidates, self.config.mesos_role, self.config.max_instances_per_offer, now)
            for app_id, result in match.results:
                self.state.queue.entry(app_id).record(result)
            if not match.launches:
                self._decline(offer)
                continue
            self._launch(offer, match.launches, now)
        self.update_offers()

    def _candidates(self, now: float) -> list[Candidate]:
        out = []
        entries = sorted(self.state.queue.waiting(), key=lambda e: (e.since or 0.0, e.app_id))
        for entry in entries:
            app = self.state.apps.get(entry.app_id)
            if app is None or entry.pending <= 0 or entry.backoff.left(now) > 0:
                continue
            placed = tuple(i.placement() for i in self._members(app.id)) if app.constraints else ()
            out.append(Candidate(app, entry.pending, placed))
        return out

    def _members(self, app_id: str) -> list[Instance]:
        app = self.state.apps.get(app_id)
        return [i for i in self.state.instances.of_app(app_id)
                if not i.gone and i.goal == RUNNING_GOAL and not self.deployer.inactive(i, app)]

    def _decline(self, offer: Offer) -> None:
        self.metrics["offers_declined"] += 1
        self.declined = True
        if self.driver is not None:
            self.driver.declineOffer(offer.id, Filters(self.config.decline_offer_duration))

    def _launch(self, offer: Offer, launches: Iterable[Launch], now: float) -> None:
        created: list[tuple[Instance, dict[str, Any]]] = []
        for launch in launches:
            app = launch.app
            instance = Instance(task_id=new_task_id(app.id), app_id=app.id, version=app.version,
                                config_version=app.last_config_change_at, agent_id=offer.agent_id,
                                host=offer.hostname, ports=list(launch.host_ports),
                                service_ports=app.service_ports, attributes=dict(offer.attributes),
                                state=T.STAGING, staged_at=now, launched=False)
            if app.readiness_checks:
                instance.readiness = ReadinessState(app.readiness_checks[0].name)
            self.state.instances.add(instance)
            self.state.specs[(app.id, app.version)] = app
            entry = self.state.queue.entry(app.id)
            entry.pending = max(0, entry.pending - 1)
            created.append((instance, task_info(app, instance.task_id, offer.agent_id, offer.hostname,
                                                launch.resources, launch.host_ports)))
        ops = [op for instance, _ in created for op in self.storage.instance_ops(instance.to_store())]

        def written(_: Any) -> None:
            go = []
            for instance, info in created:
                if self.state.instances.get(instance.task_id) is instance and not instance.killing \
                        and instance.goal == RUNNING_GOAL:
                    instance.launched = True
                    go.append(info)
                else:
                    self._forget(instance)
            if self.driver is None:
                return
            if go:
                self.metrics["tasks_launched"] += len(go)
                # the rest of the offer may come straight back: more instances may wait for it
                self.driver.launchTasks([offer.id], go, Filters(0.0))
            else:
                self.driver.declineOffer(offer.id)
            for instance, _ in created:
                if instance.launched:
                    self._instance_event(instance)

        def failed(failure: Failure) -> None:
            log.failure("Could not record instances; not launching them", failure)
            for instance, _ in created:
                self.state.instances.remove(instance.task_id)
            if self.driver is not None:
                self.driver.declineOffer(offer.id)
            self.converge({instance.app_id for instance, _ in created})

        self.storage.commit(ops).addCallbacks(written, failed)

    def status_update(self, status: TaskStatus) -> None:
        now = self.clock.seconds()
        instance = self.state.instances.get(status.task_id)
        if instance is None:
            self._unknown_task(status)
            return
        previous = instance.state
        changed = previous != status.state
        instance.state = status.state
        if status.message:
            instance.message = status.message
        persist = False
        if status.state == T.RUNNING and instance.started_at is None:
            instance.started_at = now
            persist = True
        if status.state == T.UNREACHABLE:
            if instance.unreachable_since is None:
                instance.unreachable_since = now
                persist = True
        elif instance.unreachable_since is not None:
            instance.unreachable_since = None
            persist = True
        if changed:
            self._status_events(instance, status)
        if instance.gone:
            self._ended(instance, status, now)
        else:
            if status.state == T.RUNNING and not instance.killing and not self.monitor.watching(instance.task_id):
                spec = self.state.spec_of(instance)
                if spec is not None:
                    self.monitor.watch(instance, spec)
            elif status.state != T.RUNNING:
                self.monitor.unwatch(instance.task_id)
            if persist:
                self._persist(instance)
            if status.healthy is not None and status.state == T.RUNNING:
                self._agent_health(instance, status)
        if changed:
            self.converge([instance.app_id])

    def _agent_health(self, instance: Instance, status: TaskStatus) -> None:
        """The result of the check the task's executor runs (COMMAND, MESOS_*), from its status update."""
        spec = self.state.spec_of(instance)
        check = next((c for c in spec.health_checks if c.on_agent), None) if spec is not None else None
        if check is None:
            return
        known = instance.health[check.index] if check.index < len(instance.health) else None
        if status.reason == T.REASON_RECONCILIATION and known is not None and known.alive == status.healthy:
            return  # the master repeating the last health it saw: no new probe result
        cause = None if status.healthy else (status.message or f"{check.protocol} health check failed")
        self.health_result(instance, check, Result(bool(status.healthy), cause), from_agent=True)

    def _unknown_task(self, status: TaskStatus) -> None:
        if status.terminal or status.state == T.UNKNOWN:
            if self.bus.wants("unknown_instance_terminated_event"):
                self.bus.publish("unknown_instance_terminated_event", instanceId=status.task_id,
                                 runSpecId=_app_of_task(status.task_id), condition=_condition(status.state))
            return
        log.info("Killing task {task} that no app knows", task=status.task_id)
        self.metrics["unknown_tasks_killed"] += 1
        if self.driver is not None:
            self.driver.killTask(status.task_id, status.agent_id)

    def _ended(self, instance: Instance, status: TaskStatus, now: float) -> None:
        self._forget(instance)
        app = self.state.apps.get(instance.app_id)
        unexpected = instance.goal == RUNNING_GOAL
        if unexpected and app is not None:
            self.metrics["tasks_failed"] += 1
            failure = self.state.failures[app.id] = {
                "appId": app.id, "host": instance.host, "message": status.message or instance.message or "",
                "state": status.state, "taskId": instance.task_id, "instanceId": instance.task_id,
                "slaveId": instance.agent_id, "timestamp": format_ts(now), "version": instance.version,
            }
            self.storage.commit(self.storage.failure_ops(failure)).addErrback(self.write_failed,
                                                                               f"the last failure of {app.id}")
            # an offer that expired while the launch was being recorded is no failure of the app
            if instance.config_version == app.last_config_change_at and status.reason != T.REASON_INVALID_OFFERS:
                self.state.queue.failed(app.id, now, app.spec["backoffSeconds"], app.spec["backoffFactor"],
                                        app.spec["maxLaunchDelaySeconds"])

    def _forget(self, instance: Instance) -> None:
        """Drop an instance that is gone for good (from memory and the store)."""
        self.monitor.unwatch(instance.task_id)
        if self.state.instances.get(instance.task_id) is instance:
            self.state.instances.remove(instance.task_id)
        self.storage.commit(self.storage.delete_instance_ops(instance.task_id)).addErrback(
            self.write_failed, instance.task_id)
        self.state.forget_unused_specs(instance.app_id)
        self.converge([instance.app_id])

    def _persist(self, instance: Instance) -> None:
        if not instance.launched and self.state.instances.get(instance.task_id) is not instance:
            return
        self.storage.commit(self.storage.instance_ops(instance.to_store())).addErrback(
            self.write_failed, instance.task_id)

    def write_failed(self, failure: Failure, what: str) -> None:
        self.metrics["store_errors"] += 1
        log.failure("Could not write {what}", failure, what=what)

    # -- kills ---------------------------------------------------------------------------------

    def kill(self, instance: Instance, reason: str, goal: str = STOPPED_GOAL) -> None:
        """Kill an instance; with ``goal`` RUNNING it is replaced once gone (a failure), else not."""
        changed = instance.goal != goal or instance.kill_reason != reason
        instance.goal = goal
        instance.kill_reason = reason
        if not instance.launched:
            self._forget(instance)
            return
        if instance.kill_sent_at is None:
            instance.kill_sent_at = self.clock.seconds()
            self.monitor.unwatch(instance.task_id)
            self._send_kill(instance)
            self.metrics["tasks_killed"] += 1
        if changed:
            self._persist(instance)
        self.converge([instance.app_id])

    def _send_kill(self, instance: Instance) -> None:
        if self.driver is None:
            return
        spec = self.state.spec_of(instance)
        grace = spec.spec.get("taskKillGracePeriodSeconds") if spec is not None else None
        self.driver.killTask(instance.task_id, instance.agent_id, gracePeriod=grace)

    # -- health --------------------------------------------------------------------------------

    def health_result(self, instance: Instance, check: HealthCheck, result: Result, from_agent: bool = False) -> None:
        """A check's result: ``from_agent`` when the task's executor ran it (it has applied the grace
        period, and kills the task itself after too many failures)."""
        if self.state.instances.get(instance.task_id) is not instance or instance.killing:
            return
        now = self.clock.seconds()
        while len(instance.health) <= check.index:
            instance.health.append(None)
        health = instance.health[check.index]
        if health is None:
            health = instance.health[check.index] = HealthState()
        spec = self.state.spec_of(instance)
        checks = len(spec.health_checks) if spec is not None else 0
        before = instance.healthy(checks)
        changed = health.record(result, now, check, instance.started_at, grace=not from_agent)
        if not result.ok and health.alive is False and self.bus.wants("failed_health_check_event"):
            self.bus.publish("failed_health_check_event", appId=instance.app_id, taskId=instance.task_id,
                             instanceId=instance.task_id, healthCheck=dict(check.json))
        if changed:
            self.bus.publish("health_status_changed_event", appId=instance.app_id, instanceId=instance.task_id,
                             taskId=instance.task_id, version=instance.version, alive=bool(health.alive))
        after = instance.healthy(checks)
        if after != before:
            if after is not None:
                self.bus.publish("instance_health_changed_event", instanceId=instance.task_id,
                                 runSpecId=instance.app_id, runSpecVersion=instance.version, healthy=after)
            self._persist(instance)
            self.converge([instance.app_id])
        if not from_agent and health.should_kill(check):
            self.kill_unhealthy(instance, check, health)

    def kill_unhealthy(self, instance: Instance, check: HealthCheck, health: HealthState) -> None:
        reason = (f"{health.consecutive_failures} consecutive {check.protocol} health check failures"
                  f" (last: {health.last_failure_cause})")
        self.metrics["unhealthy_kills"] += 1
        common = {"appId": instance.app_id, "taskId": instance.task_id, "version": instance.version,
                  "reason": reason, "host": instance.host, "slaveId": instance.agent_id}
        self.bus.publish("unhealthy_task_kill_event", **common)
        self.bus.publish("unhealthy_instance_kill_event", instanceId=instance.task_id, **common)
        self.kill(instance, f"unhealthy: {reason}", goal=RUNNING_GOAL)

    def readiness_result(self, instance: Instance, check: ReadinessCheck, result: Result) -> None:
        if self.state.instances.get(instance.task_id) is not instance:
            return
        if instance.readiness is None:
            instance.readiness = ReadinessState(check.name)
        if instance.readiness.record(result, check.ready_codes, check.preserve_last_response):
            self._persist(instance)
            self.converge([instance.app_id])

    def converge(self, app_ids: Iterable[str]) -> None:
        """Re-decide what ``app_ids`` need, on the next reactor turn (see :class:`Deployer`)."""
        self.deployer.converge(app_ids)

    # -- offers --------------------------------------------------------------------------------

    def update_offers(self) -> None:
        if self.driver is None or not self.registered:
            return
        now = self.clock.seconds()
        launchable = any(self.state.queue.launchable(e.app_id, now) and e.app_id in self.state.apps
                         for e in self.state.queue.waiting())
        if launchable:
            if self.suppressed or self.want_revive:
                self.metrics["revives"] += 1
                self.driver.reviveOffers()
                self.suppressed = self.declined = self.want_revive = False
        elif not self.suppressed:
            self.metrics["suppresses"] += 1
            self.driver.suppressOffers()
            self.suppressed = True
        wakeup = self.state.queue.next_wakeup(now)
        if self._wakeup is not None and self._wakeup.active():
            self._wakeup.cancel()
        self._wakeup = None
        if wakeup is not None:
            self._wakeup = self.clock.callLater(wakeup - now, self._backoff_over)

    def _backoff_over(self) -> None:
        self._wakeup = None
        self.want_revive = True
        self.update_offers()

    # -- the periodic sweep --------------------------------------------------------------------

    def _periodic(self) -> None:
        self._tick = self.clock.callLater(self.config.scale_apps_interval, self._periodic)
        self.metrics["sweeps"] += 1
        now = self.clock.seconds()
        for instance in self.state.instances:
            app = self.state.apps.get(instance.app_id)
            if instance.killing and instance.kill_sent_at is not None and now - instance.kill_sent_at > KILL_RESEND:
                instance.kill_sent_at = now
                self._send_kill(instance)
            elif (instance.launched and not instance.killing and instance.state in (T.STAGING, T.STARTING)
                  and now - instance.staged_at > self.config.task_launch_timeout):
                self.kill(instance, "not running within the task launch timeout", goal=RUNNING_GOAL)
            if instance.unreachable_since is not None:
                spec = app or self.state.spec_of(instance)
                strategy = spec.unreachable if spec is not None else None
                if strategy is not None and now - instance.unreachable_since >= strategy[1]:
                    self.metrics["unreachable_expunged"] += 1
                    self.kill(instance, "unreachable for longer than expungeAfterSeconds")
                    self._forget(instance)
        if now - self._last_reconcile >= self.config.reconciliation_interval and self.registered:
            self.reconcile()
        self.converge(self.deployer.all_apps())

    # -- events --------------------------------------------------------------------------------

    def _status_events(self, instance: Instance, status: TaskStatus) -> None:
        if self.bus.wants("status_update_event"):
            self.bus.publish("status_update_event", slaveId=instance.agent_id, taskId=instance.task_id,
                             taskStatus=status.state, message=status.message or "", appId=instance.app_id,
                             host=instance.host, ipAddresses=ip_addresses(instance.host), ports=list(instance.ports),
                             version=instance.version)
        self._instance_event(instance)

    def _instance_event(self, instance: Instance) -> None:
        if self.bus.wants("instance_changed_event"):
            self.bus.publish("instance_changed_event", instanceId=instance.task_id, condition=instance.condition,
                             runSpecId=instance.app_id, agentId=instance.agent_id, host=instance.host,
                             runSpecVersion=instance.version)


def _condition(state: str) -> str:
    return CONDITIONS.get(state, "Unknown")


def _app_of_task(task_id: str) -> str:
    return unsafe(task_id.split(".", 1)[0])
