"""The master's read calls of the operator API: GET_STATE, GET_AGENTS, GET_FRAMEWORKS, GET_EXECUTORS,
GET_OPERATIONS, GET_TASKS, GET_ROLES, GET_WEIGHTS and GET_MASTER, each filtered by the caller's
``view_*`` ACLs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mesostw.master import v1_json
from mesostw.master.master import Master
from mesostw.model.lazyjson import Fields
from mesostw.model.validation import Reader
from mesostw.operator.calls import CallContext, CallTable
from mesostw.operator.v1 import response

Builder = Callable[[Master, Any], dict[str, Any]]


def register(table: CallTable, master: Master) -> None:
    """Add the read calls to ``table``."""

    def answer(call_type: str, build: Builder) -> None:
        def handler(context: CallContext, reader: Reader | None) -> dict[str, Any]:
            return Fields(response(call_type, build(master, context.approvers)))

        table.register(call_type, handler)

    # GET_STATE, GET_AGENTS, GET_FRAMEWORKS and GET_TASKS grow with every task, agent and offer: they are streamed (see
    # mesostw.http.stream).
    answer("GET_STATE", v1_json.get_state_fields)
    answer("GET_AGENTS", v1_json.get_agents_fields)
    answer("GET_FRAMEWORKS", v1_json.get_frameworks_fields)
    answer("GET_EXECUTORS", v1_json.get_executors)
    answer("GET_TASKS", v1_json.get_tasks_fields)
    # Mesos lists the operations that carry feedback (RESERVE, CREATE, ...); launches are not among them,
    # and they are the only operations mesostw applies so far.
    answer("GET_OPERATIONS", lambda master, approvers: {"operations": []})
    answer("GET_ROLES", v1_json.get_roles)
    answer("GET_WEIGHTS", v1_json.get_weights)
    answer("GET_MASTER", lambda master, approvers: v1_json.get_master(master))
