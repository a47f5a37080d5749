"""``/metrics/snapshot`` for the master: Mesos's ``master/...`` keys."""

from __future__ import annotations

import operator
from typing import Any
from weakref import WeakKeyDictionary

from mesostw.master.master import Master
from mesostw.metrics import system_metrics
from mesostw.model.task import TASK_STATES

_COUNTERS = (
    "messages_register_framework", "messages_register_slave", "messages_reregister_slave",
    "messages_accept", "messages_decline_offers", "messages_revive_offers", "messages_suppress_offers",
    "messages_kill_task", "messages_status_update", "messages_status_update_acknowledgement",
    "messages_reconcile_tasks", "messages_framework_to_executor", "messages_executor_to_framework",
    "messages_unregister_framework", "valid_status_updates", "invalid_status_updates", "dropped_messages",
    "slave_registrations", "slave_reregistrations", "slave_removals", "slave_removals/reason_unhealthy",
    "slave_removals/reason_unregistered", "invalid_calls", "invalid_tasks", "invalid_operations",
    "frameworks_denied", "tasks_denied", "teardowns_denied", "authentication_failures", "invalid_messages",
    "recovery_slave_removals", "http_authentication_failures",
)


#: master -> (the agents' total resources its totals were summed from, those totals by scalar name)
_TOTALS: WeakKeyDictionary[Master, tuple[list[Any], dict[str, float]]] = WeakKeyDictionary()
_SCALARS = ("cpus", "mem", "disk", "gpus")


def _totals(master: Master, agents: list[Any]) -> dict[str, float]:
    """What the agents' resources sum to, by scalar: summed again only when an agent came, went, or
    re-registered or had its reservations changed (comparing the immutable Resources objects themselves)."""
    infos = [agent.total for agent in agents]
    cached = _TOTALS.get(master)
    if cached is not None and len(cached[0]) == len(infos) and all(map(operator.is_, cached[0], infos)):
        return cached[1]
    totals = dict.fromkeys(_SCALARS, 0.0)
    for resources in infos:
        for name in _SCALARS:
            totals[name] += resources.scalar(name)
    _TOTALS[master] = (infos, totals)
    return totals


def snapshot(master: Master, elected: bool = True) -> dict[str, Any]:
    """The master's metrics; what they sum (resources, task states) its components keep as it changes, so
    that a snapshot costs little on a large cluster."""
    agents = list(master.agents.values())
    totals = _totals(master, agents)
    used = master.tasks.used_in_all() + master.offers.offered_in_all()
    out: dict[str, Any] = {
        "master/elected": 1.0 if elected else 0.0,
        "master/uptime_secs": master.clock.seconds() - master.start_time,
        "master/outstanding_offers": float(len(master.offers)),
        "master/operator_event_stream_subscribers": float(len(master.events)),
    }
    for name in _SCALARS:
        whole = totals[name]
        part = used.scalar(name)
        out[f"master/{name}_total"] = whole
        out[f"master/{name}_used"] = part
        out[f"master/{name}_percent"] = part / whole if whole else 0.0
    out["master/slaves_active"] = float(sum(1 for a in agents if a.active))
    out["master/slaves_inactive"] = float(sum(1 for a in agents if not a.active))
    out["master/slaves_connected"] = float(sum(1 for a in agents if a.connected))
    out["master/slaves_disconnected"] = float(sum(1 for a in agents if not a.connected))
    out["master/slaves_unreachable"] = float(len(master.unreachable))
    frameworks = list(master.frameworks.values())
    out["master/frameworks_active"] = float(sum(1 for f in frameworks if f.active))
    out["master/frameworks_inactive"] = float(sum(1 for f in frameworks if not f.active))
    out["master/frameworks_connected"] = float(sum(1 for f in frameworks if f.connected))
    out["master/frameworks_disconnected"] = float(sum(1 for f in frameworks if not f.connected))
    for state in TASK_STATES:
        key = state[5:].lower()
        if state in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_UNREACHABLE"):
            out[f"master/tasks_{key}"] = float(master.tasks.count(state))
        elif state != "TASK_UNKNOWN":
            out[f"master/tasks_{key}"] = float(master.metrics.get(f"tasks_{key}", 0))
    for name in _COUNTERS:
        out[f"master/{name}"] = float(master.metrics.get(name, 0))
    out["allocator/mesos/allocation_runs"] = float(getattr(master.allocator, "allocation_runs", 0))
    out.update(quota_metrics(master))
    out.update(system_metrics())
    return out


def quota_metrics(master: Master) -> dict[str, float]:
    """Mesos's ``allocator/mesos/quota/roles/<role>/resources/<resource>/guarantee`` and ``/limit``, and
    ``/offered_or_allocated``: what the role consumes as the allocator counts it (offers included)."""
    out: dict[str, float] = {}
    consumed = getattr(master.allocator, "quota_consumed", None)
    for config in master.quota.sorted():
        prefix = f"allocator/mesos/quota/roles/{config.role}/resources"
        for name, amount in config.guarantees.items():
            out[f"{prefix}/{name}/guarantee"] = amount
        for name, amount in config.limits.items():
            out[f"{prefix}/{name}/limit"] = amount
        if consumed is not None:
            for name, amount in consumed(config.role).items():
                out[f"{prefix}/{name}/offered_or_allocated"] = amount
    return out
