"""Fuzzing every network boundary of master and agent, in one process.

Generated garbage goes to the Perspective Broker root objects, the message parsers, the HTTP routers
of master and agent and the port switch. Each may answer or refuse (a ``pb.Error``, a 4xx with a JSON
``message``, a ``ValidationError``), nothing else; afterwards the allocator's books still balance
and a framework still gets a task to TASK_FINISHED.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
from itertools import pairwise
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from twisted.internet import _producer_helpers, defer, protocol, task
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.spread import pb
from twisted.trial import unittest
from twisted.web import server
from twisted.web.test.requesthelper import DummyChannel

from mesostw.agent.executor_http import ExecutorAPI
from mesostw.agent.files import SandboxFiles
from mesostw.agent.http import AgentEndpoints
from mesostw.agent.pb import AgentRemote, ExecutorConnection
from mesostw.http import recordio
from mesostw.http.router import MAX_QUERY, Router
from mesostw.master import scheduler_http
from mesostw.master.http import LeaderRouting, MasterEndpoints
from mesostw.master.pb import MasterConnection
from mesostw.master.scheduler_http import SchedulerAPI
from mesostw.model import executor_api as xapi
from mesostw.model import internal
from mesostw.model import scheduler_api as api
from mesostw.model import task as T
from mesostw.model.info import AgentInfo, CommandInfo, ExecutorInfo, FrameworkInfo, MasterInfo, wrap
from mesostw.model.resources import Resources
from mesostw.model.task import Offer, Task, TaskInfo, TaskStatus
from mesostw.model.validation import MAX_DEPTH, Reader, ValidationError
from mesostw.wire.listen import LeanRequest, QuietSite
from mesostw.wire.pb import MAX_BATCH, MAX_ERRORS, MAX_INCOMING, MAX_PAYLOAD, decode, split
from mesostw.wire.pb import pieces as wire_pieces
from mesostw.wire.switch import PREAMBLE, SNIFF_TIMEOUT, PortSwitchFactory
from tests.helpers import strategies as S
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task
from tests.helpers.strategies import (
    HEADER_BLOCK,
    SMALL,
    agent_info,
    agent_to_master,
    executor_calls,
    http_bodies,
    http_requests,
    master_to_agent,
    reregistration,
    scheduler_calls,
    subscribe_call,
)

#: Bounded so that the whole module runs in well under 20 s.
FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
QUICK = settings(FUZZ, max_examples=120)


# -- Perspective Broker stand-ins ----------------------------------------------------------------------------


class FakeBroker:
    """What a root object needs of its broker: disconnect notifications (fired by :meth:`disconnect`)."""

    transport = None

    def __init__(self) -> None:
        self.callbacks: list[Any] = []

    def notifyOnDisconnect(self, callback: Any) -> None:
        self.callbacks.append(callback)

    def disconnect(self) -> None:
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback()


class FakeRemote(pb.RemoteReference):
    """A peer's remote reference that records calls and answers them at once."""

    def __init__(self) -> None:
        super().__init__(None, FakeBroker(), 0, False)
        self.calls: list[tuple[str, tuple]] = []

    def callRemote(self, _name: str, *args: Any, **kw: Any) -> defer.Deferred:
        self.calls.append((_name, args))
        return defer.succeed("pong" if _name == "ping" else None)

    def events(self) -> list[dict]:
        return [event for name, args in self.calls if name == "events" for event in decode(args[0])]


def remote_outcome(cluster: Cluster, method: Any, *args: Any) -> Any:
    """Call a ``remote_*`` method as PB would and let the cluster act on it; a value or a pb.Error
    (which PB sends back to the caller) is fine, any other exception fails the test."""
    try:
        result = method(*args)
    except pb.Error:
        cluster.settle()
        return None
    cluster.settle()
    if isinstance(result, defer.Deferred):
        box: list[Any] = []
        result.addBoth(box.append)
        assert box, f"{method.__name__} never answered"
        if isinstance(box[0], Failure):
            if not box[0].check(pb.Error):
                box[0].raiseException()
            return None
        return box[0]
    return result


def callers() -> st.SearchStrategy[Any]:
    """What PB may pass where a remote reference is expected: usually one, sometimes plain data."""
    return st.one_of(st.builds(FakeRemote), st.builds(FakeRemote), S.NON_BYTES)


# -- what must hold after any fuzzing -------------------------------------------------------------------------


class ClusterChecks(ClockTestCase):
    """A cluster with a "victim" framework running a long task on one of two agents."""

    agents = 2
    work_dir = "/nonexistent-sandbox-root"

    def setUp(self) -> None:
        self.cluster = Cluster(agents=self.agents, work_dir=self.work_dir)
        self.useClock(self.cluster.clock)
        self.addCleanup(self.cluster.stop)
        victim = RecordingScheduler()
        victim.pending = [command_task("victim-task", "sleep 100")]
        self.victim, self.victim_driver = self.cluster.framework("victim", scheduler=victim)
        self.brokers: list[FakeBroker] = []
        self.probes = 0

    def connection(self) -> tuple[MasterConnection, FakeBroker]:
        broker = FakeBroker()
        self.brokers.append(broker)
        return MasterConnection(self.cluster.master, broker, self.cluster.clock), broker

    def assertBooksBalance(self) -> None:
        """Per agent, the allocator never hands out more than the agent has, nor less than nothing; every
        task is in exactly one agent's and one framework's index."""
        cluster = self.cluster
        self.assertEqual(cluster.master.tasks.problems(), [])
        for agent_id in cluster.master.agents:
            try:
                total, allocated = cluster.allocator.agent_total(agent_id), cluster.allocator.agent_allocated(agent_id)
            except KeyError:
                continue
            offered = cluster.master.offers.offered_on(agent_id)
            if not total.contains(allocated):
                self.fail(f"agent {agent_id}: {allocated} allocated of {total}")
            if not total.contains(offered):
                self.fail(f"agent {agent_id}: {offered} offered of {total}")
            for bag in (total, allocated, offered):
                for name, _role, value in bag:
                    if isinstance(value, int) and value < 0:
                        self.fail(f"agent {agent_id}: negative {name} in {bag}")

    def assertServes(self) -> None:
        """After the fuzzing connections go away, a new framework still runs a task to TASK_FINISHED."""
        cluster = self.cluster
        for broker in self.brokers:
            broker.disconnect()
        cluster.settle()
        self.assertBooksBalance()
        for framework_id in list(cluster.master.frameworks):
            if framework_id != self.victim.framework_id:
                cluster.master.removeFramework(framework_id)  # as an operator's teardown
        for agent in cluster.agents:
            if agent.master is None:
                cluster.connect(agent)  # as the agent's Connector would
        cluster.settle()
        self.probes += 1
        probe = RecordingScheduler()
        task_id = f"probe-{self.probes}"
        probe.pending = [command_task(task_id, "true")]
        cluster.framework("probe", scheduler=probe)
        cluster.settle()
        self.assertEqual(probe.states(task_id), [T.RUNNING, T.FINISHED], probe.errors)
        self.assertBooksBalance()


# -- 1. Perspective Broker --------------------------------------------------------------------------------------


class MasterPBFuzzTests(ClusterChecks):
    def test_registration_garbage(self) -> None:
        """registerAgent/reregisterAgent take any caller and payload: a value or a pb.Error, never a crash."""
        victim_id = self.victim.framework_id
        valid = st.sampled_from([internal.registration(agent_info(), "1.0.0"),
                                 reregistration("fuzz-S1", victim_id), reregistration("fuzz-S2", "fuzz-fw")])

        @FUZZ
        @given(caller=callers(), payload=S.garbage(S.mutated(valid) | valid))
        def throw(caller: Any, payload: Any) -> None:
            connection, _ = self.connection()
            # Register, then re-register twice: the second time the connection may already be bound.
            for method in (connection.remote_registerAgent, connection.remote_reregisterAgent,
                           connection.remote_reregisterAgent):
                remote_outcome(self.cluster, method, caller, payload)
            self.assertBooksBalance()

        throw()
        self.assertServes()

    def test_agent_messages_garbage(self) -> None:
        """Once an agent is registered, any messages payload is applied, dropped or refused."""
        victim_id = self.victim.framework_id

        @FUZZ
        @given(data=st.data(), disconnect=st.booleans())
        def throw(data: Any, disconnect: bool) -> None:
            connection, broker = self.connection()
            agent_id = f"fuzz-S{len(self.brokers)}"
            remote_outcome(self.cluster, connection.remote_reregisterAgent, FakeRemote(),
                           S.encode(reregistration(agent_id, victim_id)))
            valid = st.sampled_from(agent_to_master(victim_id, "fz-running"))
            for _ in range(data.draw(st.integers(1, 3))):
                messages = data.draw(S.garbage(S.mutated(valid) | valid))
                remote_outcome(self.cluster, connection.remote_messages, messages)
                self.assertBooksBalance()
            if disconnect:
                broker.disconnect()
                self.cluster.settle()

        throw()
        self.assertServes()

    def test_messages_before_registering_are_refused(self) -> None:
        """Messages and calls on a connection that has not registered or subscribed are refused."""

        @FUZZ
        @given(payload=S.garbage())
        def throw(payload: Any) -> None:
            connection, _ = self.connection()
            with self.assertRaises(pb.Error):
                connection.remote_messages(payload)
            with self.assertRaises(pb.Error):
                connection.remote_calls(payload)

        throw()
        self.assertServes()

    def test_subscribe_garbage(self) -> None:
        """subscribe takes any caller and payload: subscribed or refused with a pb.Error."""
        valid = st.sampled_from([subscribe_call(), subscribe_call(role="web", checkpoint=True),
                                 subscribe_call(id="fuzz-framework")])

        @FUZZ
        @given(caller=callers(), payload=S.garbage(S.mutated(valid) | valid))
        def throw(caller: Any, payload: Any) -> None:
            connection, _ = self.connection()
            remote_outcome(self.cluster, connection.remote_subscribe, caller, payload)
            self.assertBooksBalance()

        throw()
        self.assertServes()

    def test_scheduler_calls_garbage(self) -> None:
        """A subscribed framework's calls, mutated, are answered with errors or applied, never more."""

        @FUZZ
        @given(data=st.data(), disconnect=st.booleans())
        def throw(data: Any, disconnect: bool) -> None:
            connection, broker = self.connection()
            scheduler = FakeRemote()
            remote_outcome(self.cluster, connection.remote_subscribe, scheduler, S.encode(subscribe_call()))
            framework_id = connection.session.framework_id
            self.assertIsNotNone(framework_id)
            for _ in range(data.draw(st.integers(1, 3))):
                offers = [Offer.from_json(o) for e in scheduler.events() if e["type"] == "OFFERS"
                          for o in e["offers"]["offers"]]
                live = [o for o in offers if self.cluster.master.offers.get(o.id) is not None]
                valid = st.sampled_from(scheduler_calls(framework_id, live))
                payload = data.draw(S.garbage(S.mutated(valid) | valid))
                errors = remote_outcome(self.cluster, connection.remote_calls, payload)
                if errors is not None:
                    self.assertIsInstance(json.loads(errors), list)
                self.assertBooksBalance()
            if disconnect:
                broker.disconnect()
                self.cluster.settle()

        throw()
        self.assertServes()

    def test_refused_when_not_leading(self) -> None:
        """A master that does not lead refuses registrations and subscriptions with NotLeaderError."""
        self.cluster.master.leading = False
        connection, _ = self.connection()
        for method, payload in ((connection.remote_registerAgent, internal.registration(agent_info(), "1")),
                                (connection.remote_subscribe, subscribe_call())):
            with self.assertRaises(pb.Error):
                method(FakeRemote(), S.encode(payload))
        self.cluster.master.leading = True
        self.assertServes()

    def test_reregistration_cannot_take_over_a_task_of_another_agent(self) -> None:
        """An agent re-registering with a task ID that runs on another agent leaves that task where it runs."""
        framework_id = self.victim.framework_id
        running = self.cluster.master.frameworks[framework_id].tasks["victim-task"]
        home = running.agent_id
        info = TaskInfo("fz", "victim-task", "fuzz-S1", Resources.parse(SMALL), CommandInfo("sleep 9"))
        claim = internal.reregistration(agent_info("fuzz-S1"), [Task(info, framework_id, state=T.RUNNING)], [],
                                        [FrameworkInfo("nobody", "victim", id=framework_id)], "1.0.0")
        connection, _ = self.connection()
        remote_outcome(self.cluster, connection.remote_reregisterAgent, FakeRemote(), S.encode(claim))
        self.assertEqual(self.cluster.master.frameworks[framework_id].tasks["victim-task"].agent_id, home)
        self.victim_driver.killTask("victim-task")
        self.cluster.settle()
        self.assertEqual(self.victim.states("victim-task")[-1], T.KILLED)
        self.assertFalse(self.cluster.allocator.agent_allocated(home))


    def test_caller_must_be_a_reference(self) -> None:
        """Plain data where PB should pass a remote reference is refused before anything registers."""
        agents, frameworks = len(self.cluster.master.agents), len(self.cluster.master.frameworks)
        for caller in (None, "agent", 7, [1], {"a": 1}):
            connection, _ = self.connection()
            with self.assertRaises(pb.Error):
                connection.remote_registerAgent(caller, S.encode(internal.registration(agent_info(), "1")))
            with self.assertRaises(pb.Error):
                connection.remote_subscribe(caller, S.encode(subscribe_call()))
        self.cluster.settle()
        self.assertEqual((len(self.cluster.master.agents), len(self.cluster.master.frameworks)), (agents, frameworks))
        self.assertServes()


class AgentPBFuzzTests(ClusterChecks):
    def victim_executor(self) -> tuple[Any, Any]:
        for agent in self.cluster.agents:
            for executor in agent.executors():
                return agent, executor
        self.fail("the victim's executor is not running")

    def test_master_messages_garbage(self) -> None:
        """What the master sends an agent, mutated, is applied, dropped or refused with a pb.Error."""
        agent, executor = self.victim_executor()
        remote = AgentRemote(agent)
        valid = st.sampled_from(master_to_agent(agent.id, executor.framework_id, executor.id, "victim-task"))

        @FUZZ
        @given(payload=S.garbage(S.mutated(valid) | valid))
        def throw(payload: Any) -> None:
            remote_outcome(self.cluster, remote.remote_messages, payload)
            self.assertBooksBalance()

        throw()
        self.assertEqual(remote_outcome(self.cluster, remote.remote_ping), "pong")
        self.assertServes()

    def test_executor_garbage(self) -> None:
        """An executor connection takes any subscribe and calls payloads: answered or refused, never a crash."""
        agent, executor = self.victim_executor()
        framework_id, executor_id = executor.framework_id, executor.id
        subscribe = xapi.subscribe_call(framework_id, executor_id, [], [])
        valid_subscribe = st.sampled_from([subscribe])

        @FUZZ
        @given(data=st.data(), caller=callers())
        def throw(data: Any, caller: Any) -> None:
            broker = FakeBroker()
            connection = ExecutorConnection(agent, broker, self.cluster.clock)
            payload = data.draw(st.just(S.encode(subscribe)) | S.garbage(S.mutated(valid_subscribe)))
            remote_outcome(self.cluster, connection.remote_subscribe, caller, payload)
            valid = st.sampled_from(executor_calls(framework_id, executor_id, "victim-task"))
            for _ in range(data.draw(st.integers(0, 3))):
                if connection.session.bound is None:
                    with self.assertRaises(pb.Error):
                        connection.remote_calls(data.draw(S.garbage()))
                    break
                errors = remote_outcome(self.cluster, connection.remote_calls,
                                        data.draw(S.garbage(S.mutated(valid) | valid)))
                if errors is not None:
                    self.assertIsInstance(json.loads(errors), list)
            broker.disconnect()
            self.cluster.settle()

        throw()
        self.assertServes()


# -- 2. parsers ----------------------------------------------------------------------------------------------------

PARSERS = {
    "scheduler Call": api.parse_call,
    "executor Call": xapi.parse_call,
    "TaskInfo": TaskInfo.from_json,
    "TaskStatus": TaskStatus.from_json,
    "FrameworkInfo": FrameworkInfo.from_json,
    "AgentInfo": AgentInfo.from_json,
    "ExecutorInfo": ExecutorInfo.from_json,
    "Offer": Offer.from_json,
    "Task": Task.from_json,
    "Resources": Resources.from_json,
    "message for the agent": internal.parse_for_agent,
    "message for the master": internal.parse_for_master,
    "registration": internal.parse_registration,
    "registered": internal.parse_registered,
}

VALID = [subscribe_call(), *scheduler_calls("fw", []), *agent_to_master("fw", "t"),
         *master_to_agent("S0", "fw", "ex", "t"), *executor_calls("fw", "ex", "t"),
         xapi.subscribe_call("fw", "ex", [TaskInfo("t", "t", "S0", Resources.parse(SMALL), CommandInfo("x"))],
                             [TaskStatus("t", T.RUNNING, uuid=b"1")]),
         internal.registration(agent_info(), "1"), reregistration("S1", "fw"),
         internal.registered("S1", MasterInfo("M", "127.0.0.1", 5050, "master.example"))]


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at those of ``cuts`` that fall inside it."""
    edges = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    return [data[begin:end] for begin, end in pairwise(edges)]


class ParserFuzzTests(unittest.TestCase):
    def assertParsesOrRefuses(self, value: Any) -> None:
        for name, parse in PARSERS.items():
            try:
                parse(value)
            except ValidationError:
                pass
            except Exception as exc:  # noqa: BLE001 - anything else is the bug being looked for
                self.fail(f"{name} raised {exc!r} for {value!r:.300}")

    def test_any_json(self) -> None:
        """Every parser turns any JSON value into a value or a ValidationError."""

        @QUICK
        @given(S.json_values())
        def check(value: Any) -> None:
            self.assertParsesOrRefuses(value)

        check()

    def test_mutated_messages(self) -> None:
        """Every parser turns any mutation of a valid message into a value or a ValidationError."""

        @QUICK
        @given(S.mutated(st.sampled_from(VALID)))
        def check(value: Any) -> None:
            self.assertParsesOrRefuses(value)

        check()

    def test_resources_text(self) -> None:
        """Resources.parse takes any text (and any non-text) to a Resources or a ValidationError."""
        pieces = st.sampled_from(["cpus", "mem", "ports", "(", ")", ":", ";", "[", "]", "{", "}", "-", ",", "*",
                                  "1", "0.5", "1e400", "nan", "-3", "99999999999999999999999", "²", " ", "\x00"])

        @QUICK
        @given(st.text() | st.lists(pieces, max_size=20).map("".join) | S.json_values().map(json.dumps)
               | S.scalars)
        def check(text: Any) -> None:
            try:
                Resources.parse(text)
            except ValidationError:
                pass

        check()
        with self.assertRaises(ValidationError):
            Resources.parse("[" * 100_000)

    def test_recordio_decoder(self) -> None:
        """The RecordIO decoder yields records or raises ValueError for any bytes, however split."""
        frames = st.lists(st.binary(max_size=20).map(recordio.encode) | st.binary(max_size=30)
                          | st.sampled_from([b"\n", b"-1\n", b"99999999999999999999\n", b"\xd9\xa3\n", b"1" * 30]),
                          max_size=6).map(b"".join)

        @QUICK
        @given(data=frames, cuts=st.lists(st.integers(0, 200), max_size=5), limit=st.integers(0, 64))
        def check(data: bytes, cuts: list[int], limit: int) -> None:
            decoder = recordio.Decoder(max_record=limit)
            try:
                for piece in pieces(data, cuts):
                    for record in decoder.feed(piece):
                        self.assertLessEqual(len(record), limit)
            except ValueError:
                pass

        check()

    def test_deep_unknown_fields_are_refused(self) -> None:
        """Unknown fields are passed on as they came, so ones nested too deeply to re-encode are refused."""
        deep = S.nested(MAX_DEPTH + 1)
        for name, message in (("FrameworkInfo", {"user": "u", "name": "n", "labels": deep}),
                              ("TaskStatus", {"task_id": wrap("t"), "state": T.RUNNING, "labels": deep}),
                              ("TaskInfo", {"name": "t", "task_id": wrap("t"), "agent_id": wrap("a"),
                                            "command": {"value": "x", "uris": [{"value": "u", "x": deep}]}})):
            with self.assertRaises(ValidationError, msg=name):
                PARSERS[name](message)
        kept = FrameworkInfo.from_json({"user": "u", "name": "n", "labels": S.nested(MAX_DEPTH - 1)})

        def encode_deep_in_the_stack(frames: int) -> bytes:
            return json.dumps(kept.to_json()).encode() if frames == 0 else encode_deep_in_the_stack(frames - 1)

        encode_deep_in_the_stack(sys.getrecursionlimit() - 200)

    def test_numbers_out_of_range(self) -> None:
        """Integers beyond 64 bits, or that a float cannot hold, and non-ASCII digit strings are refused."""
        for grace in (10**400, -(10**400), 2**64, "1" * 5000, "²", "--5"):
            policy = {"grace_period": {"nanoseconds": grace}}
            call = api.call("fw", "KILL", {"task_id": wrap("t"), "kill_policy": policy})
            with self.assertRaises(ValidationError, msg=repr(grace)[:20]):
                api.parse_call(call)
        with self.assertRaises(ValidationError):
            FrameworkInfo.from_json({"user": "u", "name": "n", "failover_timeout": 10**400})
        self.assertEqual(api.parse_call(api.call("fw", "KILL", {"task_id": wrap("t"), "kill_policy": {
            "grace_period": {"nanoseconds": "1500000000"}}}))[1].grace_period, 1.5)


# -- 3. HTTP -------------------------------------------------------------------------------------------------------


class Reply:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split()
        self.code = int(status[1]) if len(status) > 1 else 0
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()


class HTTPFuzz(ClusterChecks):
    """Sends raw requests to a Site over an in-memory transport, on the cluster's clock."""

    def serve(self, router: Router) -> None:
        self.site = QuietSite(router, reactor=self.cluster.clock)  # as the daemons' Listener serves it
        self.site.displayTracebacks = False
        # Pull producers (file downloads) run on a cooperator driven by the same clock.
        cooperator = task.Cooperator(scheduler=lambda work: self.cluster.clock.callLater(0, work))
        self.patch(_producer_helpers, "cooperate", cooperator.cooperate)

    def open(self, raw: bytes) -> tuple[Any, StringTransport]:
        channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(raw)
        self.cluster.settle()
        return channel, transport

    def exchange(self, raw: bytes) -> Reply:
        channel, transport = self.open(raw)
        reply = Reply(transport.value())
        channel.connectionLost(Failure(ConnectionDone()))
        self.cluster.settle()
        return reply

    def assertAnswered(self, reply: Reply, method: str, raw: bytes) -> None:
        where = f"{raw[:300]!r} -> {reply.code} {reply.body[:300]!r}"
        self.assertTrue(reply.code, f"no answer: {where}")
        self.assertLess(reply.code, 500, where)
        if 400 <= reply.code < 500 and method != "HEAD":
            self.assertEqual(reply.headers.get("content-type"), "application/json", where)
            self.assertIsInstance(json.loads(reply.body)["message"], str, where)


class MasterHTTPFuzzTests(HTTPFuzz):
    def setUp(self) -> None:
        super().setUp()
        router = Router()
        MasterEndpoints(self.cluster.master, self.cluster.config.rendered()).install(router)
        SchedulerAPI(self.cluster.master, self.cluster.clock).install(router)
        self.serve(router)
        self.paths = router.routes()

    def subscribe(self) -> tuple[str, str]:
        """Subscribe a framework over HTTP; the stream stays open until the test ends."""
        body = S.encode(subscribe_call())
        channel, transport = self.open(b"POST /api/v1/scheduler HTTP/1.0\r\nContent-Type: application/json\r\n"
                                       + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        self.addCleanup(channel.connectionLost, Failure(ConnectionDone()))
        reply = Reply(transport.value())
        self.assertEqual(reply.code, 200, reply.body)
        event = json.loads(next(iter(recordio.Decoder().feed(reply.body))))
        return reply.headers["mesos-stream-id"], event["subscribed"]["framework_id"]["value"]

    def test_requests(self) -> None:
        """Any method, path, query, headers and body get an answer below 500; 4xx answers are JSON."""
        stream_id, framework_id = self.subscribe()
        offers = self.cluster.master.offers.of_framework(framework_id)
        weights = [[{"role": "web", "weight": 2.0}], [{"role": "*", "weight": 0.5}, {"role": "x", "weight": 1}]]
        bodies = http_bodies(scheduler_calls(framework_id, offers), [subscribe_call()], weights)
        values = S.scalars.map(str) | st.sampled_from([framework_id, "victim-task", self.victim.framework_id, "-1"])

        @settings(FUZZ, max_examples=120)
        @given(http_requests(self.paths, bodies, values, stream_id))
        def throw(request: tuple[str, bytes]) -> None:
            method, raw = request
            target = raw.split(b" ", 2)[1].split(b"?")[0].rstrip(b"/")
            assume(not (method == "PUT" and target in (b"/master/weights", b"/weights")))  # see test_put_weights
            self.assertAnswered(self.exchange(raw), method, raw)
            self.assertBooksBalance()

        throw()
        self.assertServes()

    def test_put_weights(self) -> None:
        """PUT /master/weights answers a body nested too deeply, or with a weight no float holds, with a 400."""
        self.addCleanup(self.flushLoggedErrors, RecursionError, OverflowError)  # the router logs each 500
        codes = []
        for body in (b"[" * 5000 + b"]" * 5000, b'[{"role": "web", "weight": 1' + b"0" * 400 + b"}]"):
            codes.append(self.exchange(b"PUT /master/weights HTTP/1.0\r\nContent-Length: %d\r\n\r\n" % len(body)
                                       + body).code)
        self.assertEqual(codes, [400, 400])


    def test_headers_that_are_not_utf8(self) -> None:
        """Header values that are not UTF-8 get a 4xx like any bad value, not a 500 or no answer at all."""
        body = S.encode(api.call(self.victim.framework_id, "REVIVE"))
        for name in (b"Content-Type", b"Accept", b"Authorization", b"Mesos-Stream-Id"):
            raw = (b"POST /api/v1/scheduler HTTP/1.0\r\nContent-Type: application/json\r\n" + name
                   + b": \xa0\xff\r\n" + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            reply = self.exchange(raw)
            self.assertAnswered(reply, "POST", raw)
            self.assertGreaterEqual(reply.code, 400, raw)
        # The router itself copes too, whatever request class the site uses.
        self.site = server.Site(self.site.resource, reactor=self.cluster.clock)
        reply = self.exchange(b"GET /master/state?jsonp=f HTTP/1.0\r\nContent-Type: \xa0\r\n\r\n")
        self.assertEqual(reply.code, 200, reply.body)


    def test_malformed_multipart_body(self) -> None:
        """A broken multipart POST body reaches the router (a JSON 415), not Twisted's bare 400 and hang-up."""
        raw = (b"POST /api/v1/scheduler HTTP/1.0\r\nContent-Type: multipart/form-data; boundary=x\r\n"
               b"Content-Length: 5\r\n\r\n--y\r\n")
        reply = self.exchange(raw)
        self.assertAnswered(reply, "POST", raw)
        self.assertEqual(reply.code, 415)


class FollowerHTTPFuzzTests(HTTPFuzz):
    def test_requests(self) -> None:
        """A master that does not lead answers any request below 500: a redirect to the leader, or 4xx JSON."""
        leader = MasterInfo("leader", "10.0.0.1", 5050, "leader.example")
        follower = self.cluster.standby("follower")
        routing = LeaderRouting(follower, lambda: leader)
        router = Router()
        MasterEndpoints(follower, follower.config.rendered(), routing).install(router)
        scheduler = SchedulerAPI(follower, self.cluster.clock)
        scheduler.not_leading = routing.not_leading
        scheduler.install(router)
        self.serve(router)
        bodies = http_bodies([subscribe_call()], scheduler_calls("M-0000", []))

        @FUZZ
        @given(http_requests(router.routes(), bodies, S.scalars.map(str)))
        def throw(request: tuple[str, bytes]) -> None:
            method, raw = request
            reply = self.exchange(raw)
            self.assertAnswered(reply, method, raw)
            if reply.code == 307:
                # the leader's root for /master/redirect (as Mesos: no path), the same path elsewhere
                location = reply.headers["location"]
                self.assertTrue(location == "//leader.example:5050" or location.startswith("//leader.example:5050/"),
                                reply.headers)

        throw()
        self.assertServes()


class AgentHTTPFuzzTests(HTTPFuzz):
    agents = 1
    SECRET = b"TOPSECRET-OUTSIDE-THE-SANDBOX"

    def setUp(self) -> None:
        base = tempfile.mkdtemp(prefix="mesostw-fuzz-")
        self.addCleanup(shutil.rmtree, base)
        self.base = base
        self.work_dir = os.path.join(base, "work")
        super().setUp()
        agent = self.cluster.agents[0]
        self.executor = next(iter(agent.executors()))
        sandbox = self.executor.directory
        os.makedirs(sandbox)
        with open(os.path.join(base, "secret"), "wb") as f:
            f.write(self.SECRET)
        with open(os.path.join(sandbox, "stdout"), "wb") as f:
            f.write(b"hello\n" * 100)
        os.symlink(os.path.join(base, "secret"), os.path.join(sandbox, "escape"))
        os.symlink(base, os.path.join(sandbox, "escape-dir"))
        os.mkfifo(os.path.join(sandbox, "fifo"))
        router = Router()
        AgentEndpoints(agent, self.cluster.agent_config.rendered()).install(router)
        ExecutorAPI(agent).install(router)
        SandboxFiles(os.path.join(self.work_dir, "slaves")).install(router)
        self.serve(router)
        self.paths = router.routes()

    def test_requests(self) -> None:
        """Any request to the agent gets an answer below 500, JSON for 4xx, and never a byte from outside."""
        executor = self.executor
        prefixes = st.sampled_from([executor.directory, os.path.join(self.work_dir, "slaves"), self.work_dir,
                                    self.base, "/etc/passwd", "/proc/self/environ", "", "relative"])
        paths = st.tuples(prefixes, st.sampled_from(["", "/", "/stdout", "/escape", "/escape-dir/secret", "/fifo",
                                                     "/..", "/../../secret", "/./stdout"]) | S.path_chars(12))
        values = paths.map("".join) | S.scalars.map(str)
        subscribe = xapi.subscribe_call(executor.framework_id, executor.id, [], [])
        bodies = http_bodies(executor_calls(executor.framework_id, executor.id, "victim-task"), [subscribe])

        @settings(FUZZ, max_examples=120)
        @given(http_requests(self.paths, bodies, values))
        def throw(request: tuple[str, bytes]) -> None:
            method, raw = request
            reply = self.exchange(raw)
            self.assertAnswered(reply, method, raw)
            self.assertNotIn(self.SECRET, reply.body)
            self.assertNotIn(quote(self.SECRET).encode(), reply.body)

        throw()
        self.assertServes()


class PortSwitchFuzzTests(ClockTestCase):
    def test_first_bytes(self) -> None:
        """Whatever the first bytes and however they are split, exactly one protocol gets them all."""

        class Recorder(protocol.Protocol):
            def __init__(self) -> None:
                self.data, self.lost = b"", False

            def dataReceived(self, data: bytes) -> None:
                self.data += data

            def connectionLost(self, reason: Any = None) -> None:
                self.lost = True

        class Factory(protocol.Factory):
            def __init__(self) -> None:
                self.built: list[Recorder] = []

            def buildProtocol(self, addr: Any) -> Recorder:
                self.built.append(Recorder())
                return self.built[-1]

        prefixes = st.integers(0, len(PREAMBLE)).map(lambda n: PREAMBLE[:n])
        firsts = st.one_of(st.binary(max_size=40), st.tuples(prefixes, st.binary(max_size=12)).map(b"".join),
                           st.binary(max_size=12).map(lambda rest: PREAMBLE + rest), st.just(b"GET / HTTP/1.0\r\n"))

        @QUICK
        @given(data=firsts, cuts=st.lists(st.integers(0, 60), max_size=6), idle=st.booleans())
        def check(data: bytes, cuts: list[int], idle: bool) -> None:
            clock, http, pb_factory = task.Clock(), Factory(), Factory()
            switch = PortSwitchFactory(http, pb_factory).buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
            switch.callLater = clock.callLater
            transport = StringTransport()
            switch.makeConnection(transport)
            for piece in pieces(data, cuts):
                switch.dataReceived(piece)
            built = http.built + pb_factory.built
            if data.startswith(PREAMBLE):
                self.assertEqual((len(http.built), len(pb_factory.built)), (0, 1))
                self.assertEqual(built[0].data, data[len(PREAMBLE):])
            elif PREAMBLE.startswith(data):
                self.assertEqual(built, [])  # undecided until more comes, or the sniff timeout
                if idle:
                    clock.advance(SNIFF_TIMEOUT)
                    self.assertTrue(transport.disconnecting)
            else:
                self.assertEqual((len(http.built), len(pb_factory.built)), (1, 0))
                self.assertEqual(built[0].data, data)
            switch.connectionLost(Failure(ConnectionDone()))
            self.assertTrue(all(p.lost for p in built))
            self.assertClockIdle(clock)

        check()


# -- 4. memory bounds ----------------------------------------------------------------------------------------------


def padded(message: dict[str, Any], size: int) -> bytes:
    """Valid JSON of ``message`` padded with whitespace to ``size`` bytes: accepted if it were processed."""
    encoded = S.encode(message)
    return encoded[:-1] + b" " * (size - len(encoded)) + encoded[-1:]


class MemoryBoundTests(ClusterChecks):
    def request(self, router: Router, method: bytes, uri: bytes, content: io.BytesIO,
                content_type: bytes = b"application/json") -> Reply:
        """Render one request straight into ``router``, past Twisted's line and header limits."""
        channel = DummyChannel()
        channel.site = server.Site(router)
        request = LeanRequest(channel, False)
        request.content = content
        request.requestHeaders.setRawHeaders(b"content-type", [content_type])
        request.requestReceived(method, uri, b"HTTP/1.0")
        self.cluster.settle()
        return Reply(channel.transport.written.getvalue())

    def test_pb_payload_over_limit(self) -> None:
        """A PB payload over MAX_INCOMING is refused whole, on every entry point, before it is decoded, whether
        it comes as one string or in pieces."""
        oversize = MAX_INCOMING + 1
        connection, _ = self.connection()
        subscriber, _ = self.connection()
        remote_outcome(self.cluster, connection.remote_registerAgent, FakeRemote(),
                       S.encode(internal.registration(agent_info(), "1")))
        self.assertIsNotNone(connection.agent_id)
        agent = self.cluster.agents[0]
        executor_connection = ExecutorConnection(agent, FakeBroker(), self.cluster.clock)
        before = (len(self.cluster.master.agents), len(self.cluster.master.frameworks))
        for method, payload in (
                (lambda p: connection.remote_reregisterAgent(FakeRemote(), p), reregistration("fuzz-S9", "fw")),
                (lambda p: subscriber.remote_subscribe(FakeRemote(), p), subscribe_call()),
                (connection.remote_messages, {"list": [internal.unregister_agent()]}),
                (AgentRemote(agent).remote_messages, {"list": [internal.agent_removed("bye")]}),
                (lambda p: executor_connection.remote_subscribe(FakeRemote(), p),
                 xapi.subscribe_call("fw", "ex", [], []))):
            payload = padded(payload["list"] if "list" in payload else payload, oversize) \
                if "list" not in payload else b"[" + padded(payload["list"][0], oversize - 2) + b"]"
            self.assertGreater(len(payload), MAX_INCOMING)
            for form in (payload, wire_pieces(payload)):
                with self.assertRaises(pb.Error) as caught:
                    method(form)
                self.assertIn("larger than", str(caught.exception))
        self.cluster.settle()
        self.assertEqual((len(self.cluster.master.agents), len(self.cluster.master.frameworks)), before)
        self.assertIsNotNone(agent.master)
        self.assertServes()

    def test_pieces(self) -> None:
        """A payload larger than one Banana string goes in pieces no longer than MAX_PAYLOAD, which decode joins;
        a list that is not of byte strings is refused like any payload that is not JSON bytes."""
        message = {"data": "x" * (3 * MAX_PAYLOAD)}
        sent = wire_pieces(S.encode(message))
        self.assertIsInstance(sent, list)
        self.assertEqual([len(piece) <= MAX_PAYLOAD for piece in sent], [True] * 4)
        self.assertEqual(decode(sent), message)
        self.assertEqual(wire_pieces(b"[]"), b"[]")
        for junk in ([], [b"[", "]"], [b"[", None], [[b"[]"]]):
            with self.assertRaises(ValidationError):
                decode(junk)

    def test_http_body_over_limit(self) -> None:
        """A scheduler Call body over MAX_CALL_BYTES is answered 413 and never decoded."""
        router = Router()
        SchedulerAPI(self.cluster.master, self.cluster.clock).install(router)
        frameworks = len(self.cluster.master.frameworks)
        body = io.BytesIO(padded(subscribe_call(), scheduler_http.MAX_CALL_BYTES + 1))
        reply = self.request(router, b"POST", b"/api/v1/scheduler", body)
        self.assertEqual(reply.code, 413, reply.body)
        self.assertIn("larger than", json.loads(reply.body)["message"])
        self.assertEqual(len(self.cluster.master.frameworks), frameworks)
        self.assertServes()

    def test_query_over_limit(self) -> None:
        """A query string over the router's MAX_QUERY is answered 414, a form body over it 413."""
        router = Router()
        MasterEndpoints(self.cluster.master, self.cluster.config.rendered()).install(router)
        reply = self.request(router, b"GET", b"/master/tasks?limit=1&x=" + b"x" * MAX_QUERY, io.BytesIO())
        self.assertEqual(reply.code, 414, reply.body)
        self.assertIn("message", json.loads(reply.body))
        form = io.BytesIO(b"frameworkId=" + self.victim.framework_id.encode() + b"&x=" + b"x" * MAX_QUERY)
        reply = self.request(router, b"POST", b"/master/teardown", form, b"application/x-www-form-urlencoded")
        self.assertEqual(reply.code, 413, reply.body)
        self.assertIn(self.victim.framework_id, self.cluster.master.frameworks)
        self.assertServes()

    def test_header_block_over_limit(self) -> None:
        """A header line or block over Twisted's 16 KiB limits is refused before any endpoint runs."""
        router = Router()
        router.route("/api/v1/scheduler", lambda request: self.fail("reached the endpoint"), methods=("POST",))
        site = server.Site(router, reactor=self.cluster.clock)
        for headers, answer in ((b"X-Big: " + b"x" * HEADER_BLOCK + b"\r\n", b""),
                                ((b"X-Big: " + b"x" * 4000 + b"\r\n") * 5, b"HTTP/1.1 400 Bad Request\r\n\r\n")):
            channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
            transport = StringTransport()
            channel.makeConnection(transport)
            channel.dataReceived(b"POST /api/v1/scheduler HTTP/1.0\r\n" + headers + b"\r\n")
            self.cluster.settle()
            self.assertEqual(transport.value(), answer)
            self.assertTrue(transport.disconnecting)
            channel.connectionLost(Failure(ConnectionDone()))

    def test_batches_over_max_batch_are_refused(self) -> None:
        """A batch of more than MAX_BATCH items is refused whole, and Batcher never sends one."""
        agent, _ = self.connection()
        remote_outcome(self.cluster, agent.remote_registerAgent, FakeRemote(),
                       S.encode(internal.registration(agent_info(), "1")))
        framework, _ = self.connection()
        remote_outcome(self.cluster, framework.remote_subscribe, FakeRemote(), S.encode(subscribe_call()))
        junk = S.encode([0] * (MAX_BATCH + 1))
        for method in (agent.remote_messages, framework.remote_calls,
                       AgentRemote(self.cluster.agents[0]).remote_messages):
            with self.assertRaises(pb.Error) as caught:
                method(junk)
            self.assertIn(f"more than {MAX_BATCH} items", str(caught.exception))
        self.assertEqual(self.cluster.master.metrics["invalid_messages"], 0)
        batches = split([internal.unregister_agent()] * (2 * MAX_BATCH + 1))
        sizes = [len(decode(b)) for b in batches]
        self.assertEqual((sum(sizes), max(sizes)), (2 * MAX_BATCH + 1, MAX_BATCH))
        self.assertServes()

    def test_a_batch_of_junk_costs_one_log_line_and_a_bounded_answer(self) -> None:
        """Thousands of malformed messages or calls in one batch log one line and answer at most MAX_ERRORS."""
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        junk = S.encode([0] * 10_000)
        agent, _ = self.connection()
        remote_outcome(self.cluster, agent.remote_registerAgent, FakeRemote(),
                       S.encode(internal.registration(agent_info(), "1")))
        agent.remote_messages(junk)
        self.assertEqual(self.cluster.master.metrics["invalid_messages"], 10_000)
        AgentRemote(self.cluster.agents[0]).remote_messages(junk)
        warnings = [e for e in events if e.get("log_level") == LogLevel.warn and "malformed" in e["log_format"]]
        self.assertEqual(len(warnings), 2, warnings)
        framework, _ = self.connection()
        remote_outcome(self.cluster, framework.remote_subscribe, FakeRemote(), S.encode(subscribe_call()))
        answer = json.loads(framework.remote_calls(junk))
        self.assertEqual(len(answer), MAX_ERRORS + 1)
        self.assertEqual(answer[-1], f"... and {10_000 - MAX_ERRORS} more refused calls")
        self.assertServes()

    def test_list_over_max_items(self) -> None:
        """A list longer than the Reader's max_items is refused as a whole, before any item is read."""
        reader = Reader({"items": [0] * 11}, "m")
        self.assertEqual(reader.list("items", max_items=10), [])
        self.assertIn("m.items must have at most 10 items", reader.errors)
        too_many = [wrap(f"o{i}") for i in range(100_001)]
        with self.assertRaises(ValidationError) as caught:
            api.parse_call(api.call("fw", "DECLINE", {"offer_ids": too_many}))
        self.assertIn("at most 100000 items", str(caught.exception))
        with self.assertRaises(ValidationError):
            FrameworkInfo.from_json({"user": "u", "name": "n", "roles": ["r"] * 65})
        with self.assertRaises(ValidationError):
            Resources.from_json([{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}] * 10_001)
