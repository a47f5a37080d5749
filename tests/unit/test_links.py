"""Links and fakes keep to their interfaces, and every transport of a link behaves the same.

Each behaviour class (Buildbot's ``test/util/protocols.py`` pattern) states what a core may rely
on from a link interface; one subclass per implementation runs it: the direct in-process link,
Perspective Broker over an in-memory connection (``tests/helpers/loopback.py``), and HTTP where
the interface has an HTTP provider. The far end is a recorder standing in for the agent or the
scheduler driver, reached through the production adapters (``AgentRemote``, the driver's PB remote).
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from twisted.internet import defer
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest
from zope.interface.verify import verifyObject

from mesostw.agent.agent import Agent
from mesostw.agent.containerizer import PosixContainerizer
from mesostw.agent.executor_http import HTTPExecutorLink
from mesostw.agent.executor_stream import ExecutorStream
from mesostw.agent.launcher import Launcher
from mesostw.agent.pb import AgentRemote, PBExecutorLink, PBMasterLink
from mesostw.http import recordio
from mesostw.interfaces import IAgentLink, IContainerizer, IExecutorLink, IFrameworkLink, IMasterLink
from mesostw.master.pb import PBAgentLink, PBFrameworkLink
from mesostw.master.scheduler_http import HTTPFrameworkLink
from mesostw.model.info import CommandInfo, ExecutorInfo, FrameworkInfo
from mesostw.model.resources import Resources
from mesostw.model.task import TaskInfo
from mesostw.scheduler.local import LocalFrameworkLink
from mesostw.scheduler.pb import _SchedulerRemote
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import Cluster, DirectAgentLink, DirectMasterLink, FakeContainerizer, FakeExecutor
from tests.helpers.loopback import Catcher, PBLoopback, server_reference

FRAMEWORK = FrameworkInfo(user="nobody", name="fw", id="F1", principal="ops")
TASK = TaskInfo(name="t1", task_id="t1", agent_id="S1", resources=Resources.parse("cpus:1;mem:64"),
                command=CommandInfo("sleep 10"))
OTHER_TASK = TaskInfo(name="t2", task_id="t2", agent_id="S1", resources=Resources.parse("cpus:0.5;mem:32"),
                      command=CommandInfo("true"))
EXECUTOR = ExecutorInfo("E1", framework_id="F1", command=CommandInfo("./executor"),
                        resources=Resources.parse("cpus:0.1;mem:32"))
#: Not UTF-8: opaque data must arrive byte for byte.
DATA = b"\x00\xff\xfebinary"
#: dynamic reservations with principals and labels, a refinement and a persistent volume
CHECKPOINTED = Resources.from_json([
    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.5},
     "reservations": [{"type": "DYNAMIC", "role": "eng", "principal": "ops",
                       "labels": {"labels": [{"key": "team", "value": "web"}, {"key": "flag"}]}}]},
    {"name": "mem", "type": "SCALAR", "scalar": {"value": 64},
     "reservations": [{"type": "STATIC", "role": "eng"}, {"type": "DYNAMIC", "role": "eng/web"}]},
    {"name": "disk", "type": "SCALAR", "scalar": {"value": 32},
     "reservations": [{"type": "DYNAMIC", "role": "eng", "principal": "ops"}],
     "disk": {"persistence": {"id": "vol1", "principal": "ops"}, "volume": {"container_path": "data", "mode": "RW"}}},
])


# -- every provider declares what it implements ------------------------------------------------------------------


class FakeRemote:
    """Enough of a pb.RemoteReference to build a PB link (nothing is sent in these checks)."""

    broker = None

    def callRemote(self, name: str, *args: Any) -> defer.Deferred:
        return defer.Deferred()


class ProvidersTests(ClockTestCase):
    def test_links_and_fakes_provide_their_interfaces(self) -> None:
        """Every link, fake and containerizer passes zope's verifyObject for the interface it declares."""
        clock = self.makeClock()
        cluster = Cluster(agents=1)
        self.useClock(cluster.clock)
        self.addCleanup(cluster.stop)
        agent = cluster.agents[0]
        request = DummyRequest([b""])
        providers = [
            (IAgentLink, DirectAgentLink(agent, clock)),
            (IAgentLink, PBAgentLink(FakeRemote(), clock)),  # type: ignore[arg-type]
            (IMasterLink, DirectMasterLink(cluster.master, agent, clock)),
            (IMasterLink, PBMasterLink(FakeRemote(), agent, clock)),  # type: ignore[arg-type]
            (IFrameworkLink, PBFrameworkLink(FakeRemote(), clock, "ops")),  # type: ignore[arg-type]
            (IFrameworkLink, LocalFrameworkLink(RecordingDriver(), clock)),  # type: ignore[arg-type]
            (IExecutorLink, FakeExecutor(agent, clock, "F1", "E1")),
            (IExecutorLink, PBExecutorLink(FakeRemote(), clock)),  # type: ignore[arg-type]
            (IExecutorLink, HTTPExecutorLink(request)),
            (IExecutorLink, ExecutorStream(agent).link),
            (IContainerizer, FakeContainerizer(clock)),
            (IContainerizer, PosixContainerizer(Launcher(clock))),
        ]
        http_link = HTTPFrameworkLink(DummyRequest([b""]), "stream", clock, 15.0, "ops")
        self.addCleanup(http_link.close)
        providers.append((IFrameworkLink, http_link))
        for interface, provider in providers:
            self.assertTrue(verifyObject(interface, provider), type(provider).__name__)


# -- IAgentLink ------------------------------------------------------------------------------------------------------


class RecordingAgent:
    """The far end of an IAgentLink: an Agent-shaped recorder of what reaches the agent.

    Arguments are kept in JSON form, so a transport's round trip through its wire format compares
    equal to the direct link's objects.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def received(self, name: str) -> list[tuple[Any, ...]]:
        return [args for called, args in self.calls if called == name]

    def runTasks(self, framework_info: FrameworkInfo, tasks: Any, group_executor: ExecutorInfo | None = None) -> None:
        self.calls.append(("runTasks", (framework_info.to_json(), [t.to_json() for t in tasks],
                                        group_executor.to_json() if group_executor is not None else None)))

    def killTask(self, framework_id: str, task_id: str, grace_period: float | None = None) -> None:
        self.calls.append(("killTask", (framework_id, task_id, grace_period)))

    def acknowledge(self, acknowledgements: Any) -> None:
        for acknowledgement in acknowledgements:
            self.calls.append(("acknowledge", tuple(acknowledgement)))

    def shutdownFramework(self, framework_id: str) -> None:
        self.calls.append(("shutdownFramework", (framework_id,)))

    def shutdownExecutor(self, framework_id: str, executor_id: str) -> None:
        self.calls.append(("shutdownExecutor", (framework_id, executor_id)))

    def frameworkMessage(self, framework_id: str, executor_id: str, data: bytes) -> None:
        self.calls.append(("frameworkMessage", (framework_id, executor_id, data)))

    def removedByMaster(self, reason: str) -> None:
        self.calls.append(("removedByMaster", (reason,)))

    def checkpointResources(self, resources: Resources) -> None:
        self.calls.append(("checkpointResources", (resources.to_json(),)))

    def ping(self) -> str:
        return "pong"


class RecordingAgentTests(unittest.SynchronousTestCase):
    def test_stands_for_the_agent(self) -> None:
        """The recorder's methods are the Agent's, with the same parameters, so the adapters call both alike."""
        for name, method in inspect.getmembers(RecordingAgent, inspect.isfunction):
            if name in ("__init__", "received"):
                continue
            self.assertEqual(list(inspect.signature(method).parameters), list(inspect.signature(getattr(Agent, name))
                                                                              .parameters), name)


class AgentLinkBehaviour:
    """What the master may rely on from any IAgentLink.

    A subclass's setUp sets ``self.link`` and ``self.agent`` (a :class:`RecordingAgent` at the far end) and
    defines ``deliver()`` (let everything in flight arrive) and ``cut()`` (break the connection).
    """

    link: Any
    agent: RecordingAgent

    def deliver(self) -> None:
        raise NotImplementedError

    def cut(self) -> None:
        raise NotImplementedError

    def test_provides_the_interface(self: Any) -> None:
        """The link passes verifyObject(IAgentLink)."""
        self.assertTrue(verifyObject(IAgentLink, self.link))

    def test_run_tasks(self: Any) -> None:
        """runTasks delivers the framework, the tasks and the executor (or None) as sent."""
        self.link.runTasks(FRAMEWORK, [TASK, OTHER_TASK], EXECUTOR)
        self.link.runTasks(FRAMEWORK, [OTHER_TASK])
        self.deliver()
        self.assertEqual(self.agent.received("runTasks"), [
            (FRAMEWORK.to_json(), [TASK.to_json(), OTHER_TASK.to_json()], EXECUTOR.to_json()),
            (FRAMEWORK.to_json(), [OTHER_TASK.to_json()], None),
        ])

    def test_kill_task(self: Any) -> None:
        """killTask delivers the task and the grace period, or None for the agent's default."""
        self.link.killTask("F1", "t1")
        self.link.killTask("F1", "t2", 2.5)
        self.deliver()
        self.assertEqual(self.agent.received("killTask"), [("F1", "t1", None), ("F1", "t2", 2.5)])

    def test_acknowledge(self: Any) -> None:
        """Every acknowledgement arrives, in order, with its UUID bytes intact."""
        acknowledgements = [("F1", "t1", b"\x01" * 16), ("F1", "t2", b"\xff" * 16)]
        self.link.acknowledge(acknowledgements)
        self.deliver()
        self.assertEqual(self.agent.received("acknowledge"), acknowledgements)

    def test_shutdowns_and_messages(self: Any) -> None:
        """Shutdowns of frameworks and executors and opaque framework messages arrive in the order sent."""
        self.link.shutdownExecutor("F1", "E1")
        self.link.frameworkMessage("F1", "E2", DATA)
        self.link.shutdownFramework("F2")
        self.deliver()
        self.assertEqual(self.agent.calls, [("shutdownExecutor", ("F1", "E1")),
                                            ("frameworkMessage", ("F1", "E2", DATA)),
                                            ("shutdownFramework", ("F2",))])

    def test_removed(self: Any) -> None:
        """removed tells the agent why it was removed."""
        self.link.removed("Agent marked unreachable")
        self.deliver()
        self.assertEqual(self.agent.received("removedByMaster"), [("Agent marked unreachable",)])

    def test_checkpoint_resources(self: Any) -> None:
        """checkpointResources delivers the checkpointed resources whole: reservation stacks, principals,
        labels and persistent volumes."""
        self.link.checkpointResources(CHECKPOINTED)
        self.link.checkpointResources(Resources())
        self.deliver()
        self.assertEqual(self.agent.received("checkpointResources"), [(CHECKPOINTED.to_json(),), ([],)])

    def test_ping(self: Any) -> None:
        """ping fires with the agent's answer once it arrives."""
        d = self.link.ping()
        self.deliver()
        self.assertEqual(self.successResultOf(d), "pong")

    def test_ping_fails_once_cut(self: Any) -> None:
        """Once the connection is gone, ping fails instead of waiting for ever."""
        self.cut()
        d = self.link.ping()
        self.deliver()
        self.failureResultOf(d)

    def test_calls_after_cut_are_dropped(self: Any) -> None:
        """Calls on a cut link neither raise nor arrive."""
        self.cut()
        self.link.killTask("F1", "t1")
        self.link.acknowledge([("F1", "t1", b"\x01" * 16)])
        self.link.removed("gone")
        self.deliver()
        self.assertEqual(self.agent.calls, [])


class DirectAgentLinkTests(AgentLinkBehaviour, ClockTestCase):
    def setUp(self) -> None:
        self.clock = self.makeClock()
        self.agent = RecordingAgent()
        self.link = DirectAgentLink(self.agent, self.clock)  # type: ignore[arg-type]

    def deliver(self) -> None:
        for _ in range(10):
            self.clock.advance(0)

    def cut(self) -> None:
        self.link.up = False


class PBAgentLinkTests(AgentLinkBehaviour, ClockTestCase):
    """The master holds a PBAgentLink on the agent's AgentRemote, handed over a PB connection as at registration."""

    def setUp(self) -> None:
        self.clock = self.makeClock()
        self.agent = RecordingAgent()
        catcher = Catcher()
        self.loopback = PBLoopback(catcher, self.clock)
        remote = server_reference(self.loopback, catcher, AgentRemote(self.agent))  # type: ignore[arg-type]
        self.link = PBAgentLink(remote, self.clock)

    def deliver(self) -> None:
        self.loopback.settle()

    def cut(self) -> None:
        self.loopback.cut()


# -- IFrameworkLink --------------------------------------------------------------------------------------------------


class RecordingDriver:
    """The far end of an IFrameworkLink: a scheduler driver that keeps the events it handles."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def handle_events(self, events: list[dict[str, Any]]) -> None:
        self.events.extend(events)


EVENTS = [{"type": "SUBSCRIBED", "subscribed": {"framework_id": {"value": "F1"}, "heartbeat_interval_seconds": 15}},
          {"type": "OFFERS", "offers": {"offers": []}},
          {"type": "MESSAGE", "message": {"agent_id": {"value": "S1"}, "executor_id": {"value": "E1"},
                                          "data": "AP/+"}}]


class FrameworkLinkBehaviour:
    """What the master may rely on from any IFrameworkLink.

    A subclass's setUp sets ``self.link`` and ``self.principal`` (what the link should report) and defines
    ``delivered()`` (the events the scheduler's side has received, after delivering what is in flight),
    ``assertClosed()`` and ``cut()`` (the scheduler's side goes away).
    """

    link: Any
    principal: str | None

    def delivered(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def assertClosed(self) -> None:
        raise NotImplementedError

    def cut(self) -> None:
        raise NotImplementedError

    def test_provides_the_interface(self: Any) -> None:
        """The link passes verifyObject(IFrameworkLink) and names the connection's principal."""
        self.assertTrue(verifyObject(IFrameworkLink, self.link))
        self.assertEqual(self.link.principal, self.principal)

    def test_events_arrive_in_order(self: Any) -> None:
        """Events arrive as sent, in order."""
        for event in EVENTS:
            self.link.send(event)
        self.assertEqual(self.delivered(), EVENTS)

    def test_close_delivers_what_was_sent_first(self: Any) -> None:
        """Events sent before close arrive; then the connection ends, and later sends are dropped quietly."""
        self.link.send(EVENTS[0])
        self.link.close()
        self.link.send(EVENTS[1])
        self.assertEqual(self.delivered(), EVENTS[:1])
        self.assertClosed()

    def test_send_never_raises(self: Any) -> None:
        """Sending to a scheduler that went away neither raises nor delivers."""
        self.cut()
        self.link.send(EVENTS[0])
        self.assertEqual(self.delivered(), [])


class LocalFrameworkLinkTests(FrameworkLinkBehaviour, ClockTestCase):
    principal = None

    def setUp(self) -> None:
        self.clock = self.makeClock()
        self.driver = RecordingDriver()
        self.link = LocalFrameworkLink(self.driver, self.clock)  # type: ignore[arg-type]

    def delivered(self) -> list[dict[str, Any]]:
        self.clock.advance(0)
        return self.driver.events

    def assertClosed(self) -> None:
        self.assertTrue(self.link.closed)

    def cut(self) -> None:
        self.link.discard()


class PBFrameworkLinkTests(FrameworkLinkBehaviour, ClockTestCase):
    """The master holds a PBFrameworkLink on the driver's remote, handed over a PB connection as at SUBSCRIBE."""

    principal = "ops"

    def setUp(self) -> None:
        self.clock = self.makeClock()
        self.driver = RecordingDriver()
        catcher = Catcher()
        self.loopback = PBLoopback(catcher, self.clock)
        remote = server_reference(self.loopback, catcher, _SchedulerRemote(self.driver))  # type: ignore[arg-type]
        self.link = PBFrameworkLink(remote, self.clock, self.principal)

    def delivered(self) -> list[dict[str, Any]]:
        self.loopback.settle()
        return self.driver.events

    def assertClosed(self) -> None:
        self.assertFalse(self.loopback.connected)

    def cut(self) -> None:
        self.loopback.cut()


class HTTPFrameworkLinkTests(FrameworkLinkBehaviour, ClockTestCase):
    """An HTTP scheduler's link writes RecordIO down its open SUBSCRIBE response."""

    principal = "ops"

    def setUp(self) -> None:
        self.clock = self.makeClock()
        self.request = DummyRequest([b"api", b"v1", b"scheduler"])
        self.link = HTTPFrameworkLink(self.request, "stream-1", self.clock, 15.0, self.principal)
        self.addCleanup(self.link.close)

    def delivered(self) -> list[dict[str, Any]]:
        return [json.loads(record) for record in recordio.Decoder().feed(b"".join(self.request.written))]

    def assertClosed(self) -> None:
        self.assertEqual(self.request.finished, 1)

    def cut(self) -> None:
        self.request.processingFailed(Failure(ConnectionLost()))

    def test_heartbeats(self) -> None:
        """Between events, a HEARTBEAT goes down the stream every heartbeat interval."""
        self.clock.advance(15)
        self.clock.advance(15)
        self.assertEqual([event["type"] for event in self.delivered()], ["HEARTBEAT", "HEARTBEAT"])

