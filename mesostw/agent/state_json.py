"""The agent's state in the JSON shapes of Mesos's ``/slave(1)/state``."""

from __future__ import annotations

from typing import Any

from mesostw.agent.agent import Agent
from mesostw.agent.state import ExecutorState, FrameworkState
from mesostw.master.state_json import build_info, task_model
from mesostw.model.resources import attributes_model


def executor_model(executor: ExecutorState) -> dict[str, Any]:
    info = executor.info
    return {
        "id": executor.id,
        "name": info.name or "",
        "source": info.source or "",
        "container": executor.container_id,
        "directory": executor.directory,
        "resources": info.resources.model(),
        "type": info.type,
        "tasks": [task_model(t) for t in list(executor.launched.values()) + list(executor.terminated.values())],
        "queued_tasks": [{"id": t.task_id, "name": t.name, "slave_id": t.agent_id, "resources": t.resources.model(),
                          "executor_id": executor.id} for t in executor.queued.values()],
        "completed_tasks": [task_model(t) for t in executor.completed],
    }


def framework_model(framework: FrameworkState) -> dict[str, Any]:
    info = framework.info
    out = {
        "id": framework.id,
        "name": info.name,
        "user": info.user,
        "failover_timeout": info.failover_timeout,
        "checkpoint": info.checkpoint,
        "role": info.role,
        "hostname": info.hostname or "",
        "executors": [executor_model(e) for e in framework.executors.values()],
        "completed_executors": [executor_model(e) for e in framework.completed_executors],
    }
    if info.principal:
        out["principal"] = info.principal
    return out


def state(agent: Agent, flags: dict[str, str]) -> dict[str, Any]:
    resources = agent.info.resources
    out: dict[str, Any] = {
        **build_info(),
        "start_time": agent.start_time,
        "id": agent.info.id or "",
        "pid": agent.pid,
        "hostname": agent.info.hostname,
        "port": agent.info.port,
        "resources": resources.model(),
        "reserved_resources": {role: resources.reserved(role).model() for role in resources.roles() - {"*"}},
        "unreserved_resources": resources.unreserved().model(),
        "attributes": attributes_model(agent.info.attributes),
        "capabilities": ["MULTI_ROLE", "HIERARCHICAL_ROLE"],
        "flags": flags,
        "frameworks": [framework_model(f) for f in agent.frameworks.values()],
        "completed_frameworks": [framework_model(f) for f in agent.completed_frameworks],
    }
    if agent.master_info is not None:
        out["master_hostname"] = agent.master_info.hostname
    return out
