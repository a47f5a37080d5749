"""One port, several protocols: the first bytes of a connection pick which.

HTTP clients speak first; a PB server would normally speak first too (it
offers its dialects), so our PB clients open with :data:`PREAMBLE`, which no
HTTP request can begin with. Other private protocols (the command executor's
event stream) have preambles of their own. Anything else goes to the HTTP site.
"""

from __future__ import annotations

from typing import Any, Mapping

from twisted.internet import interfaces, protocol
from twisted.protocols import policies

from mesostw.wire.preambles import PB as PREAMBLE

#: Connections that say nothing for this long are dropped.
SNIFF_TIMEOUT = 60


class PortSwitch(protocol.Protocol, policies.TimeoutMixin):
    """Buffers the first bytes, then hands the connection to the factory they select."""

    def __init__(self, http: interfaces.IProtocolFactory, preambles: Mapping[bytes, interfaces.IProtocolFactory],
                 timeout: float = SNIFF_TIMEOUT):
        self._http = http
        self._preambles = preambles
        self._timeout = timeout
        self._buffer = b""
        self.inner: interfaces.IProtocol | None = None

    def connectionMade(self) -> None:
        self.setTimeout(self._timeout)

    def dataReceived(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.dataReceived(data)
            return
        self._buffer += data
        waiting = False
        for preamble, factory in self._preambles.items():
            if self._buffer.startswith(preamble):
                self._switch(factory, self._buffer[len(preamble):])
                return
            waiting = waiting or preamble.startswith(self._buffer)
        if not waiting:
            self._switch(self._http, self._buffer)

    def _switch(self, factory: interfaces.IProtocolFactory, rest: bytes) -> None:
        self.setTimeout(None)
        self._buffer = b""
        transport = self.transport
        assert transport is not None
        inner = factory.buildProtocol(transport.getPeer())
        if inner is None:
            transport.loseConnection()
            return
        self.inner = inner
        inner.makeConnection(transport)
        if rest:
            inner.dataReceived(rest)

    def timeoutConnection(self) -> None:
        assert self.transport is not None
        self.transport.abortConnection()  # type: ignore[attr-defined]  # TCP and TLS transports have it

    def connectionLost(self, reason: Any = protocol.connectionDone) -> None:
        self.setTimeout(None)
        if self.inner is not None:
            self.inner.connectionLost(reason)


class PortSwitchFactory(protocol.Factory):
    """Serves an HTTP site, a PB server factory, and any ``others`` (preamble -> factory) on one port."""

    noisy = False

    def __init__(self, http: interfaces.IProtocolFactory, pb: interfaces.IProtocolFactory,
                 others: Mapping[bytes, interfaces.IProtocolFactory] | None = None,
                 sniff_timeout: float = SNIFF_TIMEOUT):
        self.http, self.pb = http, pb
        self.preambles = {PREAMBLE: pb, **(others or {})}
        #: how long a new connection has to send its first bytes (the daemon's --http_header_timeout)
        self.sniff_timeout = sniff_timeout

    def doStart(self) -> None:
        for factory in {id(f): f for f in (self.http, *self.preambles.values())}.values():
            factory.doStart()
        super().doStart()

    def doStop(self) -> None:
        for factory in {id(f): f for f in (self.http, *self.preambles.values())}.values():
            factory.doStop()
        super().doStop()

    def buildProtocol(self, addr: Any) -> PortSwitch:
        p = PortSwitch(self.http, self.preambles, self.sniff_timeout)
        p.factory = self
        return p
