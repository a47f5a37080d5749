"""Instances: one Mesos task of an app each, tracked by task id, app and host.

Pure data and indexes. The :class:`InstanceTracker` is the one owner of
instances: the controller changes them only through it, so the per-app and
per-host indexes never drift. The store keeps each instance as one small JSON
value (:meth:`Instance.to_store`) so that a new leader knows every task it
launched, on which agent, and whether it was being stopped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from frameworks.service import pathid
from frameworks.service.constraints import Placement
from frameworks.service.health import HealthState, ReadinessState, healthy
from frameworks.service.timestamps import format_ts
from mesostw.model import task as T

RUNNING_GOAL, STOPPED_GOAL = "running", "stopped"

#: Marathon's instance conditions by Mesos task state (instance_changed_event).
CONDITIONS = {
    T.STAGING: "Staging", T.STARTING: "Starting", T.RUNNING: "Running", T.KILLING: "Killing",
    T.FINISHED: "Finished", T.FAILED: "Failed", T.KILLED: "Killed", T.ERROR: "Error", T.LOST: "Gone",
    T.DROPPED: "Dropped", T.UNREACHABLE: "Unreachable", T.GONE: "Gone", T.GONE_BY_OPERATOR: "Gone",
    T.UNKNOWN: "Unknown",
}
#: States after which an instance is gone for good (TASK_UNKNOWN included: the master forgot it).
GONE_STATES = T.TERMINAL_STATES | {T.UNKNOWN}


def new_task_id(app_id: str) -> str:
    """Marathon's task id: the app id without slashes, a dot, a UUID (``prod_web.5c1a...``)."""
    return f"{pathid.safe(app_id)}.{uuid.uuid4()}"


@attrs.define(eq=False)
class Instance:
    task_id: str
    app_id: str
    version: str                 # the app version it was launched with
    config_version: str          # that version's lastConfigChangeAt
    agent_id: str
    host: str
    ports: list[int] = attrs.field(factory=list)
    service_ports: list[int] = attrs.field(factory=list)
    attributes: dict[str, Any] = attrs.field(factory=dict)
    state: str = T.STAGING
    staged_at: float = 0.0
    started_at: float | None = None
    goal: str = RUNNING_GOAL
    kill_sent_at: float | None = None
    kill_reason: str | None = None
    unreachable_since: float | None = None
    message: str | None = None
    health: list[HealthState | None] = attrs.field(factory=list)
    readiness: ReadinessState | None = None
    launched: bool = True        # False while its record is being written, before the launch is sent

    # -- views ---------------------------------------------------------------------------------

    @property
    def gone(self) -> bool:
        return self.state in GONE_STATES

    @property
    def running(self) -> bool:
        return self.state == T.RUNNING

    @property
    def killing(self) -> bool:
        return self.kill_sent_at is not None

    @property
    def condition(self) -> str:
        return CONDITIONS.get(self.state, "Unknown")

    def healthy(self, checks: int) -> bool | None:
        return healthy(self.health, checks)

    def available(self, checks: int, readiness: bool) -> bool:
        """Serving: running, every health check alive, and ready when the app has a readiness check."""
        if not self.running or self.killing:
            return False
        if checks and self.healthy(checks) is not True:
            return False
        return not readiness or self.readiness is None or self.readiness.ready

    def placement(self) -> Placement:
        return Placement(self.host, self.attributes)

    # -- JSON ----------------------------------------------------------------------------------

    def to_json(self, checks: int) -> dict[str, Any]:
        """The task as marathon-python parses it (only its whitelisted keys)."""
        out: dict[str, Any] = {
            "id": self.task_id,
            "appId": self.app_id,
            "host": self.host,
            "ipAddresses": [],
            "ports": list(self.ports),
            "servicePorts": list(self.service_ports),
            "slaveId": self.agent_id,
            "state": self.state,
            "stagedAt": format_ts(self.staged_at),
            "startedAt": format_ts(self.started_at) if self.started_at is not None else None,
            "version": self.version,
            "localVolumes": [],
        }
        if checks:
            out["healthCheckResults"] = [h.to_json(self.task_id) for h in self.health[:checks] if h is not None]
        return out

    def to_store(self) -> dict[str, Any]:
        out = {
            "taskId": self.task_id, "appId": self.app_id, "version": self.version,
            "configVersion": self.config_version, "agentId": self.agent_id, "host": self.host,
            "ports": self.ports, "servicePorts": self.service_ports, "attributes": _attributes_out(self.attributes),
            "state": self.state, "stagedAt": self.staged_at, "startedAt": self.started_at, "goal": self.goal,
            "killReason": self.kill_reason, "unreachableSince": self.unreachable_since,
            "health": [h.to_store() if h is not None else None for h in self.health],
        }
        if self.readiness is not None:
            out["ready"] = self.readiness.ready
        return out

    @classmethod
    def from_store(cls, data: Mapping[str, Any]) -> Instance:
        instance = cls(task_id=data["taskId"], app_id=data["appId"], version=data["version"],
                       config_version=data["configVersion"], agent_id=data["agentId"], host=data["host"],
                       ports=list(data.get("ports", ())), service_ports=list(data.get("servicePorts", ())),
                       attributes=_attributes_in(data.get("attributes", {})), state=data.get("state", T.STAGING),
                       staged_at=data.get("stagedAt", 0.0), started_at=data.get("startedAt"),
                       goal=data.get("goal", RUNNING_GOAL), kill_reason=data.get("killReason"),
                       unreachable_since=data.get("unreachableSince"),
                       health=[HealthState.from_store(h) if h else None for h in data.get("health", [])])
        if "ready" in data:
            instance.readiness = ReadinessState("readinessCheck", ready=bool(data["ready"]))
        return instance


def _attributes_out(attributes: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in attributes.items():
        if isinstance(value, tuple):
            out[name] = {"ranges": [list(r) for r in value]}
        elif isinstance(value, frozenset):
            out[name] = {"set": sorted(value)}
        else:
            out[name] = value
    return out


def _attributes_in(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, dict) and "ranges" in value:
            out[name] = tuple(tuple(r) for r in value["ranges"])
        elif isinstance(value, dict) and "set" in value:
            out[name] = frozenset(value["set"])
        else:
            out[name] = value
    return out


class InstanceTracker:
    """Every live instance, indexed by task id, app and host."""

    def __init__(self) -> None:
        self._by_id: dict[str, Instance] = {}
        self._by_app: dict[str, dict[str, Instance]] = {}
        self._by_host: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Instance]:
        return iter(list(self._by_id.values()))

    def get(self, task_id: str) -> Instance | None:
        return self._by_id.get(task_id)

    def of_app(self, app_id: str) -> list[Instance]:
        return list(self._by_app.get(app_id, {}).values())

    def count(self, app_id: str) -> int:
        return len(self._by_app.get(app_id, ()))

    def app_ids(self) -> list[str]:
        return list(self._by_app)

    def on_host(self, host: str) -> list[Instance]:
        return [self._by_id[t] for t in self._by_host.get(host, ())]

    def add(self, instance: Instance) -> None:
        if instance.task_id in self._by_id:
            raise KeyError(f"instance {instance.task_id} is already tracked")
        self._by_id[instance.task_id] = instance
        self._by_app.setdefault(instance.app_id, {})[instance.task_id] = instance
        self._by_host.setdefault(instance.host, set()).add(instance.task_id)

    def remove(self, task_id: str) -> Instance | None:
        instance = self._by_id.pop(task_id, None)
        if instance is None:
            return None
        of_app = self._by_app.get(instance.app_id, {})
        of_app.pop(task_id, None)
        if not of_app:
            self._by_app.pop(instance.app_id, None)
        on_host = self._by_host.get(instance.host, set())
        on_host.discard(task_id)
        if not on_host:
            self._by_host.pop(instance.host, None)
        return instance
