"""``/v2/groups``: the group tree, nested creation, updates (apps, dependencies, ``scaleBy``), deletion,
versions (every change keeps the root group as it left it) and rollback to one of them.

Apps and groups in a group body have ids relative to the group. A PUT that gives
``apps`` (or ``groups``) replaces that level: apps it no longer lists are stopped.
"""

from __future__ import annotations

import math
from typing import Any

from twisted.internet import defer
from twisted.web import server

from frameworks.service import pathid
from frameworks.service.api import ApiContext
from frameworks.service.api.common import answer, body, deployment_result, endpoint, flag, path_id, values
from frameworks.service.appdef import App
from frameworks.service.errors import ApiError, Problems, invalid, not_found
from frameworks.service.views import embeds
from mesostw.http.router import Response

GROUP_KEYS = {"id", "apps", "groups", "dependencies", "version", "pods", "scaleBy", "enforceRole"}


def _group_id(raw: Any, base: str, problems: Problems, path: str) -> str | None:
    if not isinstance(raw, str):
        problems.add(f"{path}/id", "error.expected.jsstring")
        return None
    try:
        return pathid.canonical(raw, base)
    except pathid.InvalidPath as exc:
        problems.add(f"{path}/id", str(exc))
        return None


def collect(ctx: ApiContext, data: Any, group_id: str, version: str, problems: Problems, path: str,
            targets: dict[str, App | None], metas: list[dict[str, Any]], taken: set[int]) -> None:
    """Walk a group body: new app versions into ``targets``, group records into ``metas``; apps the
    body no longer lists at a level it gives are removed."""
    if not isinstance(data, dict):
        problems.add(path or "/", "error.expected.jsobject")
        return
    for key in data:
        if key not in GROUP_KEYS:
            problems.add(f"{path}/{key}", "error.unknown.field: not a field of a group")
    dependencies = []
    for index, dep in enumerate(data.get("dependencies") or []):
        if not isinstance(dep, str):
            problems.add(f"{path}/dependencies({index})", "error.expected.jsstring")
            continue
        try:
            dependencies.append(pathid.canonical(dep, pathid.parent(group_id)))
        except pathid.InvalidPath as exc:
            problems.add(f"{path}/dependencies({index})", str(exc))
    previous = ctx.state.groups.get(group_id, {})
    if group_id != pathid.ROOT or "dependencies" in data:
        metas.append({"id": group_id, "version": version,
                      "dependencies": dependencies if "dependencies" in data else previous.get("dependencies", [])})
    if "apps" in data:
        listed = set()
        apps = data["apps"]
        if not isinstance(apps, list):
            problems.add(f"{path}/apps", "error.expected.jsarray")
            apps = []
        for index, item in enumerate(apps):
            raw_id = item.get("id") if isinstance(item, dict) else None
            app_id = None
            if isinstance(raw_id, str):
                try:
                    app_id = pathid.canonical(raw_id, group_id)
                except pathid.InvalidPath:
                    app_id = None
            previous_app = ctx.state.apps.get(app_id) if app_id else None
            app = ctx.controller.build(item, base=group_id, previous=previous_app, version=version, taken=taken,
                                       problems=problems, prefix=f"{path}/apps({index})")
            if app is None:
                continue
            if pathid.parent(app.id) != group_id:
                problems.add(f"{path}/apps({index})/id", f"app {app.id} is not directly in group {group_id}")
            if app.id in targets:
                problems.add(f"{path}/apps({index})/id", f"app {app.id} is given twice")
            listed.add(app.id)
            targets[app.id] = app
        for app in ctx.state.apps_under(group_id):
            if pathid.parent(app.id) == group_id and app.id not in listed:
                targets[app.id] = None
    if "groups" in data:
        groups = data["groups"]
        if not isinstance(groups, list):
            problems.add(f"{path}/groups", "error.expected.jsarray")
            groups = []
        listed_groups = set()
        for index, item in enumerate(groups):
            sub_path = f"{path}/groups({index})"
            sub_id = _group_id(item.get("id") if isinstance(item, dict) else None, group_id, problems, sub_path)
            if sub_id is None:
                continue
            if pathid.parent(sub_id) != group_id:
                problems.add(f"{sub_path}/id", f"group {sub_id} is not directly in group {group_id}")
                continue
            listed_groups.add(sub_id)
            collect(ctx, item, sub_id, version, problems, sub_path, targets, metas, taken)
        for app in ctx.state.apps_under(group_id):
            parent = pathid.parent(app.id)
            if parent != group_id and not any(pathid.is_under(parent, g) for g in listed_groups):
                targets.setdefault(app.id, None)


def install(router: Any, ctx: ApiContext) -> None:
    api = endpoint(ctx)
    controller = ctx.controller

    def exists(group_id: str) -> bool:
        return group_id in ctx.state.group_ids()

    def render(request: server.Request, group_id: str) -> Response:
        wanted = values(request, "embed")
        group_embeds = {w for w in wanted if w in ("group.groups", "group.apps", "group.pods")}
        with_apps = not group_embeds or "group.apps" in group_embeds
        with_groups = not group_embeds or "group.groups" in group_embeds
        app_embeds = embeds([w for w in wanted if w.startswith("group.apps.")], ("group.apps.",))
        return answer(ctx.views.group(group_id, app_embeds, with_apps, with_groups))

    @api
    def get_root(request: server.Request) -> Any:
        return render(request, pathid.ROOT)

    @api
    def get_group(request: server.Request, id: str) -> Any:
        group_id = path_id(id, "Group")
        if not exists(group_id):
            raise not_found(f"Group '{group_id}' does not exist")
        return render(request, group_id)

    def create(request: server.Request, base: str) -> Any:
        data = body(request)
        force = flag(request, "force", False)

        def run() -> defer.Deferred:
            problems = Problems()
            if not isinstance(data, dict):
                raise invalid([{"path": "/", "errors": ["error.expected.jsobject"]}])
            group_id = _group_id(data.get("id", base), base, problems, "")
            problems.raise_if_any()
            assert group_id is not None
            if exists(group_id) and (group_id != pathid.ROOT or ctx.state.apps):
                raise ApiError(409, f"Group {group_id} is already created. Use PUT to change this group.")
            if group_id in ctx.state.apps:
                raise ApiError(409, f"An app with id [{group_id}] already exists.")
            version = controller.versions.next()
            targets: dict[str, App | None] = {}
            metas: list[dict[str, Any]] = []
            collect(ctx, data, group_id, version, problems, "", targets, metas,
                    ctx.state.service_ports_in_use())
            problems.raise_if_any()
            metas += [g for g in controller._new_groups([group_id, *targets], version)
                      if g["id"] not in {m["id"] for m in metas}]
            return controller.change(targets, force, version, groups=metas)

        return controller.serialised(run).addCallback(lambda d: deployment_result(d, 201))

    @api
    def create_root(request: server.Request) -> Any:
        return create(request, pathid.ROOT)

    @api
    def create_under(request: server.Request, id: str) -> Any:
        return create(request, path_id(id, "Group"))

    @api
    def update(request: server.Request, id: str = "/") -> Any:
        group_id = path_id(id, "Group")
        data = body(request)
        force = flag(request, "force", False)

        def run() -> defer.Deferred:
            if not isinstance(data, dict):
                raise invalid([{"path": "/", "errors": ["error.expected.jsobject"]}])
            version = controller.versions.next()
            if "scaleBy" in data:
                factor = data["scaleBy"]
                if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor < 0:
                    raise invalid([{"path": "/scaleBy", "errors": ["must be a non-negative number"]}])
                if not exists(group_id):
                    raise not_found(f"Group '{group_id}' does not exist")
                targets: dict[str, App | None] = {}
                for app in ctx.state.apps_under(group_id):
                    spec = dict(app.spec)
                    spec["instances"] = int(math.ceil(round(app.instances * factor, 6)))
                    targets[app.id] = app.with_spec(spec, version)
                return controller.change(targets, force, version)
            if "version" in data and set(data) <= {"version", "id"}:
                if not exists(group_id) and not ctx.state.group_versions_of(group_id):
                    raise not_found(f"Group '{group_id}' does not exist")
                return controller.rollback_group(group_id, data["version"], force)
            problems = Problems()
            targets = {}
            metas: list[dict[str, Any]] = []
            taken = ctx.state.service_ports_in_use()
            for app in ctx.state.apps_under(group_id):
                taken -= set(app.service_ports)
            collect(ctx, {**data, "id": group_id}, group_id, version, problems, "", targets, metas, taken)
            problems.raise_if_any()
            metas += [g for g in controller._new_groups([group_id, *targets], version)
                      if g["id"] not in {m["id"] for m in metas}]
            return controller.change(targets, force, version, groups=metas)

        return controller.serialised(run).addCallback(deployment_result)

    @api
    def delete(request: server.Request, id: str = "/") -> Any:
        group_id = path_id(id, "Group")
        force = flag(request, "force", False)

        def run() -> defer.Deferred:
            if not exists(group_id):
                raise not_found(f"Group '{group_id}' does not exist")
            targets: dict[str, App | None] = {app.id: None for app in ctx.state.apps_under(group_id)}
            dropped = [g for g in ctx.state.groups if pathid.is_under(g, group_id) and g != pathid.ROOT]
            return controller.change(targets, force, controller.versions.next(), dropped_groups=dropped)

        return controller.serialised(run).addCallback(deployment_result)

    @api
    def versions(request: server.Request, id: str = "/") -> Any:
        group_id = path_id(id, "Group")
        if not exists(group_id) and not ctx.state.group_versions_of(group_id):
            raise not_found(f"Group '{group_id}' does not exist")
        return answer(ctx.state.group_versions_of(group_id))

    router.route("/v2/groups", get_root)
    router.route("/v2/groups", create_root, methods=("POST",))
    router.route("/v2/groups", update, methods=("PUT", "PATCH"))
    router.route("/v2/groups", delete, methods=("DELETE",))
    router.route("/v2/groups/versions", versions)
    router.route("/v2/groups/{id:path}/versions", versions)
    router.route("/v2/groups/{id:path}", get_group)
    router.route("/v2/groups/{id:path}", create_under, methods=("POST",))
    router.route("/v2/groups/{id:path}", update, methods=("PUT", "PATCH"))
    router.route("/v2/groups/{id:path}", delete, methods=("DELETE",))
