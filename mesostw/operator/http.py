"""``POST /api/v1``: the HTTP side of a :class:`~mesostw.operator.calls.CallTable`.

Mesos's order (``src/master/http.cpp`` ``Master::Http::api``): the daemon must be able to answer
(``unavailable``: a master that does not lead or is recovering is refused by the router's guard
before this runs), then the method (405 unless POST), ``Content-Type`` (400 when missing, 415 for
protobuf, which mesostw does not speak, or anything else), the body (400 unless a JSON object),
the Call's validation (400, or 501 for a call this daemon does not answer), then ``Accept`` (406
unless it admits JSON); only then the call runs. Answers are JSON Responses, an empty 200 for calls
without one, or an event stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import server

from mesostw.auth.policy import Security
from mesostw.http.content import check_accept, check_content_type
from mesostw.http.router import HTTPError, Response, Router, read_body
from mesostw.model.validation import ValidationError, decode_json
from mesostw.operator.approvers import Approvers
from mesostw.operator.calls import CallContext, CallTable, Stream
from mesostw.verbosity import Verbosity, vlog

log = Logger()

#: The largest Call body accepted (Mesos sets no limit; the biggest real calls carry a few resources).
MAX_CALL_BYTES = 4 * 1024 * 1024
#: Every method reaches the handler, which answers 405 for all but POST in Mesos's words.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")

#: Calls that change something are logged at INFO; the others only at verbosity 1, as Mesos's VLOG(1).
READ_ONLY_PREFIXES = ("GET_", "LIST_", "READ_")


class OperatorAPI:
    """Serves one call table over HTTP.

    ``security`` gives the ACLs the calls obey (it is read at each call: a master's may be replaced);
    ``authenticate(request)`` (optional) returns a Deferred firing with the caller's principal, for
    daemons whose router does not authenticate already (the master's does, and leaves the principal
    on the request); ``unavailable(request)`` returns an HTTPError while the daemon cannot answer.
    """

    def __init__(self, table: CallTable, security: Callable[[], Security | None],
                 authenticate: Callable[[server.Request], defer.Deferred] | None = None,
                 unavailable: Callable[[server.Request], HTTPError | None] | None = None,
                 verbosity: Verbosity | None = None):
        self.table = table
        self.security = security
        self.authenticate = authenticate
        self.unavailable = unavailable
        self.verbosity = verbosity

    def install(self, router: Router, paths: tuple[str, ...]) -> None:
        for path in paths:
            router.route(path, self.serve, methods=HTTP_METHODS, max_body=MAX_CALL_BYTES)

    def serve(self, request: server.Request) -> Any:
        if self.authenticate is None:
            return self.handle(request)
        d = self.authenticate(request)

        def authenticated(principal: str | None) -> Any:
            request.principal = principal  # type: ignore[attr-defined]
            return self.handle(request)

        return d.addCallback(authenticated)

    def handle(self, request: server.Request) -> Any:
        refusal = self.unavailable(request) if self.unavailable is not None else None
        if refusal is not None:
            raise refusal
        if request.method != b"POST":
            raise HTTPError(405, f"Expecting one of {{POST}}, but received "
                                 f"'{request.method.decode(errors='replace')}'", {"Allow": "POST"})
        check_content_type(request.getHeader("content-type"))
        try:
            call = decode_json(read_body(request, MAX_CALL_BYTES), "Call")
        except ValidationError as exc:
            raise HTTPError(400, f"Failed to parse body into JSON: {exc}") from None
        spec, reader = self.table.validate(call)
        check_accept(request.getHeader("accept"))
        principal = getattr(request, "principal", None)
        if spec.type.startswith(READ_ONLY_PREFIXES):
            vlog(log, 1, "Processing call {type} of {principal}", self.verbosity, type=spec.type,
                 principal=principal or "(anonymous)")
        else:
            log.info("Processing call {type} of {principal}", type=spec.type, principal=principal or "(anonymous)")
        context = CallContext(principal, Approvers(self.security(), principal), request)
        d = defer.maybeDeferred(self.table.run, spec, context, reader)
        return d.addCallback(self._answer, request)

    def _answer(self, result: Any, request: server.Request) -> Any:
        if isinstance(result, Stream):
            return result.start(request)
        if result is None:
            return Response(b"", 200)
        return result
