"""The master's state in the JSON shapes of Mesos's operator endpoints.

Resources here use the flat v0 model (``{"cpus": 2.0, "mem": 1024.0, ...}``)
that ``/master/state`` has always served and existing tools read.

The large answers (``/master/state``, ``/master/state-summary``, ``/master/frameworks``) are
:class:`~mesostw.http.stream.Fields` whose lists of agents, frameworks and tasks are made as
they are written (see :mod:`mesostw.http.stream`); :func:`~mesostw.http.stream.materialize`
gives them whole. What they sum (resources used, task counts) the master's components keep as
it changes, so an answer costs about the same whatever the cluster did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mesostw.master.agent_text import agent_json, agent_model, agent_texts
from mesostw.master.master import Master
from mesostw.master.records import AgentRecord, FrameworkRecord
from mesostw.master.summary_texts import summary_texts
from mesostw.master.v1_json import MASTER_CAPABILITIES
from mesostw.model import jsontext
from mesostw.model.lazyjson import Fields, Items, Texts, materialize
from mesostw.model.resources import EMPTY, Resources
from mesostw.model.task import TASK_STATES, UNREACHABLE, Offer, Task
from mesostw.model.v0 import resources_json, resources_model, task_json
from mesostw.version import build_info

_ZERO_COUNTS = {state: 0 for state in TASK_STATES if state != "TASK_UNKNOWN"}


def offer_model(offer: Offer) -> dict[str, Any]:
    return {"id": offer.id, "framework_id": offer.framework_id, "slave_id": offer.agent_id,
            "resources": resources_model(offer.resources), "allocation_info": {"role": offer.role}}


def offer_json(offer: Offer) -> str:
    """The JSON text of :func:`offer_model`."""
    return (f'{{"id":{jsontext.string(offer.id)},"framework_id":{jsontext.string(offer.framework_id)},'
            f'"slave_id":{jsontext.string(offer.agent_id)},"resources":{resources_json(offer.resources)},'
            f'"allocation_info":{{"role":{jsontext.value(offer.role)}}}}}')


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
    """A framework as ``/master/state`` shows it, built in full."""
    return materialize(framework_fields(master, framework))


def framework_fields(master: Master, framework: FrameworkRecord) -> Fields:
    """A framework as ``/master/state`` shows it, its tasks made as they are written (the lists of
    tasks are fixed now)."""
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
    tasks = list(framework.tasks.values())
    completed = list(framework.completed_tasks)
    out = Fields({
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
        "resources": resources_model(used + offered),
        "used_resources": resources_model(used),
        "offered_resources": resources_model(offered),
        "tasks": Texts(task_json(t, role) for t in tasks if t.state != UNREACHABLE),
        "completed_tasks": Texts(task_json(t, role) for t in completed),
        "unreachable_tasks": Texts(task_json(t, role) for t in tasks if t.state == UNREACHABLE),
        "offers": Texts(offer_json(o) for o in master.offers.of_framework(framework.id)),
        "executors": executors,
    })
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
          leader_info: dict[str, Any] | None = None) -> Fields:
    """``/master/state``, streamed: its agents and frameworks are made as they are written."""
    agents = list(master.agents.values())
    agent_texts(master).prune(master.agents)
    active = sum(1 for a in agents if a.active)
    frameworks = list(master.frameworks.values())
    completed = list(master.completed)
    out = Fields({
        **build_info(),
        "start_time": master.start_time,
        "id": master.id,
        "pid": master.info.pid,
        "hostname": master.info.hostname,
        "capabilities": list(MASTER_CAPABILITIES),
        "activated_slaves": active,
        "deactivated_slaves": len(agents) - active,
        "unreachable_slaves": len(master.unreachable),
        "leader": leader if leader is not None else master.info.pid,
        "leader_info": leader_info if leader_info is not None else master.info.to_json(),
        "flags": flags,
        "slaves": Texts(agent_json(master, a) for a in agents),
        "recovered_slaves": [],
        "frameworks": Items(framework_fields(master, f) for f in frameworks),
        "completed_frameworks": Items(framework_fields(master, f) for f in completed),
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    })
    if master.elected_time is not None:
        out["elected_time"] = master.elected_time
    if master.config.cluster:
        out["cluster"] = master.config.cluster
    return out


def task_counts(tasks: Iterable[Task], counted: Mapping[str, int] | None = None) -> dict[str, int]:
    """Task state -> how many of ``tasks`` are in it, added to the ``counted`` ones (every state but
    TASK_UNKNOWN is shown, zeros included)."""
    counts = dict(_ZERO_COUNTS)
    if counted:
        for state, count in counted.items():
            counts[state] = counts.get(state, 0) + count
    for task in tasks:
        counts[task.state] = counts.get(task.state, 0) + 1
    return counts


_COUNT_KEYS = {state: jsontext.string(state) + ":" for state in TASK_STATES}


def _counts_text(counts: dict[str, int]) -> str:
    """``"TASK_STAGING":0,...``: the inside of the counts' object text."""
    return ",".join(_COUNT_KEYS.get(state, jsontext.string(state) + ":") + int.__repr__(count)
                    for state, count in counts.items())


#: the counts' text of the few distinct counts agents have (most agents of a large cluster share them)
_COUNTS_TEXTS: dict[tuple[tuple[str, int], ...], str] = {}


def _counts_cached(counted: Mapping[str, int]) -> str:
    """:func:`_counts_text` of ``task_counts((), counted)``, made once for each distinct ``counted``."""
    key = tuple(sorted(counted.items()))
    text = _COUNTS_TEXTS.get(key)
    if text is None:
        if len(_COUNTS_TEXTS) >= 4096:
            _COUNTS_TEXTS.clear()  # bounded: whatever the cluster, the cache stays small
        text = _COUNTS_TEXTS[key] = _counts_text(task_counts((), counted))
    return text


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


def state_summary(master: Master) -> Fields:
    """``/master/state-summary``: agents and frameworks with task counts instead of tasks, streamed.

    As in Mesos, the counts and the agent <-> framework mapping cover the live,
    unreachable and completed tasks of the frameworks currently registered. The master's task
    tracker counts them as they change. Only the agents and frameworks whose texts changed since the
    last summary are made again (:mod:`~mesostw.master.summary_texts`).
    """
    out = Fields({"hostname": master.info.hostname})
    texts = summary_texts(master)
    out["slaves"], out["frameworks"] = texts.arrays(
        master, lambda agent: agent_summary_json(master, agent),
        lambda framework: framework_summary_json(master, framework, texts.agent_lists))
    if master.config.cluster:
        out["cluster"] = master.config.cluster
    return out


def _with_completed(counted: Mapping[str, int], completed: Mapping[str, int]) -> Mapping[str, int]:
    """Live task counts with the completed ones added."""
    if not completed:
        return counted
    counts = dict(counted)
    for state, count in completed.items():
        counts[state] = counts.get(state, 0) + count
    return counts


def agent_summary_json(master: Master, agent: AgentRecord) -> str:
    """The JSON text of an agent as ``/master/state-summary`` shows it."""
    tracker = master.tasks
    agent_id = agent.id
    completed, completed_frameworks = tracker.completed_on(agent_id)
    counted = tracker.counts_on(agent_id)
    counts = _counts_text(task_counts((), _with_completed(counted, completed))) if completed \
        else _counts_cached(counted)
    ids = set(tracker.frameworks_on(agent_id))
    ids.update(completed_frameworks)
    return "".join((agent_texts(master).open_text(master, agent), ",", counts, ',"framework_ids":',
                    jsontext.encode(sorted(ids)), "}"))


def framework_summary_json(master: Master, framework: FrameworkRecord,
                           agent_lists: dict[str, tuple[int, str]]) -> str:
    """The JSON text of a framework as ``/master/state-summary`` shows it; ``agent_lists`` keeps the text of
    its agents' IDs (ten thousand of them, sorted), made again only when an agent joined or left them."""
    tracker = master.tasks
    info = framework.info
    completed, completed_agents = tracker.completed_of(framework.id)
    changes = tracker.agent_set_changes(framework.id)
    agents = agent_lists.get(framework.id)
    if agents is None or agents[0] != changes:
        agent_ids = set(tracker.agents_with_tasks(framework.id))
        agent_ids.update(completed_agents)
        agents = agent_lists[framework.id] = (changes, jsontext.encode(sorted(agent_ids)))
    entry: dict[str, Any] = {
        "id": framework.id,
        "name": info.name,
        "used_resources": resources_model(tracker.used_by(framework.id)),
        "offered_resources": resources_model(master.offers.offered_to(framework.id)),
        "capabilities": sorted(info.capabilities),
        "hostname": info.hostname or "",
        "webui_url": info.webui_url or "",
        "active": framework.active,
        "connected": framework.connected,
        "recovered": framework.recovered,
        **task_counts((), _with_completed(tracker.counts_of(framework.id), completed)),
    }
    pid = framework_pid(framework)
    return "".join((jsontext.encode(entry)[:-1], ',"slave_ids":', agents[1],
                    ',"pid":' + jsontext.encode(pid) if pid else "", "}"))


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
                                      "resources": resources_model(allocated.get(name, EMPTY)),
                                      "frameworks": sorted(ids)}
        quota = master.quota.role_quota(name)  # Mesos 1.9+: guarantee, limit and consumption
        if quota is not None:
            role_model["quota"] = quota
        out.append(role_model)
    return {"roles": out}
