"""``/v2/deployments`` (list, roll back or stop) and ``/v2/queue`` (launch queue, delay reset).

A deployment that makes no progress says why: ``/v2/deployments?embed=status`` adds a
``status`` per deployment (app id -> reason) and ``/v2/queue`` always carries the reason in
``processedOffersSummary.why``. Both places are outside marathon-python's strict models
(it never asks for the embed, and reads ``processedOffersSummary`` as a plain dict).
"""

from __future__ import annotations

from typing import Any

from twisted.web import server

from frameworks.service.api import ApiContext
from frameworks.service.api.common import answer, deployment_result, endpoint, flag, path_id, values
from mesostw.http.router import Response


def install(router: Any, ctx: ApiContext) -> None:
    api = endpoint(ctx)

    def why(app_id: str) -> str | None:
        deployment = ctx.state.deployment_of(app_id)
        waiting = deployment.status.get(app_id) if deployment is not None else None
        entry = ctx.state.queue.entries.get(app_id)
        if waiting is None and (entry is None or not entry.pending):
            return None
        return str(ctx.runtime.deployer.explain(app_id, waiting))

    @api
    def list_deployments(request: server.Request) -> Any:
        detailed = "status" in values(request, "embed") or not ctx.config.strict_compat
        ordered = sorted(ctx.state.deployments.values(), key=lambda d: (d.version, d.id))
        explain = ctx.runtime.deployer.explain if detailed else None
        return answer([d.to_json(explain, ctx.views.readiness) for d in ordered])

    @api
    def cancel(request: server.Request, id: str) -> Any:
        force = flag(request, "force", False)

        def done(result: Any) -> Response:
            if result is None or force:
                return Response(b"", 202, {})
            return deployment_result(result)

        return ctx.controller.cancel_deployment(id, force).addCallback(done)

    @api
    def queue(request: server.Request) -> Any:
        with_offers = "lastUnusedOffers" in values(request, "embed")
        return answer({"queue": ctx.views.queue(with_offers, why)})

    @api
    def reset_delay(request: server.Request, id: str) -> Any:
        ctx.controller.reset_delay(path_id(id))
        return Response(b"", 204, {})

    router.route("/v2/deployments", list_deployments)
    router.route("/v2/deployments/{id}", cancel, methods=("DELETE",))
    router.route("/v2/queue", queue)
    router.route("/v2/queue/{id:path}/delay", reset_delay, methods=("DELETE",))
