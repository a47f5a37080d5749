"""Maintenance over the operator APIs: GET/UPDATE_MAINTENANCE_SCHEDULE, GET_MAINTENANCE_STATUS,
START/STOP_MAINTENANCE (v1), and ``/maintenance/schedule`` (GET, POST), ``/maintenance/status``,
``/machine/down`` and ``/machine/up`` (POST a JSON list of MachineIDs) (v0), as Mesos serves them.

Each obeys its ACL, whose objects are implicit (use ANY or NONE): ``get_maintenance_schedules``,
``update_maintenance_schedules``, ``get_maintenance_statuses``, ``start_maintenances`` and
``stop_maintenances``. Changes answer an empty 200 once the registry holds them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web import server

from mesostw.http.router import HTTPError, Response, Router, read_body
from mesostw.master.frameworks import RegistrationRefused
from mesostw.master.maintenance import MaintenanceRefused
from mesostw.master.master import Master
from mesostw.model.maintenance import MachineID, Schedule, read_machines
from mesostw.model.validation import Reader, ValidationError, decode_json
from mesostw.operator.calls import CallContext, CallTable
from mesostw.operator.v1 import response

MAX_BODY = 4 * 1024 * 1024


def refusals(what: str) -> Callable[[Failure], Any]:
    """An errback turning the master's refusals into HTTP errors: 400 for invalid changes, 503 for the registry."""

    def refused(failure: Failure) -> Any:
        if failure.check(MaintenanceRefused):
            raise HTTPError(400, failure.getErrorMessage())
        if failure.check(RegistrationRefused):
            raise HTTPError(503, f"Failed to {what}: {failure.getErrorMessage()}")
        return failure

    return refused


def update_schedule(master: Master, schedule: Schedule) -> defer.Deferred:
    return master.maintenance.update_schedule(schedule).addCallbacks(
        lambda _: None, refusals("update the maintenance schedule"))


def start(master: Master, machines: list[MachineID]) -> defer.Deferred:
    return master.maintenance.start(machines).addCallbacks(lambda _: None, refusals("start maintenance"))


def stop(master: Master, machines: list[MachineID]) -> defer.Deferred:
    return master.maintenance.stop(machines).addCallbacks(lambda _: None, refusals("stop maintenance"))


def register(table: CallTable, master: Master) -> None:
    """Add the maintenance calls to ``table``."""

    def get_schedule(context: CallContext, reader: Reader | None) -> dict[str, Any]:
        return response("GET_MAINTENANCE_SCHEDULE", {"schedule": master.maintenance.schedule.to_json()})

    def get_status(context: CallContext, reader: Reader | None) -> dict[str, Any]:
        return response("GET_MAINTENANCE_STATUS", {"status": master.maintenance.status_json()})

    def update(context: CallContext, reader: Reader | None) -> defer.Deferred:
        assert reader is not None
        holder = reader.obj("schedule", required=True)
        schedule = Schedule.read(holder) if holder is not None else Schedule()
        reader.check()
        return update_schedule(master, schedule)

    def machines_of(reader: Reader | None) -> list[MachineID]:
        assert reader is not None
        items = reader.list("machines", max_items=100_000)
        reader.check()
        return read_machines(items, reader.where("machines"))

    table.register("GET_MAINTENANCE_SCHEDULE", get_schedule, acl="get_maintenance_schedules")
    table.register("GET_MAINTENANCE_STATUS", get_status, acl="get_maintenance_statuses")
    table.register("UPDATE_MAINTENANCE_SCHEDULE", update, required=True, acl="update_maintenance_schedules")
    table.register("START_MAINTENANCE", lambda c, r: start(master, machines_of(r)), required=True,
                   acl="start_maintenances")
    table.register("STOP_MAINTENANCE", lambda c, r: stop(master, machines_of(r)), required=True,
                   acl="stop_maintenances")


class MaintenanceEndpoints:
    """The v0 maintenance endpoints, under ``/master`` and at the top."""

    def __init__(self, master: Master):
        self.master = master

    def install(self, router: Router) -> None:
        for prefix in ("/master", ""):
            router.route(f"{prefix}/maintenance/schedule", self.get_schedule)
            router.route(f"{prefix}/maintenance/schedule", self.post_schedule, methods=("POST",), max_body=MAX_BODY)
            router.route(f"{prefix}/maintenance/status", self.status)
            router.route(f"{prefix}/machine/down", self.down, methods=("POST",), max_body=MAX_BODY)
            router.route(f"{prefix}/machine/up", self.up, methods=("POST",), max_body=MAX_BODY)

    def _authorize(self, request: server.Request, action: str) -> None:
        principal = getattr(request, "principal", None)
        if not self.master.security.authorize(action, principal, None):
            raise HTTPError(403, f"Principal {principal or '(none)'} is not authorized to {action}")

    @staticmethod
    def _json(request: server.Request) -> Any:
        try:
            return decode_json(read_body(request, MAX_BODY), "the request body")
        except ValidationError as exc:
            raise HTTPError(400, str(exc)) from None

    def get_schedule(self, request: server.Request) -> dict[str, Any]:
        self._authorize(request, "get_maintenance_schedules")
        return self.master.maintenance.schedule.to_json()

    def post_schedule(self, request: server.Request) -> defer.Deferred:
        self._authorize(request, "update_maintenance_schedules")
        try:
            schedule = Schedule.from_json(self._json(request))
        except ValidationError as exc:
            raise HTTPError(400, f"Invalid maintenance schedule: {exc}") from None
        return update_schedule(self.master, schedule).addCallback(lambda _: Response(b"", 200))

    def status(self, request: server.Request) -> dict[str, Any]:
        self._authorize(request, "get_maintenance_statuses")
        return self.master.maintenance.status_json()

    def _machines(self, request: server.Request) -> list[MachineID]:
        data = self._json(request)
        if not isinstance(data, list):
            raise HTTPError(400, "Expecting a JSON array of machines ({\"hostname\": ..., \"ip\": ...})")
        try:
            return read_machines(data)
        except ValidationError as exc:
            raise HTTPError(400, str(exc)) from None

    def down(self, request: server.Request) -> defer.Deferred:
        self._authorize(request, "start_maintenances")
        return start(self.master, self._machines(request)).addCallback(lambda _: Response(b"", 200))

    def up(self, request: server.Request) -> defer.Deferred:
        self._authorize(request, "stop_maintenances")
        return stop(self.master, self._machines(request)).addCallback(lambda _: Response(b"", 200))
