"""v1 JSON shapes master and agent both answer with (``mesos:include/mesos/v1/mesos.proto``).

Field names are the proto's, enums are their names, IDs are ``{"value": ...}`` wrappers, times are
``TimeInfo`` (``{"nanoseconds": ...}``) and bytes are base64. As Mesos's JSON writer does, empty
repeated fields and unset optional ones are left out of nested messages.
"""

from __future__ import annotations

from typing import Any

from mesostw.model.info import ExecutorInfo, wrap
from mesostw.model.task import Task, TaskStatus
from mesostw.model.validation import Reader, b64
from mesostw.version import build_info

#: TaskInfo fields kept as they came (``TaskInfo.extra``) that Mesos's Task message carries too.
_TASK_EXTRAS = ("labels", "discovery", "container", "health_check", "kill_policy", "limits")


def time_info(seconds: float) -> dict[str, int]:
    """A ``TimeInfo`` (or ``DurationInfo``) of ``seconds``."""
    return {"nanoseconds": int(round(seconds * 1e9))}


def duration(reader: Reader | None, what: str) -> float | None:
    """Seconds of a ``DurationInfo`` message (None when absent); errors go to ``reader``."""
    if reader is None:
        return None
    nanoseconds = reader.int("nanoseconds", None, required=True)
    if nanoseconds is None:
        return None
    if nanoseconds < 0:
        reader.error(f"{what} must not be negative", "nanoseconds")
        return None
    return float(nanoseconds) / 1e9


def status_v1(status: TaskStatus) -> dict[str, Any]:
    """A TaskStatus as a task's history keeps it: without ``data`` (Mesos drops it, MESOS-1746)."""
    out = status.to_json()
    out.pop("data", None)
    return out


def task_v1(task: Task, role: str | None = None) -> dict[str, Any]:
    """A Task message; ``role`` is the allocation role its resources carry (the framework's)."""
    info = task.info
    out: dict[str, Any] = {
        "name": info.name,
        "task_id": wrap(task.task_id),
        "framework_id": wrap(task.framework_id),
        "agent_id": wrap(task.agent_id),
        "state": task.state,
    }
    if info.executor is not None and task.executor_id:
        out["executor_id"] = wrap(task.executor_id)
    if info.resources:
        out["resources"] = info.resources.to_json(role)
    if task.statuses:
        out["statuses"] = [status_v1(s) for s in task.statuses]
    if task.status_update_state:
        out["status_update_state"] = task.status_update_state
    if task.status_update_uuid is not None:
        out["status_update_uuid"] = b64(task.status_update_uuid)
    for key in _TASK_EXTRAS:
        if key in info.extra:
            out[key] = info.extra[key]
    if task.user:
        out["user"] = task.user
    return out


def executor_info_v1(info: ExecutorInfo) -> dict[str, Any]:
    return info.to_json()


def version_info() -> dict[str, Any]:
    """A ``VersionInfo``: the build of this daemon."""
    return build_info()


def flags_v1(flags: dict[str, str]) -> list[dict[str, str]]:
    """``Flag`` messages, by name."""
    return [{"name": name, "value": str(value)} for name, value in sorted(flags.items())]


def metrics_v1(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """``Metric`` messages of a ``/metrics/snapshot``, by name."""
    return [{"name": name, "value": float(value)} for name, value in sorted(snapshot.items())
            if isinstance(value, (int, float)) and not isinstance(value, bool)]


def response(call_type: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``Response`` of ``call_type`` with its message under the type's lower-case field."""
    out: dict[str, Any] = {"type": call_type}
    if body is not None:
        out[call_type.lower()] = body
    return out
