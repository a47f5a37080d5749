"""``/v2/events``: Server-Sent Events with Marathon's types, server-side filters, light plans,
keep-alives, detach, and slow consumers closed instead of buffered."""

from __future__ import annotations

from twisted.trial import unittest

from frameworks.service.api.events import KEEPALIVE, MAX_BACKLOG
from frameworks.service.events import EVENT_TYPES
from tests.helpers.service import ServiceHarness, StreamReader


class EventStreamTests(unittest.TestCase):
    def setUp(self) -> None:
        self.h = ServiceHarness().start()
        self.addCleanup(self.h.stop)

    def test_stream_of_an_app_life(self) -> None:
        """Attached first, then api_post, deployment_info, status updates, deployment_success;
        every event has a type marathon-python knows and a timestamp."""
        stream = StreamReader(self.h, "/v2/events")
        self.addCleanup(stream.close)
        self.assertIn(b"Content-Type: text/event-stream", stream.raw())
        self.assertIn(b"Transfer-Encoding: chunked", stream.raw())
        self.h.create({"id": "web", "cmd": "serve", "cpus": 0.1, "mem": 32,
                       "healthChecks": [{"protocol": "TCP", "intervalSeconds": 1}]})
        self.h.until(lambda: "deployment_success" in stream.types())
        types = stream.types()
        self.assertEqual(types[0], "event_stream_attached")
        for expected in ("api_post_event", "deployment_info", "status_update_event", "instance_changed_event",
                         "deployment_step_success", "group_change_success", "add_health_check_event",
                         "health_status_changed_event", "instance_health_changed_event"):
            self.assertIn(expected, types)
        self.assertLess(types.index("deployment_info"), types.index("deployment_success"))
        for event in stream.events():
            self.assertIn(event["eventType"], EVENT_TYPES)
            self.assertRegex(event["timestamp"], r"Z$")
        info = next(e for e in stream.events() if e["eventType"] == "deployment_info")
        self.assertEqual(set(info["plan"]), {"id", "version", "original", "target", "steps"})
        self.assertEqual(set(info["plan"]["target"]), {"id", "version", "apps", "groups", "pods", "dependencies"})
        update = next(e for e in stream.events() if e["eventType"] == "status_update_event")
        self.assertEqual(update["appId"], "/web")
        self.assertIn(b"event: status_update_event\ndata: {", stream.raw())

    def test_filter_and_light_plans(self) -> None:
        """event_type filters on the server; plan-format=light leaves the groups out."""
        stream = StreamReader(self.h, "/v2/events?event_type=deployment_info&event_type=deployment_success"
                                      "&plan-format=light")
        self.addCleanup(stream.close)
        self.h.create({"id": "web", "cmd": "serve", "cpus": 0.1, "mem": 32})
        self.h.until(lambda: "deployment_success" in stream.types())
        self.assertEqual(set(stream.types()), {"deployment_info", "deployment_success"})
        info = stream.events()[0]
        self.assertEqual(set(info["plan"]), {"id", "version", "steps"})

    def test_refusals(self) -> None:
        """An unknown event type is a 400; a client that does not accept event streams a 406."""
        bad = StreamReader(self.h, "/v2/events?event_type=nonsense")
        self.assertIn(b"400", bad.raw().split(b"\r\n")[0])
        json_only = StreamReader(self.h, "/v2/events", {"Accept": "application/json"})
        self.assertIn(b"406", json_only.raw().split(b"\r\n")[0])

    def test_keepalive_and_detach(self) -> None:
        """Idle streams get a comment line; a closed one is announced and unsubscribed."""
        watcher = StreamReader(self.h, "/v2/events")
        self.addCleanup(watcher.close)
        stream = StreamReader(self.h, "/v2/events")
        self.h.advance(KEEPALIVE + 1)
        self.assertIn(b":\n\n", stream.raw())
        subscribers = self.h.framework.bus.subscribers
        stream.close()
        self.assertEqual(self.h.framework.bus.subscribers, subscribers - 1)
        self.assertEqual(watcher.types().count("event_stream_detached"), 1)

    def test_slow_consumer_is_closed(self) -> None:
        """A client that stops reading is paused, and closed once too far behind."""
        stream = StreamReader(self.h, "/v2/events")
        stream.transport.producer.pauseProducing()
        for _ in range(MAX_BACKLOG + 5):
            self.h.framework.bus.publish("group_change_success", groupId="/", version="x")
        self.assertTrue(stream.transport.disconnecting)
        self.assertEqual(self.h.framework.bus.subscribers, 0)

    def test_streams_close_when_the_framework_stops(self) -> None:
        """Stopping the framework (losing leadership) ends every stream."""
        stream = StreamReader(self.h, "/v2/events")
        self.h.stop()
        self.assertTrue(stream.transport.disconnecting)
