"""Large answers written as they are built: the same bytes as encoding them whole, a slice per reactor turn.

The streamed builders (:mod:`mesostw.http.stream`, the JSON texts of :mod:`mesostw.model.v0` and
:mod:`mesostw.master.agent_text`) are checked against ``json.dumps`` of the dicts the endpoints have
always served; the HTTP side against a real Site on a task.Clock, counting what is made per turn.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web import server

from mesostw.http import stream
from mesostw.http.router import Router
from mesostw.master import state_json, v1_json
from mesostw.master.agent_text import agent_json, agent_model
from mesostw.master.http import MasterEndpoints
from mesostw.master.tally import ResourceTally
from mesostw.master.v1_text import task_v1_json
from mesostw.model import jsontext
from mesostw.model import task as T
from mesostw.model.resources import EMPTY, Resources
from mesostw.model.task import Task, TaskStatus
from mesostw.model.v0 import resources_json, resources_model, task_json, task_model
from mesostw.operator.v1 import task_v1
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8))
plain = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=4), inner, max_size=4), max_leaves=12)


@st.composite
def streamable(draw: Any, depth: int = 0) -> Any:
    """A value where some arrays are Items or Texts (of lengths around the batch size) and some
    objects Fields."""
    if depth >= 3 or draw(st.integers(0, 3)) == 0:
        return draw(plain)
    kind = draw(st.sampled_from(["items", "texts", "fields", "list"]))
    if kind == "fields":
        keys = draw(st.lists(st.text(max_size=4), max_size=5, unique=True))
        return stream.Fields({key: draw(streamable(depth + 1)) for key in keys})
    length = draw(st.sampled_from([0, 1, 2, stream.BATCH - 1, stream.BATCH, stream.BATCH + 1, 2 * stream.BATCH + 3]))
    if kind == "texts":
        return stream.Texts(iter([dumps(draw(plain))] * length))
    if kind == "list":  # a plain list holds plain values only
        return [draw(plain)] * length
    items = [draw(streamable(depth + 1)) for _ in range(min(length, 3))] + [draw(plain)] * max(0, length - 3)
    return stream.Items(iter(items))


def whole(value: Any) -> Any:
    """What encoding ``value`` whole sees (Texts parsed back)."""
    if isinstance(value, stream.Texts):
        return [json.loads(text) for text in value.iterable]
    if isinstance(value, stream.Items):
        return [whole(item) for item in value.iterable]
    if isinstance(value, dict):
        return {key: whole(item) for key, item in value.items()}
    if isinstance(value, list):
        return [whole(item) for item in value]
    return value


def twice(value: Any) -> tuple[Any, Any]:
    """Two independent copies of a streamable value (its iterables run once)."""
    if isinstance(value, stream.Texts):
        texts = list(value.iterable)
        return stream.Texts(iter(texts)), stream.Texts(iter(texts))
    if isinstance(value, stream.Items):
        pairs = [twice(item) for item in value.iterable]
        return stream.Items(iter([a for a, _ in pairs])), stream.Items(iter([b for _, b in pairs]))
    if isinstance(value, stream.Fields):
        pairs = {key: twice(item) for key, item in value.items()}
        return (stream.Fields({k: a for k, (a, _) in pairs.items()}),
                stream.Fields({k: b for k, (_, b) in pairs.items()}))
    if isinstance(value, list):
        pairs = [twice(item) for item in value]
        return [a for a, _ in pairs], [b for _, b in pairs]
    return value, value


class EncodingTests(unittest.TestCase):
    @settings(max_examples=150, deadline=None)
    @given(streamable())
    def test_chunks_are_json_dumps(self, value: Any) -> None:
        """The pieces of a streamed value join into exactly json.dumps of the value built whole."""
        streamed, built = twice(value)
        self.assertEqual(stream.encode(streamed).decode(), dumps(whole(built)))

    @given(plain)
    def test_jsontext_is_json_dumps(self, value: Any) -> None:
        """jsontext.encode and jsontext.value give json.dumps's compact text for any JSON value."""
        self.assertEqual(jsontext.encode(value), dumps(value))
        self.assertEqual(jsontext.value(value), dumps(value))

    def test_materialize(self) -> None:
        """materialize builds the whole value: Items as lists, Texts parsed, Fields as dicts."""
        value = stream.Fields({"a": stream.Items(iter([1, stream.Fields({"b": stream.Texts(iter(['{"c":2}']))})])),
                               "d": 3})
        self.assertEqual(stream.materialize(value), {"a": [1, {"b": [{"c": 2}]}], "d": 3})

    def test_large_arrays_come_in_several_pieces(self) -> None:
        """An array of many items is written in batches, not one piece (what lets the reactor run between)."""
        pieces = list(stream.chunks(stream.Fields({"x": stream.Items(iter(range(10 * stream.BATCH)))})))
        self.assertGreaterEqual(len(pieces), 10)


RESOURCES = ["cpus:0.5;mem:256;disk:512;ports:[31000-31000]", "cpus:1", "", "cpus:0.1;mem:32.5;gpus:1",
             "cpus(ops):2;mem:64;ports:[1-2,5-9]", "cpus:1;disks:{a,b};bandwidth:3.25",
             "cpus:1;ports:[10-20];ephemeral:[1-3]", "cpus(*):1;cpus(web):0.5;ports(web):[1-1]",
             "mem:0.001;weird_name\u00e9:2",
             # a dynamic reservation (its key carries the reservation stack) beside an unreserved cpu
             json.dumps([{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.5},
                          "reservations": [{"type": "DYNAMIC", "role": "ops", "principal": "alice"}]},
                         {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}])]


def a_task(resources: str, healthy: bool | None = None, extra: dict[str, Any] | None = None,
           executor: bool = False, user: str | None = None) -> Task:
    info: dict[str, Any] = {"name": "na\u00efve \"task\"", "task_id": {"value": "t\u00e91"},
                            "agent_id": {"value": "agent-1"}, "resources": Resources.parse(resources).to_json(),
                            **(extra or {})}
    if executor:
        info["executor"] = {"executor_id": {"value": "ex"}, "command": {"value": "x"}}
    else:
        info["command"] = {"value": "sleep 1", **({"user": user} if user else {})}
    made = Task(T.TaskInfo.from_json(info), "fw-1", executor_id="ex" if executor else "t\u00e91", user=user)
    for state, when in ((T.RUNNING, 2.25), (T.FINISHED, float("nan"))):
        made.record(TaskStatus(made.task_id, state, timestamp=when, healthy=healthy, agent_id="agent-1"))
    return made


class TextTests(unittest.TestCase):
    def test_resources_text(self) -> None:
        """resources_json is json.dumps of resources_model, with roles, sets, several ranges and odd names."""
        for text in RESOURCES:
            resources = Resources.parse(text)
            self.assertEqual(resources_json(resources), dumps(resources_model(resources)), text)
            self.assertEqual(resources_model(resources), resources.model(), text)

    def test_task_text(self) -> None:
        """task_json is json.dumps of task_model: health, labels and other kept fields, executors, users."""
        extras = {"labels": {"labels": [{"key": "k", "value": "\u2603"}]}, "discovery": {"visibility": "FRAMEWORK"}}
        for text in RESOURCES:
            for healthy in (None, True, False):
                for made in (a_task(text, healthy), a_task(text, healthy, extras, executor=True),
                             a_task(text, healthy, user="alice")):
                    for role in ("*", "ops"):
                        self.assertEqual(task_json(made, role), dumps(task_model(made, role)))


class V1TextTests(unittest.TestCase):
    def test_task_v1_text(self) -> None:
        """task_v1_json is json.dumps of the v1 Task message (task_v1), for every role, with statuses carrying
        UUIDs, sources, reasons, health and fields kept as they came, and with resources shared or not."""
        extras = {"labels": {"labels": [{"key": "k", "value": "\u2603"}]}, "kill_policy": {"grace_period": {}}}
        for text in RESOURCES:
            for made in (a_task(text), a_task(text, True, extras, executor=True), a_task(text, False, user="bob")):
                made.record(TaskStatus(made.task_id, T.KILLED, source=T.SOURCE_MASTER, reason="REASON_X",
                                       message="gone \u00e9", agent_id="agent-1", executor_id="ex", timestamp=3.0,
                                       uuid=b"\x00\x01uuid", extra={"labels": {"labels": []}}))
                made.record(TaskStatus(made.task_id, T.LOST, uuid=b"\xff" * 16, data=b"dropped"))
                made.status_update_state, made.status_update_uuid = T.LOST, b"\xff" * 16
                for role in (None, "*", "ops"):
                    self.assertEqual(task_v1_json(made, role), dumps(task_v1(made, role)))
                    self.assertEqual(task_v1_json(made, role), dumps(task_v1(made, role)))  # from the cache


class TallyTests(unittest.TestCase):
    @given(st.lists(st.tuples(st.booleans(), st.sampled_from(RESOURCES)), max_size=30))
    def test_tally_is_the_sum(self, changes: list[tuple[bool, str]]) -> None:
        """A ResourceTally's total is what + over its current members gives, as members come and go."""
        tally = ResourceTally()
        members: list[Resources] = []
        for add, text in changes:
            resources = Resources.parse(text)
            if add:
                tally.add(resources)
                members.append(resources)
            elif resources in members:
                tally.remove(resources)
                members.remove(resources)
            expected = EMPTY
            for member in members:
                expected = expected + member
            self.assertEqual(tally.total(), expected)


class TurnClock(task.Clock):
    """A Clock whose :meth:`turn` runs only what is due when it starts, as one turn of a reactor does
    (``advance(0)`` would also run what those calls schedule for now)."""

    def turn(self) -> None:
        due = [call for call in self.calls if call.getTime() <= self.seconds()]
        for call in due:
            if call in self.calls:
                self.calls.remove(call)
                call.called = 1
                call.func(*call.args, **call.kw)


class StreamedEndpointTests(unittest.TestCase):
    """/master/state, /master/state-summary, /master/frameworks and GET_STATE on a cluster with many
    tasks, through a real Site whose reactor is the cluster's Clock."""

    TASKS = 120

    def setUp(self) -> None:
        self.cluster = Cluster(agents=3, resources="cpus:100;mem:100000;disk:100000;ports:[31000-32000]")
        self.addCleanup(self.cluster.stop)
        self.scheduler = RecordingScheduler()
        self.scheduler.pending = [command_task(f"t{i}", "sleep 100", "cpus:0.1;mem:8") for i in range(self.TASKS)]
        self.scheduler, self.driver = self.cluster.framework("many", scheduler=self.scheduler)
        self.cluster.settle()
        self.endpoints = MasterEndpoints(self.cluster.master, {"port": "5050"})
        self.router = Router()
        self.endpoints.install(self.router)
        self.web = TurnClock()
        self.site = server.Site(self.router, reactor=self.web)
        # small batches and slices, so that this small cluster's answers take many turns as large ones do
        self.patch(stream, "BATCH", 8)
        self.patch(stream, "TURN_BYTES", 4096)

    def open(self, target: str, method: str = "GET", body: bytes = b"",
             headers: str = "") -> tuple[Any, StringTransport]:
        channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(f"{method} {target} HTTP/1.1\r\nHost: mesos\r\nContent-Length: {len(body)}\r\n"
                             f"{headers}\r\n".encode() + body)
        return channel, transport

    def drain(self, transport: StringTransport) -> int:
        """Turn the clock until the answer is complete; how many turns it took."""
        turns = 0
        while not transport.value().endswith(b"0\r\n\r\n"):
            turns += 1
            self.assertLess(turns, 10_000, "the answer never finished")
            self.web.turn()
        return turns

    def body(self, raw: bytes) -> bytes:
        """The body of a chunked HTTP/1.1 answer, joined."""
        head, _, rest = raw.partition(b"\r\n\r\n")
        self.assertIn(b"transfer-encoding: chunked", head.lower())
        self.assertNotIn(b"content-length", head.lower())
        out = []
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                return b"".join(out)
            out.append(rest[:size])
            rest = rest[size + 2:]

    def streamed(self, target: str, method: str = "GET", body: bytes = b"", headers: str = "") -> tuple[Any, int]:
        channel, transport = self.open(target, method, body, headers)
        self.assertIn(b"200 OK", transport.value().split(b"\r\n")[0])
        turns = self.drain(transport)
        channel.connectionLost(Failure(ConnectionDone()))
        return json.loads(self.body(transport.value())), turns

    def test_state_is_streamed_in_turns(self) -> None:
        """/master/state starts at once, takes several reactor turns at a small slice size and holds exactly
        what the whole model holds (the tasks of every framework, the agents)."""
        channel, transport = self.open("/master/state")
        first = transport.value()
        self.assertIn(b"200 OK", first)
        self.assertIn(b'{"version":', first)  # the body began before any turn of the reactor
        self.assertFalse(first.endswith(b"0\r\n\r\n"))
        turns = self.drain(transport)
        self.assertGreater(turns, 3)
        state = json.loads(self.body(transport.value()))
        channel.connectionLost(Failure(ConnectionDone()))
        expected = stream.materialize(state_json.state(self.cluster.master, {"port": "5050"}))
        self.assertEqual(state, json.loads(dumps(expected)))
        [framework] = state["frameworks"]
        self.assertEqual(len(framework["tasks"]), self.TASKS)
        self.assertEqual(len(state["slaves"]), 3)

    def test_state_shape_is_the_models(self) -> None:
        """Each agent, framework and task of the streamed state is the dict model of it, key for key and in
        order (what clients parsing /master/state have always read)."""
        state, _ = self.streamed("/master/state")
        master = self.cluster.master
        for agent in state["slaves"]:
            model = agent_model(master, master.agents[agent["id"]])
            self.assertEqual(list(agent), list(model))
            self.assertEqual(json.dumps(agent), json.dumps(json.loads(dumps(model))))
        [framework] = state["frameworks"]
        record = master.frameworks[framework["id"]]
        model = state_json.framework_model(master, record)
        self.assertEqual(json.dumps(framework), json.dumps(json.loads(dumps(model))))
        role = record.info.allocation_role
        for shown in framework["tasks"]:
            model = task_model(record.tasks[shown["id"]], role)
            self.assertEqual(json.dumps(shown), json.dumps(json.loads(dumps(model))))

    def test_agent_text_follows_changes(self) -> None:
        """An agent's cached text shows its used and offered resources and activity as they are now."""
        master = self.cluster.master
        for agent in master.agents.values():
            self.assertEqual(agent_json(master, agent), dumps(agent_model(master, agent)))
        agent_id = next(iter(master.agents))
        framework = next(iter(master.frameworks.values()))
        for task_ in [t for t in framework.tasks.values() if t.agent_id == agent_id][:5]:
            self.driver.killTask(task_.task_id)
        self.cluster.settle()
        for agent in master.agents.values():
            self.assertEqual(agent_json(master, agent), dumps(agent_model(master, agent)))

    def test_summary_and_frameworks_streamed(self) -> None:
        """/master/state-summary and /master/frameworks come chunked and agree with /master/state."""
        state, _ = self.streamed("/master/state")
        summary, _ = self.streamed("/master/state-summary")
        frameworks, _ = self.streamed("/master/frameworks")
        self.assertEqual(frameworks["frameworks"], state["frameworks"])
        self.assertEqual(summary["frameworks"][0]["TASK_RUNNING"], self.TASKS)
        self.assertEqual(sorted(a["id"] for a in summary["slaves"]), sorted(a["id"] for a in state["slaves"]))

    def test_get_state_streamed(self) -> None:
        """The v1 GET_STATE answer is streamed, in several turns, and is the whole GetState."""
        call = json.dumps({"type": "GET_STATE"}).encode()
        answer, turns = self.streamed("/api/v1", "POST", call,
                                      "Content-Type: application/json\r\nAccept: application/json\r\n")
        self.assertGreater(turns, 3)
        self.assertEqual(answer["type"], "GET_STATE")
        self.assertEqual(answer["get_state"], json.loads(dumps(v1_json.get_state(self.cluster.master))))
        self.assertEqual(len(answer["get_state"]["get_tasks"]["tasks"]), self.TASKS)

    def test_paused_connection_makes_nothing(self) -> None:
        """While the client's connection is paused nothing more is made; resumed, the answer completes."""
        channel, transport = self.open("/master/state")
        producer = transport.producer
        self.assertIsNotNone(producer)
        producer.pauseProducing()
        sent = len(transport.value())
        for _ in range(20):
            self.web.turn()
        self.assertEqual(len(transport.value()), sent)
        producer.resumeProducing()
        self.drain(transport)
        channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(json.loads(self.body(transport.value()))["id"], self.cluster.master.id)

    def test_client_gone_stops_the_answer(self) -> None:
        """A client that goes away mid-answer stops it: no more pieces are made, no timer is left."""
        channel, transport = self.open("/master/state")
        self.web.turn()
        channel.connectionLost(Failure(ConnectionDone()))
        sent = len(transport.value())
        for _ in range(20):
            self.web.turn()
        self.assertEqual(len(transport.value()), sent)
        self.assertEqual(self.web.getDelayedCalls(), [])

    def test_head_and_jsonp(self) -> None:
        """HEAD answers no body; ?jsonp= wraps the streamed state in the callback."""
        channel, transport = self.open("/master/state", "HEAD")
        self.assertNotIn(b"{", transport.value().partition(b"\r\n\r\n")[2])
        channel.connectionLost(Failure(ConnectionDone()))
        channel, transport = self.open("/master/state?jsonp=cb")
        self.drain(transport)
        channel.connectionLost(Failure(ConnectionDone()))
        body = self.body(transport.value())
        self.assertTrue(body.startswith(b"cb(") and body.endswith(b");"))
        self.assertEqual(json.loads(body[3:-2])["id"], self.cluster.master.id)
