"""Tasks: TaskInfo, TaskStatus, task states and reasons, offers and offer operations."""

from __future__ import annotations

import sys
import uuid as uuidlib
from typing import Any

import attrs

from mesostw.model.attributes import attributes_from_json, attributes_to_json
from mesostw.model.info import CommandInfo, ExecutorInfo, wrap
from mesostw.model.maintenance import Unavailability
from mesostw.model.resources import EMPTY, Resources
from mesostw.model.validation import NO_EXTRA, Reader, b64, read

STAGING = "TASK_STAGING"
STARTING = "TASK_STARTING"
RUNNING = "TASK_RUNNING"
KILLING = "TASK_KILLING"
FINISHED = "TASK_FINISHED"
FAILED = "TASK_FAILED"
KILLED = "TASK_KILLED"
ERROR = "TASK_ERROR"
LOST = "TASK_LOST"
DROPPED = "TASK_DROPPED"
UNREACHABLE = "TASK_UNREACHABLE"
GONE = "TASK_GONE"
GONE_BY_OPERATOR = "TASK_GONE_BY_OPERATOR"
UNKNOWN = "TASK_UNKNOWN"

TASK_STATES = (STAGING, STARTING, RUNNING, KILLING, FINISHED, FAILED, KILLED, ERROR, LOST, DROPPED,
               UNREACHABLE, GONE, GONE_BY_OPERATOR, UNKNOWN)
TERMINAL_STATES = frozenset({FINISHED, FAILED, KILLED, ERROR, LOST, DROPPED, GONE, GONE_BY_OPERATOR})

SOURCE_MASTER = "SOURCE_MASTER"
SOURCE_AGENT = "SOURCE_AGENT"
SOURCE_EXECUTOR = "SOURCE_EXECUTOR"
SOURCES = (SOURCE_MASTER, SOURCE_AGENT, SOURCE_EXECUTOR)

REASON_COMMAND_EXECUTOR_FAILED = "REASON_COMMAND_EXECUTOR_FAILED"
REASON_EXECUTOR_TERMINATED = "REASON_EXECUTOR_TERMINATED"
REASON_EXECUTOR_UNREGISTERED = "REASON_EXECUTOR_UNREGISTERED"
REASON_FRAMEWORK_REMOVED = "REASON_FRAMEWORK_REMOVED"
REASON_INVALID_OFFERS = "REASON_INVALID_OFFERS"
REASON_MASTER_DISCONNECTED = "REASON_MASTER_DISCONNECTED"
REASON_RECONCILIATION = "REASON_RECONCILIATION"
REASON_AGENT_DISCONNECTED = "REASON_AGENT_DISCONNECTED"
REASON_AGENT_REMOVED = "REASON_AGENT_REMOVED"
REASON_AGENT_REMOVED_BY_OPERATOR = "REASON_AGENT_REMOVED_BY_OPERATOR"
REASON_AGENT_UNKNOWN = "REASON_AGENT_UNKNOWN"
REASON_AGENT_RESTARTED = "REASON_AGENT_RESTARTED"
REASON_AGENT_DRAINING = "REASON_AGENT_DRAINING"
REASON_TASK_INVALID = "REASON_TASK_INVALID"
REASON_TASK_GROUP_INVALID = "REASON_TASK_GROUP_INVALID"
REASON_TASK_UNAUTHORIZED = "REASON_TASK_UNAUTHORIZED"
REASON_TASK_UNKNOWN = "REASON_TASK_UNKNOWN"
REASON_TASK_KILLED_DURING_LAUNCH = "REASON_TASK_KILLED_DURING_LAUNCH"
REASON_CONTAINER_LAUNCH_FAILED = "REASON_CONTAINER_LAUNCH_FAILED"
REASON_EXECUTOR_REGISTRATION_TIMEOUT = "REASON_EXECUTOR_REGISTRATION_TIMEOUT"
REASON_EXECUTOR_REREGISTRATION_TIMEOUT = "REASON_EXECUTOR_REREGISTRATION_TIMEOUT"
REASON_CONTAINER_LIMITATION = "REASON_CONTAINER_LIMITATION"
REASON_CONTAINER_LIMITATION_MEMORY = "REASON_CONTAINER_LIMITATION_MEMORY"
REASON_CONTAINER_LIMITATION_DISK = "REASON_CONTAINER_LIMITATION_DISK"


def new_uuid() -> bytes:
    return uuidlib.uuid4().bytes


#: The ``extra`` of every status a completed task keeps that has none (never changed: statuses are frozen).
_NO_EXTRA: dict[str, Any] = NO_EXTRA


def _interned(text: Any) -> Any:
    """Text that recurs over many tasks (names, status messages) as one object; mortal, as every
    interned string, so text no task holds any more goes."""
    return sys.intern(text) if isinstance(text, str) else text


@attrs.frozen
class TaskStatus:
    task_id: str
    state: str
    message: str | None = None
    source: str | None = None
    reason: str | None = None
    data: bytes | None = None
    agent_id: str | None = None
    executor_id: str | None = None
    #: when the status was generated (seconds since the epoch); None until whoever receives it from an
    #: executor stamps it with its own clock, as Mesos's agent does
    timestamp: float | None = None
    uuid: bytes | None = None
    healthy: bool | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    _KNOWN = ("task_id", "state", "message", "source", "reason", "data", "agent_id", "slave_id",
              "executor_id", "timestamp", "uuid", "healthy")

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @classmethod
    def read(cls, r: Reader) -> TaskStatus:
        agent_id = r.id("agent_id") or r.id("slave_id")
        return cls(
            task_id=r.id("task_id", "", required=True, strict=False),
            state=r.enum("state", TASK_STATES, STAGING, required=True),
            message=_interned(r.str("message", max_len=64 * 1024)),
            source=r.enum("source", SOURCES),
            reason=r.str("reason", max_len=128),
            data=r.bytes("data"),
            agent_id=agent_id,
            executor_id=r.id("executor_id"),
            timestamp=r.float("timestamp", None),
            uuid=r.bytes("uuid", max_len=64),
            healthy=r.bool("healthy"),
            extra=_extra(r, cls._KNOWN),
        )

    @classmethod
    def from_json(cls, data: Any) -> TaskStatus:
        return read(data, cls.read, "status")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(task_id=wrap(self.task_id), state=self.state)
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp
        for key in ("message", "source", "reason"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.agent_id:
            out["agent_id"] = wrap(self.agent_id)
        if self.executor_id:
            out["executor_id"] = wrap(self.executor_id)
        if self.data is not None:
            out["data"] = b64(self.data)
        if self.uuid is not None:
            out["uuid"] = b64(self.uuid)
        if self.healthy is not None:
            out["healthy"] = self.healthy
        return out


@attrs.frozen
class TaskInfo:
    name: str
    task_id: str
    agent_id: str
    resources: Resources = EMPTY
    command: CommandInfo | None = None
    executor: ExecutorInfo | None = None
    data: bytes | None = None
    kill_grace_period: float | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False)

    _KNOWN = ("name", "task_id", "agent_id", "slave_id", "resources", "command", "executor", "data")
    #: and what a Task adds to them (see :meth:`Task.read`)
    _KNOWN_IN_TASK = (*_KNOWN, "framework_id", "executor_id", "state", "statuses", "status_update_state",
                      "status_update_uuid", "user")

    @classmethod
    def read(cls, r: Reader, in_task: bool = False) -> TaskInfo:
        """A TaskInfo; ``in_task``: the TaskInfo of a :class:`Task`, whose own fields are not the TaskInfo's
        unknown ones (kept in ``extra``: a task's statuses would be kept twice, and checked for depth)."""
        command, executor = r.obj("command"), r.obj("executor")
        if command is None and executor is None:
            # A task of a LAUNCH has one of them (Operation.read checks); one of a task group has its
            # command and, once the master gave it the group's, the executor too.
            r.error("needs exactly one of command and executor")
        policy = r.obj("kill_policy")
        grace = policy.obj("grace_period") if policy else None
        nanos = grace.int("nanoseconds", None, minimum=0) if grace else None
        return cls(
            name=_interned(r.str("name", "", required=True, max_len=4096)),
            task_id=r.id("task_id", "", required=True),
            agent_id=_agent_id(r),
            resources=Resources.read(r, "resources"),
            command=CommandInfo.read(command) if command else None,
            executor=ExecutorInfo.read(executor) if executor else None,
            data=r.bytes("data"),
            kill_grace_period=nanos / 1e9 if nanos is not None else None,
            extra=_extra(r, cls._KNOWN_IN_TASK if in_task else cls._KNOWN),
        )

    @classmethod
    def from_json(cls, data: Any) -> TaskInfo:
        return read(data, cls.read, "task_info")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(name=self.name, task_id=wrap(self.task_id), agent_id=wrap(self.agent_id),
                   resources=self.resources.to_json())
        if self.command is not None:
            out["command"] = self.command.to_json()
        if self.executor is not None:
            out["executor"] = self.executor.to_json()
        if self.data is not None:
            out["data"] = b64(self.data)
        return out


@attrs.frozen
class Offer:
    id: str
    framework_id: str
    agent_id: str
    hostname: str
    resources: Resources
    role: str = "*"
    attributes: dict[str, Any] = attrs.field(factory=dict)
    executor_ids: tuple[str, ...] = ()
    agent_port: int = 5051
    #: when the agent's machine is scheduled for maintenance
    unavailability: Unavailability | None = None

    @classmethod
    def read(cls, r: Reader) -> Offer:
        allocation = r.obj("allocation_info")
        url = r.obj("url")
        address = url.obj("address") if url else None
        return cls(
            id=r.id("id", "", required=True),
            framework_id=r.id("framework_id", "", required=True),
            agent_id=_agent_id(r),
            hostname=r.str("hostname", "", required=True, max_len=255),
            resources=Resources.read(r, "resources"),
            role=(allocation.str("role", "*") if allocation else "*"),
            attributes=attributes_from_json(r, "attributes"),
            executor_ids=tuple(r.ids("executor_ids")),
            agent_port=address.int("port", 5051) if address else 5051,
            unavailability=_unavailability(r),
        )

    @classmethod
    def from_json(cls, data: Any) -> Offer:
        return read(data, cls.read, "offer")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": wrap(self.id),
            "framework_id": wrap(self.framework_id),
            "agent_id": wrap(self.agent_id),
            "hostname": self.hostname,
            "url": {"scheme": "http", "address": {"hostname": self.hostname, "port": self.agent_port},
                    "path": "/slave(1)"},
            "resources": self.resources.to_json(self.role),
            "attributes": attributes_to_json(self.attributes),
            "executor_ids": [wrap(e) for e in self.executor_ids],
            "allocation_info": {"role": self.role},
            **({"unavailability": self.unavailability.to_json()} if self.unavailability is not None else {}),
        }


def _unavailability(r: Reader) -> Unavailability | None:
    holder = r.obj("unavailability")
    return Unavailability.read(holder) if holder is not None else None


LAUNCH = "LAUNCH"
LAUNCH_GROUP = "LAUNCH_GROUP"
OPERATION_TYPES = (LAUNCH, LAUNCH_GROUP, "RESERVE", "UNRESERVE", "CREATE", "DESTROY", "GROW_VOLUME",
                   "SHRINK_VOLUME", "CREATE_DISK", "DESTROY_DISK")
#: operation type -> (its message's field in Offer.Operation, that message's resources field)
RESOURCE_FIELDS = {"RESERVE": ("reserve", "resources"), "UNRESERVE": ("unreserve", "resources"),
                   "CREATE": ("create", "volumes"), "DESTROY": ("destroy", "volumes")}


@attrs.frozen
class Operation:
    """One offer operation of an ACCEPT.

    Launches carry tasks; tasks that fail validation but name a task ID are kept in ``invalid`` as
    (task ID, reason), so that the master can answer each with TASK_ERROR instead of refusing the whole
    call. RESERVE, UNRESERVE, CREATE and DESTROY carry ``resources`` (the volumes of CREATE and DESTROY);
    one whose resources do not parse keeps the reason in ``error``, and the master drops it alone, as
    Mesos does. ``id`` asks for operation feedback (which needs agents that mesostw does not have).
    """

    type: str
    tasks: tuple[TaskInfo, ...] = ()
    executor: ExecutorInfo | None = None
    invalid: tuple[tuple[str, str], ...] = ()
    resources: Resources = EMPTY
    id: str | None = None
    error: str | None = None

    @classmethod
    def read(cls, r: Reader) -> Operation:
        kind = r.enum("type", OPERATION_TYPES, LAUNCH, required=True)
        if kind == LAUNCH:
            launch = r.obj("launch", required=True)
            tasks, invalid = _read_tasks(launch, "task_infos") if launch else ([], [])
            both = [t for t in tasks if t.command is not None and t.executor is not None]
            invalid += [(t.task_id, f"task {t.task_id} needs exactly one of command and executor") for t in both]
            tasks = [t for t in tasks if t not in both]
            return cls(kind, tuple(tasks), invalid=tuple(invalid))
        if kind == LAUNCH_GROUP:
            group = r.obj("launch_group", required=True)
            executor = group.obj("executor", required=True) if group else None
            holder = group.obj("task_group", required=True) if group else None
            tasks, invalid = _read_tasks(holder, "tasks") if holder else ([], [])
            return cls(kind, tuple(tasks), ExecutorInfo.read(executor) if executor else None, tuple(invalid))
        operation_id = r.id("id")
        if kind in RESOURCE_FIELDS:
            field, key = RESOURCE_FIELDS[kind]
            body = Reader(r.raw(field, {}), r.where(field))
            if not body.has(key):
                body.error("is required", key)
            resources = Resources.read(body, key)
            if kind == "RESERVE" and body.has("source"):
                body.error("is not supported by the scheduler API (reservation updates are for operators)", "source")
            return cls(kind, resources=resources, id=operation_id, error="; ".join(body.errors) or None)
        return cls(kind, id=operation_id)

    def to_json(self) -> dict[str, Any]:
        if self.type == LAUNCH:
            return {"type": LAUNCH, "launch": {"task_infos": [t.to_json() for t in self.tasks]}}
        if self.type == LAUNCH_GROUP:
            return {"type": LAUNCH_GROUP, "launch_group": {
                "executor": self.executor.to_json() if self.executor else {},
                "task_group": {"tasks": [t.to_json() for t in self.tasks]}}}
        out: dict[str, Any] = {"type": self.type}
        if self.type in RESOURCE_FIELDS:
            field, key = RESOURCE_FIELDS[self.type]
            out[field] = {key: self.resources.to_json()}
        if self.id is not None:
            out["id"] = wrap(self.id)
        return out


def _read_tasks(holder: Reader, key: str) -> tuple[list[TaskInfo], list[tuple[str, str]]]:
    """Parse TaskInfos one by one; a bad one with a usable ID becomes (ID, reason)."""
    tasks, invalid = [], []
    for index, data in enumerate(holder.list(key)):
        task_reader = Reader(data, f"{holder.where(key)}[{index}]")
        task = TaskInfo.read(task_reader)
        if not task_reader.errors:
            tasks.append(task)
            continue
        raw = task_reader.data.get("task_id")
        raw_id = raw.get("value") if isinstance(raw, dict) else None
        if isinstance(raw_id, str) and 0 < len(raw_id) <= 1024:
            invalid.append((raw_id, "; ".join(task_reader.errors)))
        else:
            holder.errors.extend(task_reader.errors)
    return tasks, invalid


def _agent_id(r: Reader) -> str:
    """``agent_id``, or the pre-1.0 ``slave_id`` that older clients send."""
    if not r.has("agent_id") and not r.has("slave_id"):
        r.error("is required", "agent_id")
        return ""
    return r.id("agent_id") or r.id("slave_id", "")


def _extra(reader: Reader, known: tuple[str, ...]) -> dict[str, Any]:
    return reader.extra(known)


def _compact(status: TaskStatus, task_id: str, agent_id: str, executor_id: str | None) -> bool:
    """Whether ``status`` is already as a completed task keeps it (see :meth:`Task.compact`): no data, no
    extra of its own, the task's ID strings (read statuses mostly are: IDs are interned when read)."""
    return (status.data is None and status.extra is _NO_EXTRA
            and status.task_id is task_id and (status.agent_id is agent_id or status.agent_id is None)
            and (status.executor_id is executor_id or status.executor_id is None))


@attrs.define
class Task:
    """A launched task as the master and the agent track it (Mesos's ``Task``)."""

    info: TaskInfo
    framework_id: str
    executor_id: str | None = None
    state: str = STAGING
    statuses: list[TaskStatus] = attrs.field(factory=list)
    status_update_state: str | None = None
    status_update_uuid: bytes | None = None
    user: str | None = None

    @property
    def task_id(self) -> str:
        return self.info.task_id

    @property
    def agent_id(self) -> str:
        return self.info.agent_id

    @property
    def resources(self) -> Resources:
        return self.info.resources

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def record(self, status: TaskStatus, keep: int = 16) -> None:
        """Take ``status`` as the latest state, keeping a bounded history."""
        self.state = status.state
        self.statuses.append(status)
        if len(self.statuses) > keep:
            del self.statuses[: len(self.statuses) - keep]

    def compact(self) -> Task:
        """This task as a bounded history of completed tasks keeps it: what the endpoints show of it
        (IDs, name, state, resources, labels and the like, each status but its ``data``, which no
        endpoint shows), without what only a live task needs (its command, its ``data``). Its statuses
        share the task's ID strings and one empty ``extra``. A hundred thousand completed tasks differ
        by a few hundred bytes each."""
        info = self.info
        task_id, agent_id, executor_id = info.task_id, info.agent_id, self.executor_id
        if info.command is not None or info.data is not None:
            info = attrs.evolve(info, command=None, data=None)
        statuses = [status if _compact(status, task_id, agent_id, executor_id) else attrs.evolve(
            status, data=None, extra=status.extra or _NO_EXTRA,
            task_id=task_id if status.task_id == task_id else status.task_id,
            agent_id=agent_id if status.agent_id == agent_id else status.agent_id,
            executor_id=executor_id if executor_id is not None and status.executor_id == executor_id
            else status.executor_id) for status in self.statuses]
        return Task(info=info, framework_id=self.framework_id, executor_id=executor_id, state=self.state,
                    statuses=statuses, status_update_state=self.status_update_state,
                    status_update_uuid=self.status_update_uuid, user=self.user)

    @classmethod
    def read(cls, r: Reader) -> Task:
        info = TaskInfo.read(r, in_task=True)
        statuses = r.each("statuses", TaskStatus.read, max_items=64)
        return cls(
            info=info,
            framework_id=r.id("framework_id", "", required=True),
            executor_id=r.id("executor_id"),
            state=r.enum("state", TASK_STATES, STAGING),
            statuses=statuses,
            status_update_state=r.enum("status_update_state", TASK_STATES),
            status_update_uuid=r.bytes("status_update_uuid", max_len=64),
            user=r.str("user", max_len=255),
        )

    @classmethod
    def from_json(cls, data: Any) -> Task:
        return read(data, cls.read, "task")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = self.info.to_json()
        out.pop("data", None)
        out.update(framework_id=wrap(self.framework_id), state=self.state,
                   statuses=[s.to_json() for s in self.statuses])
        if self.executor_id:
            out["executor_id"] = wrap(self.executor_id)
        if self.status_update_state:
            out["status_update_state"] = self.status_update_state
        if self.status_update_uuid is not None:
            out["status_update_uuid"] = b64(self.status_update_uuid)
        if self.user:
            out["user"] = self.user
        return out
