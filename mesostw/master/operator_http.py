"""The master's operator endpoints beyond ``/master/state``: summaries, lists, roles and weights.

Shapes follow Mesos 1.x (``src/master/http.cpp``); the 0.21 ``.json`` names
(``tasks.json``, ``roles.json``) are served too, as Mesos did until 1.8.
"""

from __future__ import annotations

import heapq
import json
import math
from typing import Any

from twisted.internet import defer
from twisted.web import server

from mesostw.http.router import HTTPError, Response, Router, int_param, query, read_body
from mesostw.http.stream import Fields, Items, Texts, collector_held
from mesostw.master import state_json
from mesostw.master.master import Master
from mesostw.master.records import FrameworkRecord
from mesostw.model.resources import validate_role
from mesostw.model.task import Task
from mesostw.model.v0 import task_json
from mesostw.operator.approvers import Approvers

#: Mesos's ``TASK_LIMIT``: ``/master/tasks`` answers this many tasks unless told otherwise.
TASK_LIMIT = 100
MAX_WEIGHTS_BODY = 64 * 1024
#: ``des`` is how Mesos spells it internally; ``desc`` is what its docs say.
ORDERS = {"asc": False, "desc": True, "des": True}


class OperatorEndpoints:
    """``/master/state-summary``, ``frameworks``, ``slaves``, ``tasks``, ``roles`` and ``weights``."""

    def __init__(self, master: Master):
        self.master = master

    def install(self, router: Router) -> None:
        # The master is libprocess's delegate: un-prefixed paths reach it too (``/tasks``).
        for prefix in ("/master", ""):
            router.route(f"{prefix}/state-summary", self.state_summary)
            router.route(f"{prefix}/frameworks", self.frameworks)
            router.route(f"{prefix}/slaves", self.slaves)
            for name in ("tasks", "tasks.json"):
                router.route(f"{prefix}/{name}", self.tasks)
            for name in ("roles", "roles.json"):
                router.route(f"{prefix}/{name}", self.roles)
            router.route(f"{prefix}/weights", self.get_weights)
            router.route(f"{prefix}/weights", self.put_weights, methods=("PUT",), max_body=MAX_WEIGHTS_BODY)

    def state_summary(self, request: server.Request) -> Fields:
        return state_json.state_summary(self.master)

    def frameworks(self, request: server.Request) -> Fields:
        wanted = query(request).get("framework_id") or None
        master = self.master

        def models(records: Any) -> Items:
            chosen = [f for f in records if wanted in (None, f.id)]
            return Items(state_json.framework_fields(master, f) for f in chosen)

        return Fields({"frameworks": models(master.frameworks.values()),
                       "completed_frameworks": models(master.completed),
                       "unregistered_frameworks": []})

    def slaves(self, request: server.Request) -> Fields:
        wanted = query(request).get("slave_id") or None
        chosen = [a for a in self.master.agents.values() if wanted in (None, a.id)]
        return Fields({"slaves": Items(state_json.agent_model_full(self.master, a) for a in chosen),
                       "recovered_slaves": []})

    def tasks(self, request: server.Request) -> Fields:
        """Live, unreachable and completed tasks of every framework, newest first by default; only the
        ``offset + limit`` first are put in order (a page of a large cluster costs one pass over its tasks)."""
        params = query(request)
        limit = int_param(params, "limit", TASK_LIMIT, minimum=0)
        offset = int_param(params, "offset", 0, minimum=0)
        order = params.get("order") or "desc"
        if order not in ORDERS:
            raise HTTPError(400, f"Failed to parse 'order': {order!r} is not one of 'asc', 'desc'")
        framework_id = params.get("framework_id") or None
        task_id = params.get("task_id") or None
        # One pass that makes plain tuples (compared in C by the heap): (when, ID, tie-break, position);
        # the tie-break keeps heapq's own order among equal keys (the first found wins in both orders).
        # The collector waits for the end of the pass: its two tuples per task, alive until the page is
        # chosen, would otherwise be promoted and soon cost a full collection (see collector_held).
        descending = ORDERS[order]
        keys: list[tuple[float, str, int]] = []
        found: list[tuple[Task, str]] = []
        with collector_held():
            for framework in self._all_frameworks():
                if framework_id not in (None, framework.id):
                    continue
                role = framework.info.allocation_role
                for tasks in (framework.tasks.values(), framework.completed_tasks):
                    for task in tasks:
                        info_id = task.info.task_id
                        if task_id is not None and info_id != task_id:
                            continue
                        statuses = task.statuses
                        timestamp = statuses[-1].timestamp if statuses else None
                        index = len(found)
                        keys.append((-math.inf if timestamp is None else timestamp, info_id,
                                     -index if descending else index))
                        found.append((task, role))
            assert limit is not None and offset is not None
            select = heapq.nlargest if descending else heapq.nsmallest
            page = [found[abs(key[2])] for key in select(offset + limit, keys)[offset:]]
            del keys, found
        return Fields({"tasks": Texts(task_json(task, role) for task, role in page)})

    def roles(self, request: server.Request) -> dict[str, Any]:
        return state_json.roles(self.master)

    def get_weights(self, request: server.Request) -> list[dict[str, Any]]:
        """The weights of the roles the caller may view (``view_roles``)."""
        approvers = Approvers(self.master.security, getattr(request, "principal", None))
        weights = self.master.config.weights or {}
        return [{"role": role, "weight": float(weight)} for role, weight in sorted(weights.items())
                if approvers.view_role(role)]

    def put_weights(self, request: server.Request) -> defer.Deferred:
        """PUT a JSON array of ``{"role", "weight"}``: validate all, then the master persists and applies them."""
        body = read_body(request, MAX_WEIGHTS_BODY)
        try:
            data = json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError) as e:
            raise HTTPError(400, f"Failed to parse the request body as JSON: {e}") from None
        return update_weights(self.master, data, getattr(request, "principal", None))

    def _all_frameworks(self) -> list[FrameworkRecord]:
        return [*self.master.frameworks.values(), *self.master.completed]


def update_weights(master: Master, data: Any, principal: str | None) -> defer.Deferred:
    """Validate a list of ``{"role", "weight"}`` (``/weights`` and UPDATE_WEIGHTS), check the
    ``update_weights`` ACL for every role, then have the master persist and apply them all; fires with
    an empty 200 Response."""
    updates = parse_weights(data, master.config.roles)
    denied = [role for role in sorted(updates) if not master.security.authorize("update_weights", principal, role)]
    if denied:
        raise HTTPError(403, f"Principal {principal or '(none)'} may not update the weights of roles "
                             f"{', '.join(denied)}")

    def failed(failure: Any) -> Any:
        failure.trap(Exception)
        raise HTTPError(503, f"Failed to update weights: {failure.getErrorMessage()}")

    return master.updateWeights(updates).addCallbacks(lambda _: Response(b"", 200), failed)


def parse_weights(data: Any, whitelist: tuple[str, ...] | None) -> dict[str, float]:
    """Role -> weight of a JSON array of ``{"role", "weight"}``; HTTPError 400 naming every problem."""
    if not isinstance(data, list):
        raise HTTPError(400, "Expecting a JSON array of {\"role\": ..., \"weight\": ...} objects")
    updates: dict[str, float] = {}
    errors: list[str] = []
    for index, item in enumerate(data):
        role = item.get("role") if isinstance(item, dict) else None
        weight = item.get("weight") if isinstance(item, dict) else None
        if not isinstance(role, str):
            errors.append(f"[{index}]: 'role' must be a string")
            continue
        problem = validate_role(role)
        if problem:
            errors.append(f"[{index}]: {problem}")
        elif whitelist and role not in whitelist:
            errors.append(f"[{index}]: role {role!r} is not present in the master's --roles")
        elif role in updates:
            errors.append(f"[{index}]: role {role!r} appears more than once")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not _finite(weight) \
                or weight <= 0:
            errors.append(f"[{index}]: weight of role {role!r} must be a positive number, not {weight!r}")
            continue
        updates[role] = float(weight)
    if errors:
        raise HTTPError(400, "Invalid weights: " + "; ".join(errors))
    return updates


def _finite(number: float) -> bool:
    """Finite and representable as a float (an integer of 400 digits is neither)."""
    try:
        return math.isfinite(float(number))
    except OverflowError:
        return False
