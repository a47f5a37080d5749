"""The operator API's event stream (``SUBSCRIBE``): the publisher the master's components report to, and its
RecordIO transport over real HTTP/1.1 parsing, on the in-process cluster (direct links and the real PB path).

Each subscription is an :class:`~tests.unit.test_scheduler_http.Exchange`: a chunked response that stays
open and whose RecordIO records are decoded as they arrive, on the cluster's clock.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from twisted.internet import defer
from twisted.logger import formatEvent, globalLogPublisher
from twisted.web import server

from mesostw.auth.policy import Security
from mesostw.flags import defaults
from mesostw.http import stream
from mesostw.http.router import Router
from mesostw.master import v1_json
from mesostw.master.event_stream import EventSubscriber
from mesostw.master.events import MasterEvents, OperatorEvent, visible
from mesostw.master.flags import MASTER_FLAGS
from mesostw.master.http import MasterEndpoints
from mesostw.master.operator_api import MasterOperatorAPI
from mesostw.model import task as T
from mesostw.operator.approvers import EVERYTHING, Approvers
from mesostw.verbosity import Verbosity
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task
from tests.helpers.pbcluster import PBCluster
from tests.helpers.v1shapes import EVENTS
from tests.unit.test_operator_api import ACLS, PRINCIPALS, basic, started
from tests.unit.test_operator_endpoints import problems
from tests.unit.test_scheduler_http import Exchange

JSON = "application/json"


class EventsTestCase(ClockTestCase):
    """A cluster and a Site serving its master's operator API, on the cluster's clock."""

    cluster_class: type[Cluster] = Cluster
    heartbeat = 15.0
    max_queued = 1 << 20

    def master_flags(self) -> dict[str, Any]:
        return {}

    def setUp(self) -> None:
        self.cluster = self.cluster_class(**self.master_flags())
        self.master = self.cluster.master
        self.clock = self.useClock(self.cluster.clock)
        self.api = MasterOperatorAPI(self.master, {}, verbosity=Verbosity(), heartbeat=self.heartbeat)
        self.api.streams.max_queued = self.max_queued
        self.router = Router()
        self.api.install(self.router)
        self.site = server.Site(self.router, reactor=self.clock)
        self.exchanges: list[Exchange] = []
        self.addCleanup(self._stop)

    def _stop(self) -> None:
        for exchange in self.exchanges:
            exchange.drop()
        self.cluster.settle()
        self.cluster.stop()

    def subscribe(self, headers: dict[str, str] | None = None) -> Exchange:
        exchange = Exchange(self.site, "POST", "/api/v1", b'{"type": "SUBSCRIBE"}',
                            {"Content-Type": JSON, **(headers or {})})
        self.exchanges.append(exchange)
        exchange.poll()
        return exchange

    def assertConform(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.assertEqual(problems(event, EVENTS[event["type"]]), [], event["type"])

    def task_events(self, exchange: Exchange, task_id: str) -> list[tuple[str, str]]:
        """(event type, task state) of the TASK_* events of ``task_id``, in order."""
        out = []
        for event in exchange.events:
            if event["type"] == "TASK_ADDED" and event["task_added"]["task"]["task_id"]["value"] == task_id:
                out.append(("TASK_ADDED", event["task_added"]["task"]["state"]))
            elif event["type"] == "TASK_UPDATED" and event["task_updated"]["status"]["task_id"]["value"] == task_id:
                out.append(("TASK_UPDATED", event["task_updated"]["state"]))
        return out


class StreamTests(EventsTestCase):
    def test_subscribed_first(self) -> None:
        """SUBSCRIBE answers 200 with a chunked JSON stream whose first record is SUBSCRIBED: the whole state
        and the heartbeat interval."""
        scheduler = RecordingScheduler()
        scheduler.pending = [command_task("t1", "sleep 100")]
        self.cluster.framework("before", scheduler=scheduler)
        exchange = self.subscribe()
        self.assertEqual((exchange.code, exchange.headers["content-type"], exchange.chunked), (200, JSON, True))
        self.assertFalse(exchange.ended)
        [subscribed] = exchange.events
        self.assertConform([subscribed])
        body = subscribed["subscribed"]
        self.assertEqual(body["heartbeat_interval_seconds"], 15.0)
        self.assertEqual([t["task_id"]["value"] for t in body["get_state"]["get_tasks"]["tasks"]], ["t1"])
        self.assertEqual(len(body["get_state"]["get_agents"]["agents"]), 2)
        self.assertEqual(len(self.master.events), 1)

    def test_task_lifecycle_in_order(self) -> None:
        """A task is TASK_ADDED as it launches, then TASK_UPDATED at each new state, in order, every event of
        master.proto's shape."""
        exchange = self.subscribe()
        scheduler = RecordingScheduler()
        scheduler.pending = [command_task("t1", "true")]
        self.cluster.framework("fw", scheduler=scheduler)
        exchange.poll()
        self.assertEqual(self.task_events(exchange, "t1"), [("TASK_ADDED", "TASK_STAGING"),
                                                              ("TASK_UPDATED", "TASK_RUNNING"),
                                                              ("TASK_UPDATED", "TASK_FINISHED")])
        self.assertConform(exchange.events)
        [added] = exchange.of_type("TASK_ADDED")
        self.assertEqual(added["task_added"]["task"]["framework_id"], {"value": scheduler.framework_id})
        finished = exchange.of_type("TASK_UPDATED")[-1]["task_updated"]
        self.assertEqual((finished["status"]["state"], finished["status"]["source"]),
                         ("TASK_FINISHED", "SOURCE_EXECUTOR"))
        types = exchange.types()
        self.assertLess(types.index("FRAMEWORK_ADDED"), types.index("TASK_ADDED"))

    def test_frameworks(self) -> None:
        """A framework is added when it subscribes, updated when it subscribes again, and removed after its
        tasks are killed when it is torn down."""
        exchange = self.subscribe()
        scheduler = RecordingScheduler()
        scheduler.pending = [command_task("t1", "sleep 100")]
        _, driver = self.cluster.framework("fw", scheduler=scheduler, failover_timeout=60.0)
        self.cluster.cut_framework(driver)
        self.cluster.reconnect_framework(driver)
        self.master.removeFramework(scheduler.framework_id)
        self.cluster.settle()
        exchange.poll()
        self.assertConform(exchange.events)
        kinds = [t for t in exchange.types() if t.startswith("FRAMEWORK_") or t.startswith("TASK_")]
        self.assertEqual(kinds, ["FRAMEWORK_ADDED", "TASK_ADDED", "TASK_UPDATED", "FRAMEWORK_UPDATED",
                                 "TASK_UPDATED", "FRAMEWORK_REMOVED"])
        self.assertEqual(self.task_events(exchange, "t1")[-1], ("TASK_UPDATED", "TASK_KILLED"))
        [removed] = exchange.of_type("FRAMEWORK_REMOVED")
        self.assertEqual(removed["framework_removed"]["framework_info"]["id"], {"value": scheduler.framework_id})
        [updated] = exchange.of_type("FRAMEWORK_UPDATED")
        self.assertTrue(updated["framework_updated"]["framework"]["connected"])

    def test_agents(self) -> None:
        """An agent is added when it registers; it is removed when it leaves, becomes unreachable or is gone."""
        exchange = self.subscribe()
        agent = self.cluster.add_agent("cpus:1;mem:128")
        self.cluster.settle()
        [added] = exchange.of_type("AGENT_ADDED")
        self.assertEqual(added["agent_added"]["agent"]["agent_info"]["id"], {"value": agent.info.id})
        self.master.unregisterAgent(agent.info.id)
        first, second = (a.info.id for a in self.cluster.agents[:2])
        self.master.agentUnreachable(first)
        self.master.markAgentGone(second)
        self.cluster.settle()
        exchange.poll()
        self.assertConform(exchange.events)
        self.assertEqual([e["agent_removed"]["agent_id"]["value"] for e in exchange.of_type("AGENT_REMOVED")],
                         [agent.info.id, first, second])

    def test_returning_agent_is_added_before_its_tasks(self) -> None:
        """An agent back from unreachable is AGENT_ADDED before its tasks are updated."""
        scheduler = RecordingScheduler()
        scheduler.pending = [command_task("t1", "sleep 100")]
        self.cluster.framework("aware", scheduler=scheduler, capabilities=frozenset({"PARTITION_AWARE"}))
        task = self.master.tasks.get(scheduler.framework_id, "t1")
        assert task is not None
        agent = next(a for a in self.cluster.agents if a.info.id == task.agent_id)
        exchange = self.subscribe()
        self.cluster.cut(agent)
        self.master.agentUnreachable(agent.info.id)
        self.cluster.settle()
        self.cluster.connect(agent)
        self.cluster.settle()
        exchange.poll()
        # The master kept the unreachable task: it is updated (not added again) when its agent is back.
        self.assertEqual(self.task_events(exchange, "t1"), [("TASK_UPDATED", "TASK_UNREACHABLE"),
                                                              ("TASK_UPDATED", "TASK_RUNNING")])
        types = exchange.types()
        self.assertEqual(types.count("AGENT_ADDED"), 1)
        self.assertLess(types.index("AGENT_ADDED"), len(types) - 1 - types[::-1].index("TASK_UPDATED"))

    def test_heartbeats(self) -> None:
        """A HEARTBEAT comes every heartbeat_interval_seconds."""
        exchange = self.subscribe()
        self.cluster.advance(45)
        self.assertEqual(exchange.types().count("HEARTBEAT"), 3)

    def test_client_goes_away(self) -> None:
        """A subscriber whose connection closes is forgotten: no event is built for nobody."""
        exchange = self.subscribe()
        exchange.drop()
        self.assertEqual((len(self.master.events), self.master.events.active), (0, False))
        built: list[Any] = []
        self.patch(OperatorEvent, "encoded", lambda event: built.append(event))
        scheduler = RecordingScheduler()
        scheduler.pending = [command_task("t1", "true")]
        self.cluster.framework("fw", scheduler=scheduler)
        self.assertEqual(built, [])

    def test_master_stops(self) -> None:
        """A stopping master ends every stream."""
        exchange = self.subscribe()
        self.master.stop()
        self.assertTrue(exchange.ended)
        self.assertEqual(len(self.master.events), 0)

    def test_event_stream_on_another_path(self) -> None:
        """SUBSCRIBE works at /master/api/v1 too."""
        exchange = Exchange(self.site, "POST", "/master/api/v1", b'{"type": "SUBSCRIBE"}', {"Content-Type": JSON})
        self.exchanges.append(exchange)
        self.assertEqual(exchange.types(), ["SUBSCRIBED"])


class SubscriberLimitTests(EventsTestCase):
    def master_flags(self) -> dict[str, Any]:
        return {"max_operator_event_stream_subscribers": 2}

    def test_oldest_is_closed(self) -> None:
        """Beyond --max_operator_event_stream_subscribers, the oldest stream is closed, as Mesos does."""
        first, second, third = self.subscribe(), self.subscribe(), self.subscribe()
        self.assertTrue(first.ended)
        self.assertFalse(second.ended or third.ended)
        self.assertEqual(len(self.master.events), 2)


class SlowSubscriberTests(EventsTestCase):
    max_queued = 4096

    def test_events_wait_while_paused(self) -> None:
        """While the connection's buffer is full, events wait; once it drains they follow, in order."""
        exchange = self.subscribe()
        exchange.transport.producer.pauseProducing()  # the buffer is full
        scheduler = RecordingScheduler()
        scheduler.pending = [command_task("t1", "true")]
        self.cluster.framework("fw", scheduler=scheduler)
        self.assertEqual(exchange.poll(), [])
        [subscriber] = self.master.events._sinks
        assert isinstance(subscriber, EventSubscriber)
        self.assertGreater(subscriber.queued_bytes, 0)
        exchange.transport.producer.resumeProducing()
        exchange.poll()
        self.assertEqual(subscriber.queued_bytes, 0)
        self.assertEqual([kind for kind, _ in self.task_events(exchange, "t1")],
                         ["TASK_ADDED", "TASK_UPDATED", "TASK_UPDATED"])

    def test_a_slow_subscriber_is_dropped(self) -> None:
        """A subscriber whose waiting events pass the bound is dropped with a log line; the others go on."""
        slow, fast = self.subscribe(), self.subscribe()
        slow.transport.producer.pauseProducing()
        logged: list[str] = []
        def observe(event: dict[str, Any]) -> None:
            logged.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        scheduler = RecordingScheduler()
        scheduler.pending = [command_task(f"t{i}", "true") for i in range(20)]
        self.cluster.framework("fw", scheduler=scheduler)
        self.assertEqual(len(self.master.events), 1)
        self.assertTrue([line for line in logged if "Dropping operator event subscriber" in line
                         and "does not read" in line])
        self.assertEqual(len(fast.of_type("TASK_ADDED")), 20)
        slow.transport.producer.resumeProducing()
        self.assertTrue(slow.ended)


class PausingRequest:
    """What a subscriber writes to: a request whose connection fills up after ``room`` writes."""

    def __init__(self, room: int):
        self.room = room
        self.written: list[bytes] = []
        self.producer: Any = None
        self.finished = False

    def setResponseCode(self, code: int) -> None:
        self.code = code

    def setHeader(self, name: str, value: str) -> None:
        pass

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def notifyFinish(self) -> defer.Deferred[None]:
        return defer.Deferred()

    def write(self, data: bytes) -> None:
        self.written.append(data)
        if len(self.written) == self.room:
            self.producer.pauseProducing()

    def finish(self) -> None:
        self.finished = True


class SnapshotTests(EventsTestCase):
    def test_snapshot_written_as_the_connection_takes_it(self) -> None:
        """SUBSCRIBED is the RecordIO record of the whole GET_STATE, the same bytes as encoding it whole; it is
        written piece by piece while the connection takes it, and events that happen meanwhile wait behind
        it, then follow in order."""
        scheduler = RecordingScheduler()
        scheduler.pending = [command_task(f"t{i}", "sleep 100") for i in range(20)]
        self.cluster.framework("before", scheduler=scheduler)
        self.patch(stream, "BATCH", 2)
        request = PausingRequest(room=3)
        subscriber = EventSubscriber(self.master.events, request, EVERYTHING, self.clock, 15.0)
        snapshot = stream.Fields({"type": "SUBSCRIBED", "subscribed": stream.Fields({
            "get_state": v1_json.get_state_fields(self.master), "heartbeat_interval_seconds": 15.0})})
        whole = json.dumps({"type": "SUBSCRIBED", "subscribed": {
            "get_state": v1_json.get_state(self.master), "heartbeat_interval_seconds": 15.0}},
            separators=(",", ":")).encode()
        pieces = stream.pieces(snapshot)
        self.assertGreater(len(pieces), 10)
        subscriber.start(pieces)
        self.assertEqual(len(request.written), 3)  # the connection is full
        self.cluster.framework("after")
        self.assertEqual(len(request.written), 3)  # its events wait behind the snapshot
        request.room = 0
        subscriber.resumeProducing()
        body = b"".join(request.written)
        self.assertTrue(body.startswith(b"%d\n%s" % (len(whole), whole)))
        records = []
        rest = body
        while rest:
            size, _, rest = rest.partition(b"\n")
            records.append(json.loads(rest[:int(size)]))
            rest = rest[int(size):]
        self.assertEqual(records[0]["type"], "SUBSCRIBED")
        self.assertEqual(len(records[0]["subscribed"]["get_state"]["get_tasks"]["tasks"]), 20)
        self.assertEqual(records[1]["type"], "FRAMEWORK_ADDED")
        self.assertEqual(records[1]["framework_added"]["framework"]["framework_info"]["name"], "after")
        subscriber.close("test over")


class FilteringTests(EventsTestCase):
    """Two subscribers with different view ACLs see different streams."""

    def master_flags(self) -> dict[str, Any]:
        credentials = os.path.abspath(self.mktemp())
        with open(credentials, "w") as f:
            json.dump({"credentials": [{"principal": p, "secret": s} for p, s in PRINCIPALS.items()]}, f)
        return {"credentials": credentials, "acls": json.dumps(ACLS)}

    def setUp(self) -> None:
        super().setUp()
        self.router.filter(MasterEndpoints(self.master, {}).authenticate)

    def as_(self, principal: str | None) -> Exchange:
        headers = basic(principal) if principal else {}
        headers.pop("Content-Type", None)
        return self.subscribe(headers)

    def test_each_sees_what_it_may_view(self) -> None:
        """Task and framework events reach only subscribers that may view them; agents' resources are cut to
        the roles each may view."""
        admin, alice, anonymous = self.as_("admin"), self.as_("alice"), self.as_(None)
        self.cluster.add_agent("cpus:2;mem:1024;cpus(ops):1")
        started(self.cluster, "alices", "alice", "eng", command_task("al1", "true"))
        started(self.cluster, "bobs", "bob", "ops", command_task("bo1", "true"))
        for exchange in (admin, alice, anonymous):
            exchange.poll()
            self.assertConform(exchange.events)
        self.assertEqual([k for k, _ in self.task_events(admin, "bo1")], ["TASK_ADDED", "TASK_UPDATED", "TASK_UPDATED"])
        self.assertEqual(self.task_events(alice, "bo1"), [])
        self.assertEqual(len(self.task_events(alice, "al1")), 3)
        names = [e["framework_added"]["framework"]["framework_info"]["name"] for e in alice.of_type("FRAMEWORK_ADDED")]
        self.assertEqual(names, ["alices"])
        self.assertEqual([t for t in anonymous.types() if t.startswith(("TASK_", "FRAMEWORK_"))], [])
        # Unreserved resources are everybody's to see; those reserved for ops only admin's.
        for exchange, roles in ((admin, {"*", "ops"}), (alice, {"*"}), (anonymous, {"*"})):
            [agent] = [e["agent_added"]["agent"] for e in exchange.of_type("AGENT_ADDED")]
            self.assertEqual({r["role"] for r in agent.get("total_resources", [])}, roles)
            self.assertEqual({r["role"] for r in agent["agent_info"].get("resources", [])}, roles)
        [subscribed] = alice.of_type("SUBSCRIBED")
        self.assertEqual(subscribed["subscribed"]["get_state"]["get_frameworks"]["frameworks"], [])


class PublisherTests(ClockTestCase):
    """:class:`MasterEvents` and :func:`visible` without a transport."""

    class Sink:
        def __init__(self, approvers: Approvers = EVERYTHING, fail: bool = False):
            self.approvers = approvers
            self.fail = fail
            self.events: list[OperatorEvent] = []
            self.closed: list[str] = []

        def send(self, event: OperatorEvent) -> None:
            if self.fail:
                raise RuntimeError("broken pipe")
            self.events.append(event)

        def close(self, reason: str) -> None:
            self.closed.append(reason)

    def setUp(self) -> None:
        self.cluster = Cluster(agents=1)
        self.useClock(self.cluster.clock)
        self.addCleanup(self.cluster.stop)

    def test_events_are_encoded_once(self) -> None:
        """Subscribers that see an event unchanged share it, and its JSON is encoded once."""
        events = self.cluster.master.events
        first, second = self.Sink(), self.Sink()
        events.subscribe(first)
        events.subscribe(second)
        events.agentRemoved("S9")
        self.assertIs(first.events[0], second.events[0])
        self.assertIs(first.events[0].encoded(), second.events[0].encoded())
        self.assertEqual(json.loads(first.events[0].encoded()),
                         {"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": "S9"}}})

    def test_a_failing_sink_is_closed(self) -> None:
        """A subscriber that raises is closed and forgotten; the others still get the event."""
        events = MasterEvents(self.cluster.master)
        broken, healthy = self.Sink(fail=True), self.Sink()
        events.subscribe(broken)
        events.subscribe(healthy)
        events.agentRemoved("S9")
        self.assertEqual((broken.closed, len(healthy.events), len(events)), (["failed to take an event"], 1, 1))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_visible_without_subjects(self) -> None:
        """A task event without its framework is shown to nobody the ACLs judge."""
        config = defaults(MASTER_FLAGS, acls=json.dumps({"view_tasks": [{"principals": {"type": "ANY"},
                                                                         "users": {"type": "ANY"}}]}))
        approvers = Approvers(Security.from_config(config, self.cluster.clock), "someone")
        event = OperatorEvent({"type": "TASK_ADDED", "task_added": {"task": {}}})
        self.assertIsNone(visible(event, approvers))
        self.assertIs(visible(event, EVERYTHING), event)


class PBStreamTests(EventsTestCase):
    """The same stream when agents, executors and the framework talk PB through their production adapters."""

    cluster_class = PBCluster

    def test_task_lifecycle_over_pb(self) -> None:
        """A framework over PB launches a task on a PB agent: the stream sees TASK_ADDED to TASK_FINISHED,
        and a task killed by its framework ends TASK_KILLED."""
        exchange = self.subscribe()
        scheduler = RecordingScheduler()
        scheduler.pending = [command_task("t1", "true"), command_task("t2", "sleep 100")]
        _, driver = self.cluster.framework("pb", scheduler=scheduler)
        driver.killTask("t2")
        self.cluster.settle()
        exchange.poll()
        self.assertConform(exchange.events)
        self.assertEqual(self.task_events(exchange, "t1"), [("TASK_ADDED", "TASK_STAGING"),
                                                              ("TASK_UPDATED", "TASK_RUNNING"),
                                                              ("TASK_UPDATED", "TASK_FINISHED")])
        self.assertEqual(self.task_events(exchange, "t2")[-1], ("TASK_UPDATED", "TASK_KILLED"))
        self.assertEqual(scheduler.states("t1")[-1], T.FINISHED)
        updated = [e for e in exchange.of_type("TASK_UPDATED") if e["task_updated"]["state"] == "TASK_FINISHED"]
        self.assertTrue(base64.b64decode(updated[0]["task_updated"]["status"]["uuid"]))
