"""The operator API's dispatch: a table of call type -> handler, each with its message and its ACL.

Each family of calls is a small module with a ``register(table, ...)`` function that adds its
handlers; the HTTP adapter (:mod:`mesostw.operator.http`) decodes a Call and asks the table. A
handler takes the :class:`CallContext` (who calls, what they may see) and a
:class:`~mesostw.model.validation.Reader` over the call's message (None for calls without one),
and returns the Response as JSON (or a Deferred of it, or a :class:`Stream` for calls answered
with an event stream); it raises :class:`~mesostw.http.router.HTTPError` to refuse.

Validation follows Mesos's order: a call of a type the proto does not define is a 400, a call of
a type it defines but this daemon does not answer is a 501, a missing message or a malformed one
is a 400, and an ``acl`` (an action on no particular object, such as ``set_log_level``) that the
ACLs deny is a 403.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from mesostw.http.router import HTTPError
from mesostw.model.validation import Reader, ValidationError
from mesostw.operator.approvers import Approvers

# pragma: no mutate start (validation and dispatch, not a security check: see [tool.mutmut] in pyproject.toml)
#: ``mesos.v1.master.Call.Type`` (``include/mesos/v1/master/master.proto``).
MASTER_CALL_TYPES = (
    "UNKNOWN", "GET_HEALTH", "GET_FLAGS", "GET_VERSION", "GET_METRICS", "GET_LOGGING_LEVEL", "SET_LOGGING_LEVEL",
    "LIST_FILES", "READ_FILE", "GET_STATE", "GET_AGENTS", "GET_FRAMEWORKS", "GET_EXECUTORS", "GET_OPERATIONS",
    "GET_TASKS", "GET_ROLES", "GET_WEIGHTS", "UPDATE_WEIGHTS", "GET_MASTER", "SUBSCRIBE", "RESERVE_RESOURCES",
    "UNRESERVE_RESOURCES", "CREATE_VOLUMES", "DESTROY_VOLUMES", "GROW_VOLUME", "SHRINK_VOLUME",
    "GET_MAINTENANCE_STATUS", "GET_MAINTENANCE_SCHEDULE", "UPDATE_MAINTENANCE_SCHEDULE", "START_MAINTENANCE",
    "STOP_MAINTENANCE", "DRAIN_AGENT", "DEACTIVATE_AGENT", "REACTIVATE_AGENT", "GET_QUOTA", "UPDATE_QUOTA",
    "SET_QUOTA", "REMOVE_QUOTA", "TEARDOWN", "MARK_AGENT_GONE",
)
#: ``mesos.v1.agent.Call.Type`` (``include/mesos/v1/agent/agent.proto``).
AGENT_CALL_TYPES = (
    "UNKNOWN", "GET_HEALTH", "GET_FLAGS", "GET_VERSION", "GET_METRICS", "GET_LOGGING_LEVEL", "SET_LOGGING_LEVEL",
    "LIST_FILES", "READ_FILE", "GET_STATE", "GET_CONTAINERS", "GET_FRAMEWORKS", "GET_EXECUTORS", "GET_OPERATIONS",
    "GET_TASKS", "GET_AGENT", "GET_RESOURCE_PROVIDERS", "LAUNCH_NESTED_CONTAINER", "WAIT_NESTED_CONTAINER",
    "KILL_NESTED_CONTAINER", "REMOVE_NESTED_CONTAINER", "LAUNCH_NESTED_CONTAINER_SESSION",
    "ATTACH_CONTAINER_INPUT", "ATTACH_CONTAINER_OUTPUT", "LAUNCH_CONTAINER", "WAIT_CONTAINER", "KILL_CONTAINER",
    "REMOVE_CONTAINER", "ADD_RESOURCE_PROVIDER_CONFIG", "UPDATE_RESOURCE_PROVIDER_CONFIG",
    "REMOVE_RESOURCE_PROVIDER_CONFIG", "MARK_RESOURCE_PROVIDER_GONE", "PRUNE_IMAGES",
)


@attrs.frozen
class CallContext:
    """Who makes a call and what they may see; ``request`` is the HTTP request (for streams only)."""

    principal: str | None
    approvers: Approvers
    request: Any = None


class Stream:
    """A handler's answer that is not one Response but an event stream: ``start(request)`` takes the
    request over (headers, body, end) and returns ``server.NOT_DONE_YET``."""

    def start(self, request: Any) -> Any:
        raise NotImplementedError


Handler = Callable[[CallContext, Reader | None], Any]


@attrs.frozen
class CallSpec:
    """One call type's entry: its handler, the Call field holding its message (if any), whether that
    message must be present, and the object-less ACL action it needs (if any)."""

    type: str
    handler: Handler
    message: str | None = None
    required: bool = False
    acl: str | None = None


class CallTable:
    """The calls one daemon answers; ``api`` names the Call in messages (``master`` or ``agent``) and
    ``known`` lists every type its proto defines."""

    def __init__(self, api: str, known: Iterable[str]):
        self.api = api
        self.known = frozenset(known)
        self._specs: dict[str, CallSpec] = {}

    def register(self, call_type: str, handler: Handler, message: str | None = None, required: bool = False,
                 acl: str | None = None) -> None:
        """Answer ``call_type`` with ``handler``; ``message`` defaults to the type in lower case when
        ``required``."""
        if call_type not in self.known or call_type == "UNKNOWN":
            raise ValueError(f"{call_type} is not a {self.api}::Call type")
        if call_type in self._specs:
            raise ValueError(f"{call_type} is registered already")
        if required and message is None:
            message = call_type.lower()
        self._specs[call_type] = CallSpec(call_type, handler, message, required, acl)

    def types(self) -> list[str]:
        """The call types answered, sorted."""
        return sorted(self._specs)

    def spec(self, call_type: str) -> CallSpec | None:
        return self._specs.get(call_type)

    def validate(self, call: Any) -> tuple[CallSpec, Reader | None]:
        """The entry and the message reader of ``call`` (decoded JSON); raises HTTPError 400 or 501."""
        if not isinstance(call, dict):
            raise HTTPError(400, f"Failed to convert JSON into Call protobuf: expected a JSON object, "
                                 f"got {type(call).__name__}")
        call_type = call.get("type")
        if call_type is None:
            raise HTTPError(400, f"Failed to validate {self.api}::Call: Expecting 'type' to be present")
        if not isinstance(call_type, str) or call_type not in self.known:
            raise HTTPError(400, f"Failed to convert JSON into Call protobuf: {str(call_type)[:64]!r} is not a "
                                 f"{self.api}::Call type")
        spec = self._specs.get(call_type)
        if spec is None:
            raise HTTPError(501, f"{call_type} is not implemented by this {self.api}")
        reader: Reader | None = None
        if spec.message is not None:
            raw = call.get(spec.message)
            if raw is None and spec.required:
                raise HTTPError(400, f"Failed to validate {self.api}::Call: Expecting '{spec.message}' to be present")
            if raw is not None:
                if not isinstance(raw, dict):
                    raise HTTPError(400, f"Failed to convert JSON into Call protobuf: '{spec.message}' must be an "
                                         f"object")
                reader = Reader(raw, spec.message)
        return spec, reader

    # pragma: no mutate end
    def run(self, spec: CallSpec, context: CallContext, reader: Reader | None) -> Any:
        """Check the call's ACL and run its handler; a ValidationError the handler raises is a 400."""
        if spec.acl is not None and not context.approvers.allowed(spec.acl):
            raise HTTPError(403, f"Principal {context.principal or '(none)'} is not authorized to {spec.type} "
                                 f"({spec.acl})")
        # pragma: no mutate block (running the handler)
        try:
            return spec.handler(context, reader)
        except ValidationError as exc:
            raise HTTPError(400, f"Failed to validate {self.api}::Call: {exc}") from None

    # pragma: no mutate block (the rest of the class)
    def dispatch(self, context: CallContext, call: Any) -> Any:
        """Validate ``call`` and run it (no HTTP negotiation: for in-process callers)."""
        spec, reader = self.validate(call)
        return self.run(spec, context, reader)
