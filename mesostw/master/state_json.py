"""The master's state in the JSON shapes of Mesos's operator endpoints.

Resources here use the flat v0 model (``{"cpus": 2.0, "mem": 1024.0, ...}``)
that ``/master/state`` has always served and existing tools read.
"""

from __future__ import annotations

from typing import Any

from mesostw import __version__
from mesostw.master.master import Master
from mesostw.master.records import AgentRecord, FrameworkRecord
from mesostw.master.v1_json import MASTER_CAPABILITIES
from mesostw.model.attributes import attributes_model
from mesostw.model.resources import EMPTY, Resources
from mesostw.model.task import TASK_STATES, UNREACHABLE, Offer, Task
from mesostw.model.v0 import task_model
from mesostw.version import build_info


def offer_model(offer: Offer) -> dict[str, Any]:
    return {"id": offer.id, "framework_id": offer.framework_id, "slave_id": offer.agent_id,
            "resources": offer.resources.model(), "allocation_info": {"role": offer.role}}


def agent_model(master: Master, agent: AgentRecord) -> dict[str, Any]:
    total = agent.total
    reserved = {role: resources.model() for role, resources in sorted(total.reservations().items())}
    out = {
        "id": agent.id,
        "pid": agent.pid,
        "hostname": agent.info.hostname,
        "port": agent.info.port,
        "registered_time": agent.registered_time,
        "resources": total.model(),
        "used_resources": agent.used().model(),
        "offered_resources": master.offers.offered_on(agent.id).model(),
        "reserved_resources": reserved,
        "unreserved_resources": total.unreserved().model(),
        "attributes": attributes_model(agent.info.attributes),
        "active": agent.active and agent.id not in master.agent_states.deactivated,
        "deactivated": agent.id in master.agent_states.deactivated,
        "version": agent.version or __version__,
        "capabilities": ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"],
    }
    if agent.reregistered_time is not None:
        out["reregistered_time"] = agent.reregistered_time
    drain = master.agent_states.draining.get(agent.id)
    if drain is not None:
        out["drain_info"] = drain.to_json()
    return out


def agent_model_full(master: Master, agent: AgentRecord) -> dict[str, Any]:
    """An agent as ``/master/slaves`` shows it: :func:`agent_model` plus every resource in full (reservation
    stacks, principals, labels, persistent volumes), which ``/master/unreserve`` and
    ``/master/destroy-volumes`` take back as they are."""
    out = agent_model(master, agent)
    total = agent.total
    out["reserved_resources_full"] = {role: resources.to_json()
                                      for role, resources in sorted(total.reservations().items())}
    out["unreserved_resources_full"] = total.unreserved().to_json()
    out["used_resources_full"] = agent.used().to_json()
    out["offered_resources_full"] = master.offers.offered_on(agent.id).to_json()
    return out


def framework_model(master: Master, framework: FrameworkRecord) -> dict[str, Any]:
    info = framework.info
    role = info.allocation_role
    used = master.tasks.used_by(framework.id) if framework.id in master.frameworks else EMPTY
    offered = master.offers.offered_to(framework.id)
    executors = []
    for agent in master.agents.values():
        for (framework_id, _), executor in agent.executors.items():
            if framework_id == framework.id:
                executor_json = executor.to_json()
                executor_json.pop("data", None)  # omitted from /state since 0.26 (MESOS-3794)
                executors.append({**executor_json, "slave_id": agent.id})
    out: dict[str, Any] = {
        "id": framework.id,
        "name": info.name,
        "hostname": info.hostname or "",
        "user": info.user,
        "failover_timeout": info.failover_timeout,
        "checkpoint": info.checkpoint,
        "role": info.role,
        "registered_time": framework.registered_time,
        "unregistered_time": framework.unregistered_time or 0,
        "active": framework.active,
        "connected": framework.connected,
        "recovered": framework.recovered,
        "webui_url": info.webui_url or "",
        "capabilities": sorted(info.capabilities),
        "resources": (used + offered).model(),
        "used_resources": used.model(),
        "offered_resources": offered.model(),
        "tasks": [task_model(t, role) for t in framework.tasks.values() if t.state != UNREACHABLE],
        "completed_tasks": [task_model(t, role) for t in framework.completed_tasks],
        "unreachable_tasks": [task_model(t, role) for t in framework.tasks.values()
                              if t.state == UNREACHABLE],
        "offers": [offer_model(o) for o in master.offers.of_framework(framework.id)],
        "executors": executors,
    }
    if info.roles:
        out["roles"] = list(info.roles)
    pid = framework_pid(framework)
    if pid:
        out["pid"] = pid
    if info.principal:
        out["principal"] = info.principal
    if framework.reregistered_time is not None:
        out["reregistered_time"] = framework.reregistered_time
    if "labels" in info.extra:
        out["labels"] = info.extra["labels"]
    return out


def state(master: Master, flags: dict[str, str], leader: str | None = None,
          leader_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """``/master/state``."""
    active = [a for a in master.agents.values() if a.active]
    out: dict[str, Any] = {
        **build_info(),
        "start_time": master.start_time,
        "id": master.id,
        "pid": master.info.pid,
        "hostname": master.info.hostname,
        "capabilities": list(MASTER_CAPABILITIES),
        "activated_slaves": len(active),
        "deactivated_slaves": len(master.agents) - len(active),
        "unreachable_slaves": len(master.unreachable),
        "leader": leader if leader is not None else master.info.pid,
        "leader_info": leader_info if leader_info is not None else master.info.to_json(),
        "flags": flags,
        "slaves": [agent_model(master, a) for a in master.agents.values()],
        "recovered_slaves": [],
        "frameworks": [framework_model(master, f) for f in master.frameworks.values()],
        "completed_frameworks": [framework_model(master, f) for f in master.completed],
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    }
    if master.elected_time is not None:
        out["elected_time"] = master.elected_time
    if master.config.cluster:
        out["cluster"] = master.config.cluster
    return out


def task_counts(tasks: list[Task]) -> dict[str, int]:
    counts = {state: 0 for state in TASK_STATES if state != "TASK_UNKNOWN"}
    for task in tasks:
        counts[task.state] = counts.get(task.state, 0) + 1
    return counts


def framework_pid(framework: FrameworkRecord) -> str | None:
    """The v0 scheduler's libprocess pid, for links that have one (HTTP and local schedulers have none)."""
    pid = getattr(framework.link, "pid", None)
    return pid if isinstance(pid, str) else None


def framework_roles(framework: FrameworkRecord) -> tuple[str, ...]:
    """The roles a framework is subscribed to (all of ``roles`` for MULTI_ROLE, else ``role``)."""
    info = framework.info
    if "MULTI_ROLE" in info.capabilities and info.roles:
        return tuple(info.roles)
    return (info.role,)


def state_summary(master: Master) -> dict[str, Any]:
    """``/master/state-summary``: agents and frameworks with task counts instead of tasks.

    As in Mesos, the counts and the agent <-> framework mapping cover the live,
    unreachable and completed tasks of the frameworks currently registered.
    """
    by_agent: dict[str, list[Task]] = {}
    by_framework: dict[str, list[Task]] = {}
    for framework in master.frameworks.values():
        tasks = by_framework.setdefault(framework.id, [])
        for task in _unique([*framework.tasks.values(), *framework.completed_tasks]):
            tasks.append(task)
            by_agent.setdefault(task.agent_id, []).append(task)
    slaves = []
    for agent in master.agents.values():
        tasks = by_agent.get(agent.id, [])
        slaves.append({**agent_model(master, agent), **task_counts(tasks),
                       "framework_ids": sorted({t.framework_id for t in tasks})})
    frameworks = []
    for framework in master.frameworks.values():
        info = framework.info
        tasks = by_framework[framework.id]
        entry: dict[str, Any] = {
            "id": framework.id,
            "name": info.name,
            "used_resources": master.tasks.used_by(framework.id).model(),
            "offered_resources": master.offers.offered_to(framework.id).model(),
            "capabilities": sorted(info.capabilities),
            "hostname": info.hostname or "",
            "webui_url": info.webui_url or "",
            "active": framework.active,
            "connected": framework.connected,
            "recovered": framework.recovered,
            **task_counts(tasks),
            "slave_ids": sorted({t.agent_id for t in tasks}),
        }
        pid = framework_pid(framework)
        if pid:
            entry["pid"] = pid
        frameworks.append(entry)
    out: dict[str, Any] = {"hostname": master.info.hostname, "slaves": slaves, "frameworks": frameworks}
    if master.config.cluster:
        out["cluster"] = master.config.cluster
    return out


def roles(master: Master) -> dict[str, Any]:
    """``/master/roles``: every role with a framework, ``*``, and every role in --weights/--roles."""
    weights: dict[str, float] = dict(master.config.weights or {})
    members: dict[str, list[str]] = {name: [] for name in ("*", *weights, *(master.config.roles or ()),
                                                           *master.quota.configs)}
    allocated: dict[str, Resources] = {}
    for framework in master.frameworks.values():
        for name in framework_roles(framework):
            members.setdefault(name, []).append(framework.id)
        role = framework.info.allocation_role
        held = master.tasks.used_by(framework.id) + master.offers.offered_to(framework.id)
        allocated[role] = allocated.get(role, EMPTY) + held
    out = []
    for name, ids in sorted(members.items()):
        role_model: dict[str, Any] = {"name": name, "weight": float(weights.get(name, 1.0)),
                                      "resources": allocated.get(name, EMPTY).model(), "frameworks": sorted(ids)}
        quota = master.quota.role_quota(name)  # Mesos 1.9+: guarantee, limit and consumption
        if quota is not None:
            role_model["quota"] = quota
        out.append(role_model)
    return {"roles": out}


def _unique(tasks: list[Task]) -> list[Task]:
    seen: set[int] = set()
    out = []
    for task in tasks:
        if id(task) not in seen:
            seen.add(id(task))
            out.append(task)
    return out
