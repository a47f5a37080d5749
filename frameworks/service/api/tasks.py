"""``/v2/tasks``: every task (JSON or the HAProxy-style text form) and bulk kills."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.web import server

from frameworks.service import pathid
from frameworks.service.api import ApiContext
from frameworks.service.api.common import answer, body, deployment_result, endpoint, flag, values
from frameworks.service.errors import ApiError
from frameworks.service.instances import Instance
from mesostw.http.router import Response, header
from mesostw.model import task as T

#: ``status`` filter values and the task states they select.
STATUS = {
    "running": {T.RUNNING}, "staging": {T.STAGING, T.STARTING}, "starting": {T.STARTING},
    "killing": {T.KILLING}, "unreachable": {T.UNREACHABLE}, "healthy": set(), "unhealthy": set(),
}


def tasks_text(ctx: ApiContext, app_ids: Iterable[str]) -> Response:
    """One line per app and service port: ``app<TAB>servicePort<TAB>host:port...`` (running tasks)."""
    lines = []
    for app_id in sorted(app_ids):
        app = ctx.state.apps.get(app_id)
        if app is None:
            continue
        running = [i for i in ctx.state.instances.of_app(app_id) if i.running]
        for index, service_port in enumerate(app.service_ports or [0]):
            endpoints = [f"{i.host}:{i.ports[index]}" for i in running if index < len(i.ports)]
            if not app.service_ports:
                endpoints = [i.host for i in running]
            lines.append("\t".join([pathid.safe(app_id), str(service_port or " "), *endpoints]) + "\t")
    return Response(("\n".join(lines) + ("\n" if lines else "")).encode(), 200,
                    {"Content-Type": "text/plain; charset=utf-8"})


def kill_answer(ctx: ApiContext, chosen: list[Instance], scale: bool, force: bool, many: bool) -> Any:
    """Kill ``chosen``; answer the killed tasks, or the scale deployment when ``scale``."""
    answered = [ctx.views.task(i) for i in chosen]

    def done(deployment: Any) -> Response:
        if deployment is not None:
            return deployment_result(deployment)
        if many:
            return answer({"tasks": answered})
        return answer({"task": answered[0]})

    return ctx.controller.kill_tasks(chosen, scale, force).addCallback(done)


def install(router: Any, ctx: ApiContext) -> None:
    api = endpoint(ctx)

    @api
    def list_tasks(request: server.Request) -> Any:
        wanted = [s.lower() for s in values(request, "status")]
        unknown = [s for s in wanted if s not in STATUS]
        if unknown:
            raise ApiError(400, f"Unknown task status {unknown[0]!r}; use one of {', '.join(sorted(STATUS))}")
        accept = header(request, "accept") or ""
        if "text/plain" in accept and "json" not in accept:
            return tasks_text(ctx, ctx.state.apps)
        out = []
        for instance in ctx.state.instances:
            if instance.gone:
                continue
            if wanted and not any(_selects(ctx, s, instance) for s in wanted):
                continue
            out.append(ctx.views.task(instance))
        return answer({"tasks": out})

    @api
    def delete_tasks(request: server.Request) -> Any:
        data = body(request)
        ids = data.get("ids") if isinstance(data, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ApiError(400, "Expected a JSON object with 'ids', a list of task ids",
                           [{"path": "/ids", "errors": ["error.expected.jsarray"]}])
        chosen, unknown = [], []
        for task_id in ids:
            instance = ctx.state.instances.get(task_id)
            if instance is None or instance.gone:
                unknown.append(task_id)
            else:
                chosen.append(instance)
        if unknown:
            raise ApiError(400, f"Unknown task ids: {', '.join(unknown[:20])}")
        flag(request, "wipe", False)
        return kill_answer(ctx, chosen, flag(request, "scale", False), flag(request, "force", False), many=True)

    router.route("/v2/tasks", list_tasks)
    router.route("/v2/tasks/delete", delete_tasks, methods=("POST",))


def _selects(ctx: ApiContext, status: str, instance: Instance) -> bool:
    if status in ("healthy", "unhealthy"):
        health = instance.healthy(ctx.views.checks_of(instance))
        return health is (status == "healthy")
    return instance.state in STATUS[status]
