"""The master's PB brokers share Banana's outgoing symbols (:class:`mesostw.wire.pb.LeanBroker`)."""

from __future__ import annotations

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
