"""Staying connected: a service that keeps one PB connection to a peer, with backoff."""

from __future__ import annotations

import random
from typing import Any, Callable

from twisted.application import service
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS
from twisted.logger import Logger
from twisted.spread import pb

from mesostw.wire.pb import ClientFactory, remote_error

log = Logger()


class Connector(service.Service):
    """Connects to ``address()`` over PB and calls ``on_connected(root)`` (which may return a Deferred).

    When the connection breaks or ``on_connected`` fails (the peer refused),
    it calls ``on_lost()`` and tries again after a randomized backoff that
    starts at ``backoff`` seconds and doubles up to ``max_backoff`` (as
    Mesos's agents and drivers do). While nothing answers at the address at
    all (the peer is down or restarting), attempts repeat every random
    ``[0, backoff]`` seconds without growing, so a peer that comes back is
    reached at once. The backoff starts again from ``backoff`` once a peer
    accepts, and when the detector names a new one (:meth:`follow`).

    With ``tls`` (a callable ``hostname -> client connection creator``, or a
    ``TLSConfig``, whose ``client_options`` is used) every connection is TLS,
    checked against the host name or IP address dialled.
    """

    def __init__(self, reactor: Any, address: Callable[[], defer.Deferred | tuple[str, int] | None],
                 on_connected: Callable[[pb.RemoteReference], Any], on_lost: Callable[[], None],
                 backoff: float = 1.0, max_backoff: float = 60.0, name: str = "connector",
                 connect_timeout: float = 10.0, tls: Any = None, bind: str | None = None):
        self.reactor = reactor
        self.address = address
        self.on_connected = on_connected
        self.on_lost = on_lost
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.connect_timeout = connect_timeout
        self.tls = tls
        #: the local address connections leave from (None: the system's choice)
        self.bind = bind
        self.setName(name)
        self._delay = backoff
        self._retry: Any = None
        self._broker: pb.Broker | None = None
        self._attempt: defer.Deferred | None = None
        self.connected_to: tuple[str, int] | None = None
        self._redirecting = False

    def startService(self) -> None:
        super().startService()
        self._delay = self.backoff
        self.connect()

    def stopService(self) -> defer.Deferred:
        super().stopService()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._attempt is not None:
            self._attempt.cancel()
        broker = self._broker
        self._broker = None
        if broker is not None and broker.transport is not None:
            done: defer.Deferred[None] = defer.Deferred()

            def gone() -> None:
                if not done.called:
                    done.callback(None)

            broker.notifyOnDisconnect(gone)
            broker.transport.loseConnection()
            return done
        return defer.succeed(None)

    def connect(self) -> None:
        self._retry = None
        if not self.running:
            return
        self._attempt = defer.maybeDeferred(self.address)
        self._attempt.addCallback(self._dial)
        self._attempt.addCallbacks(self._up, self._failed)

    def _dial(self, address: tuple[str, int] | None) -> defer.Deferred:
        if address is None:
            raise ConnectionError("no master is known yet")
        host, port = address
        factory = ClientFactory()
        endpoint: Any = TCP4ClientEndpoint(self.reactor, host, port, timeout=self.connect_timeout,
                                           bindAddress=(self.bind, 0) if self.bind else None)
        if self.tls is not None:
            creator = getattr(self.tls, "client_options", self.tls)
            endpoint = wrapClientTLS(creator(host), endpoint)
        d = endpoint.connect(factory)
        d.addCallback(lambda broker: self._got_broker(broker, factory, address))
        return d

    def _got_broker(self, broker: pb.Broker, factory: ClientFactory, address: tuple[str, int]) -> defer.Deferred:
        self._broker = broker
        self.connected_to = address
        broker.notifyOnDisconnect(lambda: self._disconnected(broker))
        return factory.getRootObject()

    def _up(self, root: pb.RemoteReference) -> defer.Deferred:
        self._attempt = None
        broker = self._broker
        d = defer.maybeDeferred(self.on_connected, root)

        def ok(result: Any) -> Any:
            self._delay = self.backoff
            return result

        def refused(failure: Any) -> None:
            if self.running:  # stopping closes the connection under calls in flight: nothing to report
                log.warn("{name}: {reason}; retrying", name=self.name, reason=remote_error(failure))
            if broker is not None and broker.transport is not None:
                broker.transport.loseConnection()

        d.addCallbacks(ok, refused)
        return d

    def _failed(self, failure: Any) -> None:
        self._attempt = None
        if failure.check(defer.CancelledError):
            return
        log.info("{name}: cannot connect ({reason})", name=self.name, reason=failure.getErrorMessage())
        self._broker = None
        self._schedule(unreachable=True)

    def _disconnected(self, broker: pb.Broker) -> None:
        if broker is not self._broker:
            return
        self._broker = None
        self.connected_to = None
        self.on_lost()
        self._schedule(immediately=self._redirecting)
        self._redirecting = False

    def _schedule(self, immediately: bool = False, unreachable: bool = False) -> None:
        if not self.running or self._retry is not None:
            return
        if immediately:
            delay = 0.0
        elif unreachable:
            # Nobody listens there: trying again costs the peer nothing, and waiting longer and
            # longer would only delay finding it once it is back (after a master's restart).
            delay = random.uniform(0, self.backoff)
        else:
            delay = random.uniform(0, self._delay)
            self._delay = min(self._delay * 2, self.max_backoff)
        self._retry = self.reactor.callLater(delay, self.connect)

    def drop(self) -> None:
        """Close the current connection; a new one follows after the backoff."""
        if self._broker is not None and self._broker.transport is not None:
            self._broker.transport.loseConnection()

    def follow(self, leader: Any) -> None:
        """A detector reports a leader (a MasterInfo, or None): go to it unless already there."""
        if leader is not None and (leader.ip, leader.port) != self.connected_to:
            self.redirect()

    def redirect(self) -> None:
        """The peer moved (a new leading master): leave the old one and go to the new one now."""
        self._delay = self.backoff
        if self._broker is not None:
            self._redirecting = True
            self.drop()
            return
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
            self._retry = None
            self.connect()
