"""TCP in memory between the hosts of a test, on one clock: real protocols and endpoints, no sockets.

Each :class:`Host` is the reactor of one process at one IP address: what that process's code is
given as ``reactor`` and calls ``listenTCP``, ``connectTCP`` and ``callLater`` on (it is an
``IReactorTCP`` and an ``IReactorTime``, so ``TCP4ClientEndpoint``, ``TimerService`` and
``Listener`` work on it unchanged). Time is the test's :class:`task.Clock`, shared by every host.

A ``connectTCP`` is answered on the next :meth:`Network.step`: connected to whatever listens at that
address (protocols joined by :mod:`twisted.test.iosim` transports carrying the real addresses), or
refused when nothing listens there. Each step then moves what every end wrote one hop, as TCP would:
in order, with the end of a connection (a FIN) after the last bytes; an end that closes its connection
learns at once that it is gone and reads nothing more, its peer when the FIN arrives. A test (or a
cluster's ``settle``) steps until nothing moves and nothing is due.

Two hosts may be partitioned (:meth:`Network.partition`), until :meth:`Network.heal`: either loudly,
as when a peer's host answers with resets (their connections are reset, and new ones refused at
once), or silently, as a cable pulled (``drop=True``: bytes wait in flight and arrive once healed,
and new connections time out unless healed first).
"""

from __future__ import annotations

import itertools
from typing import Any

from twisted.internet import defer, error, task
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IConnector, IListeningPort, IReactorTCP, IReactorTime
from twisted.protocols import policies
from twisted.python.failure import Failure
from twisted.test import iosim
from zope.interface import implementer


@implementer(IListeningPort)
class Port:
    """A listening port on a :class:`Host`."""

    def __init__(self, network: Network, address: IPv4Address, factory: Any):
        self.network, self.address, self.factory = network, address, factory

    def startListening(self) -> None:
        key = (self.address.host, self.address.port)
        if key in self.network.listening:
            raise error.CannotListenError(self.address.host, self.address.port, OSError("address in use"))
        self.network.listening[key] = self
        self.factory.doStart()

    def stopListening(self) -> defer.Deferred:
        if self.network.listening.get((self.address.host, self.address.port)) is self:
            del self.network.listening[(self.address.host, self.address.port)]
            self.factory.doStop()
        return defer.succeed(None)

    def getHost(self) -> IPv4Address:
        return self.address


@implementer(IConnector)
class Dial:
    """One ``connectTCP``: waiting for the network, then the client side of one :class:`Connection`."""

    def __init__(self, network: Network, source: IPv4Address, destination: IPv4Address, factory: Any,
                 timeout: float = 30):
        self.network, self.source, self.destination, self.factory = network, source, destination, factory
        self.timeout = timeout
        self.connection: Connection | None = None
        self.state = "disconnected"

    def connect(self) -> None:
        self.state = "connecting"
        self.factory.doStart()
        self.factory.startedConnecting(self)
        self.network.dialling.append(self)

    def stopConnecting(self) -> None:
        if self.state == "connecting":
            if self in self.network.dialling:
                self.network.dialling.remove(self)
            timer = self.network.stalled.pop(self, None)
            if timer is not None:
                timer.cancel()
            self.failed(error.UserError())

    def disconnect(self) -> None:
        if self.state == "connecting":
            self.stopConnecting()
        elif self.connection is not None:
            self.connection.client_end.loseConnection()

    def getDestination(self) -> IPv4Address:
        return self.destination

    def failed(self, reason: Exception) -> None:
        self.state = "disconnected"
        self.factory.clientConnectionFailed(self, Failure(reason))
        self.factory.doStop()

    def lost(self, reason: Failure) -> None:
        self.state = "disconnected"
        self.factory.clientConnectionLost(self, reason)
        self.factory.doStop()


class Transport(iosim.FakeTransport):
    """One end of a :class:`Connection` (iosim's transport): once closed (``disconnecting``) it takes no
    more writes, as iosim's, and reads nothing more, as a TCP transport told to lose its connection."""

    def bufferReceived(self, buf: bytes) -> None:
        if not self.disconnecting:
            super().bufferReceived(buf)


#: What follows an end's last bytes once it closed.
FIN = object()


class Connection:
    """An open connection: the dialling end and the listening end, and what each sent that has not arrived."""

    def __init__(self, dial: Dial, client: Any, server: Any):
        self.dial = dial
        self.client_end = Transport(client, False, dial.source, dial.destination)
        self.server_end = Transport(server, True, dial.destination, dial.source)
        self.ends = (self.client_end, self.server_end)
        #: for each end, what it sent that the other has not received yet: bytes, then perhaps FIN
        self.in_flight: tuple[list[Any], list[Any]] = ([], [])
        server.makeConnection(self.server_end)
        client.makeConnection(self.client_end)

    def between(self, a: str, b: str) -> bool:
        return {self.dial.source.host, self.dial.destination.host} == {a, b}

    def step(self, deliver: bool) -> bool:
        """Put what each end wrote in flight (and the FIN of an end that closed, which learns at once that
        its connection is gone); then, if ``deliver``, hand what is in flight to the other end."""
        moved = False
        for end, sent in zip(self.ends, self.in_flight, strict=True):
            data = end.getOutBuffer()
            if data:
                sent.append(data)
                moved = True
            if end.disconnecting and not end.disconnected:
                end.disconnected = True
                sent.append(FIN)
                end.reportDisconnect()
                moved = True
        if deliver:
            for sent, peer in zip(self.in_flight, reversed(self.ends), strict=True):
                for item in sent:
                    if item is FIN:
                        peer.disconnecting = True  # it learns on its next step
                    else:
                        peer.bufferReceived(item)
                moved = moved or bool(sent)
                sent.clear()
        return moved

    def reset(self) -> None:
        """Break the connection as a TCP reset: what is in flight is lost; both ends see it lost on the next step."""
        for end, sent in zip(self.ends, self.in_flight, strict=True):
            end.stream = []
            sent.clear()
            if not end.disconnected:
                end.disconnectReason = error.ConnectionLost("Connection reset by peer")  # type: ignore[assignment]  # iosim declares ConnectionDone
                end.disconnecting = True

    @property
    def closed(self) -> bool:
        return bool(self.client_end.disconnected and self.server_end.disconnected)


@implementer(IReactorTCP, IReactorTime)
class Host:
    """The reactor of one process at ``ip``: TCP through the network, time from its clock."""

    def __init__(self, network: Network, ip: str):
        self.network, self.ip = network, ip

    # -- IReactorTime -----------------------------------------------------------------------------------------------

    def seconds(self) -> float:
        return self.network.clock.seconds()

    def callLater(self, delay: float, callable: Any, *args: Any, **kw: Any) -> Any:
        return self.network.clock.callLater(delay, callable, *args, **kw)

    def getDelayedCalls(self) -> Any:
        return self.network.clock.getDelayedCalls()

    # -- IReactorTCP ------------------------------------------------------------------------------------------------

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Port:
        if interface not in ("", "0.0.0.0", self.ip):
            raise error.CannotListenError(interface, port, OSError(f"{interface} is not an address of {self.ip}"))
        listening = Port(self.network, IPv4Address("TCP", self.ip, port or self.network.ephemeral()), factory)
        listening.startListening()
        return listening

    def connectTCP(self, host: str, port: int, factory: Any, timeout: float = 30,
                   bindAddress: Any = None) -> Dial:
        source = IPv4Address("TCP", self.ip, self.network.ephemeral())
        dial = Dial(self.network, source, IPv4Address("TCP", host, port), factory, timeout)
        dial.connect()
        return dial


class Network:
    """The hosts of one test and the connections between them, on ``clock``."""

    def __init__(self, clock: task.Clock):
        self.clock = clock
        self.listening: dict[tuple[str, int], Port] = {}
        self.dialling: list[Dial] = []
        #: dials into a silent partition, each with the timer that will fail it
        self.stalled: dict[Dial, Any] = {}
        self.connections: list[Connection] = []
        #: pairs of hosts that cannot reach each other -> "refuse" or "drop"
        self.partitions: dict[frozenset[str], str] = {}
        self._ports = itertools.count(40000)

    def ephemeral(self) -> int:
        return next(self._ports)

    def host(self, ip: str) -> Host:
        """The reactor of a process at ``ip``."""
        return Host(self, ip)

    def step(self) -> bool:
        """Answer the connection attempts, then move what is in flight one hop; whether anything happened."""
        moved = False
        while self.dialling:
            self._answer(self.dialling.pop(0))
            moved = True
        for connection in list(self.connections):
            silent = self.partitions.get(frozenset((connection.dial.source.host, connection.dial.destination.host)))
            moved = connection.step(deliver=silent != "drop") or moved
            if connection.client_end.disconnected and connection.dial.state == "connected":
                connection.dial.lost(Failure(connection.client_end.disconnectReason))
            if connection.closed:
                self.connections.remove(connection)
        return moved

    def _answer(self, dial: Dial) -> None:
        source, destination = dial.source.host, dial.destination.host
        partition = self.partitions.get(frozenset((source, destination)))
        if partition == "drop":
            self.stalled[dial] = self.clock.callLater(dial.timeout, self._timed_out, dial)
            return
        port = self.listening.get((destination, dial.destination.port))
        if port is None or partition == "refuse":
            dial.failed(error.ConnectionRefusedError(f"{destination}:{dial.destination.port}"))
            return
        client = dial.factory.buildProtocol(dial.destination)
        server = port.factory.buildProtocol(dial.source)
        if client is None or server is None:
            dial.failed(error.ConnectionRefusedError("the protocol factory refused the connection"))
            return
        for protocol in (client, server):
            if isinstance(protocol, policies.TimeoutMixin):
                # Its documented hook: timeouts otherwise go to the global reactor, not this test's clock.
                protocol.callLater = self.clock.callLater  # type: ignore[method-assign,assignment]
        dial.state = "connected"
        dial.connection = Connection(dial, client, server)
        self.connections.append(dial.connection)

    def _timed_out(self, dial: Dial) -> None:
        del self.stalled[dial]
        dial.failed(error.TCPTimedOutError(f"{dial.destination.host}:{dial.destination.port}"))

    def partition(self, a: str, b: str, drop: bool = False) -> None:
        """Hosts ``a`` and ``b`` can no longer reach each other: loudly (their connections are reset, new ones
        refused) or, with ``drop``, silently (nothing between them arrives; new connections time out)."""
        self.partitions[frozenset((a, b))] = "drop" if drop else "refuse"
        if not drop:
            self.reset(a, b)

    def heal(self, a: str, b: str) -> None:
        """Hosts ``a`` and ``b`` reach each other again: what waited in flight arrives, and so do waiting dials."""
        self.partitions.pop(frozenset((a, b)), None)
        for dial, timer in list(self.stalled.items()):
            if {dial.source.host, dial.destination.host} == {a, b}:
                timer.cancel()
                del self.stalled[dial]
                self.dialling.append(dial)

    def reset(self, a: str, b: str) -> None:
        """Reset every connection between hosts ``a`` and ``b`` (new ones may follow)."""
        for connection in self.connections:
            if connection.between(a, b):
                connection.reset()
