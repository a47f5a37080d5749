"""The health-check probes against real servers on loopback: HTTP status ranges and timeouts, TCP
connect and refusal, COMMAND exit status and timeout."""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web import resource, server

from frameworks.service.probes import ReactorProber


class Health(resource.Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[server.Request] = []

    def render_GET(self, request: server.Request) -> Any:
        if request.path == b"/slow":
            self.pending.append(request)
            return server.NOT_DONE_YET
        if request.path == b"/bad":
            request.setResponseCode(503)
            return b"down"
        if request.path == b"/moved":
            request.setResponseCode(302)
            return b""
        return b"fine"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ProbeTests(unittest.TestCase):
    def setUp(self) -> None:
        self.site = Health()
        self.port = reactor.listenTCP(0, server.Site(self.site), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.prober = ReactorProber(reactor)

    def tearDown(self) -> None:
        for request in self.site.pending:
            if not request.finished and not getattr(request, "_disconnected", False):
                request.finish()

    @defer.inlineCallbacks
    def test_http(self) -> Any:
        """200-399 pass, 503 fails with its status, a slow answer times out."""
        port = self.port.getHost().port
        ok = yield self.prober.http("127.0.0.1", port, "/health", False, 5)
        self.assertEqual((ok.ok, ok.status), (True, 200))
        moved = yield self.prober.http("127.0.0.1", port, "/moved", False, 5)
        self.assertTrue(moved.ok)
        bad = yield self.prober.http("127.0.0.1", port, "/bad", False, 5, keep_body=True)
        self.assertEqual((bad.ok, bad.cause, bad.body), (False, "HTTP 503", "down"))
        slow = yield self.prober.http("127.0.0.1", port, "/slow", False, 0.3)
        self.assertFalse(slow.ok)
        self.assertIn("timed out", slow.cause)

    @defer.inlineCallbacks
    def test_http_refused(self) -> Any:
        """Nothing listening is a failure saying so."""
        refused = yield self.prober.http("127.0.0.1", closed_port(), "/", False, 5)
        self.assertFalse(refused.ok)
        self.assertIn("refused", refused.cause)

    @defer.inlineCallbacks
    def test_tcp(self) -> Any:
        """A listening port passes; a closed one fails."""
        ok = yield self.prober.tcp("127.0.0.1", self.port.getHost().port, 5)
        self.assertTrue(ok.ok)
        refused = yield self.prober.tcp("127.0.0.1", closed_port(), 5)
        self.assertFalse(refused.ok)

    @defer.inlineCallbacks
    def test_command(self) -> Any:
        """Exit 0 passes with the task's environment; other statuses fail; a hang is killed."""
        ok = yield self.prober.command('test "$PORT0" = 31000', {"PORT0": "31000"}, 5)
        self.assertTrue(ok.ok)
        bad = yield self.prober.command("exit 3", {}, 5)
        self.assertEqual((bad.ok, bad.cause), (False, "command exited with status 3"))
        hung = yield self.prober.command("exec sleep 30", {}, 0.3)
        self.assertFalse(hung.ok)
        self.assertIn("timed out", hung.cause)
