"""Framework, agent, master, command and executor descriptions with their v1 JSON shapes."""

from __future__ import annotations

import socket
import struct
import weakref
from typing import Any

import attrs

from mesostw import __version__
from mesostw.model.attributes import attributes_from_json, attributes_to_json
from mesostw.model.resources import EMPTY, UNRESERVED, Resources, validate_role
from mesostw.model.validation import MAX_DEPTH, Reader, b64, read, too_deep

#: Framework capabilities Mesos defines; unknown ones are kept but ignored.
CAPABILITIES = (
    "REVOCABLE_RESOURCES",
    "TASK_KILLING_STATE",
    "GPU_RESOURCES",
    "SHARED_RESOURCES",
    "PARTITION_AWARE",
    "MULTI_ROLE",
    "RESERVATION_REFINEMENT",
    "REGION_AWARE",
)


def wrap(value: str) -> dict[str, str]:
    """An ID in its v1 wrapper."""
    return {"value": value}


def _extra(reader: Reader, known: tuple[str, ...]) -> dict[str, Any]:
    return reader.extra(known)


@attrs.frozen
class FrameworkInfo:
    user: str
    name: str
    id: str | None = None
    failover_timeout: float = 0.0
    checkpoint: bool = False
    role: str = UNRESERVED
    roles: tuple[str, ...] = ()
    hostname: str | None = None
    principal: str | None = None
    webui_url: str | None = None
    capabilities: frozenset[str] = frozenset()
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    _KNOWN = ("user", "name", "id", "failover_timeout", "checkpoint", "role", "roles", "hostname",
              "principal", "webui_url", "capabilities")

    @property
    def allocation_role(self) -> str:
        """The role whose resources this framework is offered (first of ``roles`` for multi-role)."""
        if "MULTI_ROLE" in self.capabilities and self.roles:
            return self.roles[0]
        return self.role

    @property
    def partition_aware(self) -> bool:
        return "PARTITION_AWARE" in self.capabilities

    @classmethod
    def read(cls, r: Reader) -> FrameworkInfo:
        role = r.str("role", UNRESERVED, max_len=255)
        roles = tuple(r.strs("roles", max_items=64))
        for candidate in (role, *roles):
            problem = validate_role(candidate)
            if problem:
                r.error(problem, "role")
        capabilities = frozenset(c.str("type", "", max_len=64) for c in r.objs("capabilities", max_items=64))
        return cls(
            user=r.str("user", "", required=True, max_len=255),
            name=r.str("name", "", required=True, max_len=1024),
            id=r.id("id"),
            failover_timeout=r.float("failover_timeout", 0.0, minimum=0.0),
            checkpoint=r.bool("checkpoint", False),
            role=role,
            roles=roles,
            hostname=r.str("hostname", max_len=255),
            principal=r.str("principal", max_len=1024),
            webui_url=r.str("webui_url", max_len=4096),
            capabilities=capabilities,
            extra=_extra(r, cls._KNOWN),
        )

    @classmethod
    def from_json(cls, data: Any) -> FrameworkInfo:
        return read(data, cls.read, "framework_info")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(user=self.user, name=self.name, failover_timeout=self.failover_timeout,
                   checkpoint=self.checkpoint, role=self.role)
        if self.id:
            out["id"] = wrap(self.id)
        if self.roles:
            out["roles"] = list(self.roles)
        for key in ("hostname", "principal", "webui_url"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.capabilities:
            out["capabilities"] = [{"type": c} for c in sorted(self.capabilities)]
        return out


@attrs.frozen
class AgentInfo:
    hostname: str
    port: int = 5051
    resources: Resources = EMPTY
    attributes: dict[str, Any] = attrs.field(factory=dict)
    id: str | None = None
    checkpoint: bool = True

    @classmethod
    def read(cls, r: Reader) -> AgentInfo:
        return cls(
            hostname=r.str("hostname", "", required=True, max_len=255),
            port=r.int("port", 5051, minimum=0),
            resources=Resources.read(r, "resources"),
            attributes=attributes_from_json(r, "attributes"),
            id=r.id("id"),
            checkpoint=r.bool("checkpoint", True),
        )

    @classmethod
    def from_json(cls, data: Any) -> AgentInfo:
        return read(data, cls.read, "agent_info")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "hostname": self.hostname,
            "port": self.port,
            "resources": self.resources.to_json(),
            "attributes": attributes_to_json(self.attributes),
            "checkpoint": self.checkpoint,
        }
        if self.id:
            out["id"] = wrap(self.id)
        return out

    def registry_json(self) -> dict[str, Any]:
        """:meth:`to_json` without the ID, whose resources and attributes are the same objects for every agent
        that has the same ones: what the registry keeps in memory of each of ten thousand agents, under its ID
        (which it adds to what it writes), and never edits."""
        return {
            "hostname": self.hostname,
            "port": self.port,
            "resources": _shared_json(_RESOURCES_JSON, self.resources, self.resources.to_json),
            "attributes": _shared_json(_ATTRIBUTES_JSON, _attributes_key(self.attributes),
                                       lambda: attributes_to_json(self.attributes)),
            "checkpoint": self.checkpoint,
        }


#: the JSON of the resources and the attributes agents registered with (see :meth:`AgentInfo.registry_json`);
#: a cluster's machines mostly have a few shapes, and the cache stops growing past that
_RESOURCES_JSON: dict[Any, Any] = {}
_ATTRIBUTES_JSON: dict[Any, Any] = {}
_SHARED_JSON_MAX = 4096


def _attributes_key(attributes: dict[str, Any]) -> Any:
    try:
        key = tuple(attributes.items())
        hash(key)
    except TypeError:
        return None
    return key


def _shared_json(cache: dict[Any, Any], key: Any, make: Any) -> Any:
    if key is None:
        return make()
    found = cache.get(key)
    if found is None:
        found = make()
        if len(cache) < _SHARED_JSON_MAX:
            cache[key] = found
    return found


#: the environment of every command read without one (never changed)
_NO_ENVIRONMENT: dict[str, str] = {}
#: commands read, by their fields: the instances of one application run the same command
_COMMANDS: weakref.WeakValueDictionary[Any, CommandInfo] = weakref.WeakValueDictionary()


def _shared_command(command: CommandInfo) -> CommandInfo:
    """``command``, or an equal one alive (the master keeps the command of each of its live tasks)."""
    if command.uris:
        return command
    key = (command.value, command.shell, command.arguments, tuple(command.environment.items()), command.user)
    found = _COMMANDS.get(key)
    if found is None:
        _COMMANDS[key] = command
        return command
    return found


def ip_to_uint32(ip: str) -> int:
    """MasterInfo.ip: the IPv4 address as a uint32 in network byte order, read little-endian."""
    try:
        return int(struct.unpack("<I", socket.inet_aton(ip))[0])
    except OSError:
        return 0


@attrs.frozen
class MasterInfo:
    id: str
    ip: str
    port: int
    hostname: str
    version: str = __version__

    @property
    def pid(self) -> str:
        return f"master@{self.ip}:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"{self.ip}:{self.port}"

    @classmethod
    def read(cls, r: Reader) -> MasterInfo:
        address = r.obj("address")
        ip = address.str("ip", max_len=64) if address else None
        port = address.int("port", None) if address else None
        pid = r.str("pid", "", max_len=300)
        if ip is None and "@" in pid:
            ip = pid.split("@", 1)[1].rsplit(":", 1)[0]
        if ip is None:
            r.error("needs address.ip or pid")
        return cls(
            id=r.str("id", "", required=True, max_len=255),
            ip=ip or "",
            port=port if port is not None else r.int("port", 5050),
            hostname=r.str("hostname", None, max_len=255) or ip or "",
            version=r.str("version", "", max_len=64),
        )

    @classmethod
    def from_json(cls, data: Any) -> MasterInfo:
        return read(data, cls.read, "master_info")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ip": ip_to_uint32(self.ip),
            "port": self.port,
            "pid": self.pid,
            "hostname": self.hostname,
            "version": self.version,
            "address": {"hostname": self.hostname, "ip": self.ip, "port": self.port},
        }


@attrs.frozen
class CommandInfo:
    value: str | None = None
    shell: bool = True
    arguments: tuple[str, ...] = ()
    environment: dict[str, str] = attrs.field(factory=dict)
    user: str | None = None
    uris: tuple[dict[str, Any], ...] = ()

    def argv(self) -> list[str]:
        """The program and arguments this command runs."""
        if self.shell:
            return ["/bin/sh", "-c", self.value or ""]
        return list(self.arguments) or [self.value or ""]

    @classmethod
    def read(cls, r: Reader) -> CommandInfo:
        shell = r.bool("shell", True)
        value = r.str("value", max_len=1 << 20)
        if shell and value is None:
            r.error("needs a value when shell is true")
        env: dict[str, str] = {}
        holder = r.obj("environment")
        for var in holder.objs("variables", max_items=10_000) if holder else ():
            name = var.str("name", required=True, max_len=4096)
            if name is not None:
                env[name] = var.str("value", "", max_len=1 << 20)
        uris = []
        for uri in r.objs("uris", max_items=1000):
            if uri.str("value", required=True, max_len=8192) is not None:
                if too_deep(uri.data):
                    uri.error(f"must not nest more than {MAX_DEPTH} levels deep")
                    continue
                uris.append(dict(uri.data))
        return _shared_command(cls(
            value=value,
            shell=shell,
            arguments=tuple(r.strs("arguments", max_items=10_000)),
            environment=env or _NO_ENVIRONMENT,
            user=r.str("user", max_len=255),
            uris=tuple(uris),
        ))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shell": self.shell}
        if self.value is not None:
            out["value"] = self.value
        if self.arguments:
            out["arguments"] = list(self.arguments)
        if self.environment:
            out["environment"] = {"variables": [{"name": k, "value": v} for k, v in self.environment.items()]}
        if self.user is not None:
            out["user"] = self.user
        if self.uris:
            out["uris"] = [dict(u) for u in self.uris]
        return out


@attrs.frozen
class ExecutorInfo:
    executor_id: str
    framework_id: str | None = None
    command: CommandInfo | None = None
    resources: Resources = EMPTY
    name: str | None = None
    source: str | None = None
    data: bytes | None = None
    type: str = "CUSTOM"
    shutdown_grace_period: float | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    _KNOWN = ("executor_id", "framework_id", "command", "resources", "name", "source", "data", "type",
              "shutdown_grace_period")

    @classmethod
    def read(cls, r: Reader) -> ExecutorInfo:
        command = r.obj("command")
        grace = r.obj("shutdown_grace_period")
        nanos = grace.int("nanoseconds", None) if grace else None
        return cls(
            executor_id=r.id("executor_id", "", required=True),
            framework_id=r.id("framework_id"),
            command=CommandInfo.read(command) if command else None,
            resources=Resources.read(r, "resources"),
            name=r.str("name", max_len=4096),
            source=r.str("source", max_len=4096),
            data=r.bytes("data"),
            type=r.enum("type", ("DEFAULT", "CUSTOM", "UNKNOWN"), "CUSTOM"),
            shutdown_grace_period=nanos / 1e9 if nanos is not None else None,
            extra=_extra(r, cls._KNOWN),
        )

    @classmethod
    def from_json(cls, data: Any) -> ExecutorInfo:
        return read(data, cls.read, "executor_info")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(executor_id=wrap(self.executor_id), type=self.type, resources=self.resources.to_json())
        if self.framework_id:
            out["framework_id"] = wrap(self.framework_id)
        if self.command is not None:
            out["command"] = self.command.to_json()
        for key in ("name", "source"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.data is not None:
            out["data"] = b64(self.data)
        if self.shutdown_grace_period is not None:
            out["shutdown_grace_period"] = {"nanoseconds": int(self.shutdown_grace_period * 1e9)}
        return out


@attrs.frozen
class Filters:
    """Offer filters: how long refused resources stay away from the framework."""

    refuse_seconds: float = 5.0

    #: Mesos caps refusals at a year (MESOS-7660).
    MAX_REFUSE = 31536000.0

    @classmethod
    def read(cls, r: Reader | None) -> Filters:
        if r is None:
            return cls()
        seconds = r.float("refuse_seconds", 5.0)
        return cls(min(seconds, cls.MAX_REFUSE) if seconds is not None else 5.0)

    def to_json(self) -> dict[str, Any]:
        return {"refuse_seconds": self.refuse_seconds}
