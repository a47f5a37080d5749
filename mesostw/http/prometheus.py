"""``GET /metrics``: the ``/metrics/snapshot`` figures in Prometheus's text format 0.0.4.

Mesos only serves the JSON snapshot; scrapers (and mesos_exporter before
them) turn each ``a/b/c`` key into ``mesos_a_b_c``. Here every daemon gets its
own :class:`prometheus_client.CollectorRegistry` holding one collector that
reads the snapshot at scrape time, so several masters and agents in one
process (``mesos-local``, tests) never share or clash in the global registry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from twisted.web import server

from mesostw.http.router import Response, Router

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Snapshot keys that only ever grow (Mesos's ``Counter`` metrics); everything else is a gauge.
_COUNTER = re.compile(
    r"(^|/)("
    r"tasks_(finished|failed|killed|lost|error|dropped|gone|gone_by_operator)"
    r"|messages_\w+|\w+_messages"
    r"|(in)?valid_\w+"
    r"|slave_(re)?registrations|slave_removals(/\w+)?|recovery_slave_removals"
    r"|recovery_errors|executors_terminated|allocation_runs"
    r")$"
)
_INVALID = re.compile(r"[^a-zA-Z0-9_:]")

Snapshot = Callable[[], Mapping[str, Any]]


def metric_name(key: str) -> str:
    """``master/cpus_total`` -> ``mesos_master_cpus_total`` (any other odd character becomes ``_``)."""
    return "mesos_" + _INVALID.sub("_", key)


def is_counter(key: str) -> bool:
    return _COUNTER.search(key) is not None


class SnapshotCollector:
    """A custom collector: one counter or gauge family per numeric snapshot key."""

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot

    def describe(self) -> list[Metric]:
        # Names come from the snapshot at scrape time; nothing to reserve at registration.
        return []

    def collect(self) -> Iterator[Metric]:
        taken: set[str] = set()
        for key, value in sorted(self.snapshot().items()):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                continue
            name = metric_name(key)
            family: Metric
            if is_counter(key):
                exposed = {name.removesuffix("_total"), name.removesuffix("_total") + "_total"}
                family = CounterMetricFamily(name, f"Mesos counter {key}", value=float(value))
            else:
                exposed = {name}
                family = GaugeMetricFamily(name, f"Mesos gauge {key}", value=float(value))
            if exposed & taken:
                continue  # two keys that sanitise alike: the first (in key order) wins
            taken |= exposed
            yield family


class PrometheusEndpoint:
    """Serves one daemon's snapshot as Prometheus text from a private registry."""

    def __init__(self, snapshot: Snapshot):
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(snapshot))

    def install(self, router: Router, path: str = "/metrics") -> None:
        router.route(path, self.render)

    def render(self, request: server.Request) -> Response:
        return Response(generate_latest(self.registry), 200, {"Content-Type": CONTENT_TYPE})
