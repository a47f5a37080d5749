"""What a daemon's port holds against clients that never finish: deadlines, caps and body limits.

- :class:`GuardedChannel` (HTTP/1.1): a request's headers must all arrive within ``header_timeout``
  of its first byte (a new connection's first request too), and its body within ``body_timeout``
  of the end of its headers; a connection that misses either is dropped. Once the headers are in,
  and before a byte of the body is buffered, the site's resource is asked to *admit* the request
  (:meth:`mesostw.http.router.Router.admission`): a body announced larger than its endpoint takes
  is refused with 413, a chunked one as soon as it grows past the limit, and endpoints that
  authenticate do so then (401 without reading the body).
- :class:`ConnectionLimits` wraps a port's factory: at most ``max_per_peer`` connections from one
  address and ``max_total`` in all; a connection beyond either is closed at once. On a TCP port of a
  real reactor (:meth:`ConnectionLimits.listen`) the port's transports count their own connections
  out as they close, so that nothing stands between a connection and its protocol.
- :func:`raise_file_limit`: a daemon raises its soft descriptor limit to the hard one at start, and
  keeps ``RESERVED_DESCRIPTORS`` of them out of reach of connections (for its registry, logs, and
  the executors it launches), so a flood of connections never makes a registry write fail.
"""

from __future__ import annotations

import resource
from collections import Counter
from typing import Any

import attrs
from twisted.internet import defer, protocol, tcp
from twisted.internet.posixbase import PosixReactorBase
from twisted.logger import Logger
from twisted.protocols import policies
from twisted.python.failure import Failure
from twisted.web import http

from mesostw.http.router import HTTPError, json_bytes

log = Logger()

#: Descriptors never given to connections: the registry's files, logs, pipes to launched processes.
RESERVED_DESCRIPTORS = 256
#: The soft limit is raised no further than this, whatever the hard limit.
MAX_FILE_LIMIT = 1 << 20
#: After refusing a request whose body is still arriving, how long its bytes are read and dropped
#: (so that the client reads the refusal instead of a reset) before the connection is cut.
REFUSAL_LINGER = 2.0


@attrs.frozen
class HTTPLimits:
    """The deadlines and caps of one listening port (``--http_header_timeout`` and friends)."""

    header_timeout: float = 10.0
    body_timeout: float = 60.0
    #: how long a PB or executor-stream connection has to bind (see :mod:`mesostw.wire.switch`)
    setup_timeout: float = 60.0
    max_connections_per_peer: int = 1024
    #: 0: the soft descriptor limit less :data:`RESERVED_DESCRIPTORS`
    max_connections: int = 0

    @classmethod
    def from_config(cls, config: Any) -> HTTPLimits:
        defaults = cls()
        return cls(getattr(config, "http_header_timeout", defaults.header_timeout),
                   getattr(config, "http_body_timeout", defaults.body_timeout),
                   getattr(config, "connection_setup_timeout", defaults.setup_timeout),
                   getattr(config, "max_connections_per_peer", defaults.max_connections_per_peer),
                   getattr(config, "max_connections", defaults.max_connections))

    def total(self, file_limit: int) -> int:
        """The cap on all connections of a port, given the process's soft descriptor limit."""
        return self.max_connections or max(16, file_limit - RESERVED_DESCRIPTORS)


def raise_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (at most :data:`MAX_FILE_LIMIT`);
    return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_FILE_LIMIT if hard == resource.RLIM_INFINITY else min(hard, MAX_FILE_LIMIT)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:
            log.warn("Could not raise the open files limit from {soft} to {wanted}: {e}", soft=soft, wanted=wanted,
                     e=exc)
    return int(soft) if soft != resource.RLIM_INFINITY else MAX_FILE_LIMIT


class GuardedChannel(http.HTTPChannel):
    """An HTTP/1.1 channel with header and body deadlines and admission before the body (see the module)."""

    limits = HTTPLimits()

    def __init__(self) -> None:
        super().__init__()
        self._deadline: Any = None
        self._refused = False
        #: while the site decides (asynchronously) whether to take the current request's body
        self._deciding = False
        self._content_complete = False

    # -- deadlines ------------------------------------------------------------------------

    def connectionMade(self) -> None:
        super().connectionMade()
        self._arm(self.limits.header_timeout, "its request headers")

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if self._deadline is None and not self._handlingRequest and self.line_mode:
            self._arm(self.limits.header_timeout, "its request headers")
        super().dataReceived(data)

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        if seconds and seconds > 0:
            self._deadline = self.callLater(seconds, self._expired, what)  # type: ignore[call-arg]

    def _disarm(self) -> None:
        deadline, self._deadline = self._deadline, None
        if deadline is not None and deadline.active():
            deadline.cancel()

    def _expired(self, what: str) -> None:
        self._deadline = None
        peer = self.transport.getPeer() if self.transport is not None else None
        log.info("Dropping a connection from {peer}: it did not send {what} in time", peer=getattr(peer, "host", peer),
                 what=what)
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]  # TCP and TLS transports have it

    def connectionLost(self, reason: Any = None) -> None:
        self._disarm()
        super().connectionLost(reason)

    # -- admission ----------------------------------------------------------------------------

    def allHeadersReceived(self) -> None:
        request = self.requests[-1]
        self._content_complete = False
        site = getattr(self, "site", None)
        admission = getattr(site.resource, "admission", None) if site is not None else None
        verdict: Any = None
        if admission is not None:
            _early(request, self._command, self._path, self._version)
            try:
                verdict = admission(request, self.length)
            except HTTPError as exc:
                verdict = exc
        if isinstance(verdict, defer.Deferred):
            verdict = _settled(verdict)
        if isinstance(verdict, Failure):
            verdict = _error(verdict)
        if isinstance(verdict, HTTPError):
            self._refuse(verdict)
            return
        if self.length != 0:
            self._arm(self.limits.body_timeout, "its request body")
        else:
            self._disarm()
        super().allHeadersReceived()
        if isinstance(verdict, defer.Deferred):
            # Nothing more is read until the site decides (a throttled authentication may take a while).
            self._deciding = True
            self._networkProducer.pauseProducing()
            verdict.addCallbacks(self._admitted, self._not_admitted)

    def _admitted(self, result: Any) -> None:
        if isinstance(result, HTTPError):
            self._not_admitted(result)
            return
        self._deciding = False
        if self._refused or self.transport is None:
            return
        self._networkProducer.resumeProducing()
        if self._content_complete:
            self._content_complete = False
            super().allContentReceived()

    def _not_admitted(self, failure: Any) -> None:
        self._deciding = False
        error = failure if isinstance(failure, HTTPError) else _error(failure)
        if self.transport is not None:
            self._networkProducer.resumeProducing()  # to read and drop the rest while the refusal lingers
        self._refuse(error)

    def allContentReceived(self) -> None:
        if self._refused:
            return
        self._disarm()
        if self._deciding:
            self._content_complete = True  # processed once admitted
            return
        super().allContentReceived()

    def rawDataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        super().rawDataReceived(data)

    def refuse_body(self, error: HTTPError) -> None:
        """The body outgrew its endpoint's limit while it arrived (see :class:`~mesostw.wire.listen.LeanRequest`)."""
        self._refuse(error)

    def _refuse(self, error: HTTPError) -> None:
        """Answer ``error`` now, read and drop whatever else comes for a moment, then cut the connection."""
        if self._refused or self.transport is None:
            return
        self._refused = True
        self._disarm()
        body = json_bytes({"message": error.message})
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), "Connection": "close",
                   **error.headers}
        phrase = http.RESPONSES.get(error.code, b"Error").decode("latin-1")
        head = f"HTTP/1.1 {error.code} {phrase}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.transport.write(head.encode("latin-1") + b"\r\n" + body)
        half_close = getattr(self.transport, "loseWriteConnection", None)
        if half_close is not None:
            half_close()
            self._deadline = self.callLater(  # type: ignore[call-arg]
                REFUSAL_LINGER, self._expired, "the rest of a refused request")
        else:
            self.transport.loseConnection()


def _settled(d: defer.Deferred) -> Any:
    """What ``d`` fired with if it has (a Failure included, consumed), else a Deferred of it."""
    box: list[Any] = []
    out: defer.Deferred = defer.Deferred()
    synchronous = True

    def settle(result: Any) -> None:
        if synchronous:
            box.append(result)
        else:
            out.callback(result)  # a Failure takes the errback path

    d.addBoth(settle)
    synchronous = False
    return box[0] if box else out


def _error(failure: Failure) -> HTTPError:
    if failure.check(HTTPError):
        error: HTTPError = failure.value
        return error
    log.failure("Admission of a request failed", failure)
    return HTTPError(500, "Internal error")


def _early(request: Any, command: bytes, path: bytes, version: bytes) -> None:
    """Give a request whose body is not read yet what ``requestReceived`` would: method, URI, path."""
    request.method = command
    request.uri = path
    request.path = path.split(b"?", 1)[0]
    request.clientproto = version


class ConnectionLimits(policies.WrappingFactory):
    """At most ``max_per_peer`` connections from one address and ``max_total`` in all (see the module)."""

    noisy = False

    def __init__(self, wrapped: Any, max_per_peer: int, max_total: int):
        super().__init__(wrapped)
        self.max_per_peer = max_per_peer
        self.max_total = max_total
        self.per_peer: Counter[str] = Counter()
        self.total = 0
        self.refused = 0

    def admits(self, addr: Any) -> str | None:
        """The peer's address if one more connection from it is within the limits (not counted yet), else
        None (the refusal counted and logged)."""
        peer = addr.host if hasattr(addr, "host") else str(addr)  # not str() of every address: a failover's
        # thousand agents connect at once
        if self.total >= self.max_total or (self.max_per_peer and self.per_peer[peer] >= self.max_per_peer):
            self.refused += 1
            if self.refused in (1, 10, 100) or self.refused % 1000 == 0:
                log.warn("Refused {n} connections so far (now from {peer}: {mine} open of {cap} per peer, "
                         "{total} of {max_total} in all)", n=self.refused, peer=peer, mine=self.per_peer[peer],
                         cap=self.max_per_peer, total=self.total, max_total=self.max_total)
            return None
        return peer

    def opened(self, peer: str) -> None:
        self.per_peer[peer] += 1
        self.total += 1

    def closed(self, peer: str) -> None:
        self.total -= 1
        self.per_peer[peer] -= 1
        if self.per_peer[peer] <= 0:
            del self.per_peer[peer]

    def buildProtocol(self, addr: Any) -> Any:
        peer = self.admits(addr)
        if peer is None:
            return None
        protocol = super().buildProtocol(addr)
        if protocol is not None:
            self.opened(peer)
            protocol._limited_peer = peer  # type: ignore[attr-defined]
        return protocol

    def registerProtocol(self, p: Any) -> None:
        """Open connections are counted, not kept (a master has ten thousand)."""

    def unregisterProtocol(self, p: Any) -> None:
        peer = getattr(p, "_limited_peer", None)
        if peer is not None:
            self.closed(peer)

    def listen(self, reactor: Any, port: int, backlog: int, interface: str) -> Any:
        """Listen on TCP ``interface:port`` with these limits; returns the listening port.

        On a real reactor's port the connections are counted by their transports (:class:`CountedServer`)
        and the wrapped factory's protocols are connected to them directly; elsewhere (test reactors) each
        connection's protocol is wrapped to count it."""
        if not isinstance(reactor, PosixReactorBase):
            return reactor.listenTCP(port, self, backlog=backlog, interface=interface)
        listening = tcp.Port(port, _Admitting(self), backlog, interface, reactor)
        listening.transport = type("CountedServer", (CountedServer,), {"limits": self})  # type: ignore[assignment]
        listening.startListening()
        return listening


class _Admitting(protocol.Factory):
    """A listening port's factory under :class:`ConnectionLimits` whose transports count themselves out."""

    noisy = False

    def __init__(self, limits: ConnectionLimits):
        self.limits = limits

    def doStart(self) -> None:
        self.limits.doStart()

    def doStop(self) -> None:
        self.limits.doStop()

    def logPrefix(self) -> str:
        return self.limits.logPrefix()

    def buildProtocol(self, addr: Any) -> Any:
        peer = self.limits.admits(addr)
        if peer is None:
            return None
        protocol = self.limits.wrappedFactory.buildProtocol(addr)
        if protocol is not None:
            self.limits.opened(peer)  # the transport made next counts it out (CountedServer)
        return protocol


def _made_when_asked(make: Any) -> property:
    """An attribute ``make`` makes from the instance when read; what Twisted sets or deletes there is ignored."""
    return property(make, lambda self, value: None, lambda self: None)


class CountedServer(tcp.Server):
    """A TCP connection accepted under :class:`ConnectionLimits` (``limits``, set on a subclass per port), which
    it leaves when it closes. It makes its log prefix, its ``repr`` and its ``fileno`` when asked rather than
    keeping them (a master holds ten thousand connections); the log prefix names the protocol the connection
    has now (the one a port switch chose, once it stepped out)."""

    limits: ConnectionLimits

    def connectionLost(self, reason: Any) -> None:
        if not hasattr(self, "socket"):  # called twice: as tcp.Connection, nothing more to do
            return
        try:
            super().connectionLost(reason)
        finally:
            self.limits.closed(str(self.hostname))

    def _log_string(self) -> str:
        protocol = getattr(self, "protocol", None)
        prefix = self._getLogPrefix(protocol) if protocol is not None else "-"
        return f"{prefix},{self.sessionno},{self.hostname}"

    def _repr_string(self) -> str:
        protocol = getattr(self, "protocol", None)
        return f"<{type(protocol).__name__} #{self.sessionno} on {self.server._realPortNumber}>"

    def _socket_fileno(self) -> Any:
        socket = getattr(self, "socket", None)  # not self.__dict__, which would make the instance a dict
        return socket.fileno if socket is not None else _no_descriptor

    logstr = _made_when_asked(_log_string)
    repstr = _made_when_asked(_repr_string)
    fileno = _made_when_asked(_socket_fileno)


def _no_descriptor() -> int:
    return -1
