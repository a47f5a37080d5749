"""The agent's HTTP endpoints: state, flags, health, metrics and per-executor statistics."""

from __future__ import annotations

from typing import Any

from twisted.web import server

from mesostw.agent import state_json
from mesostw.agent.agent import REGISTERED, Agent
from mesostw.agent.state import REGISTERING, RUNNING, TERMINATING
from mesostw.http.prometheus import PrometheusEndpoint
from mesostw.http.router import Response, Router
from mesostw.metrics import system_metrics
from mesostw.version import build_info

PREFIX = "/slave(1)"


class AgentEndpoints:
    def __init__(self, agent: Agent, flags: dict[str, str]):
        self.agent = agent
        self.flags = flags
        self.prometheus = PrometheusEndpoint(lambda: snapshot(self.agent))

    def install(self, router: Router) -> None:
        for prefix in ("", PREFIX):
            router.route(f"{prefix}/state", self.state)
            router.route(f"{prefix}/state.json", self.state)
            router.route(f"{prefix}/flags", lambda request: {"flags": self.flags})
            router.route(f"{prefix}/health", lambda request: Response(b"", 200))
        router.route("/version", lambda request: build_info())
        router.route("/metrics/snapshot", self.snapshot)
        self.prometheus.install(router)
        router.route("/monitor/statistics", self.statistics)
        router.route("/monitor/statistics.json", self.statistics)

    def state(self, request: server.Request) -> dict[str, Any]:
        return state_json.state(self.agent, self.flags)

    def statistics(self, request: server.Request) -> list[dict[str, Any]]:
        out = []
        for executor in self.agent.executors():
            statistics = dict(self.agent.containerizer.usage(executor.container_id))
            statistics.setdefault("timestamp", self.agent.clock.seconds())  # required in ResourceStatistics
            out.append({
                "framework_id": executor.framework_id,
                "executor_id": executor.id,
                "executor_name": executor.info.name or "",
                "source": executor.info.source or "",
                "statistics": statistics,
            })
        return out

    def snapshot(self, request: server.Request) -> dict[str, Any]:
        return snapshot(self.agent)


def snapshot(agent: Agent) -> dict[str, Any]:
    """``/metrics/snapshot`` for the agent: Mesos's ``slave/...`` keys plus ``system/...``."""
    m = agent.metrics
    total = agent.total
    used = None
    executors = list(agent.executors())
    for executor in executors:
        for task in executor.live_tasks():
            used = task.resources if used is None else used + task.resources
    out: dict[str, Any] = {
        "slave/registered": 1.0 if agent.state == REGISTERED else 0.0,
        "slave/uptime_secs": agent.clock.seconds() - agent.start_time,
        "slave/frameworks_active": float(len(agent.frameworks)),
        "slave/executors_registering": float(sum(1 for e in executors if e.state == REGISTERING)),
        "slave/executors_running": float(sum(1 for e in executors if e.state == RUNNING)),
        "slave/executors_terminating": float(sum(1 for e in executors if e.state == TERMINATING)),
        "slave/executors_terminated": float(m["executors_terminated"]),
        "slave/valid_status_updates": float(m["valid_status_updates"]),
        "slave/invalid_status_updates": float(m["invalid_status_updates"]),
        "slave/valid_framework_messages": float(m["valid_framework_messages"]),
        "slave/invalid_framework_messages": float(m["invalid_framework_messages"]),
        "slave/recovery_errors": 0.0,
        # which command executor the agent started for how many tasks (see --native_command_executor)
        "slave/command_executors_native": float(m["command_executors_native"]),
        "slave/command_executors_python": float(m["command_executors_python"]),
    }
    for name in ("cpus", "mem", "disk", "gpus"):
        whole = total.scalar(name)
        part = used.scalar(name) if used is not None else 0.0
        out[f"slave/{name}_total"] = whole
        out[f"slave/{name}_used"] = part
        out[f"slave/{name}_percent"] = part / whole if whole else 0.0
    live: dict[str, int] = {}
    for executor in executors:
        for task in executor.live_tasks():
            live[task.state] = live.get(task.state, 0) + 1
    for state in ("staging", "starting", "running", "killing"):
        out[f"slave/tasks_{state}"] = float(live.get(f"TASK_{state.upper()}", 0))
    for state in ("finished", "failed", "killed", "lost", "error", "dropped", "gone"):
        out[f"slave/tasks_{state}"] = float(m[f"tasks_{state}"])
    out.update(system_metrics())
    return out
