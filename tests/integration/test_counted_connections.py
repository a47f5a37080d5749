"""Connection limits on a real TCP port (:meth:`mesostw.wire.guard.ConnectionLimits.listen`): the port's
transports count their connections out as they close, with the protocols connected to them directly,
and a port switch that steps out leaves the transport delivering to the protocol it chose."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial import unittest

from mesostw.wire.guard import ConnectionLimits, CountedServer
from mesostw.wire.switch import PREAMBLE, PortSwitchFactory, bound
from tests.helpers.processes import wait_for


class Kept(protocol.Protocol):
    """A server-side protocol that remembers itself, what it received and its loss."""

    def __init__(self, built: list[Kept]) -> None:
        built.append(self)
        self.received = b""
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if b"bind" in self.received:
            bound(self)

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = True


class Client(protocol.Protocol):
    def __init__(self) -> None:
        self.closed = False

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True


class CountedConnectionsTests(unittest.TestCase):
    def listen(self, wrapped: Any, max_per_peer: int = 2) -> ConnectionLimits:
        limits = ConnectionLimits(wrapped, max_per_peer=max_per_peer, max_total=100)
        port = limits.listen(reactor, 0, 50, "127.0.0.1")
        self.port_number = port.getHost().port
        self.addCleanup(port.stopListening)
        return limits

    @defer.inlineCallbacks
    def connect(self) -> Any:
        client = yield TCP4ClientEndpoint(reactor, "127.0.0.1", self.port_number).connect(
            protocol.Factory.forProtocol(Client))
        self.addCleanup(client.transport.abortConnection)
        return client

    @defer.inlineCallbacks
    def test_limits_counted_by_the_transports(self) -> Any:
        """A connection beyond the cap per address is closed at once; the accepted ones have the protocol on
        the TCP transport itself; one that closes is counted out, and its address may connect again."""
        built: list[Kept] = []
        limits = self.listen(protocol.Factory.forProtocol(lambda: Kept(built)))
        first = yield self.connect()
        yield self.connect()
        yield wait_for(lambda: len(built) == 2, 10, what="two connections accepted")
        third = yield self.connect()
        yield wait_for(lambda: third.closed, 10, what="the third connection refused")
        self.assertEqual((limits.total, limits.per_peer["127.0.0.1"], limits.refused), (2, 2, 1))
        transport = built[0].transport
        self.assertIsInstance(transport, CountedServer)
        self.assertIs(transport.protocol, built[0])
        self.assertGreaterEqual(transport.fileno(), 0)
        self.assertIn("Kept", repr(transport))
        first.transport.loseConnection()
        yield wait_for(lambda: limits.total == 1, 10, what="the closed connection counted out")
        self.assertTrue(any(kept.lost for kept in built))
        self.assertEqual([kept.transport.fileno() for kept in built if kept.lost], [-1])
        yield self.connect()
        yield wait_for(lambda: len(built) == 3, 10, what="a new connection from the same address")
        self.assertEqual(limits.total, 2)

    @defer.inlineCallbacks
    def test_the_switch_steps_out(self) -> Any:
        """Behind a port switch, a private protocol's bytes reach it from the transport itself once it binds
        (the transport's log prefix then names it), and its closing is counted out."""
        built: list[Kept] = []
        http = protocol.Factory.forProtocol(lambda: Kept(built))
        private = protocol.Factory.forProtocol(lambda: Kept(built))
        limits = self.listen(PortSwitchFactory(http, private, sniff_timeout=10, setup_timeout=10))
        client = yield self.connect()
        client.transport.write(PREAMBLE + b"hello ")
        yield wait_for(lambda: built and built[0].received == b"hello ", 10, what="the preamble switched")
        (inner,) = built
        self.assertIsNot(inner.transport.protocol, inner)  # not bound: the switch still delivers
        client.transport.write(b"bind")
        self.assertTrue(inner.transport.logPrefix().startswith("PortSwitch,"))
        yield wait_for(lambda: inner.transport.protocol is inner, 10, what="the switch stepped out")
        self.assertTrue(inner.transport.logPrefix().startswith("Kept,"))
        client.transport.write(b" more")
        yield wait_for(lambda: inner.received == b"hello bind more", 10, what="bytes straight to the protocol")
        client.transport.loseConnection()
        yield wait_for(lambda: inner.lost and limits.total == 0, 10, what="the connection counted out")
