"""Shape checks of the v1 operator API's JSON (``master.proto``, ``agent.proto``, ``mesos.proto``).

Built on the spec language of ``tests/unit/test_operator_endpoints.py`` (a type, ``[spec]``, a
``Schema`` or a check function); :func:`exact` also refuses keys the message does not define, so that
a stray v0 field (``slave_id``, a flat resources object, a TaskInfo's ``command``) fails the test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mesostw.model.task import SOURCES, TASK_STATES
from tests.unit.test_operator_endpoints import Number, Schema, one_of, problems

Check = Callable[[Any, str], list[str]]


def exact(schema: Schema) -> Check:
    """``schema``, with no key beyond its required and optional ones."""
    known = set(schema.required) | set(schema.optional)

    def check(value: Any, where: str) -> list[str]:
        errors = problems(value, schema, where)
        if isinstance(value, dict):
            errors += [f"{where}.{key} is not a field of this message" for key in value if key not in known]
        return errors

    return check


def non_empty(spec: Any) -> Check:
    """A list of ``spec`` with at least one item."""
    def check(value: Any, where: str) -> list[str]:
        if isinstance(value, list) and not value:
            return [f"{where}: expected at least one item"]
        return problems(value, [spec], where)

    return check


ID = exact(Schema({"value": str}))
TIME = exact(Schema({"nanoseconds": int}))
STATE = one_of(*TASK_STATES)
RESOURCE = exact(Schema({"name": str, "type": one_of("SCALAR", "RANGES", "SET")},
                        {"role": str, "scalar": exact(Schema({"value": Number})),
                         "ranges": Schema({"range": [exact(Schema({"begin": int, "end": int}))]}),
                         "set": Schema({"item": [str]}),
                         "reservations": [Schema({"type": str, "role": str})],
                         "allocation_info": exact(Schema({"role": str}))}))
ATTRIBUTE = Schema({"name": str, "type": one_of("SCALAR", "RANGES", "SET", "TEXT")})
STATUS = exact(Schema({"task_id": ID, "state": STATE},
                      {"timestamp": Number, "message": str, "source": one_of(*SOURCES), "reason": str,
                       "agent_id": ID, "executor_id": ID, "uuid": str, "healthy": bool, "labels": dict,
                       "container_status": dict, "check_status": dict, "unreachable_time": TIME,
                       "limitation": dict}))
TASK = exact(Schema({"name": str, "task_id": ID, "framework_id": ID, "agent_id": ID, "state": STATE},
                    {"executor_id": ID, "resources": [RESOURCE], "statuses": [STATUS], "status_update_state": STATE,
                     "status_update_uuid": str, "labels": dict, "discovery": dict, "container": dict,
                     "health_check": dict, "kill_policy": dict, "user": str, "limits": dict}))
FRAMEWORK_INFO = Schema({"user": str, "name": str},
                        {"id": ID, "failover_timeout": Number, "checkpoint": bool, "role": str, "roles": [str],
                         "hostname": str, "principal": str, "webui_url": str,
                         "capabilities": [exact(Schema({"type": str}))], "labels": dict})
AGENT_INFO = exact(Schema({"hostname": str},
                          {"port": int, "resources": [RESOURCE], "attributes": [ATTRIBUTE], "id": ID,
                           "domain": dict}))
EXECUTOR_INFO = Schema({"executor_id": ID}, {"framework_id": ID, "type": str, "command": dict, "resources": [RESOURCE],
                                             "name": str, "source": str, "data": str})
OFFER = Schema({"id": ID, "framework_id": ID, "agent_id": ID, "hostname": str, "resources": [RESOURCE]},
               {"url": dict, "attributes": [ATTRIBUTE], "executor_ids": [ID], "allocation_info": dict,
                "unavailability": dict})
AGENT = exact(Schema({"agent_info": AGENT_INFO, "active": bool, "version": str},
                     {"deactivated": bool, "pid": str, "registered_time": TIME, "reregistered_time": TIME,
                      "total_resources": [RESOURCE], "allocated_resources": [RESOURCE],
                      "offered_resources": [RESOURCE], "capabilities": [exact(Schema({"type": str}))],
                      "resource_providers": list, "drain_info": dict, "estimated_drain_start_time": TIME}))
FRAMEWORK = exact(Schema({"framework_info": FRAMEWORK_INFO, "active": bool, "connected": bool, "recovered": bool},
                         {"registered_time": TIME, "reregistered_time": TIME, "unregistered_time": TIME,
                          "offers": [OFFER], "inverse_offers": list, "allocated_resources": [RESOURCE],
                          "offered_resources": [RESOURCE], "offer_constraints": dict}))
GET_AGENTS = exact(Schema({"agents": [AGENT], "recovered_agents": [AGENT_INFO]}))
GET_FRAMEWORKS = exact(Schema({"frameworks": [FRAMEWORK], "completed_frameworks": [FRAMEWORK]}))
GET_EXECUTORS = exact(Schema({"executors": [exact(Schema({"executor_info": EXECUTOR_INFO, "agent_id": ID}))]}))
GET_TASKS = exact(Schema({"tasks": [TASK], "unreachable_tasks": [TASK], "completed_tasks": [TASK]},
                         {"pending_tasks": [TASK], "orphan_tasks": [TASK]}))
GET_STATE = exact(Schema({"get_tasks": GET_TASKS, "get_executors": GET_EXECUTORS, "get_frameworks": GET_FRAMEWORKS,
                          "get_agents": GET_AGENTS}))
ROLE = exact(Schema({"name": str, "weight": float}, {"frameworks": [ID], "resources": [RESOURCE]}))
WEIGHT_INFO = exact(Schema({"weight": float}, {"role": str}))
QUOTA_CONFIG = exact(Schema({"role": str}, {"guarantees": dict, "limits": dict}))
QUOTA_INFO = exact(Schema({"role": str}, {"principal": str, "guarantee": [RESOURCE]}))
QUOTA_STATUS = exact(Schema({}, {"infos": [QUOTA_INFO], "configs": [QUOTA_CONFIG]}))
MACHINE_ID = exact(Schema({}, {"hostname": str, "ip": str}))
NANOS = exact(Schema({"nanoseconds": int}))
UNAVAILABILITY = exact(Schema({"start": NANOS}, {"duration": NANOS}))
SCHEDULE = exact(Schema({}, {"windows": [exact(Schema({"machine_ids": [MACHINE_ID],
                                                       "unavailability": UNAVAILABILITY}))]}))
INVERSE_OFFER_STATUS = exact(Schema({"status": str, "framework_id": ID, "timestamp": NANOS}))
CLUSTER_STATUS = exact(Schema({}, {"draining_machines": [exact(Schema({"id": MACHINE_ID},
                                                                      {"statuses": [INVERSE_OFFER_STATUS]}))],
                                   "down_machines": [MACHINE_ID]}))
MASTER_INFO = exact(Schema({"id": str, "ip": int, "port": int},
                           {"pid": str, "hostname": str, "version": str, "address": dict, "domain": dict,
                            "capabilities": [exact(Schema({"type": str}))]}))
VERSION_INFO = exact(Schema({"version": str}, {"build_date": str, "build_time": Number, "build_user": str,
                                               "git_sha": str, "git_branch": str, "git_tag": str}))
FLAG = exact(Schema({"name": str}, {"value": str}))
METRIC = exact(Schema({"name": str}, {"value": float}))
FILE_INFO = exact(Schema({"path": str}, {"nlink": int, "size": int, "mtime": TIME, "mode": int, "uid": str,
                                         "gid": str}))


def response(call_type: str, body: Any = None) -> Check:
    """A ``Response`` of ``call_type`` whose message (if any) is ``body``."""
    if body is None:
        return exact(Schema({"type": one_of(call_type)}))
    return exact(Schema({"type": one_of(call_type), call_type.lower(): body}))


#: Master Responses, by call type.
MASTER_RESPONSES: dict[str, Check] = {
    "GET_HEALTH": response("GET_HEALTH", exact(Schema({"healthy": bool}))),
    "GET_FLAGS": response("GET_FLAGS", exact(Schema({"flags": non_empty(FLAG)}))),
    "GET_VERSION": response("GET_VERSION", exact(Schema({"version_info": VERSION_INFO}))),
    "GET_METRICS": response("GET_METRICS", exact(Schema({"metrics": non_empty(METRIC)}))),
    "GET_LOGGING_LEVEL": response("GET_LOGGING_LEVEL", exact(Schema({"level": int}))),
    "GET_STATE": response("GET_STATE", GET_STATE),
    "GET_AGENTS": response("GET_AGENTS", GET_AGENTS),
    "GET_FRAMEWORKS": response("GET_FRAMEWORKS", GET_FRAMEWORKS),
    "GET_EXECUTORS": response("GET_EXECUTORS", GET_EXECUTORS),
    "GET_TASKS": response("GET_TASKS", GET_TASKS),
    "GET_OPERATIONS": response("GET_OPERATIONS", exact(Schema({"operations": list}))),
    "GET_ROLES": response("GET_ROLES", exact(Schema({"roles": [ROLE]}))),
    "GET_WEIGHTS": response("GET_WEIGHTS", exact(Schema({"weight_infos": [WEIGHT_INFO]}))),
    "GET_MASTER": response("GET_MASTER", exact(Schema({"master_info": MASTER_INFO, "start_time": Number},
                                                      {"elected_time": Number}))),
    "GET_QUOTA": response("GET_QUOTA", exact(Schema({"status": QUOTA_STATUS}))),
    "GET_MAINTENANCE_SCHEDULE": response("GET_MAINTENANCE_SCHEDULE", exact(Schema({"schedule": SCHEDULE}))),
    "GET_MAINTENANCE_STATUS": response("GET_MAINTENANCE_STATUS", exact(Schema({"status": CLUSTER_STATUS}))),
}

EVENTS: dict[str, Check] = {
    "SUBSCRIBED": response("SUBSCRIBED", exact(Schema({"get_state": GET_STATE, "heartbeat_interval_seconds": Number}))),
    "TASK_ADDED": response("TASK_ADDED", exact(Schema({"task": TASK}))),
    "TASK_UPDATED": response("TASK_UPDATED", exact(Schema({"framework_id": ID, "status": STATUS, "state": STATE}))),
    "AGENT_ADDED": response("AGENT_ADDED", exact(Schema({"agent": AGENT}))),
    "AGENT_REMOVED": response("AGENT_REMOVED", exact(Schema({"agent_id": ID}))),
    "FRAMEWORK_ADDED": response("FRAMEWORK_ADDED", exact(Schema({"framework": FRAMEWORK}))),
    "FRAMEWORK_UPDATED": response("FRAMEWORK_UPDATED", exact(Schema({"framework": FRAMEWORK}))),
    "FRAMEWORK_REMOVED": response("FRAMEWORK_REMOVED", exact(Schema({"framework_info": FRAMEWORK_INFO}))),
    "HEARTBEAT": response("HEARTBEAT"),
}

AGENT_TASKS = exact(Schema({"queued_tasks": [TASK], "launched_tasks": [TASK], "terminated_tasks": [TASK],
                            "completed_tasks": [TASK]}, {"pending_tasks": [TASK]}))
AGENT_EXECUTORS = exact(Schema({"executors": [exact(Schema({"executor_info": EXECUTOR_INFO}))],
                                "completed_executors": [exact(Schema({"executor_info": EXECUTOR_INFO}))]}))
AGENT_FRAMEWORKS = exact(Schema({"frameworks": [exact(Schema({"framework_info": FRAMEWORK_INFO}))],
                                 "completed_frameworks": [exact(Schema({"framework_info": FRAMEWORK_INFO}))]}))
CONTAINER = exact(Schema({"container_id": ID},
                         {"framework_id": ID, "executor_id": ID, "executor_name": str,
                          "container_status": exact(Schema({"container_id": ID}, {"executor_pid": int})),
                          "resource_statistics": Schema({"timestamp": Number})}))

#: Agent Responses, by call type.
AGENT_RESPONSES: dict[str, Check] = {
    **{k: v for k, v in MASTER_RESPONSES.items()
       if k in ("GET_HEALTH", "GET_FLAGS", "GET_VERSION", "GET_METRICS", "GET_LOGGING_LEVEL")},
    "GET_STATE": response("GET_STATE", exact(Schema({"get_tasks": AGENT_TASKS, "get_executors": AGENT_EXECUTORS,
                                                     "get_frameworks": AGENT_FRAMEWORKS}))),
    "GET_CONTAINERS": response("GET_CONTAINERS", exact(Schema({"containers": [CONTAINER]}))),
    "GET_FRAMEWORKS": response("GET_FRAMEWORKS", AGENT_FRAMEWORKS),
    "GET_EXECUTORS": response("GET_EXECUTORS", AGENT_EXECUTORS),
    "GET_TASKS": response("GET_TASKS", AGENT_TASKS),
    "GET_OPERATIONS": response("GET_OPERATIONS", exact(Schema({"operations": list}))),
    "GET_AGENT": response("GET_AGENT", exact(Schema({"agent_info": AGENT_INFO}))),
}
