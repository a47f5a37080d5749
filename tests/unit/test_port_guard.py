"""What a daemon's port holds against clients that never finish (:mod:`mesostw.wire.guard`), met as an
attacker meets it: headers dripped byte by byte, bodies that never end or are far too large, requests
without credentials carrying huge bodies, floods of connections from one address.

Each test drives a real :class:`~mesostw.wire.listen.QuietSite` (the daemons' HTTP) over an in-memory
transport on a Clock.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web import server

from mesostw.auth.crammd5 import CredentialsChecker, FailureThrottle
from mesostw.auth.http import http_principal
from mesostw.auth.policy import Security
from mesostw.http.router import HTTPError, Router, read_body
from mesostw.wire import guard
from mesostw.wire.guard import REFUSAL_LINGER, RESERVED_DESCRIPTORS, ConnectionLimits, HTTPLimits
from mesostw.wire.listen import QuietSite
from mesostw.wire.switch import PREAMBLE, PortSwitchFactory, bound
from tests.integration.hostile import basic

LIMITS = HTTPLimits(header_timeout=3.0, body_timeout=5.0)
SECRETS = {"ops": "ops-secret"}


class HalfClosing(StringTransport):
    """A TCP transport as far as a refusal needs: it can close its writing half and be aborted."""

    def __init__(self, peer: str) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", peer, 40000))
        self.write_closed = False
        self.aborted = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


class GuardTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.handled: list[tuple[str, bytes]] = []
        self.security = Security(CredentialsChecker(SECRETS), throttle=FailureThrottle(self.clock, base=1.0, cap=4.0))
        router = Router()
        router.route("/open", lambda request: {"ok": True})
        router.route("/upload", self.upload, methods=("POST",), max_body=100)
        router.route("/secret", self.upload, methods=("POST",), max_body=100, before_body=self.authenticate)
        router.route("/fails", self.upload, methods=("POST",), before_body=self.broken)
        self.site = QuietSite(router, LIMITS, reactor=self.clock)

    def upload(self, request: server.Request) -> dict[str, Any]:
        body = read_body(request, 1 << 20)
        self.handled.append((request.path.decode(), body))
        return {"length": len(body)}

    def authenticate(self, request: server.Request) -> Any:
        return http_principal(self.security, request, "test", required=True).addCallback(lambda _: None)

    def broken(self, request: server.Request) -> Any:
        raise RuntimeError("a bug in a check")

    def connect(self, peer: str = "127.0.0.9") -> tuple[Any, HalfClosing]:
        channel = self.site.buildProtocol(IPv4Address("TCP", peer, 40000))
        transport = HalfClosing(peer)
        channel.makeConnection(transport)
        self.addCleanup(lambda: channel.connectionLost(Failure(ConnectionDone())) if not transport.aborted else None)
        return channel, transport

    def head(self, method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
        lines = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        return f"{method} {path} HTTP/1.1\r\nHost: x\r\n{lines}\r\n".encode()

    def answers(self, transport: StringTransport) -> list[tuple[int, dict[str, str], bytes]]:
        """Every response written so far: (code, lower-cased headers, body)."""
        out = []
        data = transport.value()
        while data:
            head, _, rest = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            length = int(headers.get("content-length", len(rest)))
            out.append((int(lines[0].split()[1]), headers, rest[:length]))
            data = rest[length:]
        return out


class DeadlineTests(GuardTestCase):
    def test_a_connection_that_says_nothing_is_dropped(self) -> None:
        """A connection that sends nothing is aborted once the header timeout passes, not before."""
        _, transport = self.connect()
        self.clock.advance(LIMITS.header_timeout - 0.1)
        self.assertFalse(transport.aborted)
        self.clock.advance(0.2)
        self.assertTrue(transport.aborted)

    def test_dripped_headers_are_cut_off(self) -> None:
        """A request whose headers come one byte a second is aborted at the header timeout, counted from
        its first byte, however steadily the bytes come."""
        channel, transport = self.connect()
        self.clock.advance(2)
        for byte in self.head("GET", "/open", {"X-Slow": "a" * 20}):
            channel.dataReceived(bytes([byte]))
            self.clock.advance(0.5)
            if transport.aborted:
                break
        self.assertTrue(transport.aborted)
        self.assertEqual(transport.value(), b"")
        self.assertLessEqual(self.clock.seconds(), LIMITS.header_timeout + 0.5)

    def test_each_request_on_a_connection_has_its_own_header_deadline(self) -> None:
        """On a kept-alive connection the next request gets a fresh header deadline from its first byte: it is
        answered when it comes in time, and cut off when its headers drip past the deadline."""
        channel, transport = self.connect()
        channel.dataReceived(self.head("GET", "/open"))
        self.clock.advance(LIMITS.header_timeout + 1)  # idle between requests: the site's idle timeout applies
        self.assertFalse(transport.aborted)
        channel.dataReceived(b"GET /open HTTP/1.1\r\n")
        self.clock.advance(LIMITS.header_timeout - 1)
        channel.dataReceived(b"Host: x\r\n\r\n")
        self.assertEqual([code for code, _, _ in self.answers(transport)], [200, 200])
        channel.dataReceived(b"GET /open HTTP/1.1\r\n")
        self.clock.advance(LIMITS.header_timeout - 1)
        self.assertFalse(transport.aborted)
        self.clock.advance(1.1)
        self.assertTrue(transport.aborted)

    def test_bodies_must_arrive_in_time(self) -> None:
        """A body that stops short is aborted at the body timeout (counted from the end of the headers), unread
        by its endpoint; one that arrives in time is answered, and the deadline goes with it."""
        channel, transport = self.connect()
        channel.dataReceived(self.head("POST", "/upload", {"Content-Length": "50"}) + b"x" * 10)
        self.clock.advance(LIMITS.body_timeout - 0.1)
        self.assertFalse(transport.aborted)
        self.clock.advance(0.2)
        self.assertTrue(transport.aborted)
        self.assertEqual(self.handled, [])

        channel, transport = self.connect()
        channel.dataReceived(self.head("POST", "/upload", {"Content-Length": "50"}) + b"x" * 10)
        self.clock.advance(LIMITS.body_timeout - 1)
        channel.dataReceived(b"y" * 40)
        self.assertEqual(self.handled, [("/upload", b"x" * 10 + b"y" * 40)])
        self.clock.advance(LIMITS.body_timeout + 1)
        self.assertFalse(transport.aborted)

    def test_a_one_byte_body_must_arrive_too(self) -> None:
        """A request announcing a body of one byte that never comes is cut off at the body timeout."""
        channel, transport = self.connect()
        channel.dataReceived(self.head("POST", "/upload", {"Content-Length": "1"}))
        self.clock.advance(LIMITS.body_timeout + 0.1)
        self.assertTrue(transport.aborted)
        self.assertEqual(self.handled, [])

    def test_deadlines_of_a_second_or_less(self) -> None:
        """Deadlines shorter than a second hold as well."""
        self.site = QuietSite(self.site.resource, HTTPLimits(header_timeout=0.5, body_timeout=1.0), reactor=self.clock)
        _, silent = self.connect()
        channel, body = self.connect()
        channel.dataReceived(self.head("POST", "/upload", {"Content-Length": "5"}))
        self.clock.advance(0.6)
        self.assertEqual((silent.aborted, body.aborted), (True, False))
        self.clock.advance(0.5)
        self.assertTrue(body.aborted)

    def test_a_request_without_a_body_has_no_body_deadline(self) -> None:
        """A request that announces no body is answered at once; no body deadline is left to cut the connection."""
        channel, transport = self.connect()
        channel.dataReceived(self.head("POST", "/upload", {"Content-Length": "0"}))
        self.assertEqual(self.handled, [("/upload", b"")])
        self.clock.advance(LIMITS.header_timeout + 0.5)
        self.assertFalse(transport.aborted)


class BodyLimitTests(GuardTestCase):
    def test_a_body_announced_too_large_is_refused_unread(self) -> None:
        """A body announced larger than its endpoint takes (even with a query string on the path) is answered
        413 with a JSON message as soon as the headers are in; what the client sends after is dropped, and
        the connection is cut once the refusal has lingered."""
        channel, transport = self.connect()
        channel.dataReceived(self.head("POST", "/upload?x=1", {"Content-Length": "1000"}))
        ((code, headers, body),) = self.answers(transport)
        self.assertEqual((code, headers["connection"], headers["content-type"]), (413, "close", "application/json"))
        self.assertIn("larger than", json.loads(body)["message"])
        self.assertTrue(transport.write_closed)
        channel.dataReceived(b"x" * 1000)
        self.assertEqual(self.handled, [])
        self.assertEqual(len(self.answers(transport)), 1)
        self.clock.advance(REFUSAL_LINGER - 0.1)
        self.assertFalse(transport.aborted)
        self.clock.advance(0.2)
        self.assertTrue(transport.aborted)

    def test_the_query_string_does_not_hide_the_endpoint(self) -> None:
        """However many question marks the target holds, its endpoint is the path before the first: its body
        limit and its authentication apply before the body is read."""
        for target, code in (("/upload?a?b", 413), ("/secret??x=1", 401), ("/secret?a?b", 401)):
            channel, transport = self.connect()
            channel.dataReceived(self.head("POST", target, {"Content-Length": "1000"}))
            self.assertEqual(self.answers(transport)[0][0], code, target)
        self.assertEqual(self.handled, [])

    def test_a_refusing_admission_check(self) -> None:
        """A site whose admission check raises an HTTPError refuses the request with it, unread."""
        class Refusing(Router):
            def admission(self, request: server.Request, length: int | None) -> Any:
                raise HTTPError(403, "not here")

        router = Refusing()
        router.route("/upload", self.upload, methods=("POST",))
        self.site = QuietSite(router, LIMITS, reactor=self.clock)
        channel, transport = self.connect()
        channel.dataReceived(self.head("POST", "/upload", {"Content-Length": "5"}) + b"hello")
        self.assertEqual(self.answers(transport)[0][0], 403)
        self.assertEqual(self.handled, [])

    def test_a_body_within_the_limit_is_taken(self) -> None:
        """A body as large as the endpoint takes, and no larger, is read and handled."""
        channel, transport = self.connect()
        channel.dataReceived(self.head("POST", "/upload", {"Content-Length": "100"}) + b"x" * 100)
        self.assertEqual(self.handled, [("/upload", b"x" * 100)])
        self.assertEqual([code for code, _, _ in self.answers(transport)], [200])

    def test_a_chunked_body_is_refused_as_it_outgrows_the_limit(self) -> None:
        """A chunked body is refused (413) as soon as it grows past the endpoint's limit, before it ends; the
        endpoint never sees it."""
        channel, transport = self.connect()
        channel.dataReceived(self.head("POST", "/upload", {"Transfer-Encoding": "chunked"}))
        channel.dataReceived(b"3c\r\n" + b"x" * 60 + b"\r\n")
        self.assertEqual(self.answers(transport), [])
        channel.dataReceived(b"3c\r\n" + b"x" * 60 + b"\r\n")
        ((code, _, body),) = self.answers(transport)
        self.assertEqual(code, 413)
        self.assertIn("100 bytes", json.loads(body)["message"])
        channel.dataReceived(b"0\r\n\r\n")
        self.assertEqual(self.handled, [])

    def test_without_a_half_close_the_refusal_closes_at_once(self) -> None:
        """A transport that cannot close only its writing half (a TLS one) is closed right after the refusal."""
        channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.9", 40000))
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(self.head("POST", "/upload", {"Content-Length": "1000"}))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.answers(transport)[0][0], 413)
        self.clock.advance(REFUSAL_LINGER + 1)
        self.assertFalse(transport.disconnected)  # closed gracefully, never aborted


class AuthenticationBeforeBodyTests(GuardTestCase):
    def test_no_credentials_get_401_before_the_body(self) -> None:
        """A request without credentials announcing a 100 GB body gets 401 with a challenge at once, nothing of
        its body read; with wrong credentials too, and the throttle counts the failure."""
        for headers in ({}, basic("ops", "guess")):
            channel, transport = self.connect()
            channel.dataReceived(self.head("POST", "/secret", {"Content-Length": str(100 * 10**9), **headers}))
            ((code, answer_headers, body),) = self.answers(transport)
            self.assertEqual(code, 401)
            self.assertEqual(answer_headers["www-authenticate"], 'Basic realm="test"')
            self.assertIn("message", json.loads(body))
            channel.dataReceived(b"x" * 1000)
        self.assertEqual(self.handled, [])
        self.assertEqual(self.security.throttle.delay("127.0.0.9"), 1.0)

    def test_credentials_then_the_body_limit(self) -> None:
        """With the right credentials the endpoint's body limit applies (413); within it, the body is handled."""
        channel, transport = self.connect()
        channel.dataReceived(self.head("POST", "/secret", {"Content-Length": "1000", **basic("ops")}))
        self.assertEqual(self.answers(transport)[0][0], 413)
        channel, transport = self.connect()
        channel.dataReceived(self.head("POST", "/secret", {"Content-Length": "5", **basic("ops")}) + b"hello")
        self.assertEqual(self.answers(transport)[0][0], 200)
        self.assertEqual(self.handled, [("/secret", b"hello")])

    def test_a_throttled_attempt_waits_with_its_body_unread(self) -> None:
        """After a failure from its address, the next attempt waits its turn: the body that arrives meanwhile
        is held unread (the connection stops reading) and handled once the right credentials are checked;
        a wrong password waiting its turn is answered 401 then, its body never handled."""
        channel, transport = self.connect()
        channel.dataReceived(self.head("POST", "/secret", {"Content-Length": "1", **basic("ops", "guess")}) + b"x")
        self.assertEqual(self.answers(transport)[0][0], 401)

        right, right_transport = self.connect()
        right.dataReceived(self.head("POST", "/secret", {"Content-Length": "5", **basic("ops")}))
        wrong, wrong_transport = self.connect()
        wrong.dataReceived(self.head("POST", "/secret", {"Content-Length": "5", **basic("ops", "guess2")}))
        self.assertEqual(right_transport.producerState, "paused")
        right.dataReceived(b"hello")
        wrong.dataReceived(b"nope!")
        self.assertEqual((self.answers(right_transport), self.handled), ([], []))
        self.clock.advance(1.0)
        self.assertEqual(self.answers(right_transport)[0][0], 200)
        self.assertEqual(right_transport.producerState, "producing")
        self.assertEqual(self.handled, [("/secret", b"hello")])
        self.assertEqual(self.answers(wrong_transport), [])
        self.clock.advance(1.0)
        self.assertEqual(self.answers(wrong_transport)[0][0], 401)
        self.assertEqual(wrong_transport.producerState, "producing")  # reads and drops the rest while it lingers
        self.assertEqual(self.handled, [("/secret", b"hello")])

    def test_a_throttled_attempt_then_its_body(self) -> None:
        """A throttled attempt whose body comes only after its turn is handled with the whole body; one whose
        body is too large is answered 413 when its turn comes."""
        channel, transport = self.connect()
        channel.dataReceived(self.head("POST", "/secret", {"Content-Length": "1", **basic("ops", "guess")}) + b"x")
        late, late_transport = self.connect()
        late.dataReceived(self.head("POST", "/secret", {"Content-Length": "5", **basic("ops")}))
        large, large_transport = self.connect()
        large.dataReceived(self.head("POST", "/secret", {"Content-Length": "1000", **basic("ops")}))
        self.clock.advance(1.0)
        self.assertEqual(self.handled, [])
        late.dataReceived(b"hel")
        late.dataReceived(b"lo")
        self.assertEqual(self.handled, [("/secret", b"hello")])
        self.clock.advance(1.0)
        self.assertEqual(self.answers(large_transport)[0][0], 413)
        self.assertEqual(len(self.handled), 1)

    def test_a_connection_gone_while_waiting_its_turn_is_not_answered(self) -> None:
        """A throttled attempt whose connection is aborted while it waits is not answered and not handled."""
        channel, transport = self.connect()
        channel.dataReceived(self.head("POST", "/secret", {"Content-Length": "1", **basic("ops", "guess")}) + b"x")
        waiting, waiting_transport = self.connect()
        waiting.dataReceived(self.head("POST", "/secret", {"Content-Length": "5", **basic("ops")}) + b"hello")
        self.clock.advance(LIMITS.body_timeout + 1)  # the turn is 1 s away: it came, answered
        self.assertEqual(self.handled, [("/secret", b"hello")])

    def test_a_check_that_fails_is_a_500_not_a_pass(self) -> None:
        """A check before the body that fails with an unexpected error refuses the request (500, JSON), and
        the endpoint never runs."""
        channel, transport = self.connect()
        channel.dataReceived(self.head("POST", "/fails", {"Content-Length": "5"}) + b"hello")
        ((code, _, body),) = self.answers(transport)
        self.assertEqual((code, json.loads(body)), (500, {"message": "Internal error"}))
        self.assertEqual(self.handled, [])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class ConnectionLimitTests(unittest.TestCase):
    def flood(self, limits: ConnectionLimits, peer: str, count: int) -> list[Any]:
        built = [limits.buildProtocol(IPv4Address("TCP", peer, 40000 + i)) for i in range(count)]
        for protocol in built:
            if protocol is not None:
                protocol.makeConnection(StringTransport())
        return built

    def test_connections_per_address_are_capped(self) -> None:
        """Beyond ``max_per_peer`` open connections from one address, the next is refused; other addresses are
        served; once one closes, its address may connect again."""
        limits = ConnectionLimits(Factory.forProtocol(Protocol), max_per_peer=3, max_total=100)
        built = self.flood(limits, "127.0.0.9", 5)
        self.assertEqual([p is not None for p in built], [True, True, True, False, False])
        self.assertEqual((limits.refused, limits.total, limits.per_peer["127.0.0.9"]), (2, 3, 3))
        self.assertIsNotNone(self.flood(limits, "127.0.0.10", 1)[0])
        built[0].connectionLost(Failure(ConnectionDone()))
        self.assertEqual((limits.total, limits.per_peer["127.0.0.9"]), (3, 2))
        self.assertIsNotNone(self.flood(limits, "127.0.0.9", 1)[0])
        for protocol in built[1:3]:
            protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(limits.per_peer["127.0.0.9"], 1)

    def test_connections_in_all_are_capped(self) -> None:
        """Beyond ``max_total`` open connections in all, from any addresses, the next is refused."""
        limits = ConnectionLimits(Factory.forProtocol(Protocol), max_per_peer=0, max_total=4)
        built = [self.flood(limits, f"127.0.0.{i}", 1)[0] for i in range(10, 16)]
        self.assertEqual([p is not None for p in built], [True] * 4 + [False] * 2)
        built[0].connectionLost(Failure(ConnectionDone()))
        self.assertIsNotNone(self.flood(limits, "127.0.0.99", 1)[0])
        self.assertNotIn("127.0.0.10", limits.per_peer)

    def test_no_cap_per_address(self) -> None:
        """``max_per_peer=0``: one address may open as many connections as the total cap allows."""
        limits = ConnectionLimits(Factory.forProtocol(Protocol), max_per_peer=0, max_total=50)
        self.assertTrue(all(p is not None for p in self.flood(limits, "127.0.0.9", 50)))
        self.assertIsNone(self.flood(limits, "127.0.0.9", 1)[0])


class LimitsTests(unittest.TestCase):
    def test_flags(self) -> None:
        """The port's limits come from the daemon's flags, each to its field; absent flags keep the defaults."""
        class Config:
            http_header_timeout = 1.5
            http_body_timeout = 2.5
            connection_setup_timeout = 3.5
            max_connections_per_peer = 7
            max_connections = 99

        self.assertEqual(HTTPLimits.from_config(Config()), HTTPLimits(1.5, 2.5, 3.5, 7, 99))
        self.assertEqual(HTTPLimits.from_config(object()), HTTPLimits())
        self.assertEqual(HTTPLimits(), HTTPLimits(10.0, 60.0, 60.0, 1024, 0))

    def test_total(self) -> None:
        """The cap on all connections: ``max_connections`` when set, else the descriptor limit less those kept
        for the daemon's own files, and never fewer than 16."""
        self.assertEqual(HTTPLimits(max_connections=30).total(4096), 30)
        self.assertEqual(HTTPLimits().total(4096), 4096 - RESERVED_DESCRIPTORS)
        self.assertEqual(HTTPLimits().total(RESERVED_DESCRIPTORS + 16), 16)
        self.assertEqual(HTTPLimits().total(100), 16)


class FileLimitTests(unittest.TestCase):
    def limits(self, soft: int, hard: int, refuse: bool = False) -> list[tuple[int, int]]:
        """Patch the resource module: (soft, hard) to start with; the calls to setrlimit are returned."""
        calls: list[tuple[int, int]] = []

        def setrlimit(which: int, value: tuple[int, int]) -> None:
            assert which == guard.resource.RLIMIT_NOFILE
            if refuse:
                raise ValueError("not permitted")
            calls.append(value)

        self.patch(guard.resource, "getrlimit",
                   lambda which: (soft, hard) if which == guard.resource.RLIMIT_NOFILE else (0, 0))
        self.patch(guard.resource, "setrlimit", setrlimit)
        return calls

    def test_raised_to_the_hard_limit(self) -> None:
        """The soft limit on open files is raised to the hard one, and the raised one is in force."""
        calls = self.limits(1024, 4096)
        self.assertEqual(guard.raise_file_limit(), 4096)
        self.assertEqual(calls, [(4096, 4096)])

    def test_at_most_max_file_limit(self) -> None:
        """An unlimited or huge hard limit raises the soft one to MAX_FILE_LIMIT only."""
        for hard in (guard.resource.RLIM_INFINITY, guard.MAX_FILE_LIMIT * 4):
            calls = self.limits(1024, hard)
            self.assertEqual(guard.raise_file_limit(), guard.MAX_FILE_LIMIT)
            self.assertEqual(calls, [(guard.MAX_FILE_LIMIT, hard)])

    def test_never_lowered(self) -> None:
        """A soft limit already at or above what would be asked for (or unlimited) is left as it is."""
        calls = self.limits(4096, 4096)
        self.assertEqual(guard.raise_file_limit(), 4096)
        self.assertEqual(calls, [])
        calls = self.limits(guard.resource.RLIM_INFINITY, guard.resource.RLIM_INFINITY)
        self.assertEqual(guard.raise_file_limit(), guard.MAX_FILE_LIMIT)
        self.assertEqual(calls, [])

    def test_refused(self) -> None:
        """When the system refuses, the soft limit in force is reported, and the daemon goes on."""
        self.limits(256, 4096, refuse=True)
        self.assertEqual(guard.raise_file_limit(), 256)


class Building(Factory):
    """Builds ``kind`` protocols for every connection and keeps them, in order, in ``built``."""

    def __init__(self, built: list[Any], kind: type[Protocol]) -> None:
        self.built, self.kind = built, kind

    def buildProtocol(self, addr: Any) -> Protocol:
        self.built.append(self.kind())
        return self.built[-1]


class SwitchDeadlineTests(unittest.TestCase):
    """The port switch's deadlines (:mod:`mesostw.wire.switch`): first bytes, then a private protocol's setup."""

    def connect(self, first: bytes) -> tuple[Any, Protocol, StringTransport]:
        self.clock = getattr(self, "clock", None) or task.Clock()
        built: list[Protocol] = []
        factory = PortSwitchFactory(Building(built, Protocol), Building(built, Protocol), sniff_timeout=3,
                                    setup_timeout=20, clock=self.clock)
        switch = factory.buildProtocol(IPv4Address("TCP", "127.0.0.9", 1))
        transport = StringTransport()
        switch.makeConnection(transport)
        if first:
            switch.dataReceived(first)
        return switch, (built[0] if built else None), transport

    def test_http_keeps_its_own_deadlines(self) -> None:
        """A connection that turned out to speak HTTP gets no setup deadline: the guard's deadlines apply to it."""
        _, _, transport = self.connect(b"GET / HTTP/1.1\r\n")
        self.clock.advance(200)
        self.assertFalse(transport.disconnected)

    def test_preamble_then_silence(self) -> None:
        """After the PB preamble, the connection has the setup timeout to bind; once bound, no deadline."""
        _, inner, transport = self.connect(PREAMBLE)
        self.clock.advance(19)
        self.assertFalse(transport.disconnected)
        self.clock.advance(2)
        self.assertTrue(transport.disconnected)
        _, inner, transport = self.connect(PREAMBLE)
        self.clock.advance(19)
        bound(inner)
        self.clock.advance(200)
        self.assertFalse(transport.disconnected)

    def test_silence(self) -> None:
        """Nothing at all: dropped at the sniff timeout."""
        _, _, transport = self.connect(b"")
        self.clock.advance(2.9)
        self.assertFalse(transport.disconnected)
        self.clock.advance(0.2)
        self.assertTrue(transport.disconnected)

    def test_bound_elsewhere_is_harmless(self) -> None:
        """Telling a protocol no switch started that it is bound does nothing."""
        bound(Protocol())


class Recorder(Protocol):
    """Keeps what it received and whether its connection was lost."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = True


class SwitchStepsOutTests(unittest.TestCase):
    """Once the switch has nothing left to do (at once for HTTP, when bound for a private protocol), the
    transport delivers to the chosen protocol itself; the connection limits still count it until it closes."""

    def connect(self, peer: str = "127.0.0.9") -> tuple[ConnectionLimits, Any, list[Recorder]]:
        self.clock = task.Clock()
        built: list[Recorder] = []
        switches = PortSwitchFactory(Building(built, Recorder), Building(built, Recorder), sniff_timeout=3,
                                     setup_timeout=20, clock=self.clock)
        limits = ConnectionLimits(switches, max_per_peer=2, max_total=10)
        wrapper = limits.buildProtocol(IPv4Address("TCP", peer, 40000))
        wrapper.makeConnection(StringTransport())
        return limits, wrapper, built

    def test_http_at_once(self) -> None:
        """An HTTP connection's bytes go straight to the HTTP protocol from its first request on; closing it
        reaches that protocol and frees its place under the limits."""
        limits, wrapper, built = self.connect()
        wrapper.dataReceived(b"GET / HTTP/1.1\r\n")
        (inner,) = built
        self.assertIs(wrapper.wrappedProtocol, inner)
        wrapper.dataReceived(b"Host: x\r\n")
        self.assertEqual(inner.received, [b"GET / HTTP/1.1\r\n", b"Host: x\r\n"])
        self.assertEqual((limits.total, limits.per_peer["127.0.0.9"]), (1, 1))
        wrapper.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(inner.lost)
        self.assertEqual(limits.total, 0)
        self.assertNotIn("127.0.0.9", limits.per_peer)

    def test_private_once_bound(self) -> None:
        """A private protocol's bytes pass through the switch until it binds, then go to it directly; no
        deadline is left behind, and closing it frees its place under the limits."""
        limits, wrapper, built = self.connect()
        switch = wrapper.wrappedProtocol
        wrapper.dataReceived(PREAMBLE + b"hello")
        (inner,) = built
        self.assertIs(wrapper.wrappedProtocol, switch)
        self.assertEqual(inner.received, [b"hello"])
        bound(inner)
        self.assertIs(wrapper.wrappedProtocol, inner)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        bound(inner)  # again: harmless
        wrapper.dataReceived(b"more")
        self.assertEqual(inner.received, [b"hello", b"more"])
        self.assertEqual(limits.total, 1)
        wrapper.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(inner.lost)
        self.assertEqual((limits.total, dict(limits.per_peer)), (0, {}))

    def test_private_lost_before_binding(self) -> None:
        """A private connection that closes before it binds: the switch passes the loss on, cancels its
        deadline, and the limits count it out."""
        limits, wrapper, built = self.connect()
        wrapper.dataReceived(PREAMBLE)
        (inner,) = built
        wrapper.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(inner.lost)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(limits.total, 0)
        bound(inner)  # late: harmless
        self.assertEqual(limits.total, 0)

    def test_limits_hold_after_steps_out(self) -> None:
        """Connections whose switch stepped out still count against the cap per address until they close."""
        limits, first, _ = self.connect()
        first.dataReceived(b"GET / HTTP/1.1\r\n")
        second = limits.buildProtocol(IPv4Address("TCP", "127.0.0.9", 40001))
        second.makeConnection(StringTransport())
        second.dataReceived(b"GET / HTTP/1.1\r\n")
        self.assertIsNone(limits.buildProtocol(IPv4Address("TCP", "127.0.0.9", 40002)))
        first.connectionLost(Failure(ConnectionDone()))
        self.assertIsNotNone(limits.buildProtocol(IPv4Address("TCP", "127.0.0.9", 40003)))
