"""Checks on what a framework asks to launch, before anything reaches an agent."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from mesostw.master.records import AgentRecord, FrameworkRecord
from mesostw.model.info import ExecutorInfo
from mesostw.model.resources import Resources
from mesostw.model.task import Offer, TaskInfo


def check_offers(framework: FrameworkRecord, offer_ids: Iterable[str], offers: dict[str, Offer]) -> str | None:
    """Why these offer IDs cannot be used together by this framework, or None."""
    seen: set[str] = set()
    agent_id = None
    ids = list(offer_ids)
    if not ids:
        return "No offers were given"
    for offer_id in ids:
        if offer_id in seen:
            return f"Offer {offer_id} is given twice"
        seen.add(offer_id)
        offer = offers.get(offer_id)
        if offer is None:
            return f"Offer {offer_id} is no longer valid"
        if offer.framework_id != framework.id:
            return f"Offer {offer_id} belongs to another framework"
        if agent_id is not None and offer.agent_id != agent_id:
            return "Offers of one ACCEPT must all be on the same agent"
        agent_id = offer.agent_id
    return None


def check_task(task: TaskInfo, framework: FrameworkRecord, agent: AgentRecord, available: Resources,
               launching: set[str]) -> str | None:
    """Why ``task`` cannot run from ``available`` resources of ``agent``, or None."""
    if task.task_id in framework.tasks or task.task_id in launching:
        return f"Task ID {task.task_id!r} is already in use"
    if task.agent_id != agent.id:
        return f"Task uses agent {task.agent_id!r} but the offers are for agent {agent.id!r}"
    executor = task.executor
    needed = task.resources
    if executor is not None:
        if executor.framework_id is not None and executor.framework_id != framework.id:
            return "ExecutorInfo.framework_id does not match the framework"
        known = agent.executors.get((framework.id, executor.executor_id))
        if known is None:
            needed = needed + executor.resources
        elif known.command != executor.command or known.resources != executor.resources:
            return f"Executor {executor.executor_id!r} is already running with a different ExecutorInfo"
    if not needed:
        return "Task uses no resources"
    if task.command is not None and task.command.shell is False and not (task.command.value or task.command.arguments):
        return "CommandInfo needs a value or arguments"
    if not available.contains(needed):
        return f"Task uses more resources ({needed}) than available in the offers ({available})"
    return None


#: What a task group's executor needs at least (Mesos's MIN_CPUS and MIN_MEM).
MIN_EXECUTOR_CPUS, MIN_EXECUTOR_MEM = 0.01, 32.0


def check_group(tasks: list[TaskInfo], executor: ExecutorInfo | None, framework: FrameworkRecord,
                agent: AgentRecord, available: Resources, launching: set[str]) -> str | None:
    """Why this task group cannot run from ``available`` resources of ``agent`` (one reason for the whole
    group, as Mesos's ``validation::task::group``), or None."""
    if not tasks:
        return "A task group must have at least one task"
    if executor is None:
        return "A task group needs an executor ('launch_group.executor')"
    if executor.type not in ("DEFAULT", "CUSTOM"):
        return "Unknown executor type"
    if executor.type == "CUSTOM" and executor.command is None:
        return "A CUSTOM executor needs a command"
    if executor.framework_id is not None and executor.framework_id != framework.id:
        return "ExecutorInfo.framework_id does not match the framework"
    ids = [task.task_id for task in tasks]
    if len(set(ids)) != len(ids):
        return "Task IDs of a task group must be distinct"
    known = agent.executors.get((framework.id, executor.executor_id))
    if known is not None and (known.command != executor.command or known.resources != executor.resources
                              or known.type != executor.type):
        return f"Executor {executor.executor_id!r} is already running with a different ExecutorInfo"
    left = available
    if known is None:
        scalars = executor.resources.scalars()
        if scalars.get("cpus", 0.0) < MIN_EXECUTOR_CPUS or scalars.get("mem", 0.0) < MIN_EXECUTOR_MEM:
            return (f"Executor {executor.executor_id!r} uses less than the minimum of {MIN_EXECUTOR_CPUS} cpus and "
                    f"{MIN_EXECUTOR_MEM:g} MB of memory ({executor.resources})")
        if not left.contains(executor.resources):
            return f"Executor {executor.executor_id!r} uses more resources than available ({available})"
        left = left - executor.resources
    for task in tasks:
        own = task.executor
        if own is not None and own.executor_id != executor.executor_id:
            return f"The ExecutorInfo of task {task.task_id!r} is different from executor {executor.executor_id!r}"
        if task.command is None:
            return f"Task {task.task_id!r} of a task group needs a command"
        problem = check_task(attrs.evolve(task, executor=None), framework, agent, left, launching)
        if problem is not None:
            return f"Task {task.task_id!r}: {problem}"
        left = left - task.resources
    return None
