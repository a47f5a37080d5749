"""Maintenance and draining messages (``mesos:include/mesos/v1/maintenance/maintenance.proto``,
``mesos.proto``'s MachineID, Unavailability, InverseOffer, DrainConfig and DrainInfo).

A machine is named by a :class:`MachineID`, a hostname and an IP address; a maintenance
:class:`Schedule` is a list of :class:`Window` s, each a set of machines and the
:class:`Unavailability` (a start and an optional duration) during which they may go down.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import attrs

from mesostw.model.info import wrap
from mesostw.model.validation import Reader, ValidationError, read

#: A duration or time as protobuf's ``nanoseconds`` fits in an int64.
MAX_NANOS = (1 << 63) - 1

DRAINING, DRAINED = "DRAINING", "DRAINED"
#: ``MachineInfo.Mode``.
UP, DOWN = "UP", "DOWN"
#: ``InverseOfferStatus.Status``.
ACCEPT, DECLINE = "ACCEPT", "DECLINE"


def nanos(seconds: float) -> int:
    return int(round(seconds * 1e9))


def read_nanos(reader: Reader | None, key: str, minimum: int | None = None) -> float | None:
    """``{"nanoseconds": N}`` (a TimeInfo or DurationInfo) at ``key`` as seconds, or None when absent."""
    holder = reader.obj(key) if reader is not None else None
    if holder is None:
        return None
    value = holder.int("nanoseconds", None, required=True, minimum=minimum)
    if value is not None and value > MAX_NANOS:
        holder.error(f"must be at most {MAX_NANOS}", "nanoseconds")
        return None
    return value / 1e9 if value is not None else None


@attrs.frozen
class MachineID:
    """A machine: its hostname (not case-sensitive) and its IP address; either may be empty, not both."""

    hostname: str = ""
    ip: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """What tells machines apart: the hostname in lower case, and the IP."""
        return self.hostname.lower(), self.ip

    def matches(self, hostname: str, ip: str | None) -> bool:
        """Whether an agent at ``hostname`` and ``ip`` (None when unknown) runs on this machine: every field
        the machine gives must be the agent's (a machine named by its hostname alone is every agent of
        that hostname)."""
        if self.hostname and self.hostname.lower() != hostname.lower():
            return False
        if self.ip and self.ip != (ip if ip is not None else hostname):
            return False
        return bool(self.hostname or self.ip)

    @classmethod
    def read(cls, r: Reader) -> MachineID:
        hostname = r.str("hostname", "", max_len=255)
        ip = r.str("ip", "", max_len=64)
        if not hostname and not ip:
            r.error("must have a hostname or an ip (both are empty)")
        if ip:
            try:
                ipaddress.IPv4Address(ip)
            except ValueError:
                r.error(f"is not an IPv4 address: {ip!r}", "ip")
        return cls(hostname or "", ip or "")

    @classmethod
    def from_json(cls, data: Any) -> MachineID:
        return read(data, cls.read, "machine_id")

    def to_json(self) -> dict[str, Any]:
        out = {}
        if self.hostname:
            out["hostname"] = self.hostname
        if self.ip:
            out["ip"] = self.ip
        return out

    def __str__(self) -> str:
        return "/".join(part for part in (self.hostname, self.ip) if part)


@attrs.frozen
class Unavailability:
    """When a machine may go away: from ``start`` (seconds since the epoch), for ``duration`` seconds (None:
    no end known)."""

    start: float
    duration: float | None = None

    @classmethod
    def read(cls, r: Reader) -> Unavailability:
        start = read_nanos(r, "start")
        if not r.has("start"):
            r.error("is required", "start")
        duration = read_nanos(r, "duration")
        if duration is not None and duration < 0:
            r.error("must not be negative", "duration")
        return cls(start if start is not None else 0.0, duration)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"start": {"nanoseconds": nanos(self.start)}}
        if self.duration is not None:
            out["duration"] = {"nanoseconds": nanos(self.duration)}
        return out


@attrs.frozen
class Window:
    machine_ids: tuple[MachineID, ...]
    unavailability: Unavailability

    @classmethod
    def read(cls, r: Reader) -> Window:
        machines = tuple(r.each("machine_ids", MachineID.read, max_items=100_000))
        if not r.list("machine_ids"):
            r.error("must list at least one machine (the window is empty)", "machine_ids")
        holder = r.obj("unavailability", required=True)
        unavailability = Unavailability.read(holder) if holder is not None else Unavailability(0.0)
        return cls(machines, unavailability)

    def to_json(self) -> dict[str, Any]:
        return {"machine_ids": [m.to_json() for m in self.machine_ids],
                "unavailability": self.unavailability.to_json()}


@attrs.frozen
class Schedule:
    """A cluster's maintenance schedule; each machine appears in one window at most."""

    windows: tuple[Window, ...] = ()

    @classmethod
    def read(cls, r: Reader) -> Schedule:
        schedule = cls(tuple(r.each("windows", Window.read, max_items=100_000)))
        seen: set[tuple[str, str]] = set()
        for window in schedule.windows:
            for machine in window.machine_ids:
                if machine.key in seen:
                    r.error(f"lists machine '{machine}' more than once", "windows")
                seen.add(machine.key)
        return schedule

    @classmethod
    def from_json(cls, data: Any) -> Schedule:
        return read(data, cls.read, "schedule")

    def to_json(self) -> dict[str, Any]:
        return {"windows": [w.to_json() for w in self.windows]}

    def machines(self) -> dict[tuple[str, str], tuple[MachineID, Unavailability]]:
        """Machine key -> (machine, its window's unavailability)."""
        return {m.key: (m, w.unavailability) for w in self.windows for m in w.machine_ids}

    def without(self, keys: set[tuple[str, str]]) -> Schedule:
        """This schedule without the machines of ``keys`` (and without windows left empty)."""
        windows = []
        for window in self.windows:
            kept = tuple(m for m in window.machine_ids if m.key not in keys)
            if kept:
                windows.append(Window(kept, window.unavailability))
        return Schedule(tuple(windows))


def read_machines(items: list[Any], where: str = "machines") -> list[MachineID]:
    """A non-empty list of distinct MachineIDs; raises ValidationError naming every problem."""
    errors: list[str] = []
    machines = [MachineID.read(Reader(item, f"{where}[{i}]", errors)) for i, item in enumerate(items)]
    if not items:
        errors.append(f"{where}: the list of machines is empty")
    keys = [m.key for m in machines]
    for machine in machines:
        if keys.count(machine.key) > 1:
            errors.append(f"{where}: machine '{machine}' appears more than once")
            break
    if errors:
        raise ValidationError(errors)
    return machines


@attrs.frozen
class DrainInfo:
    """An agent being drained (DRAINING) or drained (DRAINED), and how (``DrainConfig``)."""

    state: str = DRAINING
    max_grace_period: float | None = None
    mark_gone: bool = False

    @classmethod
    def read(cls, r: Reader) -> DrainInfo:
        state = r.enum("state", (DRAINING, DRAINED), DRAINING)
        config = r.obj("config")
        grace = read_nanos(config, "max_grace_period", minimum=0)
        mark_gone = config.bool("mark_gone", False) if config is not None else False
        return cls(state, grace, bool(mark_gone))

    @classmethod
    def from_json(cls, data: Any) -> DrainInfo:
        return read(data, cls.read, "drain_info")

    def to_json(self) -> dict[str, Any]:
        config: dict[str, Any] = {"mark_gone": self.mark_gone}
        if self.max_grace_period is not None:
            config["max_grace_period"] = {"nanoseconds": nanos(self.max_grace_period)}
        return {"state": self.state, "config": config}


@attrs.frozen
class InverseOffer:
    """The master asks a framework for an agent's resources back (maintenance): empty ``resources`` mean all."""

    id: str
    framework_id: str
    agent_id: str
    unavailability: Unavailability
    hostname: str = ""
    agent_port: int = 5051

    @classmethod
    def read(cls, r: Reader) -> InverseOffer:
        holder = r.obj("unavailability", required=True)
        url = r.obj("url")
        address = url.obj("address") if url is not None else None
        return cls(r.id("id", "", required=True), r.id("framework_id", "", required=True),
                   r.id("agent_id", "") or r.id("slave_id", ""),
                   Unavailability.read(holder) if holder is not None else Unavailability(0.0),
                   address.str("hostname", "") if address is not None else "",
                   address.int("port", 5051) if address is not None else 5051)

    @classmethod
    def from_json(cls, data: Any) -> InverseOffer:
        return read(data, cls.read, "inverse_offer")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": wrap(self.id), "framework_id": wrap(self.framework_id),
                               "agent_id": wrap(self.agent_id), "unavailability": self.unavailability.to_json(),
                               "resources": []}
        if self.hostname:
            out["url"] = {"scheme": "http", "address": {"hostname": self.hostname, "port": self.agent_port},
                          "path": "/slave(1)"}
        return out
