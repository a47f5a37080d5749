"""The v1 scheduler API: Calls a framework sends and Events the master sends back.

Both travel as JSON-shaped dicts, over Perspective Broker (as JSON bytes) or
HTTP (``/api/v1/scheduler``); :func:`parse_call` validates a Call into one of
the typed records below, and the ``*_event`` functions build Events.
"""

from __future__ import annotations

from typing import Any, Union

import attrs

from mesostw.model.info import Filters, FrameworkInfo, MasterInfo, wrap
from mesostw.model.task import Offer, Operation, TaskStatus
from mesostw.model.validation import Reader, b64

HEARTBEAT_INTERVAL = 15.0


@attrs.frozen
class Subscribe:
    framework_info: FrameworkInfo
    force: bool = False


@attrs.frozen
class Teardown:
    pass


@attrs.frozen
class Accept:
    offer_ids: tuple[str, ...]
    operations: tuple[Operation, ...]
    filters: Filters


@attrs.frozen
class Decline:
    offer_ids: tuple[str, ...]
    filters: Filters


@attrs.frozen
class Revive:
    roles: tuple[str, ...] = ()


@attrs.frozen
class Suppress:
    roles: tuple[str, ...] = ()


@attrs.frozen
class Kill:
    task_id: str
    agent_id: str | None = None
    grace_period: float | None = None


@attrs.frozen
class Shutdown:
    executor_id: str
    agent_id: str


@attrs.frozen
class Acknowledge:
    agent_id: str
    task_id: str
    uuid: bytes


@attrs.frozen
class Reconcile:
    tasks: tuple[tuple[str, str | None], ...] = ()


@attrs.frozen
class Message:
    agent_id: str
    executor_id: str
    data: bytes


@attrs.frozen
class Request:
    pass


@attrs.frozen
class AcceptInverseOffers:
    """The framework can free what inverse offers ask for, in time."""

    inverse_offer_ids: tuple[str, ...]
    filters: Filters


@attrs.frozen
class DeclineInverseOffers:
    """The framework cannot (or is unlikely to) free what inverse offers ask for in time."""

    inverse_offer_ids: tuple[str, ...]
    filters: Filters


Call = Union[Subscribe, Teardown, Accept, Decline, Revive, Suppress, Kill, Shutdown, Acknowledge, Reconcile,
             Message, Request, AcceptInverseOffers, DeclineInverseOffers]

CALL_TYPES = ("SUBSCRIBE", "TEARDOWN", "ACCEPT", "DECLINE", "REVIVE", "SUPPRESS", "KILL", "SHUTDOWN",
              "ACKNOWLEDGE", "RECONCILE", "MESSAGE", "REQUEST", "ACCEPT_INVERSE_OFFERS",
              "DECLINE_INVERSE_OFFERS", "ACKNOWLEDGE_OPERATION_STATUS", "RECONCILE_OPERATIONS",
              "UPDATE_FRAMEWORK")


def parse_call(data: Any) -> tuple[str | None, Call]:
    """Validate a v1 Call; return its framework ID (None for a first SUBSCRIBE) and the typed call."""
    r = Reader(data, "call")
    kind = r.enum("type", CALL_TYPES, required=True)
    framework_id = r.id("framework_id")
    r.check()
    call = _PARSERS.get(kind, _unsupported)(r, kind)
    if kind != "SUBSCRIBE" and framework_id is None:
        r.error("is required", "framework_id")
    r.check()
    return framework_id, call


def _unsupported(r: Reader, kind: str) -> Call:
    r.error(f"type {kind} is not supported by this master")
    return Request()


def _subscribe(r: Reader, kind: str) -> Call:
    body = r.obj("subscribe", required=True)
    holder = body.obj("framework_info", required=True) if body else None
    info = FrameworkInfo.read(holder) if holder else FrameworkInfo("", "")
    framework_id = r.id("framework_id")
    if framework_id and info.id and framework_id != info.id:
        r.error("must equal subscribe.framework_info.id", "framework_id")
    if framework_id and not info.id:
        info = attrs.evolve(info, id=framework_id)
    return Subscribe(info, bool(body and body.bool("force", False)))


def _accept(r: Reader, kind: str) -> Call:
    body = r.obj("accept", required=True)
    if body is None:
        return Accept((), (), Filters())
    return Accept(tuple(body.ids("offer_ids")), tuple(body.each("operations", Operation.read)),
                  Filters.read(body.obj("filters")))


def _decline(r: Reader, kind: str) -> Call:
    body = r.obj("decline", required=True)
    if body is None:
        return Decline((), Filters())
    return Decline(tuple(body.ids("offer_ids")), Filters.read(body.obj("filters")))


def _roles(r: Reader, key: str) -> tuple[str, ...]:
    body = r.obj(key)
    return tuple(body.strs("roles", max_items=64)) if body else ()


def _kill(r: Reader, kind: str) -> Call:
    body = r.obj("kill", required=True)
    if body is None:
        return Kill("")
    policy = body.obj("kill_policy")
    grace = policy.obj("grace_period") if policy else None
    nanos = grace.int("nanoseconds", None, minimum=0) if grace else None
    return Kill(body.id("task_id", "", required=True), body.id("agent_id"),
                nanos / 1e9 if nanos is not None else None)


def _shutdown(r: Reader, kind: str) -> Call:
    body = r.obj("shutdown", required=True)
    if body is None:
        return Shutdown("", "")
    return Shutdown(body.id("executor_id", "", required=True), body.id("agent_id", "", required=True))


def _acknowledge(r: Reader, kind: str) -> Call:
    body = r.obj("acknowledge", required=True)
    if body is None:
        return Acknowledge("", "", b"")
    return Acknowledge(body.id("agent_id", "", required=True), body.id("task_id", "", required=True),
                       body.bytes("uuid", b"", required=True, max_len=64))


def _reconcile(r: Reader, kind: str) -> Call:
    body = r.obj("reconcile")
    tasks = []
    for task in body.objs("tasks") if body else ():
        task_id = task.id("task_id", required=True)
        if task_id is not None:
            tasks.append((task_id, task.id("agent_id")))
    return Reconcile(tuple(tasks))


def _message(r: Reader, kind: str) -> Call:
    body = r.obj("message", required=True)
    if body is None:
        return Message("", "", b"")
    return Message(body.id("agent_id", "", required=True), body.id("executor_id", "", required=True),
                   body.bytes("data", b"", required=True))


def _inverse(r: Reader, kind: str) -> Call:
    body = r.obj(kind.lower(), required=True)
    ids = tuple(body.ids("inverse_offer_ids")) if body else ()
    filters = Filters.read(body.obj("filters")) if body else Filters()
    return AcceptInverseOffers(ids, filters) if kind == "ACCEPT_INVERSE_OFFERS" else DeclineInverseOffers(ids, filters)


_PARSERS = {
    "SUBSCRIBE": _subscribe,
    "TEARDOWN": lambda r, k: Teardown(),
    "ACCEPT": _accept,
    "DECLINE": _decline,
    "REVIVE": lambda r, k: Revive(_roles(r, "revive")),
    "SUPPRESS": lambda r, k: Suppress(_roles(r, "suppress")),
    "KILL": _kill,
    "SHUTDOWN": _shutdown,
    "ACKNOWLEDGE": _acknowledge,
    "RECONCILE": _reconcile,
    "MESSAGE": _message,
    "REQUEST": lambda r, k: Request(),
    "ACCEPT_INVERSE_OFFERS": _inverse,
    "DECLINE_INVERSE_OFFERS": _inverse,
}


# -- building calls (drivers) ------------------------------------------------------

def call(framework_id: str | None, kind: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind}
    if framework_id:
        out["framework_id"] = wrap(framework_id)
    if body is not None:
        out[kind.lower()] = body
    return out


# -- events ------------------------------------------------------------------------

def subscribed_event(framework_id: str, master_info: MasterInfo) -> dict[str, Any]:
    return {"type": "SUBSCRIBED", "subscribed": {
        "framework_id": wrap(framework_id),
        "heartbeat_interval_seconds": HEARTBEAT_INTERVAL,
        "master_info": master_info.to_json(),
    }}


def offers_event(offers: list[Offer]) -> dict[str, Any]:
    return {"type": "OFFERS", "offers": {"offers": [o.to_json() for o in offers]}}


def inverse_offers_event(inverse_offers: list[Any]) -> dict[str, Any]:
    """INVERSE_OFFERS of :class:`mesostw.model.maintenance.InverseOffer` s."""
    return {"type": "INVERSE_OFFERS", "inverse_offers": {"inverse_offers": [o.to_json() for o in inverse_offers]}}


def rescind_inverse_offer_event(inverse_offer_id: str) -> dict[str, Any]:
    return {"type": "RESCIND_INVERSE_OFFER", "rescind_inverse_offer": {"inverse_offer_id": wrap(inverse_offer_id)}}


def rescind_event(offer_id: str) -> dict[str, Any]:
    return {"type": "RESCIND", "rescind": {"offer_id": wrap(offer_id)}}


def update_event(status: TaskStatus) -> dict[str, Any]:
    return {"type": "UPDATE", "update": {"status": status.to_json()}}


def message_event(agent_id: str, executor_id: str, data: bytes) -> dict[str, Any]:
    return {"type": "MESSAGE", "message": {"agent_id": wrap(agent_id), "executor_id": wrap(executor_id),
                                           "data": b64(data)}}


def failure_event(agent_id: str | None = None, executor_id: str | None = None,
                  status: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if agent_id:
        body["agent_id"] = wrap(agent_id)
    if executor_id:
        body["executor_id"] = wrap(executor_id)
    if status is not None:
        body["status"] = status
    return {"type": "FAILURE", "failure": body}


def error_event(message: str) -> dict[str, Any]:
    return {"type": "ERROR", "error": {"message": message}, "message": message}


HEARTBEAT_EVENT = {"type": "HEARTBEAT"}

