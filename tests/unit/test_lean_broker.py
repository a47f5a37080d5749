"""The master's PB brokers share Banana's outgoing symbols (:class:`mesostw.wire.pb.LeanBroker`)."""

from __future__ import annotations

from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.spread import pb
from twisted.test import iosim
from twisted.trial import unittest

from mesostw.wire import pb as wirepb


class Echo(pb.Root):
    def remote_echo(self, value: object) -> object:
        return value


class LeanBrokerTests(unittest.TestCase):
    def test_shares_the_vocabulary(self) -> None:
        """Each broker the server factory makes reads the one class-level table instead of a copy of it."""
        factory = wirepb.ServerFactory(Echo())
        first, second = (factory.buildProtocol(None) for _ in range(2))
        self.assertIs(first.outgoingSymbols, pb.Broker.outgoingVocabulary)
        self.assertIs(second.outgoingSymbols, first.outgoingSymbols)

    def test_calls_still_work(self) -> None:
        """A client calls a lean server with symbols (the pb dialect) and gets its answer; the table is unchanged."""
        before = dict(pb.Broker.outgoingVocabulary)
        client_factory = pb.PBClientFactory()
        server, client, pump = iosim.connectedServerAndClient(
            lambda: wirepb.ServerFactory(Echo()).buildProtocol(None), lambda: client_factory.buildProtocol(None))
        root = client_factory.getRootObject()
        pump.flush()
        answers: list[object] = []
        root.addCallback(lambda ref: ref.callRemote("echo", ["remote", None, {"copy": b"x"}]))
        root.addCallback(answers.append)
        pump.flush()
        self.assertEqual(answers, [["remote", None, {"copy": b"x"}]])
        self.assertEqual(pb.Broker.outgoingVocabulary, before)


class Counter(pb.Referenceable):
    def __init__(self) -> None:
        self.count = 0

    def remote_add(self) -> int:
        self.count += 1
        return self.count


class Lender(pb.Root):
    """Lends a counter (a reference the broker registers), and calls back a reference the client passes."""

    def __init__(self) -> None:
        self.counter = Counter()

    def remote_lend(self) -> Counter:
        return self.counter

    def remote_call_back(self, ref: pb.RemoteReference) -> object:
        return ref.callRemote("add")


class LazyContainersTests(unittest.TestCase):
    def connect(self) -> tuple[pb.Broker, pb.Broker, object, pb.PBClientFactory]:
        client_factory = pb.PBClientFactory()
        client, server, pump = iosim.connectedServerAndClient(
            lambda: wirepb.ServerFactory(Lender()).buildProtocol(None), lambda: client_factory.buildProtocol(None))
        return client, server, pump, client_factory

    def test_references_both_ways_and_repeated_calls(self) -> None:
        """A lean server answers calls on its root, lends references and calls references it was passed, call
        after call (its tables made and emptied as they go)."""
        _, server, pump, client_factory = self.connect()
        root = client_factory.getRootObject()
        pump.flush()
        answers: list[object] = []
        root.addCallback(lambda ref: ref.callRemote("lend"))
        root.addCallback(lambda counter: counter.callRemote("add").addCallback(answers.append).addCallback(
            lambda _: counter.callRemote("add")))
        root.addCallback(answers.append)
        pump.flush()
        self.assertEqual(answers, [1, 2])
        mine = Counter()
        for _ in range(3):
            d = client_factory.getRootObject().addCallback(lambda ref: ref.callRemote("call_back", mine))
            pump.flush()
            d.addCallback(answers.append)
        self.assertEqual(answers, [1, 2, 1, 2, 3])
        self.assertIsInstance(server, wirepb.LeanBroker)

    def test_calls_in_flight_fail_when_the_connection_goes(self) -> None:
        """A call the server made and that was not answered fails with PBConnectionLost when the connection is
        lost, and the server lets its root object go."""
        client, server, pump, client_factory = self.connect()
        root = client_factory.getRootObject()
        pump.flush()
        references: list[pb.RemoteReference] = []
        root.addCallback(references.append)
        pump.flush()
        pending = server.remoteForName("root").callRemote("nothing")  # the client's root: none, never answered
        server.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(pending, pb.PBConnectionLost)
        self.assertIsNone(getattr(server, "_root", None))
