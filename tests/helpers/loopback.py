"""Perspective Broker over an in-memory connection, on a test's clock: the real PB adapters without sockets.

:class:`PBLoopback` joins a client broker to a server broker serving ``root`` (any
``pb.IPBRoot`` or ``pb.Root``) with :mod:`twisted.test.iosim`. :meth:`PBLoopback.settle`
moves bytes both ways and turns the clock (which runs the links' per-turn batches) until
nothing is left to do, so a test reads like the direct links' tests: call, settle, look.

For whole processes that connect by themselves (connectors, listeners), see ``network.py``:
an in-memory TCP network whose hosts are reactors, which ``pbcluster.py`` runs a cluster on.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.spread import pb
from twisted.test import iosim

ADDRESS = IPv4Address("TCP", "127.0.0.1", 5050)


class PBLoopback:
    """A client broker connected in memory to a server broker whose root is ``root``."""

    def __init__(self, root: Any, clock: task.Clock):
        self.clock = clock
        self.server_factory = pb.PBServerFactory(root)
        self.client_factory = pb.PBClientFactory()
        self.client, self.server, self.pump = iosim.connectedServerAndClient(
            lambda: self.server_factory.buildProtocol(ADDRESS), lambda: self.client_factory.buildProtocol(ADDRESS),
            clock=clock)

    def settle(self, rounds: int = 100) -> None:
        """Deliver everything in flight: bytes both ways, and whatever is due on the clock now."""
        for _ in range(rounds):
            due = [c for c in self.clock.getDelayedCalls() if c.getTime() <= self.clock.seconds()]
            moved = self.pump.pump()
            if not due and not moved:
                return
            self.clock.advance(0)
        raise AssertionError("the PB loopback did not settle")

    def root(self) -> pb.RemoteReference:
        """The client's reference to the server's root object."""
        results: list[Any] = []
        self.client_factory.getRootObject().addBoth(results.append)
        self.settle()
        [result] = results
        if not isinstance(result, pb.RemoteReference):
            raise AssertionError(f"no root object: {result}")
        return result

    def cut(self) -> None:
        """Break the connection, as a TCP reset would: both brokers see it lost."""
        self.client.transport.loseConnection()
        self.server.transport.loseConnection()
        self.settle()

    @property
    def connected(self) -> bool:
        return not (self.client.disconnected or self.server.disconnected)


class Catcher(pb.Root):
    """A server root that keeps the remote references a client hands it (as a master keeps an agent's)."""

    def __init__(self) -> None:
        self.references: list[pb.RemoteReference] = []

    def remote_take(self, reference: pb.RemoteReference) -> None:
        self.references.append(reference)


def server_reference(loopback: PBLoopback, catcher: Catcher, local: pb.Referenceable) -> pb.RemoteReference:
    """Pass ``local`` (on the client side) to the server; return the server's remote reference to it."""
    loopback.root().callRemote("take", local)
    loopback.settle()
    return catcher.references[-1]
