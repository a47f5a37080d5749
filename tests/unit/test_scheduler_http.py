"""The v1 scheduler HTTP API (``/api/v1/scheduler``) over real HTTP/1.1 parsing, against an in-process cluster.

Requests go to a twisted.web Site through a StringTransport; SUBSCRIBE's chunked
response stays open and its RecordIO events are decoded as they arrive. The Site,
the heartbeats and the cluster all run on the cluster's ``task.Clock``.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web import server

from mesostw.http import recordio
from mesostw.http.router import HTTPError, Router
from mesostw.master.scheduler_http import HTTPFrameworkLink, SchedulerAPI
from mesostw.model import task as T
from mesostw.model.resources import Resources
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import Cluster, command_task

JSON = "application/json"
PATH = "/api/v1/scheduler"
HEARTBEAT = 15.0

# -- an HTTP/1.1 client on an in-memory transport ------------------------------------------------------


class Exchange:
    """One HTTP/1.1 request on its own connection, with the response parsed as it arrives.

    A chunked body is de-chunked and fed to :class:`recordio.Decoder`, so an open
    stream yields its events one by one; a body with a Content-Length is kept whole.
    """

    def __init__(self, site: server.Site, method: str, path: str, body: bytes = b"",
                 headers: dict[str, str] | None = None) -> None:
        self.method = method
        self.transport = StringTransport()
        self.channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.channel.makeConnection(self.transport)
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1:5050", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.code: int | None = None
        self.headers: dict[str, str] = {}
        self.body = b""
        self.events: list[dict[str, Any]] = []
        self._ended = False
        self.dropped = False
        self._seen = 0
        self._buffer = b""
        self._decoder = recordio.Decoder()
        self.channel.dataReceived(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    @property
    def ended(self) -> bool:
        """Whether the whole response has arrived (a chunked one ends with its zero-length chunk)."""
        self.poll()
        return self._ended

    @property
    def chunked(self) -> bool:
        return self.headers.get("transfer-encoding", "").lower() == "chunked"

    def poll(self) -> list[dict[str, Any]]:
        """Parse whatever the server wrote since the last poll; return the new events."""
        data = self.transport.value()[self._seen:]
        self._seen += len(data)
        self._buffer += data
        if self.code is None:
            if b"\r\n\r\n" not in self._buffer:
                return []
            head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            self.code = int(lines[0].split()[1])
            for line in lines[1:]:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
        if not self.chunked:
            self.body += self._buffer
            self._buffer = b""
            expected = 0 if self.method == "HEAD" else int(self.headers.get("content-length", "0"))
            if len(self.body) >= expected:
                self._ended = True
            return []
        new = []
        while not self._ended:
            line_end = self._buffer.find(b"\r\n")
            if line_end < 0:
                break
            size = int(self._buffer[:line_end].split(b";")[0], 16)
            if size == 0:
                if self._buffer[line_end + 2:line_end + 4] == b"\r\n":
                    self._ended = True
                    self._buffer = self._buffer[line_end + 4:]
                break
            start, end = line_end + 2, line_end + 2 + size
            if len(self._buffer) < end + 2:
                break
            assert self._buffer[end:end + 2] == b"\r\n", "a chunk must end with CRLF"
            chunk, self._buffer = self._buffer[start:end], self._buffer[end + 2:]
            self.body += chunk
            new.extend(json.loads(record) for record in self._decoder.feed(chunk))
        self.events.extend(new)
        return new

    def json(self) -> Any:
        return json.loads(self.body)

    def types(self) -> list[str]:
        self.poll()
        return [event["type"] for event in self.events]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        self.poll()
        return [event for event in self.events if event["type"] == kind]

    def drop(self) -> None:
        """The client closes its end of the connection."""
        if not self.dropped:
            self.dropped = True
            self.channel.connectionLost(Failure(ConnectionDone()))


class HTTPTestCase(ClockTestCase):
    """Holds a cluster and a Site on its clock, and drops every connection at teardown; no timer
    (heartbeats, HTTP timeouts) may be left on the clock."""

    def start(self, agents: int = 1, **flags: Any) -> None:
        self.cluster = Cluster(agents=agents, **flags)
        self.clock = self.useClock(self.cluster.clock)
        self.router = Router()
        self.site = server.Site(self.router, reactor=self.clock)
        self.exchanges: list[Exchange] = []
        # Bound to this cluster: a test may start another one, and both must stop.
        self.addCleanup(self._stop, self.cluster, self.exchanges)

    def _stop(self, cluster: Cluster, exchanges: list[Exchange]) -> None:
        for exchange in exchanges:
            exchange.drop()
        cluster.settle()
        cluster.stop()

    def open(self, method: str, body: Any = b"", path: str = PATH, headers: dict[str, str] | None = None,
             content_type: str | None = JSON) -> Exchange:
        """Send a request and settle the cluster; the response may stay open."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        all_headers = {"Content-Type": content_type} if content_type is not None else {}
        all_headers.update(headers or {})
        exchange = Exchange(self.site, method, path, raw, all_headers)
        self.exchanges.append(exchange)
        self.cluster.settle()
        exchange.poll()
        return exchange

    def request(self, method: str, body: Any = b"", **kwargs: Any) -> Exchange:
        """Send a request whose response must be complete."""
        exchange = self.open(method, body, **kwargs)
        self.assertTrue(exchange.ended, f"the response did not end: {exchange.transport.value()!r}")
        return exchange

    def assertRefused(self, exchange: Exchange, code: int, *fragments: str) -> str:
        """A JSON error answer with ``code`` whose message names every fragment."""
        self.assertEqual(exchange.code, code, exchange.body)
        self.assertEqual(exchange.headers["content-type"], JSON)
        message = exchange.json()["message"]
        for fragment in fragments:
            self.assertIn(fragment, message)
        return message


def framework_info(name: str = "http-fw", **extra: Any) -> dict[str, Any]:
    return {"user": "nobody", "name": name, **extra}


def subscribe_call(info: dict[str, Any] | None = None, framework_id: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info or framework_info()}}
    if framework_id is not None:
        call["framework_id"] = {"value": framework_id}
        call["subscribe"]["framework_info"] = {**call["subscribe"]["framework_info"], "id": {"value": framework_id}}
    return call


def launch_operation(*tasks: dict[str, Any]) -> dict[str, Any]:
    return {"type": "LAUNCH", "launch": {"task_infos": list(tasks)}}


class SchedulerAPITestCase(HTTPTestCase):
    """A cluster with one agent and the scheduler API installed on the Site."""

    def setUp(self) -> None:
        self.start()

    def start(self, agents: int = 1, **flags: Any) -> None:
        super().start(agents, **flags)
        self.api = SchedulerAPI(self.cluster.master, self.clock)
        self.api.install(self.router)

    def subscribe(self, info: dict[str, Any] | None = None, framework_id: str | None = None,
                  path: str = PATH) -> Exchange:
        """SUBSCRIBE as pymesos does; the stream must be open with SUBSCRIBED first."""
        stream = self.open("POST", subscribe_call(info, framework_id), path=path,
                           headers={"Accept": JSON, "Connection": "close"})
        self.assertEqual(stream.code, 200, stream.body)
        self.assertFalse(stream.ended)
        self.assertEqual(len(stream.of_type("SUBSCRIBED")), 1, stream.events)
        return stream

    def framework_id(self, stream: Exchange) -> str:
        return stream.of_type("SUBSCRIBED")[0]["subscribed"]["framework_id"]["value"]

    def call(self, stream: Exchange, kind: str, body: dict[str, Any] | None = None,
             stream_id: str | None = None, **extra: Any) -> Exchange:
        """Send a non-SUBSCRIBE call for the stream's framework on a connection of its own."""
        call: dict[str, Any] = {"type": kind, "framework_id": {"value": self.framework_id(stream)}, **extra}
        if body is not None:
            call[kind.lower()] = body
        sid = stream.headers["mesos-stream-id"] if stream_id is None else stream_id
        return self.request("POST", call, headers={"Mesos-Stream-Id": sid, "Accept": JSON})

    def accepted(self, exchange: Exchange) -> None:
        self.assertEqual(exchange.code, 202, exchange.body)
        self.assertEqual(exchange.body, b"")

    def offers(self, stream: Exchange) -> list[dict[str, Any]]:
        return [offer for event in stream.of_type("OFFERS") for offer in event["offers"]["offers"]]

    def launch(self, stream: Exchange, command: str = "sleep 1000", task_id: str = "t1") -> dict[str, Any]:
        """ACCEPT the latest offer with one command task; returns that offer."""
        offer = self.offers(stream)[-1]
        task = command_task(task_id, command)
        task["agent_id"] = offer["agent_id"]
        self.accepted(self.call(stream, "ACCEPT", {"offer_ids": [offer["id"]],
                                                   "operations": [launch_operation(task)]}))
        return offer

    def updates(self, stream: Exchange, task_id: str | None = None) -> list[dict[str, Any]]:
        return [e["update"]["status"] for e in stream.of_type("UPDATE")
                if task_id is None or e["update"]["status"]["task_id"]["value"] == task_id]

    def acknowledge(self, stream: Exchange, status: dict[str, Any]) -> Exchange:
        return self.call(stream, "ACKNOWLEDGE", {"agent_id": status["agent_id"], "task_id": status["task_id"],
                                                 "uuid": status["uuid"]})


# -- the order of checks and the refusals ------------------------------------------------------------------


class RequestChecksTests(SchedulerAPITestCase):
    def test_routes(self) -> None:
        """install() serves both /api/v1/scheduler and /master/api/v1/scheduler."""
        self.assertEqual(self.router.routes(), ["/api/v1/scheduler", "/master/api/v1/scheduler"])

    def test_subscribe_on_master_prefixed_path(self) -> None:
        """/master/api/v1/scheduler is the same endpoint as /api/v1/scheduler."""
        stream = self.subscribe(path="/master/api/v1/scheduler")
        self.assertIn(self.framework_id(stream), self.cluster.master.frameworks)

    def test_get_and_put_are_405_with_allow(self) -> None:
        """Methods other than POST get 405 and an Allow header naming POST."""
        for method in ("GET", "PUT", "DELETE"):
            reply = self.request(method, subscribe_call())
            self.assertRefused(reply, 405, method)
            self.assertEqual(reply.headers["allow"], "POST")

    def test_missing_content_type_is_400(self) -> None:
        """A call without Content-Type is refused with 400 before its body is looked at."""
        reply = self.request("POST", b"not even json", content_type=None)
        self.assertRefused(reply, 400, "Content-Type")

    def test_protobuf_is_415_with_clear_message(self) -> None:
        """application/x-protobuf gets 415 saying that only JSON is supported."""
        reply = self.request("POST", b"\x08\x01", content_type="application/x-protobuf")
        message = self.assertRefused(reply, 415, "application/x-protobuf", "application/json")
        self.assertIn("not supported", message)

    def test_other_content_types_are_415(self) -> None:
        """Any other media type is 415, even with a JSON body."""
        for content_type in ("text/plain", "application/xml", "application/x-www-form-urlencoded"):
            reply = self.request("POST", subscribe_call(), content_type=content_type)
            self.assertRefused(reply, 415, "Content-Type")

    def test_content_type_parameters_and_case_are_ignored(self) -> None:
        """'Application/JSON; charset=utf-8' is JSON."""
        stream = self.open("POST", subscribe_call(), content_type="Application/JSON; charset=utf-8")
        self.assertEqual(stream.code, 200, stream.body)

    def test_accept_without_json_is_406(self) -> None:
        """An Accept header that excludes JSON gets 406."""
        for accept in ("text/html", "application/x-protobuf", "application/json;q=0", "*/*;q=0"):
            reply = self.request("POST", subscribe_call(), headers={"Accept": accept})
            self.assertRefused(reply, 406, "Accept")

    def test_accept_allowing_json(self) -> None:
        """Wildcards and JSON among other types are acceptable."""
        for accept in ("*/*", "application/*", "text/html, application/json;q=0.5", "application/json"):
            reply = self.open("POST", subscribe_call(framework_info(name=accept)), headers={"Accept": accept})
            self.assertEqual(reply.code, 200, (accept, reply.body))

    def test_malformed_json_is_400_readable(self) -> None:
        """A body that is not JSON gets 400 with a readable message."""
        reply = self.request("POST", b'{"type": "SUBSCRIBE",')
        self.assertRefused(reply, 400, "not valid JSON")

    def test_body_decoded_before_accept(self) -> None:
        """As Mesos: an undecodable body is 400 even when Accept would also be refused."""
        reply = self.request("POST", b"{", headers={"Accept": "text/html"})
        self.assertRefused(reply, 400)

    def test_content_type_checked_before_body(self) -> None:
        """As Mesos: an unknown content type is 415 even with an undecodable body."""
        reply = self.request("POST", b"{", content_type="text/plain")
        self.assertRefused(reply, 415)

    def test_unknown_call_type_is_400(self) -> None:
        """An unknown call type gets 400 naming the field and the bad value."""
        reply = self.request("POST", {"type": "LAUNCH_ROCKETS", "framework_id": {"value": "x"}})
        self.assertRefused(reply, 400, "type", "LAUNCH_ROCKETS")

    def test_not_an_object_is_400(self) -> None:
        """A JSON array is not a Call."""
        self.assertRefused(self.request("POST", [1, 2]), 400, "must be an object")

    def test_subscribe_without_framework_info_is_400(self) -> None:
        """SUBSCRIBE needs subscribe.framework_info."""
        reply = self.request("POST", {"type": "SUBSCRIBE", "subscribe": {}})
        self.assertRefused(reply, 400, "framework_info", "required")

    def test_accept_without_body_lists_every_problem(self) -> None:
        """An ACCEPT with no accept body and no framework_id gets one 400 naming both problems."""
        reply = self.request("POST", {"type": "ACCEPT"}, headers={"Mesos-Stream-Id": "x"})
        self.assertRefused(reply, 400, "accept is required", "framework_id is required")

    def test_subscribe_with_stream_id_is_400(self) -> None:
        """A SUBSCRIBE carrying Mesos-Stream-Id is refused."""
        reply = self.request("POST", subscribe_call(), headers={"Mesos-Stream-Id": str(uuid.uuid4())})
        self.assertRefused(reply, 400, "Mesos-Stream-Id")
        self.assertEqual(self.cluster.master.frameworks, {})

    def test_call_without_framework_id_is_400(self) -> None:
        """A non-SUBSCRIBE call must name its framework."""
        reply = self.request("POST", {"type": "REVIVE"}, headers={"Mesos-Stream-Id": "x"})
        self.assertRefused(reply, 400, "framework_id")

    def test_unknown_framework_is_400(self) -> None:
        """A call for a framework the master does not know gets 400."""
        reply = self.request("POST", {"type": "REVIVE", "framework_id": {"value": "nope"}},
                             headers={"Mesos-Stream-Id": str(uuid.uuid4())})
        self.assertRefused(reply, 400, "nope")

    def test_framework_not_on_http_is_403(self) -> None:
        """A framework subscribed through a local (non-HTTP) driver cannot be driven over HTTP."""
        scheduler, driver = self.cluster.framework("local")
        self.addCleanup(driver.stop)
        reply = self.request("POST", {"type": "REVIVE", "framework_id": {"value": scheduler.framework_id}},
                             headers={"Mesos-Stream-Id": str(uuid.uuid4())})
        self.assertRefused(reply, 403, "HTTP")

    def test_disconnected_framework_is_403(self) -> None:
        """A framework whose stream closed (still within its failover timeout) is not subscribed: 403."""
        stream = self.subscribe(framework_info(failover_timeout=3600.0))
        stream.drop()
        self.cluster.settle()
        reply = self.call(stream, "REVIVE")
        self.assertRefused(reply, 403, "not subscribed")

    def test_missing_stream_id_is_400(self) -> None:
        """A non-SUBSCRIBE call without Mesos-Stream-Id is refused."""
        stream = self.subscribe()
        reply = self.request("POST", {"type": "REVIVE", "framework_id": {"value": self.framework_id(stream)}})
        self.assertRefused(reply, 400, "Mesos-Stream-Id")

    def test_wrong_stream_id_is_400(self) -> None:
        """A non-SUBSCRIBE call with another stream's ID is refused and does nothing."""
        stream = self.subscribe()
        framework = self.cluster.master.frameworks[self.framework_id(stream)]
        reply = self.call(stream, "SUPPRESS", stream_id=str(uuid.uuid4()))
        self.assertRefused(reply, 400, "stream ID")
        self.assertFalse(framework.suppressed)

    def test_success_is_202_empty(self) -> None:
        """An accepted call is answered 202 with an empty body."""
        stream = self.subscribe()
        reply = self.call(stream, "REVIVE")
        self.accepted(reply)
        self.assertEqual(reply.headers["content-length"], "0")

    def test_not_leading_redirects(self) -> None:
        """When the not_leading hook answers 307, the response is 307 with its Location."""
        location = "//leader.example:5050/api/v1/scheduler"
        self.api.not_leading = lambda request: HTTPError(307, "Not the leading master", {"Location": location})
        reply = self.request("POST", subscribe_call())
        self.assertRefused(reply, 307, "leading")
        self.assertEqual(reply.headers["location"], location)
        self.assertEqual(self.cluster.master.frameworks, {})

    def test_head_is_405_without_body(self) -> None:
        """HEAD is refused like any other non-POST method, with headers only."""
        reply = self.request("HEAD", b"")
        self.assertEqual(reply.code, 405)
        self.assertEqual(reply.headers["allow"], "POST")
        self.assertEqual(reply.body, b"")

    def test_not_leading_redirects_before_405(self) -> None:
        """As Mesos: a non-leading master redirects even a GET, before refusing the method."""
        location = "//leader.example:5050/api/v1/scheduler"
        self.api.not_leading = lambda request: HTTPError(307, "Not the leading master", {"Location": location})
        reply = self.request("GET", b"")
        self.assertRefused(reply, 307)
        self.assertEqual(reply.headers["location"], location)

    def test_not_leading_comes_first(self) -> None:
        """The leadership hook answers before any other check (here a missing Content-Type)."""
        self.api.not_leading = lambda request: HTTPError(503, "No leader elected")
        self.assertRefused(self.request("POST", b"", content_type=None), 503, "leader")


# -- RecordIO ------------------------------------------------------------------------------------------------


class RecordIODecoderTests(unittest.TestCase):
    def test_round_trip_byte_by_byte(self) -> None:
        """Records split at every byte boundary come out whole and in order."""
        events = [{"type": "SUBSCRIBED"}, {"type": "HEARTBEAT"}, {"type": "MESSAGE", "data": "line\nbreak ü"}]
        wire = b"".join(recordio.encode_json(e) for e in events)
        decoder = recordio.Decoder()
        out = [json.loads(record) for i in range(len(wire)) for record in decoder.feed(wire[i:i + 1])]
        self.assertEqual(out, events)

    def test_several_records_in_one_feed(self) -> None:
        """One feed may carry several records and the start of the next."""
        decoder = recordio.Decoder()
        self.assertEqual(list(decoder.feed(b"1\na2\nbc3\nd")), [b"a", b"bc"])
        self.assertEqual(list(decoder.feed(b"ef")), [b"def"])

    def test_length_counts_bytes(self) -> None:
        """The length prefix counts UTF-8 bytes, not characters."""
        self.assertEqual(recordio.encode_json("é"), b'8\n"\\u00e9"')
        self.assertEqual(recordio.encode("é".encode()), b"2\n\xc3\xa9")

    def test_bad_length_prefix(self) -> None:
        """A prefix that is not a decimal number is an error."""
        with self.assertRaises(ValueError):
            list(recordio.Decoder().feed(b"12a\n{}"))
        with self.assertRaises(ValueError):
            list(recordio.Decoder().feed(b"-1\n"))

    def test_endless_prefix(self) -> None:
        """A prefix that never ends with a newline is refused once it is longer than any uint64."""
        with self.assertRaises(ValueError):
            list(recordio.Decoder().feed(b"1" * 21))

    def test_record_too_large(self) -> None:
        """A record longer than the decoder's limit is refused before it is buffered."""
        with self.assertRaises(ValueError):
            list(recordio.Decoder(max_record=10).feed(b"11\n"))


# -- SUBSCRIBE and the event stream ---------------------------------------------------------------------------


class SubscribeTests(SchedulerAPITestCase):
    def test_subscribed_first(self) -> None:
        """SUBSCRIBE: 200, JSON, a UUID stream ID and a chunked RecordIO body starting with SUBSCRIBED."""
        stream = self.subscribe()
        self.assertEqual(stream.headers["content-type"], JSON)
        self.assertEqual(stream.headers["transfer-encoding"], "chunked")
        self.assertEqual(str(uuid.UUID(stream.headers["mesos-stream-id"])), stream.headers["mesos-stream-id"])
        self.assertLessEqual(len(stream.headers["mesos-stream-id"]), 128)
        self.assertEqual(stream.events[0]["type"], "SUBSCRIBED")
        subscribed = stream.events[0]["subscribed"]
        framework_id = subscribed["framework_id"]["value"]
        self.assertIn(framework_id, self.cluster.master.frameworks)
        self.assertEqual(subscribed["heartbeat_interval_seconds"], 15.0)
        master = subscribed["master_info"]
        self.assertEqual(master["id"], "M")
        self.assertEqual(master["address"]["ip"], self.cluster.master.info.ip)
        self.assertEqual(master["address"]["port"], 5050)
        self.assertEqual(master["port"], 5050)
        self.assertIsInstance(master["hostname"], str)

    def test_body_is_exact_recordio(self) -> None:
        """The de-chunked body is exactly the RecordIO encoding of the events, nothing else."""
        stream = self.subscribe()
        self.assertEqual(stream.body, b"".join(recordio.encode_json(event) for event in stream.events))

    def test_stream_ids_differ(self) -> None:
        """Every subscription gets a fresh stream ID."""
        one, two = self.subscribe(framework_info("a")), self.subscribe(framework_info("b"))
        self.assertNotEqual(one.headers["mesos-stream-id"], two.headers["mesos-stream-id"])
        self.assertNotEqual(self.framework_id(one), self.framework_id(two))

    def test_framework_is_linked_over_http(self) -> None:
        """The master's framework record holds an HTTPFrameworkLink with the stream's ID."""
        stream = self.subscribe()
        framework = self.cluster.master.frameworks[self.framework_id(stream)]
        self.assertIsInstance(framework.link, HTTPFrameworkLink)
        self.assertEqual(framework.link.stream_id, stream.headers["mesos-stream-id"])
        self.assertTrue(framework.connected)
        self.assertTrue(framework.active)

    def test_offers_follow_on_the_stream(self) -> None:
        """OFFERS for the agent's resources arrive on the same stream after SUBSCRIBED."""
        stream = self.subscribe()
        self.assertEqual(stream.types()[:2], ["SUBSCRIBED", "OFFERS"])
        offers = self.offers(stream)
        self.assertEqual(len(offers), 1)
        offer = offers[0]
        self.assertEqual(offer["framework_id"]["value"], self.framework_id(stream))
        self.assertEqual(offer["agent_id"]["value"], self.cluster.agents[0].id)
        self.assertIsNotNone(self.cluster.master.offers.get(offer["id"]["value"]))
        self.assertEqual(Resources.from_json(offer["resources"]), self.cluster.agents[0].info.resources)

    def test_heartbeats_every_interval(self) -> None:
        """HEARTBEAT events arrive every 15 s of clock time, and not before."""
        stream = self.subscribe()
        self.cluster.advance(HEARTBEAT - 1)
        self.assertEqual(stream.of_type("HEARTBEAT"), [])
        self.cluster.advance(1)
        self.assertEqual(stream.of_type("HEARTBEAT"), [{"type": "HEARTBEAT"}])
        self.cluster.advance(2 * HEARTBEAT, step=HEARTBEAT)
        self.assertEqual(len(stream.of_type("HEARTBEAT")), 3)

    def test_custom_heartbeat_interval(self) -> None:
        """The heartbeat interval comes from the SchedulerAPI."""
        self.api.heartbeat = 5.0
        stream = self.subscribe()
        self.cluster.advance(10, step=5)
        self.assertEqual(len(stream.of_type("HEARTBEAT")), 2)

    def test_heartbeats_stop_when_the_stream_closes(self) -> None:
        """No heartbeat timer outlives its stream."""
        stream = self.subscribe()
        stream.drop()
        self.cluster.settle()
        self.assertFalse(any("LoopingCall" in repr(c.func) for c in self.clock.getDelayedCalls()))

    def test_refused_subscription_gets_error_and_ends(self) -> None:
        """A subscription the master refuses (a role outside --roles) gets an ERROR event, then the stream ends."""
        self.start(roles=("ops",))
        stream = self.open("POST", subscribe_call(framework_info(role="dev")))
        self.assertEqual(stream.code, 200)
        self.assertTrue(stream.ended)
        self.assertEqual(stream.types(), ["ERROR"])
        self.assertIn("dev", stream.events[0]["error"]["message"])
        self.assertEqual(self.cluster.master.frameworks, {})
        self.assertFalse(any("LoopingCall" in repr(c.func) for c in self.clock.getDelayedCalls()))

    def test_allowed_role_subscribes(self) -> None:
        """A role inside --roles subscribes and is offered resources."""
        self.start(roles=("ops",))
        stream = self.subscribe(framework_info(role="ops"))
        self.assertEqual(len(self.offers(stream)), 1)

    def test_empty_user_is_refused(self) -> None:
        """An empty framework_info.user is refused on the stream with an ERROR."""
        stream = self.open("POST", subscribe_call({"user": "", "name": "x"}))
        self.assertTrue(stream.ended)
        self.assertEqual(stream.types(), ["ERROR"])

    def test_failover_closes_old_stream(self) -> None:
        """A second SUBSCRIBE for the same framework ends the first stream after ERROR 'Framework failed over'."""
        first = self.subscribe(framework_info(failover_timeout=60.0))
        framework_id = self.framework_id(first)
        second = self.subscribe(framework_info(failover_timeout=60.0), framework_id=framework_id)
        self.assertEqual(self.framework_id(second), framework_id)
        self.assertTrue(first.ended)
        self.assertEqual(first.events[-1]["type"], "ERROR")
        self.assertEqual(first.events[-1]["error"]["message"], "Framework failed over")
        self.assertFalse(second.ended)
        framework = self.cluster.master.frameworks[framework_id]
        self.assertEqual(framework.link.stream_id, second.headers["mesos-stream-id"])
        self.assertTrue(framework.connected)
        # the old stream's ID is no longer good; the new one is
        self.assertRefused(self.call(first, "REVIVE"), 400, "stream ID")
        self.accepted(self.call(second, "REVIVE"))

    def test_failover_stream_starts_with_subscribed(self) -> None:
        """The new stream of a failed-over framework starts with SUBSCRIBED, and no RESCIND for offers it never saw."""
        first = self.subscribe()
        second = self.subscribe(framework_id=self.framework_id(first))
        self.assertEqual(second.types()[0], "SUBSCRIBED")
        self.assertEqual(second.of_type("RESCIND"), [])

    def test_failover_moves_offers_to_new_stream(self) -> None:
        """Outstanding offers are rescinded on failover and new ones go to the new stream."""
        first = self.subscribe()
        old_offer = self.offers(first)[0]["id"]["value"]
        second = self.subscribe(framework_id=self.framework_id(first))
        self.assertIsNone(self.cluster.master.offers.get(old_offer))
        new_offers = self.offers(second)
        self.assertEqual(len(new_offers), 1)
        self.assertNotEqual(new_offers[0]["id"]["value"], old_offer)

    def test_old_stream_heartbeats_stop_after_failover(self) -> None:
        """The failed-over stream gets no more heartbeats; the new one does."""
        first = self.subscribe()
        second = self.subscribe(framework_id=self.framework_id(first))
        self.cluster.advance(HEARTBEAT, step=HEARTBEAT)
        self.assertEqual(first.of_type("HEARTBEAT"), [])
        self.assertEqual(len(second.of_type("HEARTBEAT")), 1)

    def test_disconnect_marks_framework_disconnected(self) -> None:
        """Closing the stream's connection marks the framework disconnected and rescinds its offers."""
        stream = self.subscribe(framework_info(failover_timeout=600.0))
        framework_id = self.framework_id(stream)
        offer = self.offers(stream)[0]["id"]["value"]
        stream.drop()
        self.cluster.settle()
        framework = self.cluster.master.frameworks[framework_id]
        self.assertFalse(framework.connected)
        self.assertFalse(framework.active)
        self.assertIsNone(self.cluster.master.offers.get(offer))
        self.cluster.advance(599, step=100)
        self.assertIn(framework_id, self.cluster.master.frameworks)
        self.cluster.advance(1)
        self.assertNotIn(framework_id, self.cluster.master.frameworks)

    def test_disconnect_with_zero_failover_removes_framework(self) -> None:
        """With failover_timeout 0 the framework is removed once its stream closes."""
        stream = self.subscribe(framework_info(failover_timeout=0))
        framework_id = self.framework_id(stream)
        stream.drop()
        self.assertFalse(self.cluster.master.frameworks[framework_id].connected)
        self.cluster.settle()
        self.assertNotIn(framework_id, self.cluster.master.frameworks)
        self.assertIn(framework_id, self.cluster.master.completed)

    def test_resubscribe_after_disconnect(self) -> None:
        """A disconnected framework subscribes again within its failover timeout, on a new stream."""
        first = self.subscribe(framework_info(failover_timeout=600.0))
        framework_id = self.framework_id(first)
        first.drop()
        self.cluster.settle()
        second = self.subscribe(framework_info(failover_timeout=600.0), framework_id=framework_id)
        self.assertTrue(self.cluster.master.frameworks[framework_id].connected)
        self.cluster.advance(601, step=100)
        self.assertIn(framework_id, self.cluster.master.frameworks)
        self.accepted(self.call(second, "REVIVE"))


# -- the calls ----------------------------------------------------------------------------------------------


class CallTests(SchedulerAPITestCase):
    def test_accept_launch_and_acknowledge(self) -> None:
        """ACCEPT with LAUNCH runs the task; UPDATEs carry base64 UUIDs; ACKNOWLEDGE retires the finished task."""
        stream = self.subscribe()
        framework = self.cluster.master.frameworks[self.framework_id(stream)]
        offer = self.launch(stream, command="true")
        self.assertIsNone(self.cluster.master.offers.get(offer["id"]["value"]))
        self.assertEqual(len(self.cluster.containerizers[0].executors), 1)
        (running,) = self.updates(stream, "t1")
        self.assertEqual(running["state"], T.RUNNING)
        self.assertEqual(running["agent_id"], offer["agent_id"])
        self.assertEqual(len(base64.b64decode(running["uuid"], validate=True)), 16)
        self.assertEqual(framework.tasks["t1"].state, T.RUNNING)
        self.accepted(self.acknowledge(stream, running))
        finished = self.updates(stream, "t1")[-1]
        self.assertEqual(finished["state"], T.FINISHED)
        self.assertIn("t1", framework.tasks)
        self.accepted(self.acknowledge(stream, finished))
        self.assertNotIn("t1", framework.tasks)
        self.assertEqual([t.task_id for t in framework.completed_tasks], ["t1"])
        self.assertEqual(self.cluster.master.agents[offer["agent_id"]["value"]].tasks, {})

    def test_unacknowledged_update_is_resent(self) -> None:
        """Without ACKNOWLEDGE the agent sends the same update again (same UUID) on the stream."""
        stream = self.subscribe()
        self.launch(stream)
        (running,) = self.updates(stream, "t1")
        self.cluster.advance(10, step=5)
        again = self.updates(stream, "t1")
        self.assertEqual(len(again), 2)
        self.assertEqual(again[1]["uuid"], running["uuid"])

    def test_launch_with_unknown_offer_is_lost(self) -> None:
        """ACCEPT of an offer that does not exist answers 202 and the task comes back TASK_LOST."""
        stream = self.subscribe()
        task = command_task("t9", "sleep 1")
        task["agent_id"] = {"value": self.cluster.agents[0].id}
        self.accepted(self.call(stream, "ACCEPT", {"offer_ids": [{"value": "no-such-offer"}],
                                                   "operations": [launch_operation(task)]}))
        (status,) = self.updates(stream, "t9")
        self.assertEqual(status["state"], T.LOST)
        self.assertEqual(status["reason"], T.REASON_INVALID_OFFERS)

    def test_decline(self) -> None:
        """DECLINE returns the offer; its refuse_seconds filter keeps the agent away until it expires."""
        stream = self.subscribe()
        framework = self.cluster.master.frameworks[self.framework_id(stream)]
        offer = self.offers(stream)[0]
        self.accepted(self.call(stream, "DECLINE", {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 30}}))
        self.assertIsNone(self.cluster.master.offers.get(offer["id"]["value"]))
        self.assertEqual(self.cluster.master.offers.of_framework(framework.id), [])
        self.assertEqual(self.cluster.master.metrics["messages_decline_offers"], 1)
        self.cluster.master.requestAllocation()
        self.cluster.advance(20, step=5)
        self.assertEqual(len(self.offers(stream)), 1)
        self.cluster.advance(15, step=5)
        self.cluster.master.requestAllocation()
        self.cluster.settle()
        self.assertEqual(len(self.offers(stream)), 2)

    def test_revive_clears_filters(self) -> None:
        """REVIVE brings declined resources back at once."""
        stream = self.subscribe()
        offer = self.offers(stream)[0]
        self.accepted(self.call(stream, "DECLINE", {"offer_ids": [offer["id"]],
                                                    "filters": {"refuse_seconds": 3600}}))
        self.cluster.master.requestAllocation()
        self.cluster.settle()
        self.assertEqual(len(self.offers(stream)), 1)
        self.accepted(self.call(stream, "REVIVE"))
        self.assertEqual(len(self.offers(stream)), 2)
        self.assertEqual(self.cluster.master.metrics["messages_revive_offers"], 1)

    def test_suppress_and_revive(self) -> None:
        """SUPPRESS stops offers (the framework is marked suppressed); REVIVE resumes them."""
        stream = self.subscribe()
        framework = self.cluster.master.frameworks[self.framework_id(stream)]
        self.accepted(self.call(stream, "SUPPRESS", {"roles": ["*"]}))
        self.assertTrue(framework.suppressed)
        offer = self.offers(stream)[0]
        self.accepted(self.call(stream, "DECLINE", {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0}}))
        self.cluster.advance(5)
        self.cluster.master.requestAllocation()
        self.cluster.settle()
        self.assertEqual(len(self.offers(stream)), 1)
        self.accepted(self.call(stream, "REVIVE"))
        self.assertFalse(framework.suppressed)
        self.assertEqual(len(self.offers(stream)), 2)

    def test_kill(self) -> None:
        """KILL reaches the executor and TASK_KILLED comes back on the stream."""
        stream = self.subscribe()
        framework = self.cluster.master.frameworks[self.framework_id(stream)]
        offer = self.launch(stream)
        self.accepted(self.call(stream, "KILL", {"task_id": {"value": "t1"}, "agent_id": offer["agent_id"]}))
        executor = self.cluster.containerizers[0].by_executor("t1")[0]
        self.assertIn("KILL", [e["type"] for e in executor.events])
        self.acknowledge(stream, self.updates(stream, "t1")[0])
        killed = self.updates(stream, "t1")[-1]
        self.assertEqual(killed["state"], T.KILLED)
        self.assertEqual(framework.tasks["t1"].state, T.KILLED)

    def test_kill_with_grace_period(self) -> None:
        """KILL's kill_policy grace period is passed to the executor."""
        stream = self.subscribe()
        self.launch(stream)
        self.accepted(self.call(stream, "KILL", {"task_id": {"value": "t1"},
                                                 "kill_policy": {"grace_period": {"nanoseconds": 2_000_000_000}}}))
        executor = self.cluster.containerizers[0].by_executor("t1")[0]
        (kill,) = [e for e in executor.events if e["type"] == "KILL"]
        self.assertEqual(kill["kill"]["kill_policy"]["grace_period"]["nanoseconds"], 2_000_000_000)

    def test_kill_unknown_task(self) -> None:
        """KILL of a task the master does not know answers 202 and TASK_LOST comes back."""
        stream = self.subscribe()
        self.accepted(self.call(stream, "KILL", {"task_id": {"value": "ghost"}}))
        (status,) = self.updates(stream, "ghost")
        self.assertEqual(status["state"], T.LOST)
        self.assertNotIn("uuid", status)

    def test_kill_without_task_id_is_400(self) -> None:
        """KILL needs kill.task_id."""
        stream = self.subscribe()
        self.assertRefused(self.call(stream, "KILL", {}), 400, "task_id")

    def test_reconcile(self) -> None:
        """RECONCILE answers with the latest state of named tasks, TASK_LOST for unknown ones, all without UUID."""
        stream = self.subscribe()
        self.launch(stream)
        before = len(self.updates(stream))
        self.accepted(self.call(stream, "RECONCILE", {"tasks": [{"task_id": {"value": "t1"}},
                                                               {"task_id": {"value": "ghost"}}]}))
        answers = self.updates(stream)[before:]
        states = {s["task_id"]["value"]: s for s in answers}
        self.assertEqual(states["t1"]["state"], T.RUNNING)
        self.assertEqual(states["t1"]["reason"], T.REASON_RECONCILIATION)
        self.assertEqual(states["ghost"]["state"], T.LOST)
        self.assertTrue(all("uuid" not in s for s in answers))

    def test_implicit_reconcile(self) -> None:
        """RECONCILE naming no task answers for every live task."""
        stream = self.subscribe()
        self.launch(stream)
        before = len(self.updates(stream))
        self.accepted(self.call(stream, "RECONCILE", {"tasks": []}))
        self.accepted(self.call(stream, "RECONCILE"))
        answers = self.updates(stream)[before:]
        self.assertEqual([s["task_id"]["value"] for s in answers], ["t1", "t1"])

    def test_message_reaches_executor(self) -> None:
        """MESSAGE is passed to the executor with its data."""
        stream = self.subscribe()
        offer = self.launch(stream)
        self.accepted(self.call(stream, "MESSAGE", {"agent_id": offer["agent_id"], "executor_id": {"value": "t1"},
                                                    "data": base64.b64encode(b"hello executor").decode()}))
        executor = self.cluster.containerizers[0].by_executor("t1")[0]
        messages = [e for e in executor.events if e["type"] == "MESSAGE"]
        self.assertEqual([base64.b64decode(m["message"]["data"]) for m in messages], [b"hello executor"])
        self.assertEqual(self.cluster.master.metrics["messages_framework_to_executor"], 1)

    def test_message_with_bad_base64_is_400(self) -> None:
        """MESSAGE data must be base64."""
        stream = self.subscribe()
        reply = self.call(stream, "MESSAGE", {"agent_id": {"value": "a"}, "executor_id": {"value": "e"},
                                              "data": "***"})
        self.assertRefused(reply, 400, "data")

    def test_shutdown_executor(self) -> None:
        """SHUTDOWN stops the named executor on its agent; its task ends TASK_KILLED."""
        stream = self.subscribe()
        offer = self.launch(stream)
        self.accepted(self.call(stream, "SHUTDOWN", {"agent_id": offer["agent_id"],
                                                     "executor_id": {"value": "t1"}}))
        executor = self.cluster.containerizers[0].by_executor("t1")[0]
        self.assertIn("SHUTDOWN", [e["type"] for e in executor.events])
        self.acknowledge(stream, self.updates(stream, "t1")[0])
        killed = self.updates(stream, "t1")[-1]
        self.assertEqual(killed["state"], T.KILLED)
        self.acknowledge(stream, killed)
        self.assertEqual(list(self.cluster.agents[0].executors()), [])

    def test_shutdown_needs_both_ids(self) -> None:
        """SHUTDOWN without agent_id is 400."""
        stream = self.subscribe()
        self.assertRefused(self.call(stream, "SHUTDOWN", {"executor_id": {"value": "t1"}}), 400, "agent_id")

    def test_acknowledge_needs_uuid(self) -> None:
        """ACKNOWLEDGE without uuid is 400."""
        stream = self.subscribe()
        reply = self.call(stream, "ACKNOWLEDGE", {"agent_id": {"value": "a"}, "task_id": {"value": "t"}})
        self.assertRefused(reply, 400, "uuid")

    def test_request_is_accepted(self) -> None:
        """REQUEST is answered 202 (the built-in allocator ignores it)."""
        stream = self.subscribe()
        self.accepted(self.call(stream, "REQUEST", {"requests": []}))

    def test_teardown(self) -> None:
        """TEARDOWN removes the framework, kills its tasks and ends its stream."""
        stream = self.subscribe(framework_info(failover_timeout=3600.0))
        framework_id = self.framework_id(stream)
        self.launch(stream)
        self.accepted(self.call(stream, "TEARDOWN"))
        self.assertTrue(stream.ended)
        self.assertNotIn(framework_id, self.cluster.master.frameworks)
        self.assertIn(framework_id, self.cluster.master.completed)
        executor = self.cluster.containerizers[0].by_executor("t1")[0]
        self.assertIn("SHUTDOWN", [e["type"] for e in executor.events])
        self.assertEqual(self.cluster.master.agents[self.cluster.agents[0].id].tasks, {})
        # the framework is gone: further calls are refused, and it cannot come back
        self.assertRefused(self.call(stream, "REVIVE"), 400)
        again = self.open("POST", subscribe_call(framework_id=framework_id))
        self.assertEqual(again.types(), ["ERROR"])
        self.assertTrue(again.ended)

    def test_calls_over_keepalive_connection(self) -> None:
        """Several calls may share one persistent HTTP/1.1 connection (as pymesos's call connection does)."""
        stream = self.subscribe()
        framework_id = self.framework_id(stream)
        transport = StringTransport()
        channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40001))
        channel.makeConnection(transport)
        self.addCleanup(channel.connectionLost, Failure(ConnectionDone()))
        for kind in ("SUPPRESS", "REVIVE"):
            body = json.dumps({"type": kind, "framework_id": {"value": framework_id}}).encode()
            head = (f"POST {PATH} HTTP/1.1\r\nHost: m\r\nContent-Type: {JSON}\r\n"
                    f"Mesos-Stream-Id: {stream.headers['mesos-stream-id']}\r\nContent-Length: {len(body)}\r\n\r\n")
            channel.dataReceived(head.encode() + body)
            self.cluster.settle()
        replies = transport.value().split(b"HTTP/1.1 ")[1:]
        self.assertEqual([r.split(b" ", 1)[0] for r in replies], [b"202", b"202"])
        self.assertFalse(self.cluster.master.frameworks[framework_id].suppressed)
