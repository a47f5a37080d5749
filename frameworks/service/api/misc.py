"""``/v2/info``, ``/v2/leader``, ``/ping``, ``/metrics`` (Marathon's JSON and Prometheus text),
and the legacy ``/v2/eventSubscriptions`` (none: use ``/v2/events``)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from twisted.web import server

from frameworks.service.api import ApiContext
from frameworks.service.api.common import answer, endpoint
from frameworks.service.errors import ApiError
from mesostw import __version__
from mesostw.http.router import Response
from mesostw.interfaces import AbdicationRefused

#: The Marathon release whose API shape this follows (clients compare it to 0.11.0 and later).
MARATHON_VERSION = "1.6.0"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
_INVALID = re.compile(r"[^a-zA-Z0-9_:]")


def _leader_address(ctx: ApiContext) -> str | None:
    other = ctx.host.leader()
    if other:
        return str(other)
    url = ctx.host.api_url or ""
    return url.split("://", 1)[-1] or None


def info(ctx: ApiContext) -> dict[str, Any]:
    config = ctx.config
    url = ctx.host.api_url or ""
    port = int(url.rsplit(":", 1)[1]) if url.count(":") >= 2 else getattr(config, "http_port", None)
    zk = getattr(config, "zk", "") or ""
    return {
        "name": "marathon",
        "version": MARATHON_VERSION,
        "buildref": f"mesostw-{__version__}",
        "elected": ctx.leading,
        "leader": _leader_address(ctx),
        "frameworkId": ctx.state.framework_id,
        "marathon_config": {
            "checkpoint": True,
            "executor": "//cmd",
            "failover_timeout": int(config.failover_timeout),
            "framework_name": config.framework_name,
            "ha": bool(zk),
            "hostname": url.split("://", 1)[-1].rsplit(":", 1)[0] if url else "",
            "local_port_min": config.local_port_min,
            "local_port_max": config.local_port_max,
            "master": getattr(config, "master", "") or "",
            "mesos_role": config.mesos_role,
            "mesos_user": config.mesos_user,
            "webui_url": url or None,
            "reconciliation_initial_delay": 0,
            "reconciliation_interval": int(config.reconciliation_interval * 1000),
            "task_launch_timeout": int(config.task_launch_timeout * 1000),
            "decline_offer_duration": int(config.decline_offer_duration * 1000),
            "max_instances_per_offer": config.max_instances_per_offer,
            "scale_apps_interval": int(config.scale_apps_interval * 1000),
            "features": [],
        },
        "zookeeper_config": {
            "zk": zk or None,
            "zk_timeout": 10000,
            "zk_session_timeout": 10000,
            "zk_max_versions": config.zk_max_versions,
        },
        "http_config": {"http_port": port, "https_port": None, "assets_path": None},
        "event_subscriber": None,
    }


def snapshot(ctx: ApiContext) -> dict[str, float]:
    """Counters and gauges by Marathon-ish dotted name."""
    state = ctx.state
    instances = list(state.instances)
    gauges = {
        "service.apps": len(state.apps),
        "service.deployments": len(state.deployments),
        "service.instances": len(instances),
        "service.instances.running": sum(1 for i in instances if i.running),
        "service.instances.staging": sum(1 for i in instances if not i.running and not i.gone),
        "service.queue.apps": len(state.queue.waiting()),
        "service.queue.launches": sum(e.pending for e in state.queue.waiting()),
        "service.events.subscribers": ctx.bus.subscribers,
        "service.health.probes": ctx.runtime.monitor.probes,
        "service.leader": 1.0 if ctx.leading else 0.0,
        "service.uptime_seconds": max(0.0, ctx.host.reactor.seconds() - ctx.started),
    }
    counters = {f"service.{name}": float(count) for name, count in ctx.runtime.metrics.items()}
    counters["service.events.published"] = float(ctx.bus.published)
    return {**gauges, **counters}


class _Collector:
    def __init__(self, ctx: ApiContext):
        self.ctx = ctx

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        counters = set(self.ctx.runtime.metrics) | {"events.published"}
        for key, number in sorted(snapshot(self.ctx).items()):
            if isinstance(number, bool) or math.isnan(number):
                continue
            name = "marathon_" + _INVALID.sub("_", key.removeprefix("service."))
            if key.removeprefix("service.") in counters:
                yield CounterMetricFamily(name, f"counter {key}", value=float(number))
            else:
                yield GaugeMetricFamily(name, f"gauge {key}", value=float(number))


def install(router: Any, ctx: ApiContext) -> None:
    api = endpoint(ctx)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(ctx))

    @api
    def get_info(request: server.Request) -> Any:
        return answer(info(ctx))

    def get_leader(request: server.Request) -> Any:
        leader = _leader_address(ctx) if ctx.leading or ctx.host.leader() else None
        if not leader:
            return answer({"message": "There is no leader"}, 404)
        return answer({"leader": leader})

    @api
    def delete_leader(request: server.Request) -> Any:
        # The host stops this instance a moment later (after this answer), and another one leads.
        try:
            ctx.host.abdicate()
        except AbdicationRefused as exc:
            raise ApiError(400, str(exc)) from None
        return answer({"message": "Leadership abdicated"})

    def ping(request: server.Request) -> Response:
        return Response(b"pong", 200, {"Content-Type": "text/plain; charset=utf-8",
                                       "Cache-Control": "must-revalidate,no-cache,no-store"})

    def metrics(request: server.Request) -> Response:
        values = snapshot(ctx)
        counters = {f"service.{name}" for name in ctx.runtime.metrics} | {"service.events.published"}
        return answer({
            "version": "4.0.0",
            "gauges": {k: {"value": v} for k, v in values.items() if k not in counters},
            "counters": {k: {"count": int(v)} for k, v in values.items() if k in counters},
            "histograms": {}, "meters": {}, "timers": {},
        })

    def prometheus(request: server.Request) -> Response:
        return Response(generate_latest(registry), 200, {"Content-Type": PROMETHEUS})

    def subscriptions(request: server.Request) -> Any:
        if request.method == b"GET":
            return answer({"callbackUrls": []})
        return answer({"message": "HTTP callback subscriptions are not supported: read the events from "
                                  "/v2/events (Server-Sent Events)"}, 400)

    router.route("/v2/info", get_info)
    router.route("/v2/leader", get_leader)
    router.route("/v2/leader", delete_leader, methods=("DELETE",))
    router.route("/ping", ping)
    router.route("/metrics", metrics)
    router.route("/metrics/prometheus", prometheus)
    router.route("/v2/eventSubscriptions", subscriptions, methods=("GET", "POST", "DELETE"))
