"""``GET /v2/events``: the event bus as Server-Sent Events.

Each event is written as ``event: <type>\\ndata: <json>\\n\\n`` and flushed at once
(HTTP/1.1 clients get it chunked). The stream starts with ``event_stream_attached``,
honours ``event_type`` filters (repeatable) and ``plan-format=light`` (plans without
their groups, as marathon-lb asks), sends a comment line as keep-alive, and never
buffers without bound: a client that stops reading is paused (the transport's
producer), and one that falls more than ``MAX_BACKLOG`` events behind is closed.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web import server
from zope.interface import implementer

from frameworks.service.api import ApiContext
from frameworks.service.api.common import answer, values
from frameworks.service.events import EVENT_TYPES, Event
from mesostw.http.router import header

log = Logger()

MAX_BACKLOG = 1000
KEEPALIVE = 15.0


@implementer(IPushProducer)
class EventStream:
    """One SSE client: subscribed to the bus until it disconnects or is closed."""

    def __init__(self, ctx: ApiContext, request: server.Request, types: set[str] | None, light: bool):
        self.ctx = ctx
        self.request = request
        self.light = light
        self.paused = False
        self.backlog: list[bytes] = []
        self.closed = False
        self.remote = getattr(request.getClientAddress(), "host", "") or ""
        self.token = ctx.bus.subscribe(self.send, types)
        self.keepalive = ctx.host.reactor.callLater(KEEPALIVE, self._ping)
        request.registerProducer(self, True)
        request.notifyFinish().addBoth(self._gone)

    def send(self, event: Event) -> None:
        if self.closed:
            return
        if self.light and "plan" in event:
            event = dict(event)
            event["plan"] = {k: v for k, v in event["plan"].items() if k not in ("original", "target")}
        data = json.dumps(event, separators=(",", ":")).encode()
        self._write(b"event: " + event["eventType"].encode() + b"\ndata: " + data + b"\n\n")

    def _write(self, chunk: bytes) -> None:
        if self.paused:
            if len(self.backlog) >= MAX_BACKLOG:
                log.warn("Closing the event stream of {remote}: it stopped reading", remote=self.remote)
                self.close(abort=True)
                return
            self.backlog.append(chunk)
            return
        self.request.write(chunk)

    def _ping(self) -> None:
        self.keepalive = self.ctx.host.reactor.callLater(KEEPALIVE, self._ping)
        if not self.paused:
            self._write(b":\n\n")

    # -- IPushProducer -------------------------------------------------------------------------

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        backlog, self.backlog = self.backlog, []
        for chunk in backlog:
            if self.closed or self.paused:
                self.backlog = [chunk, *self.backlog]
                continue
            self.request.write(chunk)

    def stopProducing(self) -> None:
        self.close()

    # -- ending --------------------------------------------------------------------------------

    def close(self, abort: bool = False) -> None:
        """End the stream and its connection (the client is too slow: ``abort``, dropping what is
        buffered; or this instance stops leading)."""
        if self.closed:
            return
        self._detach()
        transport: Any = self.request.channel.transport if self.request.channel is not None else None
        try:
            self.request.unregisterProducer()
            if abort and transport is not None:
                transport.abortConnection()
                return
            self.request.finish()
            if transport is not None:
                transport.loseConnection()
        except Exception:  # noqa: BLE001 - the connection may already be gone
            pass

    def _detach(self) -> None:
        self.closed = True
        self.ctx.bus.unsubscribe(self.token)
        if self.keepalive.active():
            self.keepalive.cancel()

    def _gone(self, _: Any) -> None:
        if not self.closed:
            self._detach()
            self.ctx.bus.publish("event_stream_detached", remoteAddress=self.remote)


class Streams:
    """Every open stream, so that they can be closed when the framework stops."""

    def __init__(self) -> None:
        self.open: list[EventStream] = []

    def add(self, stream: EventStream) -> None:
        self.open = [s for s in self.open if not s.closed] + [stream]

    def close_all(self) -> None:
        for stream in self.open:
            stream.close()
        self.open = []


def install(router: Any, ctx: ApiContext) -> None:
    streams = Streams()
    ctx.streams = streams

    def events(request: server.Request) -> Any:
        accept = header(request, "accept") or ""
        if accept and "text/event-stream" not in accept and "*/*" not in accept:
            return answer({"message": "GET /v2/events needs 'Accept: text/event-stream'"}, 406)
        if not ctx.ready():
            return answer({"message": "Leader is not ready yet: the framework is recovering"}, 503)
        wanted = set(values(request, "event_type"))
        unknown = sorted(wanted - EVENT_TYPES)
        if unknown:
            return answer({"message": f"Unknown event types: {', '.join(unknown)}"}, 400)
        light = "light" in values(request, "plan-format")
        request.setResponseCode(200)
        request.setHeader("Content-Type", "text/event-stream")
        request.setHeader("Cache-Control", "no-cache, no-store, must-revalidate")
        stream = EventStream(ctx, request, wanted or None, light)
        streams.add(stream)
        ctx.bus.publish("event_stream_attached", remoteAddress=stream.remote)
        return server.NOT_DONE_YET

    router.route("/v2/events", events)
