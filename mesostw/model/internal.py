"""Messages between master and agent, named as Mesos names them.

Each message is a JSON-shaped dict with a ``type``. ``to_agent_*``/``to_master_*``
build them; :func:`parse_for_agent` and :func:`parse_for_master` validate one
into its type and the arguments of the core method that handles it (each adapter
keeps a table from type to that bound method).
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from mesostw.model.info import AgentInfo, ExecutorInfo, FrameworkInfo, MasterInfo, wrap
from mesostw.model.resources import Resources
from mesostw.model.task import Task, TaskInfo, TaskStatus
from mesostw.model.validation import Reader, ValidationError, b64

RUN_TASK = "RunTaskMessage"
KILL_TASK = "KillTaskMessage"
ACKNOWLEDGEMENT = "StatusUpdateAcknowledgementMessage"
SHUTDOWN_FRAMEWORK = "ShutdownFrameworkMessage"
SHUTDOWN_EXECUTOR = "ShutdownExecutorMessage"
FRAMEWORK_TO_EXECUTOR = "FrameworkToExecutorMessage"
AGENT_REMOVED = "SlaveRemovedMessage"
CHECKPOINT_RESOURCES = "CheckpointResourcesMessage"

STATUS_UPDATE = "StatusUpdateMessage"
EXITED_EXECUTOR = "ExitedExecutorMessage"
EXECUTOR_TO_FRAMEWORK = "ExecutorToFrameworkMessage"
UNREGISTER_AGENT = "UnregisterSlaveMessage"


# -- master -> agent -------------------------------------------------------------

def run_tasks(framework: FrameworkInfo, tasks: list[TaskInfo], executor: ExecutorInfo | None) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": RUN_TASK, "framework_info": framework.to_json(),
                           "tasks": [t.to_json() for t in tasks]}
    if executor is not None:
        msg["executor"] = executor.to_json()
    return msg


def kill_task(framework_id: str, task_id: str, grace_period: float | None) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": KILL_TASK, "framework_id": wrap(framework_id), "task_id": wrap(task_id)}
    if grace_period is not None:
        msg["grace_period"] = grace_period
    return msg


def acknowledgement(framework_id: str, task_id: str, uuid: bytes) -> dict[str, Any]:
    return {"type": ACKNOWLEDGEMENT, "framework_id": wrap(framework_id), "task_id": wrap(task_id),
            "uuid": b64(uuid)}


def shutdown_framework(framework_id: str) -> dict[str, Any]:
    return {"type": SHUTDOWN_FRAMEWORK, "framework_id": wrap(framework_id)}


def shutdown_executor(framework_id: str, executor_id: str) -> dict[str, Any]:
    return {"type": SHUTDOWN_EXECUTOR, "framework_id": wrap(framework_id), "executor_id": wrap(executor_id)}


def framework_to_executor(framework_id: str, executor_id: str, data: bytes) -> dict[str, Any]:
    return {"type": FRAMEWORK_TO_EXECUTOR, "framework_id": wrap(framework_id), "executor_id": wrap(executor_id),
            "data": b64(data)}


def agent_removed(reason: str) -> dict[str, Any]:
    return {"type": AGENT_REMOVED, "message": reason}


def checkpoint_resources(resources: Resources) -> dict[str, Any]:
    """The agent's checkpointed resources (dynamic reservations, persistent volumes) as the master has them."""
    return {"type": CHECKPOINT_RESOURCES, "resources": resources.to_json()}


def parse_for_agent(data: Any) -> tuple[str, tuple[Any, ...]]:
    """Validate a master-to-agent message into (message type, arguments of the agent's handler)."""
    return _parse(data, _FOR_AGENT)


def _parse(data: Any, table: dict[str, Callable[[Reader], tuple[Any, ...]]]) -> tuple[str, tuple[Any, ...]]:
    r = Reader(data, "message")
    kind = r.str("type", required=True, max_len=64)
    parser = table.get(kind)
    if parser is None:
        r.check()
        raise ValidationError(f"unknown message type {kind!r}")
    args = parser(r)
    r.check()
    return kind, args


def _run_task(r: Reader) -> tuple[Any, ...]:
    holder = r.obj("framework_info", required=True)
    framework = FrameworkInfo.read(holder) if holder else None
    tasks = r.each("tasks", TaskInfo.read)
    executor_holder = r.obj("executor")
    executor = ExecutorInfo.read(executor_holder) if executor_holder else None
    if framework is not None and not framework.id:
        r.error("needs an id", "framework_info")
    return framework, tasks, executor


#: message type -> reader of the arguments of ``Agent.runTasks``, ``killTask``, ``acknowledge``,
#: ``shutdownFramework``, ``shutdownExecutor``, ``frameworkMessage``, ``removedByMaster`` and
#: ``checkpointResources``
_FOR_AGENT: dict[str, Callable[[Reader], tuple[Any, ...]]] = {
    RUN_TASK: _run_task,
    KILL_TASK: lambda r: (r.id("framework_id", "", required=True), r.id("task_id", "", required=True),
                          r.float("grace_period", None, minimum=0.0)),
    ACKNOWLEDGEMENT: lambda r: ([(r.id("framework_id", "", required=True), r.id("task_id", "", required=True),
                                  r.bytes("uuid", b"", required=True, max_len=64))],),
    SHUTDOWN_FRAMEWORK: lambda r: (r.id("framework_id", "", required=True),),
    SHUTDOWN_EXECUTOR: lambda r: (r.id("framework_id", "", required=True), r.id("executor_id", "", required=True)),
    FRAMEWORK_TO_EXECUTOR: lambda r: (r.id("framework_id", "", required=True), r.id("executor_id", "", required=True),
                                      r.bytes("data", b"", required=True)),
    AGENT_REMOVED: lambda r: (r.str("message", ""),),
    CHECKPOINT_RESOURCES: lambda r: (Resources.read(r, "resources"),),
}


# -- agent -> master ------------------------------------------------------------

def status_update(framework_id: str, status: TaskStatus) -> dict[str, Any]:
    return {"type": STATUS_UPDATE, "framework_id": wrap(framework_id), "status": status.to_json()}


def exited_executor(framework_id: str, executor_id: str, status: int | None) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": EXITED_EXECUTOR, "framework_id": wrap(framework_id),
                           "executor_id": wrap(executor_id)}
    if status is not None:
        msg["status"] = status
    return msg


def executor_to_framework(framework_id: str, executor_id: str, data: bytes) -> dict[str, Any]:
    return {"type": EXECUTOR_TO_FRAMEWORK, "framework_id": wrap(framework_id), "executor_id": wrap(executor_id),
            "data": b64(data)}


def unregister_agent() -> dict[str, Any]:
    return {"type": UNREGISTER_AGENT}


def parse_for_master(data: Any) -> tuple[str, tuple[Any, ...]]:
    """Validate an agent-to-master message into (message type, arguments of the master's handler after
    the agent's ID)."""
    return _parse(data, _FOR_MASTER)


def _status_update(r: Reader) -> tuple[Any, ...]:
    holder = r.obj("status", required=True)
    return ([(r.id("framework_id", "", required=True), TaskStatus.read(holder) if holder else None)],)


#: message type -> reader of the arguments of ``Master.statusUpdates``, ``exitedExecutor``,
#: ``executorMessage`` and ``unregisterAgent``
_FOR_MASTER: dict[str, Callable[[Reader], tuple[Any, ...]]] = {
    STATUS_UPDATE: _status_update,
    EXITED_EXECUTOR: lambda r: (r.id("framework_id", "", required=True), r.id("executor_id", "", required=True),
                                r.int("status", None)),
    EXECUTOR_TO_FRAMEWORK: lambda r: (r.id("framework_id", "", required=True), r.id("executor_id", "", required=True),
                                      r.bytes("data", b"", required=True)),
    UNREGISTER_AGENT: lambda r: (),
}


# -- registration -----------------------------------------------------------------

def registration(info: AgentInfo, version: str) -> dict[str, Any]:
    return {"agent_info": info.to_json(), "version": version}


def reregistration(info: AgentInfo, tasks: list[Task], executors: list[ExecutorInfo],
                   frameworks: list[FrameworkInfo], version: str) -> dict[str, Any]:
    return {"agent_info": info.to_json(), "version": version, "tasks": [t.to_json() for t in tasks],
            "executors": [e.to_json() for e in executors], "frameworks": [f.to_json() for f in frameworks]}


def parse_registration(data: Any) -> tuple[AgentInfo, str, list[Task], list[ExecutorInfo], list[FrameworkInfo]]:
    r = Reader(data, "registration")
    holder = r.obj("agent_info", required=True)
    info = AgentInfo.read(holder) if holder else AgentInfo("")
    version = r.str("version", "", max_len=64)
    version = sys.intern(version) if isinstance(version, str) else version  # the same for most agents
    tasks = r.each("tasks", Task.read)
    executors = r.each("executors", ExecutorInfo.read, max_items=100_000)
    frameworks = r.each("frameworks", FrameworkInfo.read, max_items=100_000)
    r.check()
    return info, version, tasks, executors, frameworks


def registered(agent_id: str | None, master: MasterInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"master_info": master.to_json()}
    if agent_id is not None:
        out["agent_id"] = wrap(agent_id)
    return out


def parse_registered(data: Any) -> tuple[str | None, MasterInfo]:
    r = Reader(data, "registered")
    agent_id = r.id("agent_id")
    holder = r.obj("master_info", required=True)
    master = MasterInfo.read(holder) if holder else None
    r.check()
    assert master is not None
    return agent_id, master
