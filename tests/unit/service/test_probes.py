"""The health-check probes against real servers on loopback: HTTP status ranges and timeouts, TCP
connect and refusal (COMMAND checks run on the agent: tests/unit/test_executor_health.py)."""

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


class MonitorOnSocketsTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_monitor_probes_a_real_server(self) -> Any:
        """The monitor runs an instance's HTTP and TCP checks against a loopback server until unwatched."""
        from frameworks.service.appdef import App
        from frameworks.service.errors import Problems
        from frameworks.service.instances import Instance
        from frameworks.service.monitor import HealthMonitor
        from frameworks.service.validation import normalize
        from tests.helpers.processes import wait_for

        site = Health()
        port = reactor.listenTCP(0, server.Site(site), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        problems = Problems()
        spec = normalize({"id": "web", "cmd": "x", "healthChecks": [
            {"protocol": "HTTP", "path": "/health", "intervalSeconds": 1},
            {"protocol": "TCP", "intervalSeconds": 1}]}, problems)
        self.assertFalse(problems)
        app = App.build(spec, "2020-01-01T00:00:00.000Z")
        instance = Instance("web.1", "/web", app.version, app.version, "S1", "127.0.0.1", [port.getHost().port])
        results: list[tuple[str, bool]] = []
        monitor = HealthMonitor(reactor, ReactorProber(reactor), 4,
                                lambda i, check, result: results.append((check.protocol, result.ok)),
                                lambda i, check, result: None)
        monitor.watch(instance, app)
        self.addCleanup(monitor.stop)
        yield wait_for(lambda: len(results) >= 4, timeout=10, what="two rounds of probes")
        self.assertEqual(set(results), {("HTTP", True), ("TCP", True)})
        monitor.unwatch(instance.task_id)
        self.assertFalse(monitor.watching(instance.task_id))
        yield wait_for(lambda: monitor.idle, timeout=10, what="the last probe to end")
