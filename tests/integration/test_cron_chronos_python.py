"""The real chronos-python 1.2.1 client against the cron framework's API on a loopback port.

The framework runs on an in-process cluster whose Clock the test advances; the real reactor serves
HTTP and keeps delivering whatever falls due on that Clock. The client is blocking, so it is called
in a thread while the reactor serves.
"""

from __future__ import annotations

import copy
from typing import Any

import chronos
from twisted.internet import defer, reactor, task, threads
from twisted.trial import unittest
from twisted.web import server

from tests.helpers.cron import CronOnACluster, job


class TrackingSite(server.Site):
    """A site that can drop the keep-alive connections its clients leave open."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.channels: set[Any] = set()

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)
        self.channels.add(channel)
        lost = channel.connectionLost

        def connectionLost(reason: Any) -> None:
            self.channels.discard(channel)
            lost(reason)

        channel.connectionLost = connectionLost
        return channel


class Served(unittest.TestCase):
    """The framework on a cluster, its API on a loopback port; ``flags`` are the framework's."""

    flags: dict[str, Any] = {}

    def setUp(self) -> None:
        self.cron = CronOnACluster(self, **self.flags)
        self.site = TrackingSite(self.cron.host.router)
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.pump = task.LoopingCall(self.cron.cluster.settle)
        self.pump.start(0.002)
        self.fields = copy.copy(chronos.ChronosJob.fields)
        self.addCleanup(self.cleanup)
        self.address = f"127.0.0.1:{self.port.getHost().port}"

    @defer.inlineCallbacks
    def cleanup(self) -> Any:
        chronos.ChronosJob.fields[:] = self.fields  # legacy mode appends 'async' to a class-level list
        self.pump.stop()
        for channel in list(self.site.channels):
            inner = getattr(channel, "_channel", channel)  # HTTPFactory wraps its channels
            transport = getattr(inner, "transport", None)
            if transport is not None:
                transport.abortConnection()
        yield self.port.stopListening()
        while self.site.channels:
            yield task.deferLater(reactor, 0.01, lambda: None)

    def call(self, method: Any, *args: Any) -> defer.Deferred:
        return threads.deferToThread(method, *args)


class ChronosPythonTests(Served):
    @defer.inlineCallbacks
    def test_the_v1_client(self) -> Any:
        """add, update, list, search, run, job_stat, graph, stats, metrics, delete_tasks and delete with
        scheduler_api_version='v1', and a refused job surfacing as ChronosAPIError."""
        client = chronos.connect(self.address)
        yield self.call(client.add, job("nightly", schedule="R/2024-05-02T00:00:00Z/P1D", command="true"))
        yield self.call(client.add, job("after", schedule=None, parents=["nightly"], command="true"))
        listed = yield self.call(client.list)
        self.assertEqual(sorted(j["name"] for j in listed), ["after", "nightly"])
        yield self.call(client.update, job("nightly", schedule="R/2024-05-02T00:00:00Z/P1D", command="true",
                                           description="every night"))
        found = yield self.call(client.search, "night")
        self.assertEqual([(j["name"], j["description"]) for j in found], [("nightly", "every night")])
        self.assertEqual((yield self.call(client.search, None, "zzz")), [])
        self.assertIsNone((yield self.call(client.run, "nightly")))
        self.cron.advance(3)
        stat = yield self.call(client.job_stat, "nightly")
        self.assertEqual(stat["histogram"]["count"], 1)
        graph = yield self.call(client.scheduler_graph)
        self.assertEqual(graph.splitlines(), ["node,after,success,idle", "node,nightly,success,idle",
                                              "link,nightly,after"])
        self.assertEqual([r["jobNameLabel"] for r in (yield self.call(client.scheduler_stat_99th))],
                         ["after", "nightly"])
        for stat_call in (client.scheduler_stat_98th, client.scheduler_stat_95th, client.scheduler_stat_75th,
                          client.scheduler_stat_median, client.scheduler_stat_mean):
            self.assertEqual(len((yield self.call(stat_call))), 2)
        metrics = yield self.call(client.metrics)
        self.assertEqual(metrics["gauges"]["chronos.jobs"]["value"], 2)
        self.assertIsNone((yield self.call(client.delete_tasks, "nightly")))
        self.assertIsNone((yield self.call(client.delete, "nightly")))
        remaining = yield self.call(client.list)
        self.assertEqual([(j["name"], j["schedule"]) for j in remaining],
                         [("after", "R/2024-05-02T00:00:00.000Z/P1D")])
        with self.assertRaises(chronos.ChronosAPIError):
            yield self.call(client.add, job("broken", schedule="R/yesterday/P1D", command="true"))

    @defer.inlineCallbacks
    def test_a_dependency_through_the_client(self) -> Any:
        """A dependent job added with the client runs after its parent, run by the client."""
        client = chronos.connect(self.address)
        yield self.call(client.add, job("extract", schedule="R/2024-06-01T00:00:00Z/P1D", command="true"))
        yield self.call(client.add, job("load", schedule=None, parents=["extract"], command="true"))
        yield self.call(client.run, "extract")
        self.cron.advance(3)
        jobs = {j["name"]: j for j in (yield self.call(client.list))}
        self.assertEqual((jobs["extract"]["successCount"], jobs["load"]["successCount"]), (1, 1))
        self.assertNotEqual(jobs["load"]["lastSuccess"], "")

    @defer.inlineCallbacks
    def test_the_legacy_client(self) -> Any:
        """scheduler_api_version=None: /scheduler paths, PUT for updates, 'async' in jobs."""
        client = chronos.connect(self.address, scheduler_api_version=None)
        body = job("old", schedule="R/2024-05-02T00:00:00Z/PT1H", command="true")
        body["async"] = False
        yield self.call(client.add, body)
        body["command"] = "echo old"
        yield self.call(client.update, body)
        [shown] = yield self.call(client.list)
        self.assertEqual((shown["name"], shown["command"], shown["async"]), ("old", "echo old", False))
        yield self.call(client.run, "old")
        yield self.call(client.delete, "old")
        self.assertEqual((yield self.call(client.list)), [])


class ChronosPythonAuthTests(Served):
    flags = {"http_credentials": "ops:secret"}

    @defer.inlineCallbacks
    def test_basic_authentication(self) -> Any:
        """With --http_credentials the client's username and password are needed (it sends them after
        the 401 challenge); without them it fails."""
        client = chronos.connect(self.address, username="ops", password="secret")
        yield self.call(client.add, job("guarded", schedule="R/2024-06-01T00:00:00Z/P1D", command="true"))
        self.assertEqual([j["name"] for j in (yield self.call(client.list))], ["guarded"])
        with self.assertRaises(chronos.ChronosAPIError):  # its 401 ends as "No remaining Chronos servers"
            yield self.call(chronos.connect(self.address).list)
