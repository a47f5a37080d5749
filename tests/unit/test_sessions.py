"""Scheduler sessions over the master endpoint, and executor sessions over the agent.

One SchedulerSession serves PB, HTTP and the in-process driver; one ExecutorSession serves PB, HTTP
and the command executor's RecordIO stream. These tests hold the rules every transport shares: the
leading check, the principal the ACLs judge, calls bound to the subscribed framework or executor.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import protocol, task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from mesostw.agent.executor_stream import PREAMBLE, ExecutorStream, ExecutorStreamFactory
from mesostw.http import recordio
from mesostw.interfaces import IFrameworkLink, IMasterEndpoint
from mesostw.model import executor_api as xapi
from mesostw.model import scheduler_api as api
from mesostw.model import task as T
from mesostw.model.info import FrameworkInfo, MasterInfo
from mesostw.model.task import TaskStatus, new_uuid
from mesostw.scheduler.local import LocalSchedulerDriver
from mesostw.scheduler.session import CallRefused, NotLeading, SchedulerSession, SubscriptionRefused
from mesostw.wire.switch import PortSwitchFactory
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task

INFO = FrameworkInfo(user="nobody", name="fw")
ACLS = json.dumps({"permissive": False,
                   "register_frameworks": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}}],
                   "run_tasks": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}],
                   "register_agents": [{"principals": {"type": "ANY"}, "agents": {"type": "ANY"}}]})


@implementer(IMasterEndpoint)
class RecordingEndpoint:
    """An endpoint that takes every subscription and keeps what it was asked."""

    def __init__(self) -> None:
        self.clock = task.Clock()
        self.leading = True
        self.asked: list[tuple[Any, ...]] = []

    def subscribe(self, link: Any, framework_info: FrameworkInfo, principal: str | None = None,
                  force: bool = False) -> str:
        self.asked.append(("subscribe", link, principal))
        return framework_info.id or f"F{len(self.asked)}"

    def call(self, framework_id: str, call: Any) -> None:
        self.asked.append(("call", framework_id, call))

    def disconnected(self, framework_id: str, link: Any) -> None:
        self.asked.append(("disconnected", framework_id, link))


@implementer(IFrameworkLink)
class Link:
    principal = None

    def send(self, event: Any) -> None:
        pass

    def close(self) -> None:
        pass


class SchedulerSessionTests(unittest.TestCase):
    def setUp(self) -> None:
        self.endpoint = RecordingEndpoint()

    def test_providers(self) -> None:
        """The master and the recording endpoint both provide IMasterEndpoint."""
        cluster = Cluster(agents=0)
        self.addCleanup(cluster.stop)
        self.assertTrue(verifyObject(IMasterEndpoint, cluster.master))
        self.assertTrue(verifyObject(IMasterEndpoint, self.endpoint))

    def test_not_leading(self) -> None:
        """Nothing subscribes through a master that does not lead."""
        self.endpoint.leading = False
        with self.assertRaises(NotLeading):
            SchedulerSession(self.endpoint).subscribe(Link(), api.Subscribe(INFO))
        self.assertEqual(self.endpoint.asked, [])

    def test_authentication_required(self) -> None:
        """A session that must authenticate subscribes only once authenticated, with that principal."""
        session = SchedulerSession(self.endpoint, authentication_required=True)
        with self.assertRaises(SubscriptionRefused):
            session.subscribe(Link(), api.Subscribe(INFO))
        session.authenticated("ops")
        link = Link()
        self.assertEqual(session.subscribe(link, api.Subscribe(INFO)), "F1")
        self.assertEqual(self.endpoint.asked, [("subscribe", link, "ops")])

    def test_calls_bound_to_the_subscribed_framework(self) -> None:
        """Calls come before SUBSCRIBE, for another framework, or as SUBSCRIBE: refused; the others pass."""
        session = SchedulerSession(self.endpoint)
        with self.assertRaises(CallRefused):
            session.call("F1", api.Revive())
        session.subscribe(Link(), api.Subscribe(INFO))
        for framework_id, call in (("F9", api.Revive()), ("F1", api.Subscribe(INFO))):
            with self.assertRaises(CallRefused):
                session.call(framework_id, call)
        session.call("F1", api.Revive())
        self.assertEqual(self.endpoint.asked[-1], ("call", "F1", api.Revive()))

    def test_resubscribing_as_another_framework_lets_the_first_go(self) -> None:
        """A connection that subscribes a second framework disconnects the first one."""
        session = SchedulerSession(self.endpoint)
        first, second = Link(), Link()
        session.subscribe(first, api.Subscribe(INFO))
        session.subscribe(second, api.Subscribe(INFO))
        self.assertIn(("disconnected", "F1", first), self.endpoint.asked)
        session.disconnected()
        self.assertEqual(self.endpoint.asked[-1], ("disconnected", "F2", second))


class LocalDriverTests(unittest.TestCase):
    def test_driver_needs_only_an_endpoint(self) -> None:
        """The local driver subscribes, calls and lets go through an IMasterEndpoint, with its host's principal."""
        endpoint = RecordingEndpoint()
        driver = LocalSchedulerDriver(RecordingScheduler(), INFO, endpoint, principal="ops")
        driver.start()
        endpoint.clock.advance(0)
        kind, link, principal = endpoint.asked[0]
        self.assertEqual((kind, principal, link.principal), ("subscribe", "ops", "ops"))
        driver.handle_event(api.subscribed_event("F1", MasterInfo("M", "127.0.0.1", 5050, "localhost")))
        driver.reviveOffers()
        endpoint.clock.advance(0)
        self.assertEqual(endpoint.asked[1], ("call", "F1", api.Revive()))
        driver.stop(failover=True)
        self.assertEqual(endpoint.asked[2], ("disconnected", "F1", link))

    def test_not_leading_master(self) -> None:
        """A master that does not lead refuses an in-process framework too."""
        cluster = Cluster(agents=0)
        self.addCleanup(cluster.stop)
        cluster.master.leading = False
        scheduler, driver = cluster.framework("late")
        self.assertEqual(scheduler.errors, ["this master is not the leader"])
        self.assertEqual(cluster.master.frameworks, {})


class ExecutorStreamTests(unittest.TestCase):
    """The command executor's RecordIO stream, framing an ExecutorSession, against an in-process cluster."""

    def setUp(self) -> None:
        self.cluster = Cluster(agents=1)
        self.addCleanup(self.cluster.stop)
        self.cluster.containerizers[0].subscribe = False
        self.scheduler = RecordingScheduler()
        self.scheduler.pending = [command_task("t1", "sleep 100")]
        self.cluster.framework("stream", scheduler=self.scheduler)
        self.framework_id = self.scheduler.framework_id
        self.stream = ExecutorStream(self.cluster.agents[0])
        self.transport = StringTransport()
        self.stream.makeConnection(self.transport)

    def send(self, call: dict[str, Any]) -> None:
        self.stream.dataReceived(recordio.encode_json(call))
        self.cluster.settle()

    def events(self) -> list[str]:
        return [json.loads(record)["type"] for record in recordio.Decoder().feed(self.transport.value())]

    def subscribe(self, token: str | None = None) -> None:
        """SUBSCRIBE as executor t1, with its secret unless told another ``token``."""
        agent = self.cluster.agents[0]
        executor = agent.frameworks[self.framework_id].executors["t1"]
        secret = agent.executor_secrets.secret(self.framework_id, "t1", executor.container_id)
        self.send({**xapi.subscribe_call(self.framework_id, "t1", [], []), "token": token or secret})

    def update(self, task_id: str, executor_id: str = "t1") -> None:
        status = TaskStatus(task_id, T.RUNNING, source=T.SOURCE_EXECUTOR, uuid=new_uuid(), timestamp=1.0)
        self.send(xapi.update_call(self.framework_id, executor_id, status))

    def test_subscribe_then_updates(self) -> None:
        """SUBSCRIBE binds the stream and launches the task; its UPDATE reaches the scheduler."""
        self.subscribe()
        self.assertEqual(self.events(), ["SUBSCRIBED", "LAUNCH"])
        self.update("t1")
        self.assertEqual(self.scheduler.states("t1"), [T.RUNNING])
        self.assertEqual(self.events()[-1], "ACKNOWLEDGED")

    def test_subscribe_needs_the_executor_secret(self) -> None:
        """A SUBSCRIBE without the executor's secret, or with a wrong one, is answered ERROR and closed;
        the executor stays unsubscribed and its task queued."""
        for call in (xapi.subscribe_call(self.framework_id, "t1", [], []),
                     {**xapi.subscribe_call(self.framework_id, "t1", [], []), "token": "wrong"}):
            self.setUp()
            self.send(call)
            self.assertEqual(self.events(), ["ERROR"])
            self.assertTrue(self.transport.disconnecting)
            executor = self.cluster.agents[0].frameworks[self.framework_id].executors["t1"]
            self.assertIsNone(executor.link)
            self.assertEqual(list(executor.queued), ["t1"])

    def test_first_call_must_subscribe(self) -> None:
        """An UPDATE before SUBSCRIBE closes the stream with an ERROR."""
        self.update("t1")
        self.assertEqual(self.events(), ["ERROR"])
        self.assertTrue(self.transport.disconnecting)

    def test_unknown_task_is_dropped(self) -> None:
        """An UPDATE for a task the executor does not run is dropped; the stream stays open."""
        self.subscribe()
        self.update("nope")
        self.assertFalse(self.transport.disconnecting)
        self.update("t1")
        self.assertEqual(self.scheduler.states("t1"), [T.RUNNING])

    def test_calls_for_another_executor_close_the_stream(self) -> None:
        """A bound stream refuses calls naming another executor and closes."""
        self.subscribe()
        self.update("t1", executor_id="other")
        self.assertEqual(self.events()[-1], "ERROR")
        self.assertTrue(self.transport.disconnecting)

    def test_subscribing_meets_the_ports_setup_deadline(self) -> None:
        """Behind the port switch, a stream that subscribed with its secret outlives the port's deadline to
        subscribe; one that sent the preamble and then nothing, or subscribed with a wrong secret, does not."""
        def connect(*calls: dict[str, Any]) -> StringTransport:
            port = PortSwitchFactory(protocol.Factory.forProtocol(protocol.Protocol),
                                     protocol.Factory.forProtocol(protocol.Protocol),
                                     {PREAMBLE: ExecutorStreamFactory(self.cluster.agents[0])}, setup_timeout=5)
            switch = port.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
            switch.callLater = self.cluster.clock.callLater
            transport = StringTransport()
            switch.makeConnection(transport)
            switch.dataReceived(PREAMBLE + b"".join(recordio.encode_json(call) for call in calls))
            self.cluster.settle()
            return transport

        agent = self.cluster.agents[0]
        executor = agent.frameworks[self.framework_id].executors["t1"]
        subscribe = xapi.subscribe_call(self.framework_id, "t1", [], [])
        silent = connect()
        wrong = connect({**subscribe, "token": "wrong"})
        subscribed = connect({**subscribe, "token": agent.executor_secrets.secret(self.framework_id, "t1",
                                                                                  executor.container_id)})
        self.cluster.advance(4)
        self.assertFalse(silent.disconnecting)
        self.assertTrue(wrong.disconnecting)
        self.cluster.advance(2)
        self.assertTrue(silent.disconnecting)
        self.cluster.advance(60)
        self.assertFalse(subscribed.disconnecting)
        self.assertIsNotNone(executor.link)
