"""What a containerizer says about its containers: their records, their limitations, how they ended.

Also the process queries shared by the isolators: a container's processes without cgroups are
its executor's process tree and session (:func:`session_members`), and a process is identified
across an agent restart by its pid *and* start time (:func:`same_process`), since pids are reused.
"""

from __future__ import annotations

import os
from typing import Any

import attrs
import psutil

from mesostw.model.resources import Resources


@attrs.frozen
class Limitation:
    """A limit a container ran into: its tasks fail with ``reason`` (a TaskStatus reason) and ``message``."""

    reason: str
    message: str


@attrs.frozen
class Termination:
    """How a container ended: the executor's wait status (None when unknown, e.g. an executor of an
    earlier run of the agent), and the limitation it was destroyed for, if any."""

    status: int | None = None
    limitation: Limitation | None = None


@attrs.frozen
class ContainerRecord:
    """What an agent checkpoints about a container so that a later run of it can find it again."""

    container_id: str
    framework_id: str
    executor_id: str
    directory: str
    pid: int | None = None
    #: the executor process's start time (psutil's create_time), telling it from a later process with its pid
    started: float | None = None
    user: str | None = None
    resources: Resources = attrs.field(factory=Resources)

    def to_json(self) -> dict[str, Any]:
        return {"container_id": self.container_id, "framework_id": self.framework_id,
                "executor_id": self.executor_id, "directory": self.directory, "pid": self.pid,
                "started": self.started, "user": self.user, "resources": self.resources.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> ContainerRecord:
        if not isinstance(data, dict):
            raise ValueError("a container record is a JSON object")
        try:
            return cls(container_id=str(data["container_id"]), framework_id=str(data["framework_id"]),
                       executor_id=str(data["executor_id"]), directory=str(data["directory"]),
                       pid=_optional(data.get("pid"), int), started=_optional(data.get("started"), float),
                       user=_optional(data.get("user"), str),
                       resources=Resources.from_json(data.get("resources") or []))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"invalid container record: {exc}") from None


def _optional(value: Any, kind: type) -> Any:
    return None if value is None else kind(value)


#: Clock ticks per second, the unit of a process's start time in /proc/<pid>/stat.
_TICKS = os.sysconf("SC_CLK_TCK")
_boot_time: list[float] = []


def proc_stat(pid: int) -> tuple[str, int, float] | None:
    """(state letter, session, start time in seconds since the epoch) of ``pid``, from one read of
    ``/proc/<pid>/stat``; None when there is no such process.

    The start time is psutil's ``create_time`` (boot time plus the start in clock ticks), read without
    psutil's Process object, which reads more files: the agent asks this of every executor it starts and
    of what is left of every container it destroys.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # "pid (comm) state ppid pgrp session ... starttime (the 22nd field) ...": comm may hold spaces and ")".
    fields = stat[stat.rfind(b")") + 2:].split()
    try:
        if not _boot_time:
            _boot_time.append(psutil.boot_time())
        return fields[0].decode(), int(fields[3]), int(fields[19]) / _TICKS + _boot_time[0]
    except (IndexError, ValueError):
        return None


def start_time(pid: int) -> float | None:
    stat = proc_stat(pid)
    return None if stat is None else stat[2]


def same_process(pid: int | None, started: float | None) -> bool:
    """Whether ``pid`` still names the live (not zombie) process that started at ``started``."""
    if pid is None:
        return False
    stat = proc_stat(pid)
    if stat is None or stat[0] == "Z":
        return False
    return started is None or abs(stat[2] - started) < 0.5


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def session_members(session: int) -> list[int]:
    """Every process whose session is ``session`` (the executor's pid: it starts its own session)."""
    return sessions_of({session}).get(session, [])


def sessions_of(sessions: set[int]) -> dict[int, list[int]]:
    """The processes of each of ``sessions`` (executors' pids: each starts its own session), in one pass.

    One ``getsid`` per process on the host, which is cheap, and one pass for however many containers
    are destroyed together; what leaves the session (``setsid``) is out of reach here, as with Mesos's
    POSIX launcher: cgroups isolation catches those.
    """
    members: dict[int, list[int]] = {}
    if not sessions:
        return members
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            session = os.getsid(pid)
        except OSError:
            continue
        if session in sessions:
            members.setdefault(session, []).append(pid)
    return members
