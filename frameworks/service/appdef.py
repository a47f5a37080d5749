"""App definitions: the canonical spec as an immutable, versioned :class:`App`.

Pure. :func:`frameworks.service.validation.normalize` turns a client's app JSON into
the *canonical spec*: every field Marathon echoes, with its default, in Marathon's
order. An :class:`App` is a canonical spec plus its version and ``versionInfo``, with
typed views of what the scheduler needs; :func:`merge` applies a partial update. Only
whitelisted keys are ever echoed (marathon-python 0.13 rejects any other): ``tty``,
``check``, ``executorResources`` and ``resourceLimits`` are accepted and dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from frameworks.service import constraints as C

#: Read-only fields marathon-python sends back from get_app; ignored in a request body.
READ_ONLY = frozenset({
    "tasks", "tasksRunning", "tasksStaged", "tasksHealthy", "tasksUnhealthy", "deployments", "versionInfo",
    "lastTaskFailure", "taskStats", "readinessCheckResults", "taskRateLimit", "version",
})
#: Newer Marathon fields accepted for compatibility and dropped: echoing them breaks marathon-python.
DROPPED = frozenset({"tty", "check", "executorResources", "resourceLimits"})
#: The canonical spec's fields, in the order Marathon writes them.
SPEC_FIELDS = (
    "id", "cmd", "args", "user", "env", "instances", "cpus", "mem", "disk", "gpus", "executor", "constraints",
    "fetch", "storeUrls", "backoffSeconds", "backoffFactor", "maxLaunchDelaySeconds", "container", "healthChecks",
    "readinessChecks", "dependencies", "upgradeStrategy", "labels", "acceptedResourceRoles", "ipAddress",
    "secrets", "taskKillGracePeriodSeconds", "unreachableStrategy", "killSelection", "requirePorts",
    "portDefinitions", "networks", "role",
)


def merge(current: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """A partial update: the fields in ``patch`` replace the current ones (read-only ones ignored);
    ``ports``/``uris`` in the patch replace their canonical forms."""
    out = dict(current)
    if "ports" in patch or "portDefinitions" in patch:
        out.pop("portDefinitions", None)
    if "uris" in patch or "fetch" in patch:
        out.pop("fetch", None)
    if "cmd" in patch:
        out.pop("args", None)
    if "args" in patch:
        out.pop("cmd", None)
    for key, value in patch.items():
        if key in READ_ONLY or key in DROPPED:
            continue
        out[key] = value
    return out


# -- the typed view --------------------------------------------------------------------------------

@attrs.frozen
class HealthCheck:
    index: int
    protocol: str
    grace_period: float
    interval: float
    timeout: float
    max_consecutive_failures: int
    port_index: int | None = None
    port: int | None = None
    path: str = "/"
    command: str | None = None
    ignore_1xx: bool = False
    json: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def from_json(cls, index: int, data: Mapping[str, Any]) -> HealthCheck:
        command = data.get("command")
        return cls(index=index, protocol=data["protocol"], grace_period=data["gracePeriodSeconds"],
                   interval=data["intervalSeconds"], timeout=data["timeoutSeconds"],
                   max_consecutive_failures=data["maxConsecutiveFailures"], port_index=data.get("portIndex"),
                   port=data.get("port"), path=data.get("path", "/"),
                   command=command["value"] if command else None, ignore_1xx=data.get("ignoreHttp1xx", False),
                   json=data)

    @property
    def kind(self) -> str:
        """HTTP, HTTPS, TCP or COMMAND, whoever runs it."""
        return self.protocol.removeprefix("MESOS_")

    @property
    def on_agent(self) -> bool:
        """COMMAND and MESOS_* checks run on the task's agent (its executor), the others from here."""
        return self.protocol == "COMMAND" or self.protocol.startswith("MESOS_")

    def to_mesos(self, host_ports: Sequence[int]) -> dict[str, Any] | None:
        """Mesos's ``TaskInfo.health_check`` for an agent-side check (None when its port is missing)."""
        out: dict[str, Any] = {
            "delay_seconds": float(self.json.get("delaySeconds", 15)), "interval_seconds": float(self.interval),
            "timeout_seconds": float(self.timeout), "consecutive_failures": int(self.max_consecutive_failures),
            "grace_period_seconds": float(self.grace_period),
        }
        if self.kind == "COMMAND":
            return {"type": "COMMAND", "command": {"shell": True, "value": self.command or "true"}, **out}
        port = self.port if self.port is not None else (
            host_ports[self.port_index or 0] if (self.port_index or 0) < len(host_ports) else None)
        if port is None:
            return None
        if self.kind == "TCP":
            return {"type": "TCP", "tcp": {"port": port}, **out}
        return {"type": "HTTP", "http": {"scheme": "https" if self.kind == "HTTPS" else "http", "port": port,
                                         "path": self.path}, **out}


@attrs.frozen
class ReadinessCheck:
    name: str
    protocol: str
    path: str
    port_name: str
    interval: float
    timeout: float
    ready_codes: tuple[int, ...]
    preserve_last_response: bool

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReadinessCheck:
        return cls(name=data["name"], protocol=data["protocol"], path=data["path"], port_name=data["portName"],
                   interval=data["intervalSeconds"], timeout=data["timeoutSeconds"],
                   ready_codes=tuple(data["httpStatusCodesForReady"]),
                   preserve_last_response=data["preserveLastResponse"])


@attrs.frozen
class App:
    """One version of an app: the canonical spec plus version fields and parsed views."""

    spec: Mapping[str, Any]
    version: str
    last_scaling_at: str
    last_config_change_at: str
    constraints: tuple[C.Constraint, ...] = attrs.field(eq=False, repr=False)
    health_checks: tuple[HealthCheck, ...] = attrs.field(eq=False, repr=False)
    readiness_checks: tuple[ReadinessCheck, ...] = attrs.field(eq=False, repr=False)
    json: Mapping[str, Any] = attrs.field(eq=False, repr=False)

    @classmethod
    def build(cls, spec: Mapping[str, Any], version: str, last_scaling_at: str | None = None,
              last_config_change_at: str | None = None) -> App:
        scaling = last_scaling_at or version
        config = last_config_change_at or version
        body = dict(spec)
        body["version"] = version
        body["versionInfo"] = {"lastScalingAt": scaling, "lastConfigChangeAt": config}
        return cls(spec=spec, version=version, last_scaling_at=scaling, last_config_change_at=config,
                   constraints=tuple(C.parse(c) for c in spec.get("constraints", ())),
                   health_checks=tuple(HealthCheck.from_json(i, h) for i, h in enumerate(spec.get("healthChecks", ()))),
                   readiness_checks=tuple(ReadinessCheck.from_json(r) for r in spec.get("readinessChecks", ())),
                   json=body)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> App:
        """An app as stored (its definition JSON with ``version`` and ``versionInfo``)."""
        spec = {key: data[key] for key in SPEC_FIELDS if key in data}
        info = data.get("versionInfo") or {}
        return cls.build(spec, data["version"], info.get("lastScalingAt"), info.get("lastConfigChangeAt"))

    # -- views ---------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return str(self.spec["id"])

    @property
    def instances(self) -> int:
        return int(self.spec["instances"])

    @property
    def port_definitions(self) -> list[dict[str, Any]]:
        return list(self.spec.get("portDefinitions", ()))

    @property
    def service_ports(self) -> list[int]:
        return [int(p["port"]) for p in self.port_definitions]

    @property
    def require_ports(self) -> bool:
        return bool(self.spec.get("requirePorts"))

    @property
    def minimum_health_capacity(self) -> float:
        return float(self.spec["upgradeStrategy"]["minimumHealthCapacity"])

    @property
    def maximum_over_capacity(self) -> float:
        return float(self.spec["upgradeStrategy"]["maximumOverCapacity"])

    @property
    def kill_selection(self) -> str:
        return str(self.spec.get("killSelection", "YOUNGEST_FIRST"))

    @property
    def dependencies(self) -> list[str]:
        return list(self.spec.get("dependencies", ()))

    @property
    def accepted_roles(self) -> list[str] | None:
        roles = self.spec.get("acceptedResourceRoles")
        return list(roles) if roles else None

    @property
    def unreachable(self) -> tuple[float, float] | None:
        """(inactiveAfterSeconds, expungeAfterSeconds), or None when disabled."""
        strategy = self.spec.get("unreachableStrategy")
        if not isinstance(strategy, dict):
            return None
        return float(strategy["inactiveAfterSeconds"]), float(strategy["expungeAfterSeconds"])

    def same_config(self, other: App) -> bool:
        """Whether the two versions differ at most in ``instances`` (a change that is only a scale)."""
        mine = {k: v for k, v in self.spec.items() if k != "instances"}
        theirs = {k: v for k, v in other.spec.items() if k != "instances"}
        return mine == theirs

    def with_spec(self, spec: Mapping[str, Any], version: str) -> App:
        """A new version of this app: ``lastConfigChangeAt`` moves only if more than ``instances`` changed."""
        candidate = App.build(spec, version, version, version)
        if candidate.same_config(self):
            return App.build(spec, version, version, self.last_config_change_at)
        return candidate

    def restarted(self, version: str) -> App:
        """The same spec as a new config version (a rolling restart replaces every instance)."""
        return App.build(self.spec, version, version, version)
