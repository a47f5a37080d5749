"""The v1 executor API: Calls an executor sends to its agent and the Events it gets.

The same JSON-shaped dicts cross Perspective Broker (JSON bytes) and HTTP
(``/api/v1/executor``).
"""

from __future__ import annotations

from typing import Any, Union

import attrs

from mesostw.model.info import AgentInfo, ExecutorInfo, FrameworkInfo, wrap
from mesostw.model.task import TaskInfo, TaskStatus
from mesostw.model.validation import Reader, b64


@attrs.frozen
class Subscribe:
    unacknowledged_tasks: tuple[TaskInfo, ...] = ()
    unacknowledged_updates: tuple[TaskStatus, ...] = ()


@attrs.frozen
class Update:
    status: TaskStatus


@attrs.frozen
class Message:
    data: bytes


@attrs.frozen
class Heartbeat:
    pass


Call = Union[Subscribe, Update, Message, Heartbeat]
CALL_TYPES = ("SUBSCRIBE", "UPDATE", "MESSAGE", "HEARTBEAT")


def parse_call(data: Any) -> tuple[str, str, Call]:
    """Validate a v1 executor Call; return (framework_id, executor_id, typed call)."""
    r = Reader(data, "call")
    kind = r.enum("type", CALL_TYPES, required=True)
    framework_id = r.id("framework_id", "", required=True)
    executor_id = r.id("executor_id", "", required=True)
    call: Call = Heartbeat()
    if kind == "SUBSCRIBE":
        body = r.obj("subscribe")
        tasks = body.each("unacknowledged_tasks", TaskInfo.read) if body else []
        updates = []
        for item in body.objs("unacknowledged_updates") if body else ():
            holder = item.obj("status", required=True)
            if holder is not None:
                updates.append(TaskStatus.read(holder))
        call = Subscribe(tuple(tasks), tuple(updates))
    elif kind == "UPDATE":
        body = r.obj("update", required=True)
        holder = body.obj("status", required=True) if body else None
        status = TaskStatus.read(holder) if holder else None
        if status is not None and status.uuid is None:
            r.error("needs a uuid", "update.status")
        call = Update(status) if status is not None else Heartbeat()
    elif kind == "MESSAGE":
        body = r.obj("message", required=True)
        call = Message(body.bytes("data", b"", required=True) if body else b"")
    r.check()
    return framework_id, executor_id, call


def subscribe_call(framework_id: str, executor_id: str, tasks: list[TaskInfo],
                   updates: list[TaskStatus]) -> dict[str, Any]:
    return {"type": "SUBSCRIBE", "framework_id": wrap(framework_id), "executor_id": wrap(executor_id),
            "subscribe": {"unacknowledged_tasks": [t.to_json() for t in tasks],
                          "unacknowledged_updates": [{"status": s.to_json()} for s in updates]}}


def update_call(framework_id: str, executor_id: str, status: TaskStatus) -> dict[str, Any]:
    return {"type": "UPDATE", "framework_id": wrap(framework_id), "executor_id": wrap(executor_id),
            "update": {"status": status.to_json()}}


def message_call(framework_id: str, executor_id: str, data: bytes) -> dict[str, Any]:
    return {"type": "MESSAGE", "framework_id": wrap(framework_id), "executor_id": wrap(executor_id),
            "message": {"data": b64(data)}}


# -- events ------------------------------------------------------------------------

def subscribed_event(executor: ExecutorInfo, framework: FrameworkInfo, agent: AgentInfo,
                     container_id: str) -> dict[str, Any]:
    return {"type": "SUBSCRIBED", "subscribed": {
        "executor_info": executor.to_json(),
        "framework_info": framework.to_json(),
        "agent_info": agent.to_json(),
        "container_id": {"value": container_id},
    }}


def launch_event(task: TaskInfo) -> dict[str, Any]:
    return {"type": "LAUNCH", "launch": {"task": task.to_json()}}


def launch_group_event(tasks: list[TaskInfo]) -> dict[str, Any]:
    return {"type": "LAUNCH_GROUP", "launch_group": {"task_group": {"tasks": [t.to_json() for t in tasks]}}}


def kill_event(task_id: str, grace_period: float | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"task_id": wrap(task_id)}
    if grace_period is not None:
        body["kill_policy"] = {"grace_period": {"nanoseconds": int(grace_period * 1e9)}}
    return {"type": "KILL", "kill": body}


def acknowledged_event(task_id: str, uuid: bytes) -> dict[str, Any]:
    return {"type": "ACKNOWLEDGED", "acknowledged": {"task_id": wrap(task_id), "uuid": b64(uuid)}}


def message_event(data: bytes) -> dict[str, Any]:
    return {"type": "MESSAGE", "message": {"data": b64(data)}}


def error_event(message: str) -> dict[str, Any]:
    return {"type": "ERROR", "error": {"message": message}}


SHUTDOWN_EVENT = {"type": "SHUTDOWN"}
HEARTBEAT_EVENT = {"type": "HEARTBEAT"}
