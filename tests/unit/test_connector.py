"""The connector's retry policy: a peer that is down is retried briskly, a peer that refuses is backed off.

Driven on a MemoryReactorClock: every connection attempt is a ``connectTCP`` the test answers by
failing it, or by completing it with a broker that the connector's ``on_connected`` then refuses.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import defer
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from mesostw.wire.connector import Connector
from tests.helpers.clocktest import ClockTestCase


class ConnectorBackoffTests(ClockTestCase):
    def setUp(self) -> None:
        self.reactor = self.useClock(MemoryReactorClock())
        # The largest delay the randomized backoff may pick, so that every bound is checked exactly.
        self.patch(random, "uniform", lambda low, high: high)
        self.lost: list[None] = []
        self.connector = Connector(self.reactor, lambda: ("127.0.0.1", 5050), self.refuse,
                                   lambda: self.lost.append(None), backoff=1.0, max_backoff=60.0)
        self.connector.startService()
        self.addCleanup(self.connector.stopService)

    def refuse(self, root: Any) -> defer.Deferred:
        return defer.fail(RuntimeError("not leading yet"))

    def attempts(self) -> int:
        return len(self.reactor.tcpClients)

    def fail_attempt(self) -> None:
        """The last connection attempt finds nobody listening."""
        _, _, factory, _, _ = self.reactor.tcpClients[-1]
        connector = self.reactor.connectors[-1]
        factory.clientConnectionFailed(connector, Failure(ConnectionRefusedError()))

    def next_retry(self) -> float:
        [call] = [c for c in self.reactor.getDelayedCalls() if c.active()]
        return call.getTime() - self.reactor.seconds()

    def test_a_peer_that_is_down_is_retried_within_the_initial_backoff(self) -> None:
        """However long nothing listens at the address, the next attempt is at most ``backoff`` away,
        so an agent finds a restarted master within a second rather than after a doubled minute."""
        for _ in range(12):
            self.fail_attempt()
            self.assertLessEqual(self.next_retry(), 1.0)
            self.reactor.advance(self.next_retry())
        self.assertEqual(self.attempts(), 13)

    def test_refusals_back_off_and_a_new_leader_resets(self) -> None:
        """A peer that answers but refuses is retried after a doubling backoff (1, 2, 4 ... 60 s);
        a new leader named by the detector is tried at once, and its refusals start again from 1 s."""
        delays = []
        for _ in range(8):
            connection = self.complete_and_refuse()
            connection.connectionLost(Failure(ConnectionRefusedError("closed")))
            delays.append(self.next_retry())
            self.reactor.advance(self.next_retry())
        self.assertEqual(delays, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0])
        self.fail_attempt()
        self.connector.follow(_Leader("127.0.0.2", 5050))
        self.assertEqual(self.attempts(), 10)  # at once, without waiting for the pending retry
        connection = self.complete_and_refuse()
        connection.connectionLost(Failure(ConnectionRefusedError("closed")))
        self.assertEqual(self.next_retry(), 1.0)
        self.reactor.advance(self.next_retry())

    def complete_and_refuse(self) -> Any:
        """Let the last attempt connect: the PB client asks for the root object at once, and the
        connector's ``on_connected`` refuses it. Returns the connection's protocol."""
        _, _, factory, _, _ = self.reactor.tcpClients[-1]
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(StringTransport())
        return protocol


class _Leader:
    def __init__(self, ip: str, port: int):
        self.ip, self.port = ip, port


class ConnectorBindTests(ClockTestCase):
    def test_connections_leave_from_the_bound_address(self) -> None:
        """With ``bind``, every attempt leaves from that local address; without, from the system's choice."""
        reactor = self.useClock(MemoryReactorClock())
        bound = Connector(reactor, lambda: ("127.0.0.1", 5050), lambda root: None, lambda: None, bind="127.1.0.7")
        free = Connector(reactor, lambda: ("127.0.0.1", 5050), lambda root: None, lambda: None)
        for connector in (bound, free):
            connector.startService()
            self.addCleanup(connector.stopService)
        [(_, _, _, _, bound_address), (_, _, _, _, free_address)] = reactor.tcpClients
        self.assertEqual((bound_address, free_address), (("127.1.0.7", 0), None))


class ListenBacklogTests(ClockTestCase):
    def test_the_port_queues_a_failover_worth_of_connections(self) -> None:
        """The daemons' port is opened with a deep accept queue (not Twisted's 50), so that the agents of a
        failover that all connect at once are not left waiting for TCP to resend their SYNs."""
        from twisted.spread import pb

        from mesostw.http.router import Router
        from mesostw.wire.listen import LISTEN_BACKLOG, Listener

        reactor = self.useClock(MemoryReactorClock())
        listener = Listener(reactor, "127.0.0.1", 0, Router(), pb.Root())
        listener.startService()
        self.addCleanup(listener.stopService)
        [(_, _, backlog, interface)] = reactor.tcpServers
        self.assertEqual((backlog, interface), (LISTEN_BACKLOG, "127.0.0.1"))
        self.assertGreaterEqual(LISTEN_BACKLOG, 1024)
