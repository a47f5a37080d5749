"""The controller: every change the API asks for, written to the store before it is answered.

A change (create, update, scale, restart, delete an app or a group, kill with
``scale``, roll back) becomes a target set of apps; :meth:`Controller.change` checks
it against the deployments that lock those apps (409 unless ``force``), orders it by
dependencies (422 on a cycle), plans the deployment, commits the apps, their new
versions and the plan in one store transaction, and only then applies it in memory
and hands the deployment to the runtime. Changes are serialised by one lock, so two
clients never interleave a read-modify-write.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from twisted.internet import defer

from frameworks.service import pathid
from frameworks.service import planner as P
from frameworks.service.appdef import App, merge
from frameworks.service.deployments import Deployment
from frameworks.service.errors import ApiError, Problems, invalid, locked, not_found
from frameworks.service.events import EventBus
from frameworks.service.instances import RUNNING_GOAL, STOPPED_GOAL, Instance
from frameworks.service.runtime import Runtime
from frameworks.service.state import ServiceState
from frameworks.service.storage import Storage
from frameworks.service.timestamps import VersionClock, normalize_version
from frameworks.service.validation import normalize
from mesostw.store import Operation


class Controller:
    def __init__(self, state: ServiceState, storage: Storage, runtime: Runtime, bus: EventBus,
                 versions: VersionClock, max_versions: int):
        self.state = state
        self.storage = storage
        self.runtime = runtime
        self.bus = bus
        self.versions = versions
        self.max_versions = max_versions
        self.lock = defer.DeferredLock()

    def serialised(self, f: Any, *args: Any, **kwargs: Any) -> defer.Deferred:
        """Run ``f`` (which may return a Deferred) alone: no other change starts until it ends."""
        return self.lock.run(f, *args, **kwargs)

    # -- building apps -------------------------------------------------------------------------

    def build(self, data: Any, base: str = pathid.ROOT, previous: App | None = None, version: str | None = None,
              taken: set[int] | None = None, problems: Problems | None = None, prefix: str = "") -> App | None:
        """A validated new version of an app from client JSON (service ports assigned); problems
        go to ``problems`` (raised at once as a 422 when none is given)."""
        mine = Problems()
        spec = normalize(data, mine, base)
        if not mine:
            used = taken if taken is not None else self.state.service_ports_in_use(except_app=spec["id"])
            problem = self.state.assign_service_ports(spec, previous, used)
            if problem:
                mine.add("/portDefinitions", problem)
        if mine:
            if problems is None:
                mine.raise_if_any()
            else:
                problems.extend(mine, prefix)
            return None
        version = version or self.versions.next()
        if previous is None:
            return App.build(spec, version)
        return previous.with_spec(spec, version)

    # -- the one way to change apps ------------------------------------------------------------

    def change(self, targets: Mapping[str, App | None], force: bool, version: str,
               groups: Iterable[dict[str, Any]] = (), dropped_groups: Iterable[str] = (),
               stop_first: Iterable[Instance] = ()) -> defer.Deferred:
        """Move ``targets`` (app id -> new App, or None to remove) into place as one deployment.

        Fires with the Deployment once everything is durable; fails with ApiError (409/422)."""
        current = self.state.apps
        affected = {a: t for a, t in targets.items() if t is not (current.get(a))}
        conflicts = self.state.locking(affected)
        if conflicts and not force:
            return defer.fail(locked(conflicts))
        future = {a: app for a, app in current.items() if a not in affected}
        future.update({a: t for a, t in affected.items() if t is not None})
        group_metas = [dict(g) for g in groups]
        dropped_groups = list(dropped_groups)
        future_groups = {**self.state.groups, **{g["id"]: g for g in group_metas}}
        for gone in dropped_groups:
            future_groups.pop(gone, None)
        try:
            target_order = self.state.order(future, future_groups)
            original_order = self.state.order(current)
        except P.CyclicDependencies as exc:
            return defer.fail(invalid([{"path": "/dependencies", "errors": [str(exc)]}]))
        original = {a: current.get(a) for a in affected}
        target = dict(affected)
        steps = P.plan_steps({a: o for a, o in original.items() if o is not None},
                             {a: t for a, t in target.items() if t is not None}, original_order, target_order)
        deployment = Deployment(str(uuid.uuid4()), version, steps, original, target)
        ops: list[Operation] = []
        pruned: dict[str, list[str]] = {}
        for app_id, app in affected.items():
            if app is None:
                ops += self.storage.delete_app_ops(app_id)
                continue
            fresh = app.version not in self.state.versions.get(app_id, ())
            ops += self.storage.app_ops(app.json, new_version=fresh)
            if fresh:
                known = self.state.versions.get(app_id, [])
                protected = {i.version for i in self.state.instances.of_app(app_id)} | {app.version}
                prune = self.storage.prune_ops(app_id, known + [app.version], self.max_versions, protected)
                pruned[app_id] = [op.path.rsplit("/", 1)[1] for op in prune]
                ops += prune
        for meta in group_metas:
            ops += self.storage.group_ops(meta)
        for gone in dropped_groups:
            ops += self.storage.delete_group_ops(gone)
        cancelled = [self.state.deployments[d] for d in conflicts]
        for old in cancelled:
            ops += self.storage.delete_deployment_ops(old.id)
        if steps:
            ops += self.storage.deployment_ops(deployment.to_store())
        snapshot = {"version": version, "apps": {a: app.version for a, app in sorted(future.items())},
                    "groups": {g: {"dependencies": list(meta.get("dependencies", ()))}
                               for g, meta in sorted(future_groups.items())}}
        kept = sorted(self.state.group_versions)
        dropped_versions = kept[: max(0, len(kept) + 1 - self.max_versions)]
        ops += self.storage.group_version_ops(snapshot, dropped_versions)
        # the versions of deleted apps go once no kept group version names them
        named = set(future).union(*(self.state.group_versions[v]["apps"] for v in kept if v not in dropped_versions))
        for app_id in sorted({a for v in dropped_versions for a in self.state.group_versions[v]["apps"]} - named):
            ops += self.storage.delete_versions_ops(app_id)
        d = self.storage.commit(ops)

        def applied(_: Any) -> Deployment:
            for old_version in dropped_versions:
                self.state.group_versions.pop(old_version, None)
            self.state.group_versions[version] = snapshot
            return self._apply(deployment, affected, pruned, group_metas, dropped_groups, cancelled, list(stop_first))

        return d.addCallback(applied)

    def _apply(self, deployment: Deployment, affected: Mapping[str, App | None], pruned: Mapping[str, list[str]],
               groups: list[dict[str, Any]], dropped_groups: list[str], cancelled: list[Deployment],
               stop_first: list[Instance]) -> Deployment:
        state = self.state
        for old in cancelled:
            self.runtime.deployer.finish(old, success=False)
        for app_id, app in affected.items():
            previous = state.apps.get(app_id)
            if app is None:
                state.drop_app(app_id)
                continue
            state.set_app(app)
            self._health_check_events(previous, app)
            if pruned.get(app_id):
                state.versions[app_id] = [v for v in state.versions[app_id] if v not in pruned[app_id]]
            if previous is None or previous.last_config_change_at != app.last_config_change_at:
                state.queue.reset_delay(app_id)
        for meta in groups:
            state.groups[meta["id"]] = meta
        for gone in dropped_groups:
            state.groups.pop(gone, None)
        state.root_version = deployment.version
        for instance in stop_first:
            self.runtime.kill(instance, "killed and scaled down through the API")
        if deployment.steps:
            state.add_deployment(deployment)
            self.runtime.deployer.start_deployment(deployment)
        else:
            self.bus.publish("deployment_success", id=deployment.id, plan=self.runtime.deployer.plan(deployment))
        self.runtime.converge(affected)
        self.bus.publish("group_change_success", groupId=pathid.ROOT, version=deployment.version)
        return deployment

    def _health_check_events(self, previous: App | None, app: App) -> None:
        before = [dict(c) for c in (previous.spec.get("healthChecks", ()) if previous is not None else ())]
        after = [dict(c) for c in app.spec.get("healthChecks", ())]
        for check in after:
            if check not in before:
                self.bus.publish("add_health_check_event", appId=app.id, healthCheck=check, version=app.version)
        for check in before:
            if check not in after:
                self.bus.publish("remove_health_check_event", appId=app.id, healthCheck=check)

    # -- apps ----------------------------------------------------------------------------------

    def app(self, app_id: str) -> App:
        found = self.state.apps.get(app_id)
        if found is None:
            raise not_found(f"App '{app_id}' does not exist")
        return found

    def _new_groups(self, app_ids: Iterable[str], version: str) -> list[dict[str, Any]]:
        """Records for the groups new apps create implicitly (Marathon keeps them until deleted)."""
        out: dict[str, dict[str, Any]] = {}
        for app_id in app_ids:
            for group in pathid.ancestors(app_id):
                if group not in self.state.groups and group not in out:
                    out[group] = {"id": group, "dependencies": [], "version": version}
        return list(out.values())

    def create_app(self, data: Any, force: bool) -> defer.Deferred:
        def run() -> defer.Deferred:
            version = self.versions.next()
            app = self.build(data, version=version)
            assert app is not None
            if app.id in self.state.apps:
                raise ApiError(409, f"An app with id [{app.id}] already exists.")
            if app.id in self.state.group_ids():
                raise ApiError(409, f"A group with id [{app.id}] already exists.")
            return self.change({app.id: app}, force, version, groups=self._new_groups([app.id], version)) \
                .addCallback(lambda deployment: (app, deployment))
        return self.serialised(run)

    def update_app(self, app_id: str, data: Any, force: bool, partial: bool) -> defer.Deferred:
        """PUT/PATCH one app; fires with (App, Deployment, created)."""
        def run() -> Any:
            if not isinstance(data, dict):
                raise invalid([{"path": "/", "errors": ["error.expected.jsobject"]}])
            if set(data) - {"version"} == set() and "version" in data:
                return self._rollback(app_id, data["version"], force)
            if data.get("id") is not None and isinstance(data["id"], str) \
                    and _canonical_or_none(data["id"]) not in (app_id, None):
                raise invalid([{"path": "/id", "errors": [f"The id in the body ({data['id']}) does not match "
                                                          f"the path ({app_id})"]}])
            previous = self.state.apps.get(app_id)
            version = self.versions.next()
            body = {k: v for k, v in data.items() if k != "version"}
            if previous is not None and partial:
                body = merge(previous.spec, body)
            body["id"] = app_id
            app = self.build(body, previous=previous, version=version)
            assert app is not None
            groups = self._new_groups([app_id], version) if previous is None else []
            return self.change({app_id: app}, force, version, groups=groups).addCallback(
                lambda deployment: (app, deployment, previous is None))
        return self.serialised(run)

    @defer.inlineCallbacks
    def _rollback(self, app_id: str, wanted: Any, force: bool) -> Any:
        current = self.app(app_id)
        version = normalize_version(wanted)
        stored = (yield self.storage.version(app_id, version)) if version else None
        if stored is None:
            raise not_found(f"Version '{wanted}' of app '{app_id}' does not exist")
        old = App.from_json(stored)
        new_version = self.versions.next()
        app = current.with_spec(old.spec, new_version)
        deployment = yield self.change({app_id: app}, force, new_version)
        return app, deployment, False

    @defer.inlineCallbacks
    def rollback_group(self, group_id: str, wanted: Any, force: bool) -> Any:
        """PUT /v2/groups/{id} {"version": v}: every app under the group as it was in root version
        ``v`` (apps created since are removed, apps deleted since come back), with the group records
        of that time; one deployment. Call it serialised."""
        version = normalize_version(wanted) if isinstance(wanted, str) else None
        snapshot = self.state.group_versions.get(version or "")
        if snapshot is None or version not in self.state.group_versions_of(group_id):
            raise not_found(f"Group '{group_id}' has no version '{wanted}'")
        new_version = self.versions.next()
        targets: dict[str, App | None] = {app.id: None for app in self.state.apps_under(group_id)}
        for app_id, app_version in snapshot["apps"].items():
            if not pathid.is_under(app_id, group_id):
                continue
            stored = yield self.storage.version(app_id, app_version)
            if stored is None:
                raise ApiError(409, f"Version '{app_version}' of app '{app_id}' is no longer stored: the group "
                                    f"cannot be rolled back to '{wanted}'")
            old = App.from_json(stored)
            current = self.state.apps.get(app_id)
            targets[app_id] = current.with_spec(old.spec, new_version) if current is not None \
                else App.build(dict(old.spec), new_version)
        groups = [{"id": g, "dependencies": list(meta.get("dependencies", ())), "version": new_version}
                  for g, meta in snapshot["groups"].items() if pathid.is_under(g, group_id)]
        dropped = [g for g in self.state.groups if pathid.is_under(g, group_id) and g != pathid.ROOT
                   and g not in snapshot["groups"]]
        deployment = yield self.change(targets, force, new_version, groups=groups, dropped_groups=dropped)
        return deployment

    def update_apps(self, items: Any, force: bool, partial: bool) -> defer.Deferred:
        """PUT/PATCH /v2/apps: several apps in one deployment."""
        def run() -> defer.Deferred:
            if not isinstance(items, list):
                raise invalid([{"path": "/", "errors": ["error.expected.jsarray"]}])
            version = self.versions.next()
            problems = Problems()
            targets: dict[str, App | None] = {}
            taken = self.state.service_ports_in_use()
            for index, item in enumerate(items):
                raw_id = item.get("id") if isinstance(item, dict) else None
                app_id = _canonical_or_none(raw_id) if isinstance(raw_id, str) else None
                previous = self.state.apps.get(app_id) if app_id else None
                body = dict(item) if isinstance(item, dict) else item
                if previous is not None and partial and isinstance(body, dict):
                    body = merge(previous.spec, body)
                    taken -= set(previous.service_ports)
                app = self.build(body, previous=previous, version=version, taken=taken, problems=problems,
                                 prefix=f"/({index})")
                if app is not None:
                    targets[app.id] = app
            problems.raise_if_any()
            return self.change(targets, force, version, groups=self._new_groups(targets, version))
        return self.serialised(run)

    def delete_app(self, app_id: str, force: bool) -> defer.Deferred:
        def run() -> defer.Deferred:
            self.app(app_id)
            return self.change({app_id: None}, force, self.versions.next())
        return self.serialised(run)

    def restart_app(self, app_id: str, force: bool) -> defer.Deferred:
        def run() -> defer.Deferred:
            version = self.versions.next()
            app = self.app(app_id).restarted(version)
            return self.change({app_id: app}, force, version)
        return self.serialised(run)

    def kill_tasks(self, instances: list[Instance], scale: bool, force: bool) -> defer.Deferred:
        """Kill instances; with ``scale`` their apps shrink by as many (one deployment, fires with
        it), else they are replaced (fires with None)."""
        def run() -> Any:
            live = [i for i in instances if self.state.instances.get(i.task_id) is i]
            if not scale:
                for instance in live:
                    self.runtime.kill(instance, "killed through the API", goal=RUNNING_GOAL)
                return None
            version = self.versions.next()
            targets: dict[str, App | None] = {}
            by_app: dict[str, int] = {}
            for instance in live:
                if instance.goal == RUNNING_GOAL:
                    by_app[instance.app_id] = by_app.get(instance.app_id, 0) + 1
            for app_id, count in by_app.items():
                app = self.state.apps.get(app_id)
                if app is not None:
                    spec = dict(app.spec)
                    spec["instances"] = max(0, app.instances - count)
                    targets[app_id] = app.with_spec(spec, version)
            stop = [i for i in live if i.goal == RUNNING_GOAL]
            for instance in live:
                if instance.goal == STOPPED_GOAL:
                    self.runtime.kill(instance, "killed through the API")
            return self.change(targets, force, version, stop_first=stop)
        return self.serialised(run)

    # -- deployments ---------------------------------------------------------------------------

    def cancel_deployment(self, deployment_id: str, force: bool) -> defer.Deferred:
        """DELETE /v2/deployments/{id}: stop it (``force``, fires with None) or roll it back with
        a new deployment (fires with it)."""
        def run() -> Any:
            deployment = self.state.deployments.get(deployment_id)
            if deployment is None:
                raise not_found(f"DeploymentPlan {deployment_id} does not exist")
            if force:
                d = self.storage.commit(self.storage.delete_deployment_ops(deployment_id))
                d.addCallback(lambda _: self.runtime.deployer.finish(deployment, success=False))
                return d
            version = self.versions.next()
            targets = {app_id: original for app_id, original in deployment.original.items()}
            return self.change(targets, True, version)
        return self.serialised(run)

    def reset_delay(self, app_id: str) -> None:
        self.app(app_id)
        self.state.queue.reset_delay(app_id)
        self.runtime.want_revive = True
        self.runtime.converge([app_id])


def _canonical_or_none(raw: str) -> str | None:
    try:
        return pathid.canonical(raw)
    except pathid.InvalidPath:
        return None
