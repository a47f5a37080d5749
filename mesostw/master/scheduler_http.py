"""The v1 scheduler HTTP API: ``POST /api/v1/scheduler``.

SUBSCRIBE answers ``200`` with a RecordIO stream of Events (and a
``Mesos-Stream-Id`` header) that stays open; every other Call comes on its
own request carrying that stream ID and is answered ``202``. HTTP frameworks
are the same frameworks to the master as PB ones: the stream is their
:class:`IFrameworkLink`, and its :class:`SchedulerSession` takes their Calls.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from twisted.internet import task
from twisted.logger import Logger
from twisted.web import server
from zope.interface import implementer

from mesostw.auth.http import REALM_SCHEDULER, http_principal
from mesostw.http import recordio
from mesostw.http.content import JSON, check_accept, check_content_type
from mesostw.http.router import HTTPError, Response, Router, read_body
from mesostw.interfaces import IFrameworkLink
from mesostw.master.master import Master
from mesostw.model import scheduler_api as api
from mesostw.model.validation import ValidationError, decode_json
from mesostw.scheduler.session import CallRefused, SchedulerSession, SubscriptionRefused

log = Logger()

MAX_CALL_BYTES = 16 * 1024 * 1024
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


@implementer(IFrameworkLink)
class HTTPFrameworkLink:
    """A subscribed HTTP framework: events go down the open response as RecordIO."""

    def __init__(self, request: server.Request, stream_id: str, clock: Any, heartbeat: float,
                 principal: str | None = None):
        self.request = request
        self.stream_id = stream_id
        self.principal = principal
        self.closed = False
        self.on_gone: Callable[[HTTPFrameworkLink], None] | None = None
        #: the framework's session, once subscribed on this stream
        self.session: SchedulerSession | None = None
        self._heartbeat = task.LoopingCall(self.send, api.HEARTBEAT_EVENT)
        self._heartbeat.clock = clock
        self._heartbeat.start(heartbeat, now=False)
        request.notifyFinish().addBoth(self._gone)

    def send(self, event: dict[str, Any]) -> None:
        if not self.closed:
            self.request.write(recordio.encode_json(event))

    def close(self) -> None:
        if self.closed:
            return
        self._stop()
        self.request.finish()

    def _stop(self) -> None:
        self.closed = True
        if self._heartbeat.running:
            self._heartbeat.stop()

    def _gone(self, _: Any) -> None:
        was_closed = self.closed
        self._stop()
        if not was_closed and self.on_gone is not None:
            self.on_gone(self)


class SchedulerAPI:
    """Serves ``/api/v1/scheduler`` for one master."""

    def __init__(self, master: Master, clock: Any, heartbeat: float = api.HEARTBEAT_INTERVAL):
        self.master = master
        self.clock = clock
        self.heartbeat = heartbeat
        #: Hook for HA: returns None when leading, else an HTTPError to answer with.
        self.not_leading: Callable[[server.Request], HTTPError | None] = lambda request: None

    def install(self, router: Router) -> None:
        # Every usual method comes to handle(), so that a non-leading master redirects before it
        # refuses a method (Mesos's order); handle() answers 405 for all but POST.
        for path in ("/api/v1/scheduler", "/master/api/v1/scheduler"):
            router.route(path, self.authenticated, methods=HTTP_METHODS, max_body=MAX_CALL_BYTES,
                         before_body=self.authenticate)

    def authenticate(self, request: server.Request) -> Any:
        """HTTP Basic (required with --authenticate_frameworks or --authenticate_http_frameworks); leaves
        the principal on the request. Runs before the body is read, and again (answered at once) after."""
        security = self.master.security
        d = http_principal(security, request, REALM_SCHEDULER, security.http_frameworks_must_authenticate)

        def bind(principal: str | None) -> None:
            request.principal = principal  # type: ignore[attr-defined]

        return d.addCallback(bind)

    def authenticated(self, request: server.Request) -> Any:
        """HTTP Basic first (required with --authenticate_frameworks or --authenticate_http_frameworks),
        then :meth:`handle`."""
        return self.authenticate(request).addCallback(lambda _: self.handle(request))

    def handle(self, request: server.Request) -> Any:
        redirect = self.not_leading(request)
        if redirect is not None:
            raise redirect
        if request.method != b"POST":
            raise HTTPError(405, f"Expecting one of {{POST}}, but received "
                                 f"'{request.method.decode(errors='replace')}'", {"Allow": "POST"})
        # Mesos's order: Content-Type, then the body and the Call in it, then Accept.
        check_content_type(request.getHeader("content-type"))
        try:
            framework_id, call = api.parse_call(decode_json(read_body(request, MAX_CALL_BYTES), "Call"))
        except ValidationError as exc:
            raise HTTPError(400, f"Failed to validate scheduler::Call: {exc}") from None
        check_accept(request.getHeader("accept"))
        stream_id = request.getHeader("mesos-stream-id")
        if isinstance(call, api.Subscribe):
            if stream_id is not None:
                raise HTTPError(400, "Subscribe calls should not include the 'Mesos-Stream-Id' header")
            return self._subscribe(request, call)
        assert framework_id is not None
        framework = self.master.frameworks.get(framework_id)
        if framework is None:
            raise HTTPError(400, f"Framework '{framework_id}' cannot be found")
        link = framework.link
        if link is None:
            raise HTTPError(403, f"Framework '{framework_id}' is not subscribed")
        if not isinstance(link, HTTPFrameworkLink) or link.session is None:
            raise HTTPError(403, f"Framework '{framework_id}' is not subscribed over HTTP")
        if stream_id is None:
            raise HTTPError(400, "All non-subscribe calls should include the 'Mesos-Stream-Id' header")
        if stream_id != link.stream_id:
            raise HTTPError(400, f"The stream ID '{stream_id}' included in this request didn't match the stream ID "
                                 f"currently associated with framework ID '{framework_id}'")
        try:
            link.session.call(framework_id, call)
        except CallRefused as exc:
            raise HTTPError(400, str(exc)) from None
        return Response(b"", 202)

    def _subscribe(self, request: server.Request, call: api.Subscribe) -> Any:
        stream_id = str(uuid.uuid4())
        request.setResponseCode(200)
        request.setHeader("Content-Type", JSON)
        request.setHeader("Mesos-Stream-Id", stream_id)
        request.setHeader("Cache-Control", "no-cache")
        principal = getattr(request, "principal", None)
        link = HTTPFrameworkLink(request, stream_id, self.clock, self.heartbeat, principal)
        session = SchedulerSession(self.master, principal,
                                   authentication_required=self.master.security.http_frameworks_must_authenticate)
        try:
            session.subscribe(link, call)
        except SubscriptionRefused as exc:
            link.send(api.error_event(str(exc)))
            link.close()
            return server.NOT_DONE_YET
        link.session = session
        link.on_gone = lambda closed: session.disconnected()
        return server.NOT_DONE_YET
