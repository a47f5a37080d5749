"""The webhook notifier: real HTTP between the Twisted client and a twisted.web server, over an
in-memory connection (iosim) instead of a socket."""

from __future__ import annotations

import base64
import json
from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.test import iosim
from twisted.trial import unittest
from twisted.web import resource, server

from frameworks.cron.effects import Notify
from frameworks.cron.notify import WebhookNotifier, payload


class Hook(resource.Resource):
    isLeaf = True

    def __init__(self, code: int = 200):
        super().__init__()
        self.code = code
        self.received: list[tuple[dict[str, Any], str | None]] = []

    def render_POST(self, request: server.Request) -> bytes:
        auth = request.getHeader("authorization")
        self.received.append((json.loads(request.content.read()), auth))
        request.setResponseCode(self.code)
        return b"ok"


NOTICE = Notify("failed", "[Chronos] job 'etl' failed!", "Retries attempted: 2.",
                {"name": "etl", "command": "run.sh", "cpus": 0.5, "mem": 64.0, "softError": False, "retries": 2,
                 "errorCount": 3, "errorsSinceLastSuccess": 1, "successCount": 9, "lastError": "", "lastSuccess": "",
                 "executor": "", "executorFlags": "", "fetch": [{"uri": "http://x/a.tgz"}], "uris": ["http://x/a.tgz"]},
                ("a@x.org", "b@x.org"))


class WebhookTests(unittest.TestCase):
    def deliver(self, notifier: WebhookNotifier, reactor: MemoryReactorClock, hook: Hook) -> list[Any]:
        """Connect every connection the notifier opened to the hook's site and let them talk."""
        done: list[Any] = []
        d = notifier.notify(NOTICE)
        d.addBoth(done.append)
        site = server.Site(hook, reactor=reactor)
        for _, _, factory, _, _ in reactor.tcpClients:
            client = factory.buildProtocol(None)
            served = site.buildProtocol(None)
            pump = iosim.connect(served, iosim.makeFakeServer(served), client, iosim.makeFakeClient(client))
            pump.flush()
        return done

    def test_one_post_per_owner_with_chronos_fields(self) -> None:
        """Each owner gets a JSON POST with Chronos's fields (as strings), the event, and Basic auth."""
        reactor = MemoryReactorClock()
        hook = Hook()
        notifier = WebhookNotifier(reactor, "http://127.0.0.1:9/hook", "user:secret")
        done = self.deliver(notifier, reactor, hook)
        self.assertEqual(done, [None])
        self.assertEqual(sorted(body["to"] for body, _ in hook.received), ["a@x.org", "b@x.org"])
        body, auth = hook.received[0]
        self.assertEqual(auth, "Basic " + base64.b64encode(b"user:secret").decode())
        self.assertEqual((body["job"], body["cpus"], body["softError"], body["uris"], body["event"]),
                         ("etl", "0.5", "false", "http://x/a.tgz", "failed"))
        self.assertEqual(body["subject"], "[Chronos] job 'etl' failed!")
        self.assertEqual(notifier.counts["sent"], 2)

    def test_failures_are_counted_not_raised(self) -> None:
        """A 500 from the hook, or no answer at all, is logged and counted; the Deferred still succeeds."""
        reactor = MemoryReactorClock()
        notifier = WebhookNotifier(reactor, "http://127.0.0.1:9/hook", timeout=5)
        done = self.deliver(notifier, reactor, Hook(code=500))
        self.assertEqual(done, [None])
        self.assertEqual(notifier.counts["failed"], 2)
        silent = MemoryReactorClock()
        quiet = WebhookNotifier(silent, "http://127.0.0.1:9/hook", timeout=5)
        result: list[Any] = []
        quiet.notify(NOTICE).addBoth(result.append)
        silent.advance(6)
        self.assertEqual((result, quiet.counts["failed"]), ([None], 2))
        self.flushLoggedErrors()

    def test_without_a_url_nothing_is_sent(self) -> None:
        """No --http_notification_url: notify does nothing and opens nothing."""
        reactor = MemoryReactorClock()
        d = WebhookNotifier(reactor, "").notify(NOTICE)
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(reactor.tcpClients, [])

    def test_payload_without_owner(self) -> None:
        """A job with no owner still notifies once, without a 'to'."""
        body = payload(Notify("deleted", "s", "", {"name": "x"}, ()), "")
        self.assertNotIn("to", body)
        self.assertEqual((body["job"], body["event"]), ("x", "deleted"))
