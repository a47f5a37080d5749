"""One port, several protocols: the first bytes of a connection pick which.

HTTP clients speak first; a PB server would normally speak first too (it
offers its dialects), so our PB clients open with :data:`PREAMBLE`, which no
HTTP request can begin with. Other private protocols (the command executor's
event stream) have preambles of their own. Anything else goes to the HTTP site.

A connection that said nothing has ``sniff_timeout`` to say something; one that sent a private
protocol's preamble then has ``setup_timeout`` to *bind*: to authenticate, register or subscribe,
which the protocol tells with :func:`bound`. HTTP has deadlines of its own (:mod:`mesostw.wire.guard`);
a private protocol's connection, once bound, is long-lived and may idle (an agent's, an executor's).

Once nothing is left for it to do (at once for HTTP, when bound for a private protocol), the switch
steps out of the connection: the transport delivers to the chosen protocol directly, and no switch
remains per connection (a master holds ten thousand agents' connections).
"""

from __future__ import annotations

from typing import Any, Mapping

from twisted.internet import interfaces, protocol
from twisted.logger import Logger
from twisted.protocols import policies

from mesostw.wire.preambles import PB as PREAMBLE

log = Logger()

#: Connections that say nothing for this long are dropped.
SNIFF_TIMEOUT = 60
#: Connections that sent a private protocol's preamble and have not bound this long after are dropped.
SETUP_TIMEOUT = 60
#: The attribute of a private protocol's instance that lifts its setup deadline (see :func:`bound`).
_LIFT = "_lift_setup_deadline"


def bound(protocol: Any) -> None:
    """``protocol``'s connection proved itself (authenticated, registered or subscribed): lift the deadline
    the port gave it to do so. Harmless for a protocol no :class:`PortSwitch` started."""
    lift = getattr(protocol, _LIFT, None)
    if lift is not None:
        lift()


class PortSwitch(protocol.Protocol, policies.TimeoutMixin):
    """Buffers the first bytes, then hands the connection to the factory they select."""

    def __init__(self, http: interfaces.IProtocolFactory, preambles: Mapping[bytes, interfaces.IProtocolFactory],
                 timeout: float = SNIFF_TIMEOUT, setup_timeout: float = SETUP_TIMEOUT):
        self._http = http
        self._preambles = preambles
        self._timeout = timeout
        self._setup_timeout = setup_timeout
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
                self._switch(factory, self._buffer[len(preamble):], private=True)
                return
            waiting = waiting or preamble.startswith(self._buffer)
        if not waiting:
            self._switch(self._http, self._buffer, private=False)

    def _switch(self, factory: interfaces.IProtocolFactory, rest: bytes, private: bool) -> None:
        # A private protocol must bind in time; HTTP keeps deadlines of its own.
        self.setTimeout(self._setup_timeout if private else None)
        self._buffer = b""
        transport = self.transport
        assert transport is not None
        inner = factory.buildProtocol(transport.getPeer())
        if inner is None:
            transport.loseConnection()
            return
        self.inner = inner
        if private:
            setattr(inner, _LIFT, self._bound)
        inner.makeConnection(transport)
        if rest:
            inner.dataReceived(rest)
        if not private:
            self._step_out()

    def _bound(self) -> None:
        self.setTimeout(None)
        inner = self.inner
        if inner is not None and getattr(inner, _LIFT, None) is not None:
            try:
                delattr(inner, _LIFT)
            except AttributeError:  # a protocol that refuses it keeps it: bound() again does nothing
                pass
        self._step_out()

    def _step_out(self) -> None:
        """Have the transport deliver to the chosen protocol itself (a wrapper's ``wrappedProtocol``, TCP's
        ``protocol``), unless the connection is gone already or the transport is of another kind."""
        transport, inner = self.transport, self.inner
        if transport is None or inner is None or not self.connected:
            return
        for attribute in ("wrappedProtocol", "protocol"):
            if getattr(transport, attribute, None) is self:
                setattr(transport, attribute, inner)
                return

    def timeoutConnection(self) -> None:
        assert self.transport is not None
        peer = self.transport.getPeer()
        log.info("Dropping a connection from {peer}: it did not {what} in time", peer=getattr(peer, "host", peer),
                 what="send its first bytes" if self.inner is None else "authenticate, register or subscribe")
        self.transport.abortConnection()  # type: ignore[attr-defined]  # TCP and TLS transports have it

    def connectionLost(self, reason: Any = protocol.connectionDone) -> None:
        self.setTimeout(None)
        self.connected = False
        if self.inner is not None:
            self.inner.connectionLost(reason)


class PortSwitchFactory(protocol.Factory):
    """Serves an HTTP site, a PB server factory, and any ``others`` (preamble -> factory) on one port."""

    noisy = False

    def __init__(self, http: interfaces.IProtocolFactory, pb: interfaces.IProtocolFactory,
                 others: Mapping[bytes, interfaces.IProtocolFactory] | None = None,
                 sniff_timeout: float = SNIFF_TIMEOUT, setup_timeout: float = SETUP_TIMEOUT,
                 clock: interfaces.IReactorTime | None = None):
        self.http, self.pb = http, pb
        #: what the deadlines are scheduled on (None: the global reactor)
        self.clock = clock
        self.preambles = {PREAMBLE: pb, **(others or {})}
        #: how long a new connection has to send its first bytes (the daemon's --http_header_timeout)
        self.sniff_timeout = sniff_timeout
        #: how long a PB or executor-stream connection has to bind (the daemon's --connection_setup_timeout)
        self.setup_timeout = setup_timeout

    def doStart(self) -> None:
        for factory in {id(f): f for f in (self.http, *self.preambles.values())}.values():
            factory.doStart()
        super().doStart()

    def doStop(self) -> None:
        for factory in {id(f): f for f in (self.http, *self.preambles.values())}.values():
            factory.doStop()
        super().doStop()

    def buildProtocol(self, addr: Any) -> PortSwitch:
        p = PortSwitch(self.http, self.preambles, self.sniff_timeout, self.setup_timeout)
        if self.clock is not None:
            p.callLater = self.clock.callLater  # type: ignore[assignment]
        p.factory = self
        return p
