"""``/v2/apps``: list, create, get, update (partial or full), restart, versions, tasks, delete."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.web import server

from frameworks.service import pathid
from frameworks.service.api import ApiContext
from frameworks.service.api.common import (
    answer,
    body,
    deployment_result,
    endpoint,
    flag,
    path_id,
    value,
    values,
)
from frameworks.service.api.tasks import kill_answer, tasks_text
from frameworks.service.appdef import App
from frameworks.service.errors import ApiError, not_found
from frameworks.service.views import (
    EMBED_COUNTS,
    EMBED_DEPLOYMENTS,
    EMBED_FAILURE,
    EMBED_READINESS,
    EMBED_TASKS,
    embeds,
)
from mesostw.http.router import Response, header

_TERM = re.compile(r"^\s*([^!=\s]+)\s*(?:(==|!=|=)\s*(.*?)|\s+(in|notin)\s*\((.*)\))?\s*$")


def label_selector(text: str) -> Callable[[dict[str, str]], bool]:
    """Marathon's label selector: ``k``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``,
    joined by commas (AND); 400 on anything else."""
    terms: list[str] = []
    depth, start = 0, 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    checks: list[tuple[str, str, set[str]]] = []
    for term in terms:
        match = _TERM.match(term.replace("\\", ""))
        if not match or not term.strip():
            raise ApiError(400, f"Invalid label selector term '{term.strip()}'")
        key, op, wanted, set_op, items = match.groups()
        if op:
            checks.append((key, "!=" if op == "!=" else "==", {wanted}))
        elif set_op:
            checks.append((key, set_op, {item.strip() for item in (items or "").split(",")}))
        else:
            checks.append((key, "exists", set()))

    def selected(labels: dict[str, str]) -> bool:
        for key, op, options in checks:
            present = labels.get(key)
            if op == "exists" and key not in labels:
                return False
            if op in ("==", "in") and present not in options:
                return False
            if op in ("!=", "notin") and present in options:
                return False
        return True

    return selected


def install(router: Any, ctx: ApiContext) -> None:
    api = endpoint(ctx)
    views = ctx.views

    def client_ip(request: server.Request) -> str:
        peer = request.getClientAddress()
        return getattr(peer, "host", "") or ""

    def posted(request: server.Request, app: App) -> None:
        ctx.bus.publish("api_post_event", clientIp=client_ip(request), uri=request.uri.decode("utf-8", "replace"),
                        appDefinition=dict(app.json))

    @api
    def list_apps(request: server.Request) -> Any:
        wanted = embeds(values(request, "embed")) | {EMBED_COUNTS, EMBED_DEPLOYMENTS}
        cmd, wanted_id, selector = value(request, "cmd"), value(request, "id"), value(request, "label")
        chosen = label_selector(selector) if selector else None
        out = []
        for app_id in sorted(ctx.state.apps):
            app = ctx.state.apps[app_id]
            if cmd and cmd not in (app.spec.get("cmd") or ""):
                continue
            if wanted_id and wanted_id not in app_id:
                continue
            if chosen is not None and not chosen(app.spec.get("labels", {})):
                continue
            out.append(views.app(app, wanted))
        return answer({"apps": out})

    @api
    def create_app(request: server.Request) -> Any:
        data = body(request)
        force = flag(request, "force", False)

        def created(result: tuple[App, Any]) -> Response:
            app, deployment = result
            posted(request, app)
            info = views.app(app, {EMBED_COUNTS})
            info["deployments"] = [{"id": deployment.id}] if deployment.steps else []
            return answer(info, 201, {"Location": f"/v2/apps{app.id}", "Marathon-Deployment-Id": deployment.id})

        return ctx.controller.create_app(data, force).addCallback(created)

    @api
    def update_apps(request: server.Request) -> Any:
        partial = request.method == b"PATCH" or flag(request, "partialUpdate", True)
        d = ctx.controller.update_apps(body(request), flag(request, "force", False), partial)
        return d.addCallback(deployment_result)

    @api
    def get_app(request: server.Request, id: str) -> Any:
        wanted = embeds(values(request, "embed")) | {EMBED_COUNTS, EMBED_DEPLOYMENTS, EMBED_TASKS, EMBED_FAILURE}
        if id.rstrip("/").endswith("*"):
            group = path_id(id.rstrip("/")[:-1] or "/", "Group")
            apps = ctx.state.apps_under(group)
            return answer({"*": [views.app(a, wanted) for a in apps]})
        app_id = path_id(id)
        app = ctx.controller.app(app_id)
        if EMBED_READINESS in embeds(values(request, "embed")):
            wanted.add(EMBED_READINESS)
        return answer({"app": views.app(app, wanted)})

    @api
    def update_app(request: server.Request, id: str) -> Any:
        app_id = _writable_id(id)
        partial = request.method == b"PATCH" or flag(request, "partialUpdate", True)
        data = body(request)

        def done(result: tuple[App, Any, bool]) -> Response:
            app, deployment, created = result
            posted(request, app)
            return deployment_result(deployment, 201 if created else 200,
                                     {"Location": f"/v2/apps{app.id}"} if created else None)

        return ctx.controller.update_app(app_id, data, flag(request, "force", False), partial).addCallback(done)

    @api
    def delete_app(request: server.Request, id: str) -> Any:
        app_id = path_id(id)
        ctx.controller.app(app_id)
        removed = ctx.state.apps[app_id]

        def done(deployment: Any) -> Response:
            posted(request, removed)
            return deployment_result(deployment)

        return ctx.controller.delete_app(app_id, flag(request, "force", True)).addCallback(done)

    @api
    def restart_app(request: server.Request, id: str) -> Any:
        d = ctx.controller.restart_app(path_id(id), flag(request, "force", False))
        return d.addCallback(deployment_result)

    @api
    def app_tasks(request: server.Request, id: str) -> Any:
        app = ctx.controller.app(path_id(id))
        instances = ctx.state.instances.of_app(app.id)
        if "text/plain" in (header(request, "accept") or "") and "json" not in (header(request, "accept") or ""):
            return tasks_text(ctx, [app.id])
        return answer({"tasks": views.tasks(instances)})

    @api
    def kill_app_tasks(request: server.Request, id: str) -> Any:
        app = ctx.controller.app(path_id(id))
        host = value(request, "host")
        chosen = [i for i in ctx.state.instances.of_app(app.id) if not i.gone and (host is None or i.host == host)]
        scale = flag(request, "scale", False)
        flag(request, "wipe", False)
        return kill_answer(ctx, chosen, scale, flag(request, "force", False), many=True)

    @api
    def kill_app_task(request: server.Request, id: str, task: str) -> Any:
        app = ctx.controller.app(path_id(id))
        instance = ctx.state.instances.get(task)
        if instance is None or instance.app_id != app.id or instance.gone:
            raise not_found(f"Task '{task}' does not exist")
        flag(request, "wipe", False)
        return kill_answer(ctx, [instance], flag(request, "scale", False), flag(request, "force", False),
                           many=False)

    @api
    def versions(request: server.Request, id: str) -> Any:
        app = ctx.controller.app(path_id(id))
        return answer({"versions": sorted(ctx.state.versions.get(app.id, [app.version]), reverse=True)})

    @api
    def version(request: server.Request, id: str, version: str) -> Any:
        app = ctx.controller.app(path_id(id))
        cached = ctx.state.specs.get((app.id, version))
        if cached is not None:
            return answer(dict(cached.json))

        def found(stored: Any) -> Response:
            if stored is None:
                raise not_found(f"Version '{version}' of app '{app.id}' does not exist")
            return answer(stored)

        return defer.maybeDeferred(ctx.controller.storage.version, app.id, version).addCallback(found)

    router.route("/v2/apps", list_apps)
    router.route("/v2/apps", create_app, methods=("POST",))
    router.route("/v2/apps", update_apps, methods=("PUT", "PATCH"))
    router.route("/v2/apps/{id:path}/restart", restart_app, methods=("POST",))
    router.route("/v2/apps/{id:path}/tasks", app_tasks)
    router.route("/v2/apps/{id:path}/tasks", kill_app_tasks, methods=("DELETE",))
    router.route("/v2/apps/{id:path}/tasks/{task}", kill_app_task, methods=("DELETE",))
    router.route("/v2/apps/{id:path}/versions", versions)
    router.route("/v2/apps/{id:path}/versions/{version}", version)
    router.route("/v2/apps/{id:path}", get_app)
    router.route("/v2/apps/{id:path}", update_app, methods=("PUT", "PATCH"))
    router.route("/v2/apps/{id:path}", delete_app, methods=("DELETE",))


def _writable_id(raw: str) -> str:
    try:
        return pathid.canonical(raw)
    except pathid.InvalidPath as exc:
        raise ApiError(422, "Object is not valid", [{"path": "/id", "errors": [str(exc)]}]) from None
