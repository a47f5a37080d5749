"""Operators reserve resources and create volumes: the v0 endpoints and the v1 calls.

- ``POST /master/reserve`` and ``/master/unreserve`` (form fields ``slaveId`` and ``resources``, a JSON
  array of Resources), ``/master/create-volumes`` and ``/master/destroy-volumes`` (``slaveId`` and
  ``volumes``), also without the ``/master`` prefix;
- ``RESERVE_RESOURCES`` and ``UNRESERVE_RESOURCES`` (``agent_id``, ``resources``), ``CREATE_VOLUMES``
  and ``DESTROY_VOLUMES`` (``agent_id``, ``volumes``).

As in Mesos (``src/master/http.cpp``), both answer 202 Accepted once the operation is applied (here:
once the registry holds it; the agent hears of it at once, or when it re-registers), 400 for a request
that is malformed, names no registered agent or fails validation, 403 when the ACLs
(``reserve_resources``, ``unreserve_resources``, ``create_volumes``, ``destroy_volumes``) deny it, and
409 when the resources are not free (they are in use by tasks; offers holding them are rescinded
first). The router answers 401 (authentication) and 307/503 (not the leader) before these run.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web import server

from mesostw.http.router import HTTPError, Response, Router, query, read_body
from mesostw.master.frameworks import RegistrationRefused
from mesostw.master.master import Master
from mesostw.master.operations import OperationRefused
from mesostw.model.operations import CREATE, DESTROY, RESERVE, UNRESERVE
from mesostw.model.resources import Resources
from mesostw.model.validation import Reader, ValidationError
from mesostw.operator.calls import CallContext, CallTable

#: v0 path -> (operation, the form field holding its resources)
ENDPOINTS = {"reserve": (RESERVE, "resources"), "unreserve": (UNRESERVE, "resources"),
             "create-volumes": (CREATE, "volumes"), "destroy-volumes": (DESTROY, "volumes")}
#: v1 call -> (operation, its message's resources field)
CALLS = {"RESERVE_RESOURCES": (RESERVE, "resources"), "UNRESERVE_RESOURCES": (UNRESERVE, "resources"),
         "CREATE_VOLUMES": (CREATE, "volumes"), "DESTROY_VOLUMES": (DESTROY, "volumes")}
#: The largest form body taken (a few thousand resources).
MAX_BODY = 1024 * 1024


def operate(master: Master, agent_id: str, kind: str, resources: Resources, principal: str | None) -> defer.Deferred:
    """Apply an operator's operation; fires with the 202 Response, fails with the HTTPError Mesos answers."""

    def refused(failure: Failure) -> Any:
        if failure.check(OperationRefused):
            raise HTTPError(failure.value.code, failure.value.message)
        if failure.check(RegistrationRefused):
            raise HTTPError(503, f"Failed to apply the {kind} operation: {failure.getErrorMessage()}")
        return failure

    return master.operations.operate(agent_id, kind, resources, principal).addCallbacks(
        lambda _: Response(b"", 202), refused)


class ReservationEndpoints:
    """The v0 endpoints (see the module)."""

    def __init__(self, master: Master):
        self.master = master

    def install(self, router: Router) -> None:
        for prefix in ("/master", ""):
            for name, (kind, field) in ENDPOINTS.items():
                router.route(f"{prefix}/{name}", self._handler(kind, field), methods=("POST",), max_body=MAX_BODY)

    def _handler(self, kind: str, field: str) -> Any:
        def handle(request: server.Request) -> defer.Deferred:
            params = _form(request)
            agent_id = params.get("slaveId")
            if agent_id is None:
                raise HTTPError(400, "Missing 'slaveId' query parameter in the request body")
            text = params.get(field)
            if text is None:
                raise HTTPError(400, f"Missing '{field}' query parameter in the request body")
            try:
                data = json.loads(text)
            except (ValueError, RecursionError) as exc:
                raise HTTPError(400, f"Error in parsing '{field}' query parameter in the request body: {exc}") from None
            if kind == RESERVE and "source" in params:
                raise HTTPError(400, "Reservation updates ('source') are not supported by mesostw: unreserve, then "
                                     "reserve")
            try:
                resources = Resources.from_json(data, field)
            except ValidationError as exc:
                raise HTTPError(400, f"Error in parsing '{field}' query parameter in the request body: {exc}") from None
            return operate(self.master, agent_id, kind, resources, getattr(request, "principal", None))

        return handle


def _form(request: server.Request) -> dict[str, str]:
    """The form fields of the body, whatever its Content-Type says (as Mesos decodes it), over those of
    the query string."""
    fields = query(request)
    body = read_body(request, MAX_BODY).decode("utf-8", "replace")
    fields.update({k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()})
    return fields


def register(table: CallTable, master: Master) -> None:
    """Add RESERVE_RESOURCES, UNRESERVE_RESOURCES, CREATE_VOLUMES and DESTROY_VOLUMES to ``table``."""

    def handler(kind: str, field: str) -> Any:
        def handle(context: CallContext, reader: Reader | None) -> defer.Deferred:
            assert reader is not None
            agent_id = reader.id("agent_id", None, required=True)
            if not reader.has(field):
                reader.error("is required", field)
            resources = Resources.read(reader, field)
            if kind == RESERVE and reader.has("source"):
                reader.error("is not supported by mesostw (reservation updates): unreserve, then reserve", "source")
            reader.check()
            return operate(master, agent_id, kind, resources, context.principal)

        return handle

    for call_type, (kind, field) in CALLS.items():
        table.register(call_type, handler(kind, field), required=True)
