"""Metrics: Chronos's ``/metrics`` (Dropwizard-shaped JSON, which chronos-python reads) and the same
figures in Prometheus's text format, from a private registry read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from frameworks.cron.planner import Planner
from frameworks.cron.runs import ACTIVE, PENDING
from frameworks.cron.views import quantile

PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
#: Run counters of the planner (``runs_<name>``) exported as ``chronos_runs_total{outcome=...}``.
OUTCOMES = ("succeeded", "failed", "retried", "missed", "killed")


def gauges(planner: Planner) -> dict[str, int]:
    jobs = planner.jobs.values()
    runs = planner.runs.values()
    return {
        "jobs": len(planner.jobs),
        "jobs_scheduled": sum(1 for r in jobs if r.job.scheduled),
        "jobs_dependent": sum(1 for r in jobs if r.job.parents is not None),
        "jobs_disabled": sum(1 for r in jobs if r.job.disabled),
        "runs_pending": sum(1 for r in runs if r.state == PENDING),
        "runs_queued": len(planner.ready) + len(planner.ready_high),
        "runs_active": sum(1 for r in runs if r.state in ACTIVE),
        "revive_pending": int(planner.revive_pending),
        "suppressed": int(planner.suppressed),
    }


def snapshot(planner: Planner) -> dict[str, Any]:
    """Dropwizard's JSON layout (``gauges``/``counters``/``histograms`` of ``{"value"|"count": ...}``)."""
    lateness = list(planner.lateness)
    return {
        "version": "3.0.0",
        "gauges": {f"chronos.{k}": {"value": v} for k, v in gauges(planner).items()},
        "counters": {f"chronos.{k}": {"count": v} for k, v in sorted(planner.metrics.items())},
        "histograms": {"chronos.lateness_ms": {
            "count": len(lateness), "p50": quantile(lateness, 0.5), "p99": quantile(lateness, 0.99),
            "max": max(lateness) if lateness else 0}},
        "meters": {},
        "timers": {},
    }


class PlannerCollector:
    def __init__(self, planner: Planner):
        self.planner = planner

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        planner = self.planner
        for key, value in gauges(planner).items():
            yield GaugeMetricFamily(f"chronos_{key}", f"Current {key.replace('_', ' ')}", value=value)
        runs = CounterMetricFamily("chronos_runs", "Runs by outcome", labels=["outcome"])
        for outcome in OUTCOMES:
            runs.add_metric([outcome], planner.metrics.get(f"runs_{outcome}", 0))
        yield runs
        triggers = CounterMetricFamily("chronos_runs_created", "Runs created by trigger", labels=["trigger"])
        for trigger in ("schedule", "manual", "dependency"):
            triggers.add_metric([trigger], planner.metrics.get(f"runs_{trigger}", 0))
        yield triggers
        yield CounterMetricFamily("chronos_launches", "Tasks launched", value=planner.metrics.get("launches", 0))
        yield CounterMetricFamily("chronos_relaunches", "Launches of runs whose task never started",
                                  value=planner.metrics.get("relaunches", 0))
        lateness = [ms / 1000.0 for ms in planner.lateness]
        summary = Metric("chronos_lateness_seconds", "From a slot's time to its task running (recent runs)",
                         "summary")
        for q in (0.5, 0.9, 0.99):
            summary.add_sample("chronos_lateness_seconds", {"quantile": str(q)}, quantile(lateness, q))
        summary.add_sample("chronos_lateness_seconds_count", {}, len(lateness))
        summary.add_sample("chronos_lateness_seconds_sum", {}, sum(lateness))
        yield summary


class Metrics:
    """Both renderings of one planner's figures."""

    def __init__(self, planner: Planner):
        self.planner = planner
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(PlannerCollector(planner))

    def prometheus(self) -> bytes:
        return generate_latest(self.registry)

    def json(self) -> dict[str, Any]:
        return snapshot(self.planner)
