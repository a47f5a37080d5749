"""The listening port service: HTTP and PB on one address."""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.spread import pb
from twisted.web import http, resource, server

from mesostw.http.router import DEFAULT_MAX_BODY, HTTPError
from mesostw.wire.guard import ConnectionLimits, GuardedChannel, HTTPLimits, raise_file_limit
from mesostw.wire.pb import ServerFactory
from mesostw.wire.switch import PortSwitchFactory

#: How many connections may wait to be accepted (see :meth:`Listener.startService`).
LISTEN_BACKLOG = 4096

class LeanRequest(server.Request):
    """Leaves form bodies to the router (``mesostw.http.router.query``): Twisted's own parsing
    runs the email package's header machinery on every POST, a tenth of an agent's time."""

    _parsePOSTFormSubmission = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Twisted >= 24 copies the site's setting into the instance, hiding the class attribute above
        # (and then answers a malformed multipart body with a bare 400 of its own).
        self._parsePOSTFormSubmission = False

    def handleContentChunk(self, data: bytes) -> None:
        """Buffer a piece of the body, refusing the request (413) as soon as the body outgrows the
        limit its endpoint set when the request was admitted (see :mod:`mesostw.wire.guard`)."""
        self._received = getattr(self, "_received", 0) + len(data)
        limit = getattr(self, "body_limit", DEFAULT_MAX_BODY)
        if self._received > limit:
            refuse = getattr(self.channel, "refuse_body", None)
            if refuse is not None:
                refuse(HTTPError(413, f"Request body is larger than the {limit} bytes this endpoint takes"))
                return
        super().handleContentChunk(data)

    def getHeader(self, key: Any) -> Any:
        """As Twisted's, but a value that is not UTF-8 comes back with replacement characters
        instead of raising UnicodeDecodeError in whichever handler asked for it."""
        if isinstance(key, str):
            value = super().getHeader(key.encode("latin-1"))
            return value.decode("utf-8", "replace") if value is not None else None
        return super().getHeader(key)


class QuietSite(server.Site):
    """A site without the per-request access log: at thousands of requests a second it costs more than it tells.

    Its channels are :class:`~mesostw.wire.guard.GuardedChannel` with ``limits``."""

    requestFactory = LeanRequest
    noisy = False
    #: idle keep-alive connections are closed after this long (Twisted's default is 12 hours)
    timeout = 120

    def __init__(self, resource: Any, limits: HTTPLimits | None = None, **kwargs: Any) -> None:
        super().__init__(resource, **kwargs)
        self.limits = limits or HTTPLimits()
        self.protocol = type("Channel", (GuardedChannel,), {"limits": self.limits})  # type: ignore[method-assign]

    def log(self, request: http.Request) -> None:
        pass


class Listener(service.Service):
    """Listens on ``interface:port`` (0 picks a free port; see :attr:`port` once started).

    ``site`` is the root resource of the web site (a Router, which may mount a ``static.File`` at
    ``""`` for a web UI). Without a PB ``root`` the port serves HTTP only (a framework's API port).
    With ``tls`` (a server contextFactory such as ``TLSConfig.server_context()``, or the
    ``TLSConfig`` itself) the port speaks TLS only, HTTPS and PB alike, as libprocess does.
    """

    name = "listener"  # type: ignore[assignment]  # twisted declares Service.name as None

    def __init__(self, reactor: Any, interface: str, port: int, site: resource.Resource,
                 root: pb.IPBRoot | None = None, others: dict[bytes, Any] | None = None, tls: Any = None,
                 limits: HTTPLimits | None = None):
        self.reactor = reactor
        self.interface = interface
        self.requested_port = port
        self.limits = limits or HTTPLimits()
        self.site = QuietSite(site, self.limits)
        self.site.displayTracebacks = False
        self.pb_factory = ServerFactory(root) if root is not None else None
        #: The protocol switch, or the bare site for a port without PB (a framework's API).
        self.switch: Any = (PortSwitchFactory(self.site, self.pb_factory, others, self.limits.header_timeout,
                                              self.limits.setup_timeout, reactor)
                            if self.pb_factory is not None else None)
        # Factories log "Starting factory"/"Stopping factory" unless told not to; a daemon's log has no use for it.
        for factory in (self.pb_factory, *(others or {}).values()):
            if factory is not None:
                factory.noisy = False
        #: What listens: the switch (or the bare site), with TLS inside TLS (the handshake comes first, then
        #: the switch sniffs the decrypted bytes). A client that does not speak TLS fails the handshake
        #: and is disconnected; the port goes on serving.
        self.factory: Any = self.switch if self.switch is not None else self.site
        if tls is not None:
            context = tls.server_context() if hasattr(tls, "server_context") else tls
            self.factory = TLSMemoryBIOFactory(context, False, self.factory)
            self.factory.noisy = False
        #: the caps on connections, around everything else (a refused connection costs no TLS handshake)
        self.connections: ConnectionLimits | None = None
        self._port: Any = None

    @property
    def port(self) -> int:
        return self._port.getHost().port if self._port is not None else self.requested_port

    def startService(self) -> None:
        if self.connections is None:
            total = self.limits.total(raise_file_limit())
            self.connections = ConnectionLimits(self.factory, self.limits.max_connections_per_peer, total)
        # Listening synchronously here makes a busy port fail the whole start, before anything else runs.
        # A deep accept queue: after a master failover every agent connects to the new leader at once, and
        # with Twisted's default of 50 the connections beyond it wait for TCP to resend their SYNs (1, 2, 4,
        # 8 ... seconds later). The kernel caps it at net.core.somaxconn.
        self._port = self.connections.listen(self.reactor, self.requested_port, LISTEN_BACKLOG, self.interface)
        super().startService()

    def stopService(self) -> defer.Deferred:
        super().stopService()
        port, self._port = self._port, None
        return defer.maybeDeferred(port.stopListening) if port is not None else defer.succeed(None)
