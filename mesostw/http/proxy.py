"""A reverse proxy for Router filters: a standby instance forwards API calls to the leader.

:meth:`ReverseProxy.forward` sends the request on (method, path and query, headers, body) and
relays the answer as it arrives: status, headers, and the body chunk by chunk, so event streams
(Server-Sent Events, RecordIO) flow through. A request that already went through a proxy of ours
is not forwarded again (two standbys that each think the other leads would bounce it forever).
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from twisted.internet import protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.client import Agent, FileBodyProducer, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from mesostw.http.router import HTTPError, json_bytes

log = Logger()

#: Marks a forwarded request (and names the proxy, for the leader's logs).
FORWARDED = b"x-mesostw-forwarded-by"
#: Headers that describe one connection, not the message (RFC 9110 7.6.1), and those the client library sets.
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
                        b"trailer", b"trailers", b"transfer-encoding", b"upgrade", b"host", b"content-length"})


@implementer(IPolicyForHTTPS)
class _TLSPolicy:
    """Client TLS to the leader with the process's TLS settings (a ``TLSConfig``)."""

    def __init__(self, tls: Any):
        self.tls = tls

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return self.tls.client_options(hostname.decode("ascii"))


class _Relay(protocol.Protocol):
    """Writes a response body to the waiting request as it arrives."""

    def __init__(self, request: server.Request):
        self.request = request

    def dataReceived(self, data: bytes) -> None:
        if not self.request.finished and not getattr(self.request, "_disconnected", False):
            self.request.write(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:  # type: ignore[assignment]
        request = self.request
        if request.finished or getattr(request, "_disconnected", False):
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            request.finish()
        else:
            # The answer is cut short: close the connection rather than pass a truncated body off as whole.
            log.info("The leader's answer to {path} broke off: {e}", path=request.path, e=reason.getErrorMessage())
            transport = request.channel.transport if request.channel is not None else None
            if transport is not None:
                transport.loseConnection()


class ReverseProxy:
    """Forwards requests to ``host:port`` addresses, over TLS when ``tls`` (an enabled TLSConfig) is given."""

    def __init__(self, reactor: Any, name: str, tls: Any = None, connect_timeout: float = 10.0):
        self.reactor = reactor
        self.name = name
        self.scheme = "https" if tls is not None else "http"
        kwargs: dict[str, Any] = {"connectTimeout": connect_timeout}
        if tls is not None:
            kwargs["contextFactory"] = _TLSPolicy(tls)
        self.agent = Agent(reactor, **kwargs)

    def forward(self, request: server.Request, address: str, uri: bytes | None = None) -> Any:
        """Answer ``request`` with the answer of the instance at ``address`` (to the request's own
        path and query, or to ``uri``); returns ``server.NOT_DONE_YET`` (for a Router filter), or
        raises HTTPError 503 for a request that was already forwarded once."""
        if request.requestHeaders.hasHeader(FORWARDED):
            raise HTTPError(503, f"The request was forwarded to {address}, which does not lead either; "
                                 "no leader can answer it now")
        headers = Headers()
        for name, values in request.requestHeaders.getAllRawHeaders():
            if name.lower() not in HOP_BY_HOP:
                headers.setRawHeaders(name, values)
        headers.setRawHeaders(FORWARDED, [self.name.encode()])
        peer = request.getClientAddress()
        client = getattr(peer, "host", None)
        if client:
            headers.addRawHeader(b"x-forwarded-for", client.encode())
        body = b""
        if request.content is not None:
            request.content.seek(0)
            body = request.content.read()
        producer = FileBodyProducer(BytesIO(body)) if body else None
        url = f"{self.scheme}://{address}".encode() + (request.uri if uri is None else uri)
        d = self.agent.request(request.method, url, headers, producer)
        relay: dict[str, Any] = {}

        def respond(response: Any) -> None:
            if request.finished or getattr(request, "_disconnected", False):
                response.deliverBody(protocol.Protocol())
                return
            request.setResponseCode(response.code, response.phrase)
            for name, values in response.headers.getAllRawHeaders():
                if name.lower() not in HOP_BY_HOP or name.lower() == b"content-length":
                    request.responseHeaders.setRawHeaders(name, values)
            relay["protocol"] = _Relay(request)
            response.deliverBody(relay["protocol"])

        def failed(failure: Failure) -> None:
            if request.finished or getattr(request, "_disconnected", False):
                return
            log.info("Cannot forward {path} to {address}: {e}", path=request.path, address=address,
                     e=failure.getErrorMessage())
            payload = json_bytes({"message": f"The leading instance at {address} cannot be reached: "
                                             f"{failure.getErrorMessage()}"})
            request.setResponseCode(502)
            request.setHeader("Content-Type", "application/json")
            request.setHeader("Content-Length", str(len(payload)))
            request.write(payload)
            request.finish()

        def gone(_: Any) -> None:
            # The client went away: stop reading the leader's answer (an endless event stream, say).
            inner = relay.get("protocol")
            if inner is not None and inner.transport is not None:
                inner.transport.stopProducing()
            elif not d.called:
                d.cancel()

        d.addCallbacks(respond, failed)
        request.notifyFinish().addErrback(gone)
        return server.NOT_DONE_YET

