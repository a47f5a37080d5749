"""One port, two protocols: the first bytes of a connection pick HTTP or Perspective Broker.

HTTP clients speak first; a PB server would normally speak first too (it
offers its dialects), so our PB clients open with :data:`PREAMBLE`, which no
HTTP request can begin with. Anything else goes to the HTTP site.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import protocol
from twisted.protocols import policies

#: What our PB clients send before anything else (a non-ASCII first byte, like PNG's magic).
PREAMBLE = b"\x89MESOSTW-PB\r\n"
#: Connections that say nothing for this long are dropped.
SNIFF_TIMEOUT = 60


class PortSwitch(protocol.Protocol, policies.TimeoutMixin):
    """Buffers the first bytes, then hands the connection to the HTTP or the PB factory."""

    def __init__(self, http: protocol.Factory, pb: protocol.Factory):
        self._http, self._pb = http, pb
        self._buffer = b""
        self.inner: protocol.Protocol | None = None

    def connectionMade(self) -> None:
        self.setTimeout(SNIFF_TIMEOUT)

    def dataReceived(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.dataReceived(data)
            return
        self._buffer += data
        if self._buffer.startswith(PREAMBLE):
            self._switch(self._pb, self._buffer[len(PREAMBLE):])
        elif not PREAMBLE.startswith(self._buffer):
            self._switch(self._http, self._buffer)

    def _switch(self, factory: protocol.Factory, rest: bytes) -> None:
        self.setTimeout(None)
        self._buffer = b""
        inner = factory.buildProtocol(self.transport.getPeer())
        if inner is None:
            self.transport.loseConnection()
            return
        self.inner = inner
        inner.makeConnection(self.transport)
        if rest:
            inner.dataReceived(rest)

    def timeoutConnection(self) -> None:
        self.transport.abortConnection()

    def connectionLost(self, reason: Any = protocol.connectionDone) -> None:
        self.setTimeout(None)
        if self.inner is not None:
            self.inner.connectionLost(reason)


class PortSwitchFactory(protocol.Factory):
    """Serves an HTTP site and a PB server factory on the same listening port."""

    def __init__(self, http: protocol.Factory, pb: protocol.Factory):
        self.http, self.pb = http, pb

    def doStart(self) -> None:
        self.http.doStart()
        self.pb.doStart()
        super().doStart()

    def doStop(self) -> None:
        self.http.doStop()
        self.pb.doStop()
        super().doStop()

    def buildProtocol(self, addr: Any) -> PortSwitch:
        p = PortSwitch(self.http, self.pb)
        p.factory = self
        return p
