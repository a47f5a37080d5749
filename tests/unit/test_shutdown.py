"""Daemons stop once and cleanly on SIGINT/SIGTERM, and their factories are quiet."""

from __future__ import annotations

import signal
from typing import Any

from twisted.application import service
from twisted.internet import error
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.spread import pb
from twisted.trial import unittest

from mesostw.shutdown import StopOnSignals, daemon_root
from mesostw.wire.listen import Listener
from mesostw.wire.pb import ClientFactory, remote_error


class FakeSignals:
    """The parts of the ``signal`` module StopOnSignals uses, with handlers kept here."""

    default_int_handler = signal.default_int_handler

    def __init__(self, handlers: dict[int, Any]):
        self.handlers = handlers

    def getsignal(self, signum: int) -> Any:
        return self.handlers.get(signum, signal.SIG_DFL)

    def signal(self, signum: int, handler: Any) -> Any:
        previous, self.handlers[signum] = self.getsignal(signum), handler
        return previous


class Reactor(MemoryReactorClock):
    """Runs callFromThread at once and counts stops; stopping twice raises, as a real reactor's stop does."""

    def __init__(self) -> None:
        super().__init__()
        self.stops = 0

    def callFromThread(self, f: Any, *args: Any, **kwargs: Any) -> None:
        f(*args, **kwargs)

    def stop(self) -> None:
        self.stops += 1
        if self.stops > 1:
            raise error.ReactorNotRunning("Can't stop reactor that isn't running.")


def twisted_handler(signum: int, frame: Any) -> None:
    """Stands for the handler the reactor installs."""


class StopOnSignalsTests(unittest.TestCase):
    def started(self, handlers: dict[int, Any]) -> tuple[StopOnSignals, Reactor, FakeSignals]:
        reactor, signals = Reactor(), FakeSignals(handlers)
        stopper = StopOnSignals(reactor, signals)  # type: ignore[arg-type]
        stopper.startService()
        reactor.run()  # runs the callWhenRunning calls, then stops at once
        reactor.stops = 0
        return stopper, reactor, signals

    def test_takes_over_the_reactors_handlers(self) -> None:
        """Once the reactor runs, SIGINT and SIGTERM go to StopOnSignals instead of the reactor's handlers."""
        stopper, _, signals = self.started({signal.SIGINT: twisted_handler, signal.SIGTERM: twisted_handler})
        self.assertEqual(signals.handlers, {signal.SIGINT: stopper.received, signal.SIGTERM: stopper.received})

    def test_ignored_sigint_stays_ignored(self) -> None:
        """A daemon started with SIGINT ignored (a background job) keeps ignoring it; SIGTERM still stops it."""
        stopper, _, signals = self.started({signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: twisted_handler})
        self.assertEqual(signals.handlers, {signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: stopper.received})

    def test_first_signal_stops_once(self) -> None:
        """The first signal stops the reactor; later ones (Ctrl-C twice, SIGTERM then SIGINT) do not stop it again."""
        stopper, reactor, _ = self.started({signal.SIGINT: twisted_handler, signal.SIGTERM: twisted_handler})
        stopper.received(signal.SIGTERM)
        stopper.received(signal.SIGINT)
        stopper.received(signal.SIGTERM)
        self.assertEqual(reactor.stops, 1)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_stopping_for_another_reason(self) -> None:
        """A signal while the reactor is already stopping (ReactorNotRunning) is not an error."""
        stopper, reactor, _ = self.started({signal.SIGTERM: twisted_handler})
        reactor.stops = 1
        stopper.received(signal.SIGTERM)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_daemon_root(self) -> None:
        """daemon_root() puts the given services and a StopOnSignals under one root."""
        first, second = service.Service(), service.Service()
        root = daemon_root(first, second, reactor=Reactor())
        children = list(root)
        self.assertEqual(children[:2], [first, second])
        self.assertIsInstance(children[2], StopOnSignals)


class QuietTests(unittest.TestCase):
    def test_factories_are_not_noisy(self) -> None:
        """The listening port's factories and the PB client factory do not log starting and stopping."""
        from twisted.internet import protocol

        other = protocol.Factory()
        listener = Listener(MemoryReactorClock(), "127.0.0.1", 0, service_root(), pb.Root(), {b"X": other})
        self.assertEqual([f.noisy for f in (listener.site, listener.pb_factory, listener.switch, other)],
                         [False] * 4)
        self.assertFalse(ClientFactory().noisy)

    def test_lost_connection_reads_as_a_message(self) -> None:
        """A PB call cut by a closed connection is reported as a message, not as a Failure's repr."""
        from twisted.internet.error import ConnectionDone

        failure = Failure(pb.PBConnectionLost(Failure(ConnectionDone())))
        self.assertEqual(remote_error(failure), "connection lost: Connection was closed cleanly.")


def service_root() -> Any:
    from twisted.web import resource

    return resource.Resource()
