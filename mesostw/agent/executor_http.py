"""The v1 executor HTTP API on the agent: ``POST /api/v1/executor``.

SUBSCRIBE answers ``200`` with a RecordIO stream of Events that stays open;
UPDATE and MESSAGE are answered ``202``. The stream is the executor's
:class:`IExecutorLink` and the calls go to an :class:`ExecutorSession`, so HTTP
executors and the others are alike to the agent.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from twisted.web import server
from zope.interface import implementer

from mesostw.agent.agent import Agent
from mesostw.agent.executor_auth import bearer
from mesostw.agent.session import CallRefused, ExecutorSession, NotAuthenticated
from mesostw.agent.state import REGISTERING
from mesostw.http import recordio
from mesostw.http.content import JSON, check_accept, check_content_type
from mesostw.http.router import HTTPError, Response, Router, read_body
from mesostw.interfaces import IExecutorLink
from mesostw.model import executor_api as xapi
from mesostw.model.validation import ValidationError, decode_json

log = Logger()

MAX_CALL_BYTES = 16 * 1024 * 1024


@implementer(IExecutorLink)
class HTTPExecutorLink:
    """A subscribed HTTP executor: events go down its open response."""

    def __init__(self, request: server.Request):
        self.request = request
        self.closed = False
        self.on_gone: Any = None
        request.notifyFinish().addBoth(self._gone)

    def send(self, event: dict[str, Any]) -> None:
        if not self.closed:
            self.request.write(recordio.encode_json(event))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.request.finish()

    def _gone(self, _: Any) -> None:
        was_closed, self.closed = self.closed, True
        if not was_closed and self.on_gone is not None:
            self.on_gone(self)


class ExecutorAPI:
    """Serves ``/api/v1/executor`` for one agent.

    Every call carries the executor's secret as ``Authorization: Bearer <secret>``; with
    ``require_secret=False`` (``--authenticate_http_executors=false``, for executors that know no
    secret) a call without one is taken too, never one with a wrong one.
    """

    def __init__(self, agent: Agent, require_secret: bool = True):
        self.agent = agent
        self.require_secret = require_secret

    def install(self, router: Router) -> None:
        for path in ("/api/v1/executor", "/slave(1)/api/v1/executor"):
            router.route(path, self.handle, methods=("POST",), max_body=MAX_CALL_BYTES, before_body=self.present)

    def present(self, request: server.Request) -> HTTPError | None:
        """Before the body: a call that must carry a secret and carries none is refused unread."""
        if self.require_secret and bearer(request.getHeader("authorization")) is None:
            return HTTPError(401, "Executor calls must carry the executor's secret as 'Authorization: Bearer'",
                             {"WWW-Authenticate": 'Bearer realm="mesos-agent-executor"'})
        return None

    def handle(self, request: server.Request) -> Any:
        # Mesos's order: Content-Type, then the body and the Call in it, then Accept (for SUBSCRIBE,
        # the only call with a body in its answer), then the framework and the executor.
        check_content_type(request.getHeader("content-type"))
        try:
            framework_id, executor_id, call = xapi.parse_call(
                decode_json(read_body(request, MAX_CALL_BYTES), "Call"))
        except ValidationError as exc:
            raise HTTPError(400, f"Failed to validate executor::Call: {exc}") from None
        secret = bearer(request.getHeader("authorization"))
        session = ExecutorSession(self.agent, self.require_secret)
        if isinstance(call, xapi.Heartbeat):
            return Response(b"", 202)
        if isinstance(call, xapi.Subscribe):
            check_accept(request.getHeader("accept"))
            try:
                session.authenticate(framework_id, executor_id, secret)
            except NotAuthenticated as exc:
                raise _unauthorized(exc) from None
            request.setResponseCode(200)
            request.setHeader("Content-Type", JSON)
            link = HTTPExecutorLink(request)
            link.on_gone = lambda gone: session.disconnected()
            session.subscribe(link, framework_id, executor_id, call, secret)
            return server.NOT_DONE_YET
        framework = self.agent.frameworks.get(framework_id)
        if framework is None:
            raise HTTPError(400, f"Framework '{framework_id}' cannot be found")
        executor = framework.executors.get(executor_id)
        if executor is None:
            raise HTTPError(400, f"Executor '{executor_id}' of framework '{framework_id}' cannot be found")
        if executor.state == REGISTERING:
            raise HTTPError(403, f"Executor '{executor_id}' is not subscribed")
        # Every call comes on its own request: the session is bound to the executor the agent holds subscribed.
        try:
            session.bind(framework_id, executor_id, secret)
        except NotAuthenticated as exc:
            raise _unauthorized(exc) from None
        try:
            session.call(framework_id, executor_id, call)
        except CallRefused as exc:
            raise HTTPError(400, str(exc)) from None
        return Response(b"", 202)


def _unauthorized(exc: Exception) -> HTTPError:
    log.warn("Refused an executor call: {e}", e=exc)
    return HTTPError(401, str(exc), {"WWW-Authenticate": 'Bearer realm="mesos-agent-executor"'})
