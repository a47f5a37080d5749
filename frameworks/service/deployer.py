"""Convergence and deployments: what each app must do now, and when a deployment step is done.

After any change the runtime marks the apps concerned; on the next reactor turn each one
is converged (:func:`frameworks.service.planner.converge` decides kills and launches for
the app's current deployment step, or its steady state when no deployment holds it), the
launch queue learns how many instances wait, deployments whose current step is done move
on (with Marathon's events), and finished ones are deleted from the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from frameworks.service import planner as P
from frameworks.service.appdef import App
from frameworks.service.deployments import Deployment
from frameworks.service.events import EventBus
from frameworks.service.instances import RUNNING_GOAL, Instance
from frameworks.service.state import ServiceState
from frameworks.service.storage import Storage

if TYPE_CHECKING:
    from frameworks.service.runtime import Runtime


class Deployer:
    def __init__(self, runtime: Runtime, state: ServiceState, storage: Storage, bus: EventBus, clock: Any):
        self.runtime = runtime
        self.state = state
        self.storage = storage
        self.bus = bus
        self.clock = clock
        self._dirty: set[str] = set()
        self._pass: Any = None
        self._done: dict[str, set[str]] = {}

    def stop(self) -> None:
        if self._pass is not None and self._pass.active():
            self._pass.cancel()
        self._pass = None

    def converge(self, app_ids: Iterable[str]) -> None:
        """Re-decide what ``app_ids`` need, on the next reactor turn (coalesced)."""
        self._dirty.update(app_ids)
        if self._pass is None and self.runtime.driver is not None:
            self._pass = self.clock.callLater(0, self._converge_pass)

    def all_apps(self) -> set[str]:
        apps = set(self.state.apps) | set(self.state.instances.app_ids())
        for deployment in self.state.deployments.values():
            apps.update(deployment.affected)
        return apps

    def _converge_pass(self) -> None:
        self._pass = None
        for _ in range(100):
            if not self._dirty:
                break
            dirty, self._dirty = self._dirty, set()
            for app_id in sorted(dirty):
                self._converge_app(app_id)
            self._advance_deployments()
        self.runtime.update_offers()

    def inactive(self, instance: Instance, app: App | None) -> bool:
        if instance.unreachable_since is None:
            return False
        spec = app or self.state.spec_of(instance)
        strategy = spec.unreachable if spec is not None else None
        if strategy is None:
            return False
        return self.clock.seconds() - instance.unreachable_since >= strategy[0]

    def view(self, instance: Instance, app: App | None) -> P.InstanceView:
        spec = self.state.spec_of(instance)
        checks = len(spec.health_checks) if spec is not None else 0
        readiness = bool(spec.readiness_checks) if spec is not None else False
        return P.InstanceView(
            id=instance.task_id,
            current=app is not None and instance.config_version == app.last_config_change_at,
            goal_running=instance.goal == RUNNING_GOAL,
            killing=instance.killing,
            running=instance.running,
            available=instance.available(checks, readiness),
            unhealthy=instance.healthy(checks) is False,
            inactive=self.inactive(instance, app),
            since=instance.started_at if instance.started_at is not None else instance.staged_at)

    def _converge_app(self, app_id: str) -> None:
        app = self.state.apps.get(app_id)
        deployment = self.state.deployment_of(app_id)
        mode = deployment.mode_for(app_id) if deployment is not None else P.STEADY
        spec = app if app is not None else (deployment.original.get(app_id) if deployment is not None else None)
        if app is None and mode == P.STEADY:
            mode = P.STOP  # instances of an app that no longer exists
        instances = [i for i in self.state.instances.of_app(app_id) if not i.gone]
        if mode == P.START:
            self._set_done(deployment, app_id, True)
            self.state.queue.set_pending(app_id, 0, self.clock.seconds())
            return
        if spec is None:
            for instance in instances:
                self.runtime.kill(instance, "app removed")
            self._set_done(deployment, app_id, not instances)
            return
        decision = P.converge(mode, app.instances if app is not None else 0,
                              [self.view(i, app) for i in instances], spec.minimum_health_capacity,
                              spec.maximum_over_capacity, spec.kill_selection)
        reason = {P.RESTART: "replaced by a new version", P.STOP: "app removed"}.get(mode, "scaled down")
        for task_id in decision.kill:
            victim = self.state.instances.get(task_id)
            if victim is not None:
                self.runtime.kill(victim, reason)
        if self.state.queue.set_pending(app_id, decision.launch, self.clock.seconds()) and self.runtime.declined:
            self.runtime.want_revive = True
        if app is None and not instances:
            self.state.queue.forget(app_id)
        self._set_done(deployment, app_id, decision.done)
        if deployment is not None and not decision.done and mode != P.HOLD:
            deployment.status[app_id] = decision.waiting or "in progress"

    def explain(self, app_id: str, waiting: str | None) -> str:
        """Why an app is not where its deployment wants it, from the planner and the launch queue."""
        parts = [waiting] if waiting else []
        entry = self.state.queue.entries.get(app_id)
        now = self.clock.seconds()
        if entry is not None and entry.pending:
            left = entry.backoff.left(now)
            failure = self.state.failures.get(app_id)
            if left > 0:
                text = f"launches delayed {left:.0f}s by backoff after {entry.backoff.failures} failures"
                if failure:
                    text += f" (last: {failure['state']} {failure['message']})".rstrip()
                parts.append(text)
            elif (why := entry.why()) is not None:
                parts.append(why)
            elif not entry.processed:
                parts.append("no offers received yet" if not self.runtime.suppressed else "offers suppressed")
        return "; ".join(parts) or "in progress"

    def _set_done(self, deployment: Deployment | None, app_id: str, done: bool) -> None:
        if deployment is None:
            return
        finished = self._done.setdefault(deployment.id, set())
        if done:
            finished.add(app_id)
            deployment.status.pop(app_id, None)
        else:
            finished.discard(app_id)

    def _advance_deployments(self) -> None:
        for deployment in list(self.state.deployments.values()):
            finished = self._done.setdefault(deployment.id, set())
            while not deployment.finished:
                apps = {a.app for a in deployment.current_actions()}
                if not apps <= finished:
                    break
                step = deployment.current_actions()
                deployment.current_step += 1
                finished.clear()
                self._deployment_event("deployment_step_success", deployment, step)
                if not deployment.finished:
                    next_apps = {a.app for a in deployment.current_actions()}
                    self._deployment_event("deployment_info", deployment, deployment.current_actions())
                    self._dirty.update(next_apps)
            if deployment.finished:
                self.finish(deployment, success=True)

    def start_deployment(self, deployment: Deployment) -> None:
        """A new (or recovered) deployment: announce it and converge its apps."""
        deployment.started_at = deployment.started_at or self.clock.seconds()
        self._done[deployment.id] = set()
        self._deployment_event("deployment_info", deployment, deployment.current_actions())
        self.converge(deployment.affected)

    def finish(self, deployment: Deployment, success: bool) -> None:
        """End a deployment (done, or cancelled when not ``success``) and free its apps."""
        if self.state.remove_deployment(deployment.id) is None:
            return
        self._done.pop(deployment.id, None)
        self.storage.commit(self.storage.delete_deployment_ops(deployment.id)).addErrback(
            self.runtime.write_failed, f"deployment {deployment.id}")
        plan = self.plan(deployment)
        if success:
            self.runtime.metrics["deployments_succeeded"] += 1
            self.bus.publish("deployment_success", id=deployment.id, plan=plan)
            for step in deployment.steps:
                for action in step:
                    if action.action == P.STOP and action.app not in self.state.apps:
                        self.bus.publish("app_terminated_event", appId=action.app)
        else:
            self.runtime.metrics["deployments_cancelled"] += 1
            self.bus.publish("deployment_failed", id=deployment.id, plan=plan)
        self.converge(deployment.affected)

    def plan(self, deployment: Deployment) -> dict[str, Any]:
        body = deployment.to_json()
        original = [dict(a.json) for a in deployment.original.values() if a is not None]
        target = [dict(a.json) for a in deployment.target.values() if a is not None]
        root = {"id": "/", "version": deployment.version, "groups": [], "pods": [], "dependencies": []}
        return {"id": body["id"], "version": body["version"], "original": {**root, "apps": original},
                "target": {**root, "apps": target}, "steps": body["steps"]}

    def _deployment_event(self, kind: str, deployment: Deployment, step: list[P.Action]) -> None:
        if not self.bus.wants(kind):
            return
        self.bus.publish(kind, plan=self.plan(deployment), currentStep={"actions": [a.to_json() for a in step]})
