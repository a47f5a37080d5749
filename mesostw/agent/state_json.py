"""The agent's state in the JSON shapes of Mesos's ``/slave(1)/state``."""

from __future__ import annotations

from typing import Any

from mesostw.agent.agent import Agent
from mesostw.agent.state import ExecutorState, FrameworkState
from mesostw.model.attributes import attributes_model
from mesostw.model.resources import EMPTY, Resources
from mesostw.model.task import TaskInfo
from mesostw.model.v0 import task_model
from mesostw.version import build_info


def executor_allocated(executor: ExecutorState) -> Resources:
    """The executor's own resources plus those of its queued and launched tasks (Mesos's
    ``Executor::allocatedResources``)."""
    total = executor.info.resources
    for queued in executor.queued.values():
        total = total + queued.resources
    for task in executor.launched.values():
        total = total + task.resources
    return total


def queued_task_model(task: TaskInfo, executor: ExecutorState) -> dict[str, Any]:
    """A TaskInfo not yet sent to its executor (``data`` omitted, as since Mesos 0.26)."""
    out: dict[str, Any] = {"id": task.task_id, "name": task.name, "slave_id": task.agent_id,
                           "resources": task.resources.model()}
    if task.command is not None:
        out["command"] = task.command.to_json()
    if task.executor is not None:
        out["executor_id"] = executor.id
    return out


def executor_model(executor: ExecutorState, role: str = "*") -> dict[str, Any]:
    info = executor.info
    out: dict[str, Any] = {
        "id": executor.id,
        "name": info.name or "",
        "source": info.source or "",
        "container": executor.container_id,
        "directory": executor.directory,
        "resources": executor_allocated(executor).model(),
        "type": info.type,
        "tasks": [task_model(t, role) for t in executor.launched.values()],
        "queued_tasks": [queued_task_model(t, executor) for t in executor.queued.values()],
        # Terminal tasks whose last update is not yet acknowledged count as completed, as in Mesos.
        "completed_tasks": [task_model(t, role) for t in [*executor.completed, *executor.terminated.values()]],
    }
    if info.resources:
        out["role"] = role
    if "labels" in info.extra:
        out["labels"] = info.extra["labels"]
    return out


def framework_model(framework: FrameworkState) -> dict[str, Any]:
    info = framework.info
    role = info.allocation_role
    out: dict[str, Any] = {
        "id": framework.id,
        "name": info.name,
        "user": info.user,
        "failover_timeout": info.failover_timeout,
        "checkpoint": info.checkpoint,
        "role": info.role,
        "hostname": info.hostname or "",
        "capabilities": sorted(info.capabilities),
        "executors": [executor_model(e, role) for e in framework.executors.values()],
        "completed_executors": [executor_model(e, role) for e in framework.completed_executors],
    }
    if "MULTI_ROLE" in info.capabilities and info.roles:
        out["roles"] = list(info.roles)
    if info.principal:
        out["principal"] = info.principal
    return out


def state(agent: Agent, flags: dict[str, str]) -> dict[str, Any]:
    resources = agent.total
    reserved = resources.reservations()
    allocated = EMPTY
    for executor in agent.executors():
        allocated = allocated + executor_allocated(executor)
    out: dict[str, Any] = {
        **build_info(),
        "start_time": agent.start_time,
        "id": agent.info.id or "",
        "pid": agent.pid,
        "hostname": agent.info.hostname,
        "port": agent.info.port,
        "resources": resources.model(),
        "reserved_resources": {role: reserved[role].model() for role in sorted(reserved)},
        "reserved_resources_full": {role: reserved[role].to_json() for role in sorted(reserved)},
        "unreserved_resources": resources.unreserved().model(),
        "reserved_resources_allocated": {role: r.model() for role, r in sorted(allocated.reservations().items())},
        "attributes": attributes_model(agent.info.attributes),
        "capabilities": ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"],
        "flags": flags,
        "frameworks": [framework_model(f) for f in agent.frameworks.values()],
        "completed_frameworks": [framework_model(f) for f in agent.completed_frameworks],
    }
    if agent.master_info is not None:
        out["master_hostname"] = agent.master_info.hostname
    return out
