"""The router serving static files (a web UI) next to its routes, over a real loopback port:
``static.File``'s pull producer needs the reactor's cooperator, which the in-memory client lacks."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web import client, server, static

from mesostw.http.router import Router


class StaticMountTests(unittest.TestCase):
    def setUp(self) -> None:
        self.router = Router()

    @defer.inlineCallbacks
    def test_static_files_at_the_root(self) -> Any:
        """A static.File mounted at the root serves files over a real loopback port (its pull
        producer needs the reactor's cooperator); routes still take precedence."""
        folder = self.mktemp()
        os.makedirs(folder)
        with open(os.path.join(folder, "index.html"), "wb") as f:
            f.write(b"<h1>ui</h1>")
        self.router.mount("/", static.File(folder))
        self.router.route("/master/state", lambda request: {"ok": True})
        port = reactor.listenTCP(0, server.Site(self.router), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        base = f"http://127.0.0.1:{port.getHost().port}"
        agent = client.Agent(reactor, pool=client.HTTPConnectionPool(reactor, persistent=False))
        results = []
        for path in ("/index.html", "/master/state", "/missing.js"):
            response = yield agent.request(b"GET", (base + path).encode())
            body = yield client.readBody(response)
            results.append((response.code, body))
        self.assertEqual(results[0], (200, b"<h1>ui</h1>"))
        self.assertEqual(results[1], (200, b'{"ok":true}'))
        self.assertEqual(results[2][0], 404)
