"""The master's state in the v1 operator API's shapes (``mesos:include/mesos/v1/master/master.proto``).

Unlike ``/master/state`` (:mod:`mesostw.master.state_json`), resources here are arrays of v1
``Resource`` messages, IDs are ``{"value": ...}`` and times are ``TimeInfo``. Every builder takes
the caller's :class:`~mesostw.operator.approvers.Approvers` and leaves out what the ``view_*`` ACLs
hide, as Mesos's ``ReadOnlyHandler`` does: frameworks a caller may not view, with their tasks and
executors; tasks and executors it may not view; resources of roles it may not view.

Pure functions of the master's records; the master's core uses them for its events, so this module
imports the facade for type checking only.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain, repeat
from typing import TYPE_CHECKING, Any

from mesostw import __version__
from mesostw.master.agent_text import agent_texts
from mesostw.master.records import AgentRecord, FrameworkRecord
from mesostw.master.summary_cache import summary_key
from mesostw.master.v1_agent_text import AGENT_CAPABILITIES, agent_v1_json
from mesostw.master.v1_text import task_v1_json
from mesostw.model.info import AgentInfo, FrameworkInfo, wrap
from mesostw.model.lazyjson import Fields, Items, Raw, Texts, materialize
from mesostw.model.resources import EMPTY, Resources
from mesostw.model.task import UNREACHABLE, Task
from mesostw.operator.approvers import EVERYTHING, Approvers
from mesostw.operator.v1 import executor_info_v1, task_v1, time_info

if TYPE_CHECKING:
    from mesostw.master.master import Master

#: The MasterInfo capabilities this master has: an agent may re-register with changed resources and
#: attributes, which replace the old ones (AGENT_UPDATE); DRAIN_AGENT, DEACTIVATE_AGENT and
#: REACTIVATE_AGENT (AGENT_DRAINING); quota limits and UPDATE_QUOTA (QUOTA_V2).
MASTER_CAPABILITIES = ("AGENT_UPDATE", "AGENT_DRAINING", "QUOTA_V2")
#: The scalar resources a Role reports (Mesos: "we don't know if anything else is of type SCALAR").
ROLE_SCALARS = ("cpus", "mem", "disk", "gpus")


def master_info_v1(master: Master) -> dict[str, Any]:
    """A MasterInfo with its capabilities."""
    return {**master.info.to_json(), "capabilities": [{"type": c} for c in MASTER_CAPABILITIES]}


def agent_info_v1(info: AgentInfo, approvers: Approvers = EVERYTHING) -> dict[str, Any]:
    """An AgentInfo (v1 has no ``checkpoint``) with the resources the caller may view."""
    out = info.to_json()
    out.pop("checkpoint", None)
    resources = approvers.resources(out.pop("resources"))
    if resources:
        out["resources"] = resources
    if not out.get("attributes"):
        out.pop("attributes", None)
    return out


def allocation_role(master: Master, framework_id: str) -> str | None:
    """The role a framework's resources are allocated to (None for a framework no longer known)."""
    framework = master.frameworks.get(framework_id)
    return framework.info.allocation_role if framework is not None else None


def agent_v1(master: Master, agent: AgentRecord, approvers: Approvers = EVERYTHING) -> dict[str, Any]:
    """A ``Response.GetAgents.Agent``."""
    deactivated = agent.id in master.agent_states.deactivated
    out: dict[str, Any] = {
        "agent_info": agent_info_v1(agent.info, approvers),
        "active": agent.active and not deactivated,
        "deactivated": deactivated,
        "version": agent.version or __version__,
        "pid": agent.pid,
        "registered_time": time_info(agent.registered_time),
    }
    if agent.reregistered_time is not None:
        out["reregistered_time"] = time_info(agent.reregistered_time)
    _resources(out, "total_resources", agent.total.to_json(), approvers)
    allocated: list[dict[str, Any]] = []
    for framework_id, used in sorted(master.tasks.usage_on(agent.id).items()):
        allocated += used.to_json(allocation_role(master, framework_id))
    _resources(out, "allocated_resources", allocated, approvers)
    offered = [r for offer in master.offers.on_agent(agent.id) for r in offer.resources.to_json(offer.role)]
    _resources(out, "offered_resources", offered, approvers)
    out["capabilities"] = [{"type": c} for c in AGENT_CAPABILITIES]
    drain = master.agent_states.draining.get(agent.id)
    if drain is not None:
        out["drain_info"] = drain.to_json()
    return out


def get_agents(master: Master, approvers: Approvers = EVERYTHING) -> dict[str, Any]:
    """``Response.GetAgents``: registered agents, and those of the registry that have not come back."""
    return materialize(get_agents_fields(master, approvers))


def get_agents_fields(master: Master, approvers: Approvers = EVERYTHING) -> Fields:
    """:func:`get_agents`, its agents made as they are written (which agents is fixed now): as text for a
    caller who may view everything (the last such array again while nothing it shows changed, see
    :mod:`~mesostw.master.summary_cache`), as models filtered by the ACLs for any other."""
    agents = list(master.agents.values())
    recovered = list(master.recovered_agents.values())
    listed: Items | Raw
    if approvers.everything:
        kept = agent_texts(master).kept
        key = summary_key(master)
        made = kept.get("v1_agents", key)
        listed = Raw(made) if made is not None else Texts(
            kept.recorded(master, "v1_agents", key, (agent_v1_json(master, a) for a in agents)))
    else:
        listed = Items(agent_v1(master, a, approvers) for a in agents)
    return Fields({"agents": listed,
                   "recovered_agents": Items(agent_info_v1(info, approvers) for info in recovered)})


def framework_v1(master: Master, framework: FrameworkRecord, approvers: Approvers = EVERYTHING,
                 event: bool = False) -> dict[str, Any]:
    """A ``Response.GetFrameworks.Framework``; for an ``event``, without offers and resources (Mesos's
    events never carry them)."""
    out: dict[str, Any] = {
        "framework_info": framework.info.to_json(),
        "active": framework.active,
        "connected": framework.connected,
        "recovered": framework.recovered,
        "registered_time": time_info(framework.registered_time),
    }
    if framework.reregistered_time is not None:
        out["reregistered_time"] = time_info(framework.reregistered_time)
    if framework.unregistered_time:
        out["unregistered_time"] = time_info(framework.unregistered_time)
    if event:
        return out
    role = framework.info.allocation_role
    offers = master.offers.of_framework(framework.id)
    if offers:
        out["offers"] = [offer.to_json() for offer in offers]
    inverse = master.maintenance.inverse.of_framework(framework.id)
    if inverse:
        out["inverse_offers"] = [offer.to_json() for offer in inverse]
    used = master.tasks.used_by(framework.id) if framework.id in master.frameworks else EMPTY
    _resources(out, "allocated_resources", used.to_json(role), approvers)
    offered = master.offers.offered_to(framework.id)
    _resources(out, "offered_resources", offered.to_json(role), approvers)
    return out


def get_frameworks(master: Master, approvers: Approvers = EVERYTHING) -> dict[str, Any]:
    """``Response.GetFrameworks``: the frameworks the caller may view, live and completed."""
    return materialize(get_frameworks_fields(master, approvers))


def get_frameworks_fields(master: Master, approvers: Approvers = EVERYTHING) -> Fields:
    """:func:`get_frameworks`, each framework made as it is written (with its offers: which frameworks
    is fixed now)."""
    live = [f for f in master.frameworks.values() if approvers.view_framework(f.info)]
    completed = [f for f in master.completed if approvers.view_framework(f.info)]
    return Fields({"frameworks": Items(framework_v1(master, f, approvers) for f in live),
                   "completed_frameworks": Items(framework_v1(master, f, approvers) for f in completed)})


def get_executors(master: Master, approvers: Approvers = EVERYTHING) -> dict[str, Any]:
    """``Response.GetExecutors``: the custom executors the caller may view, with their agents."""
    executors = []
    for agent in master.agents.values():
        for (framework_id, _), executor in agent.executors.items():
            framework = master.frameworks.get(framework_id)
            if framework is None or not approvers.view_framework(framework.info) \
                    or not approvers.view_executor(executor, framework.info):
                continue
            executors.append({"executor_info": executor_info_v1(executor), "agent_id": wrap(agent.id)})
    return {"executors": executors}


def get_tasks(master: Master, approvers: Approvers = EVERYTHING) -> dict[str, Any]:
    """``Response.GetTasks``: live, unreachable and completed tasks the caller may view."""
    return materialize(get_tasks_fields(master, approvers))


def get_tasks_fields(master: Master, approvers: Approvers = EVERYTHING) -> Fields:
    """:func:`get_tasks`, its tasks made as they are written (which tasks is fixed now: lists of each
    framework's tasks, nothing made per task, so that a hundred thousand tasks cost the collector
    nothing before the answer starts)."""
    live: list[tuple[str, list[Task]]] = []
    unreachable: list[tuple[str, list[Task]]] = []
    completed: list[tuple[str, list[Task]]] = []
    for framework in [*master.frameworks.values(), *master.completed]:
        info = framework.info
        if not approvers.view_framework(info):
            continue
        role = info.allocation_role
        tasks = list(framework.tasks.values())
        done = list(framework.completed_tasks)
        if not approvers.everything:
            tasks = [task for task in tasks if approvers.view_task(task, info)]
            done = [task for task in done if approvers.view_task(task, info)]
        if UNREACHABLE in {task.state for task in tasks}:
            unreachable.append((role, [task for task in tasks if task.state == UNREACHABLE]))
            tasks = [task for task in tasks if task.state != UNREACHABLE]
        live.append((role, tasks))
        completed.append((role, done))
    return Fields({"tasks": Texts(_task_texts(live)), "unreachable_tasks": Texts(_task_texts(unreachable)),
                   "completed_tasks": Texts(_task_texts(completed))})


def _task_texts(groups: list[tuple[str, list[Task]]]) -> Iterator[str]:
    """The texts of the tasks of ``groups`` (the allocation role of their framework, its tasks)."""
    return chain.from_iterable(map(task_v1_json, tasks, repeat(role)) for role, tasks in groups)


def get_state(master: Master, approvers: Approvers = EVERYTHING) -> dict[str, Any]:
    """``Response.GetState``: tasks, executors, frameworks and agents."""
    return materialize(get_state_fields(master, approvers))


def get_state_fields(master: Master, approvers: Approvers = EVERYTHING) -> Fields:
    """:func:`get_state`, its tasks and agents made as they are written (streamed by the HTTP answer)."""
    return Fields({
        "get_tasks": get_tasks_fields(master, approvers),
        "get_executors": get_executors(master, approvers),
        "get_frameworks": get_frameworks_fields(master, approvers),
        "get_agents": get_agents_fields(master, approvers)})


def get_roles(master: Master, approvers: Approvers = EVERYTHING) -> dict[str, Any]:
    """``Response.GetRoles``: ``*``, every role with a framework, a weight or in --roles, that the caller
    may view; ``resources`` are the scalars allocated and offered to it."""
    weights: dict[str, float] = dict(master.config.weights or {})
    members: dict[str, list[str]] = {name: [] for name in ("*", *weights, *(master.config.roles or ()))}
    held: dict[str, Resources] = {}
    for framework in master.frameworks.values():
        info = framework.info
        subscribed = info.roles if "MULTI_ROLE" in info.capabilities and info.roles else (info.role,)
        for name in subscribed:
            members.setdefault(name, []).append(framework.id)
        allocation = info.allocation_role
        held[allocation] = held.get(allocation, EMPTY) + master.tasks.used_by(framework.id) \
            + master.offers.offered_to(framework.id)
    roles: list[dict[str, Any]] = []
    for name, framework_ids in sorted(members.items()):
        if not approvers.view_role(name):
            continue
        role: dict[str, Any] = {"name": name, "weight": float(weights.get(name, 1.0))}
        if framework_ids:
            role["frameworks"] = [wrap(f) for f in sorted(framework_ids)]
        scalars = held.get(name, EMPTY).scalars()
        resources = [{"name": n, "type": "SCALAR", "scalar": {"value": scalars[n]}} for n in ROLE_SCALARS
                     if scalars.get(n)]
        if resources:
            role["resources"] = resources
        roles.append(role)
    return {"roles": roles}


def get_weights(master: Master, approvers: Approvers = EVERYTHING) -> dict[str, Any]:
    """``Response.GetWeights``: the weights of the roles the caller may view."""
    weights = master.config.weights or {}
    return {"weight_infos": [{"weight": float(weight), "role": role} for role, weight in sorted(weights.items())
                             if approvers.view_role(role)]}


def get_master(master: Master) -> dict[str, Any]:
    """``Response.GetMaster``."""
    out: dict[str, Any] = {"master_info": master_info_v1(master), "start_time": master.start_time}
    if master.elected_time is not None:
        out["elected_time"] = master.elected_time
    return out


def task_event_v1(task: Task, framework: FrameworkInfo | None) -> dict[str, Any]:
    """A task as TASK_ADDED shows it (its resources allocated to its framework's role)."""
    return task_v1(task, framework.allocation_role if framework is not None else None)


def _resources(out: dict[str, Any], key: str, resources: list[dict[str, Any]], approvers: Approvers) -> None:
    """Set ``out[key]`` to the viewable ``resources``, unless there are none (repeated fields are left out
    when empty)."""
    visible = approvers.resources(resources)
    if visible:
        out[key] = visible
