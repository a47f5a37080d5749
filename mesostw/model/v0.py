"""The v0 JSON shapes the master's and the agent's endpoints share (``/state``, ``/tasks``).

Resources use the flat v0 model (``{"cpus": 2.0, "mem": 1024.0, ...}``) that existing tools read.
"""

from __future__ import annotations

from typing import Any

from mesostw.model.task import Task


def task_model(task: Task, role: str = "*") -> dict[str, Any]:
    """A Task as v0 endpoints show it; ``role`` is its framework's allocation role."""
    info = task.info
    out: dict[str, Any] = {
        "id": task.task_id,
        "name": info.name,
        "framework_id": task.framework_id,
        "executor_id": task.executor_id if info.executor is not None else "",
        "slave_id": task.agent_id,
        "agent_id": task.agent_id,
        "state": task.state,
        "resources": info.resources.model(),
        "role": role,
        "statuses": [{"state": s.state, "timestamp": s.timestamp,
                      **({"healthy": s.healthy} if s.healthy is not None else {})} for s in task.statuses],
    }
    if task.user:
        out["user"] = task.user
    for key in ("labels", "discovery", "container", "health_check", "kill_policy"):
        if key in info.extra:
            out[key] = info.extra[key]
    return out
