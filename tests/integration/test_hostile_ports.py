"""Issue 12, items 4 and 5: what a client with no credentials, or with a stolen principal name, can do to
a daemon's port: slow headers, floods of connections, huge bodies, parallel guessing, and Perspective
Broker or executor-stream connections that open with their preamble and then say nothing.

Attackers use addresses of their own in 127.0.0.0/8 (the cluster's own clients use 127.0.0.1), so
that what is capped or throttled per address is theirs. Deadlines and delays are set small by flags.
"""

from __future__ import annotations

import base64
import http.client
import os
import resource
import socket
import subprocess
import time

from twisted.internet import defer, threads
from twisted.trial import unittest

from mesostw.auth.crammd5 import respond
from mesostw.auth.credentials import Credential
from mesostw.wire.preambles import EXECUTOR, PB
from tests.helpers.processes import TWISTD, get_json, wait_for
from tests.helpers.processes import http as http_request
from tests.integration.hostile import SECRETS, HostileCluster, basic, pb_root

FLAGS = ["--http_header_timeout=1secs", "--http_body_timeout=2secs", "--max_connections_per_peer=20",
         "--authentication_failure_delay=0.2secs", "--authentication_failure_delay_max=0.4secs"]


def slowloris(address: tuple[str, int], source: str, count: int, drip: float = 0.3, limit: float = 8.0) -> list[float]:
    """Open ``count`` connections from ``source`` that send a request line, then one header byte every
    ``drip`` seconds; return how long each stayed open (at most ``limit``)."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind((source, 0))
        sock.settimeout(5)
        sock.connect(address)
        sock.sendall(b"GET /master/state HTTP/1.1\r\nHost: x\r\n")
        sock.setblocking(False)
        sockets.append(sock)
    start = time.monotonic()
    lifetimes: dict[int, float] = {}
    while len(lifetimes) < count and time.monotonic() - start < limit:
        for index, sock in enumerate(sockets):
            if index in lifetimes:
                continue
            try:
                if sock.recv(4096) == b"":
                    lifetimes[index] = time.monotonic() - start
                    continue
            except BlockingIOError:
                pass
            except OSError:
                lifetimes[index] = time.monotonic() - start
                continue
            try:
                sock.send(b"X")
            except OSError:
                lifetimes[index] = time.monotonic() - start
        time.sleep(drip)
    for sock in sockets:
        sock.close()
    return [lifetimes.get(i, limit) for i in range(count)]


def post_from(source: str, address: tuple[str, int], path: str, headers: dict[str, str],
              body_chunks: int = 0, chunk: bytes = b"", timeout: float = 20.0) -> tuple[int, bytes, int]:
    """POST from ``source``: send the headers, then up to ``body_chunks`` chunks as long as the server reads;
    return (status, body, bytes of body sent before the answer came)."""
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(timeout)
    sock.connect(address)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock.sendall(head.encode())
    sent = 0
    sock.setblocking(False)
    answer = b""
    pending = b""
    try:
        remaining = body_chunks
        deadline = time.monotonic() + timeout
        while (remaining or pending) and time.monotonic() < deadline:
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            if answer:
                break
            if not pending:
                pending, remaining = chunk, remaining - 1
            try:
                written = sock.send(pending)
                sent, pending = sent + written, pending[written:]
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:
                break
        sock.settimeout(timeout)
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except OSError:
        pass
    finally:
        sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1") else 0
    return status, answer.partition(b"\r\n\r\n")[2], sent


class PortTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.cluster = yield HostileCluster(self, master_args=FLAGS).start()
        host, port = self.cluster.master_address.split(":")
        self.address = (host, int(port))

    def failures_seen(self) -> defer.Deferred:
        """How many HTTP Basic attempts with wrong credentials the master has refused so far."""
        snapshot = get_json(self.cluster.url("/metrics/snapshot"), basic("ops"))
        return snapshot.addCallback(lambda m: m["master/http_authentication_failures"])

    @defer.inlineCallbacks
    def test_slow_headers_and_connection_floods(self):
        """Forty connections from one address dripping a header byte every 0.3 s: twenty are closed at once
        (the per-peer cap), the other twenty when their header deadline passes, while the operator's
        requests from another address are answered all along."""
        flood = threads.deferToThread(slowloris, self.address, "127.0.0.2", 40)
        state = yield self.cluster.state()
        self.assertEqual(state["activated_slaves"], 1)
        lifetimes = yield flood
        self.assertGreaterEqual(sum(1 for t in lifetimes if t < 0.5), 20, lifetimes)
        self.assertLess(max(lifetimes), 4.0, lifetimes)
        state = yield self.cluster.state()
        self.assertEqual(state["activated_slaves"], 1)
        self.assertTrue(self.cluster.master.alive())

    @defer.inlineCallbacks
    def test_huge_bodies_are_refused_before_they_are_read(self):
        """A body announced as 100 GB gets 401 without credentials and 413 with them, at once; a chunked
        body is refused (413) once it passes the endpoint's limit, long before it ends."""
        announced = {"Content-Type": "application/json", "Content-Length": str(100 * 10**9)}
        for headers, expected in ((announced, 401), ({**announced, **basic("alice")}, 413)):
            status, body, _ = yield threads.deferToThread(post_from, "127.0.0.4", self.address, "/api/v1/scheduler",
                                                          headers)
            self.assertEqual(status, expected, body)
        chunked = {"Content-Type": "application/json", "Transfer-Encoding": "chunked", **basic("alice")}
        piece = b"%x\r\n%s\r\n" % (1 << 20, b" " * (1 << 20))
        status, body, sent = yield threads.deferToThread(post_from, "127.0.0.4", self.address, "/api/v1/scheduler",
                                                         chunked, body_chunks=2000, chunk=piece)
        self.assertEqual(status, 413, body)
        self.assertIn(b"larger than", body)
        self.assertLess(sent, 200 * len(piece))
        self.assertTrue(self.cluster.master.alive())

    @defer.inlineCallbacks
    def test_parallel_guesses_are_throttled(self):
        """Twelve wrong HTTP Basic passwords in parallel from one address, then the right one: the guesses are
        checked one at a time, so the right secret waits its turn (about 2 s here) instead of being taken at
        once; and the same holds for CRAM-MD5 over PB."""
        def attempt(secret: str) -> tuple[int, float]:
            connection = http.client.HTTPConnection(*self.address, timeout=30, source_address=("127.0.0.5", 0))
            started = time.monotonic()
            token = base64.b64encode(f"alice:{secret}".encode()).decode()
            connection.request("GET", "/master/state", headers={"Authorization": f"Basic {token}"})
            status = connection.getresponse().status
            connection.close()
            return status, time.monotonic() - started

        started = time.monotonic()
        guesses = [threads.deferToThread(attempt, f"guess-{i}") for i in range(12)]
        yield wait_for(lambda: self.failures_seen().addCallback(lambda n: n >= 1), 20,
                       what="a guess refused before the right secret is sent")
        right = yield threads.deferToThread(attempt, SECRETS["alice"])
        results = yield defer.gatherResults(guesses)
        self.assertEqual({status for status, _ in results}, {401})
        self.assertEqual(right[0], 200)
        self.assertGreater(time.monotonic() - started, 1.5)
        self.assertGreater(sum(1 for _, took in results if took > 1.0), 5, results)

        # CRAM-MD5: eight exchanges started at once from one connection each; seven wrong answers, then the right one.
        roots = yield defer.gatherResults([pb_root(self.cluster.master_address) for _ in range(8)])
        for root in roots:
            self.addCleanup(root.broker.transport.loseConnection)
        challenges = yield defer.gatherResults([r.callRemote("authenticate", "CRAM-MD5") for r in roots])
        started = time.monotonic()
        wrong = [roots[i].callRemote("authenticationStep", respond(Credential("alice", "nope"), challenges[i]))
                 .addErrback(lambda f: "refused") for i in range(7)]
        yield defer.gatherResults(wrong[:1])
        principal = yield roots[7].callRemote("authenticationStep", respond(Credential("alice", SECRETS["alice"]),
                                                                            challenges[7]))
        self.assertEqual(principal, "alice")
        self.assertGreater(time.monotonic() - started, 1.0)
        self.assertEqual((yield defer.gatherResults(wrong)), ["refused"] * 7)

    @defer.inlineCallbacks
    def test_own_logins_between_guesses_do_not_reset_the_throttle(self):
        """mallory guesses alice's password and logs in as herself between guesses, five times over: her own
        successes wipe out none of her failures, so each guess waits longer than the last (over 2.5 s in
        all here, where resetting would let them through in about one)."""
        def exchange(principal: str, secret: str) -> int:
            connection = http.client.HTTPConnection(*self.address, timeout=30, source_address=("127.0.0.7", 0))
            token = base64.b64encode(f"{principal}:{secret}".encode()).decode()
            connection.request("GET", "/master/state", headers={"Authorization": f"Basic {token}"})
            status = connection.getresponse().status
            connection.close()
            return status

        def attack() -> tuple[list[int], float]:
            statuses = [exchange("alice", "guess-0")]
            started = time.monotonic()
            for i in range(1, 6):
                statuses += [exchange("mallory", SECRETS["mallory"]), exchange("alice", f"guess-{i}")]
            return statuses, time.monotonic() - started

        statuses, took = yield threads.deferToThread(attack)
        self.assertEqual(statuses, [401] + [200, 401] * 5)
        self.assertGreater(took, 2.5)


def silent_after(address: tuple[str, int], source: str, preamble: bytes, count: int, limit: float = 10.0
                 ) -> list[float]:
    """Open ``count`` connections from ``source`` that send ``preamble`` and then nothing; return how long
    each stayed open (at most ``limit``), reading whatever the daemon sends meanwhile."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind((source, 0))
        sock.settimeout(5)
        sock.connect(address)
        sock.sendall(preamble)
        sock.setblocking(False)
        sockets.append(sock)
    start = time.monotonic()
    lifetimes: dict[int, float] = {}
    while len(lifetimes) < count and time.monotonic() - start < limit:
        for index, sock in enumerate(sockets):
            if index in lifetimes:
                continue
            try:
                if sock.recv(65536) == b"":
                    lifetimes[index] = time.monotonic() - start
            except BlockingIOError:
                pass
            except OSError:
                lifetimes[index] = time.monotonic() - start
        time.sleep(0.05)
    for sock in sockets:
        sock.close()
    return [lifetimes.get(i, limit) for i in range(count)]


class SetupDeadlineTests(unittest.TestCase):
    """A connection that opens with a private protocol's preamble has --connection_setup_timeout to
    authenticate, register or subscribe (1 s here), on the master and on an agent alike."""

    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        flags = ["--connection_setup_timeout=1secs"]
        self.cluster = yield HostileCluster(self, master_args=flags, agent_args=flags).start()
        host, port = self.cluster.master_address.split(":")
        self.master = (host, int(port))

    @defer.inlineCallbacks
    def test_preamble_then_silence_is_dropped(self):
        """Ten connections to the master that send the PB preamble and then nothing, and ten to the agent
        that send the executor stream's or PB's preamble and then nothing, are all dropped within a few
        seconds; the agent's own authenticated connection stays, and the cluster serves on."""
        attacks = [threads.deferToThread(silent_after, self.master, "127.0.0.6", PB, 10),
                   threads.deferToThread(silent_after, self.cluster.agent_address, "127.0.0.6", EXECUTOR, 5),
                   threads.deferToThread(silent_after, self.cluster.agent_address, "127.0.0.6", PB, 5)]
        for lifetimes in (yield defer.gatherResults(attacks)):
            self.assertGreater(min(lifetimes), 0.5, lifetimes)
            self.assertLess(max(lifetimes), 5.0, lifetimes)
        state = yield self.cluster.state()
        self.assertEqual(state["activated_slaves"], 1)
        self.assertTrue(self.cluster.master.alive())
        self.assertTrue(all(agent.alive() for agent in self.cluster.agents))

    @defer.inlineCallbacks
    def test_a_pb_client_that_never_authenticates_is_dropped(self):
        """A PB client that completes PB's own handshake and asks for the mechanisms, but never authenticates,
        is dropped once the deadline passes; one that authenticated, connected before it, is not."""
        trusted = yield pb_root(self.cluster.master_address, "alice")
        self.addCleanup(trusted.broker.transport.loseConnection)
        idle = yield pb_root(self.cluster.master_address)
        self.addCleanup(idle.broker.transport.loseConnection)
        dropped = []
        idle.notifyOnDisconnect(lambda _: dropped.append(True))
        yield idle.callRemote("authenticationMechanisms")
        yield wait_for(lambda: dropped, 10, what="the unauthenticated PB connection dropped")
        mechanisms = yield trusted.callRemote("authenticationMechanisms")
        self.assertEqual(mechanisms, ["CRAM-MD5"])


class FileLimitTests(unittest.TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_master_raises_its_file_limit(self):
        """A master started with a soft open-files limit of 256 (hard 4096) raises it to 4096 at start."""
        cluster = HostileCluster(self, agents=0)

        def limited() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))

        daemon = cluster.master
        log = open(daemon.log_path, "ab")
        daemon.process = subprocess.Popen([TWISTD, "-n", "--pidfile=", daemon.plugin, *daemon.args], stdout=log,
                                          stderr=subprocess.STDOUT, env=daemon.env,
                                          cwd=os.path.dirname(daemon.log_path), preexec_fn=limited)
        log.close()
        health = cluster.url("/master/health")
        yield wait_for(lambda: http_request("GET", health).addCallback(lambda r: r[0] == 200), 30, what="the master")
        with open(f"/proc/{daemon.pid}/limits") as f:
            line = next(line for line in f if line.startswith("Max open files"))
        self.assertEqual(line.split()[3:5], ["4096", "4096"])
