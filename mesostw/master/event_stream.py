"""``SUBSCRIBE`` of the master's operator API: one RecordIO event stream per subscriber.

The answer is ``200`` with ``Content-Type: application/json`` and a body that never ends: RecordIO
records, first ``SUBSCRIBED`` (the whole ``GET_STATE`` the subscriber may view, and the heartbeat
interval), then every event of :class:`~mesostw.master.events.MasterEvents` it may view, and a
``HEARTBEAT`` every ``heartbeat_interval_seconds``. The snapshot and the subscription happen in one
reactor turn, so that no change falls between them: the snapshot is made in that turn as the pieces of
text a streamed ``GET_STATE`` is made of (:func:`mesostw.http.stream.pieces`; its record's length comes
first), and written as the connection takes them, events waiting behind it.

Backpressure: the subscriber is the request's push producer. While its connection's buffer is
full, Twisted pauses it and its events wait in a queue of their own; if that queue holds more
than ``max_queued`` bytes the client is not keeping up, and the subscription is dropped with a log
line, so that a slow reader can never make the master's memory grow without bound.
"""

from __future__ import annotations

import uuid
from collections import deque
from typing import Any

from twisted.internet import task
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web import server
from zope.interface import implementer

from mesostw.http.content import JSON
from mesostw.http.stream import Fields, pieces
from mesostw.master import v1_json
from mesostw.master.events import HEARTBEAT, SUBSCRIBED, MasterEvents, OperatorEvent
from mesostw.model.validation import Reader
from mesostw.operator.approvers import Approvers
from mesostw.operator.calls import CallContext, CallTable, Stream
from mesostw.verbosity import vlog

log = Logger()

#: Mesos's ``DEFAULT_HEARTBEAT_INTERVAL`` for the operator API.
HEARTBEAT_INTERVAL = 15.0
#: Events waiting for a paused subscriber, in bytes, beyond which it is dropped.
MAX_QUEUED_BYTES = 8 * 1024 * 1024


def frame(payload: bytes) -> bytes:
    """One RecordIO record."""
    return b"%d\n%s" % (len(payload), payload)


@implementer(IPushProducer)
class EventSubscriber:
    """One subscriber's stream: an :class:`~mesostw.master.events.EventSink` over an open HTTP response."""

    def __init__(self, events: MasterEvents, request: server.Request, approvers: Approvers, clock: Any,
                 heartbeat: float, max_queued: int = MAX_QUEUED_BYTES):
        self.events = events
        self.request = request
        self.approvers = approvers
        self.stream_id = str(uuid.uuid4())
        self.max_queued = max_queued
        self.paused = False
        self.closed = False
        self._queue: deque[bytes] = deque()
        self._queued = 0
        #: what is left to write of the SUBSCRIBED record (events wait behind it)
        self._snapshot: deque[bytes] = deque()
        self._heartbeat = task.LoopingCall(self.send, OperatorEvent({"type": HEARTBEAT}))
        self._heartbeat.clock = clock
        self._heartbeat_interval = heartbeat

    @property
    def queued_bytes(self) -> int:
        """What waits for the connection to drain."""
        return self._queued

    def start(self, subscribed: list[bytes]) -> None:
        """Answer the request, send SUBSCRIBED (its JSON text, in ``subscribed`` pieces) and subscribe (in
        this order, in this turn)."""
        request = self.request
        request.setResponseCode(200)
        request.setHeader("Content-Type", JSON)
        request.setHeader("Cache-Control", "no-cache")
        request.setHeader("Mesos-Stream-Id", self.stream_id)
        request.registerProducer(self, True)
        request.notifyFinish().addBoth(self._gone)
        log.info("Added operator event subscriber {id} of {principal}", id=self.stream_id,
                 principal=self.approvers.principal or "(anonymous)")
        self._snapshot.append(b"%d\n" % sum(len(piece) for piece in subscribed))
        self._snapshot.extend(subscribed)
        self._write_snapshot()
        if self.closed:  # the connection went while the snapshot was written
            return
        self.events.subscribe(self)
        self._heartbeat.start(self._heartbeat_interval, now=False)

    # -- EventSink ----------------------------------------------------------------------

    def send(self, event: OperatorEvent) -> None:
        if self.closed:
            return
        record = frame(event.encoded())
        if self.paused or self._queue or self._snapshot:
            self._queue.append(record)
            self._queued += len(record)
            if self._queued > self.max_queued:
                log.warn("Dropping operator event subscriber {id} of {principal}: {n} bytes of events are waiting "
                         "for a client that does not read them (more than {limit})", id=self.stream_id,
                         principal=self.approvers.principal or "(anonymous)", n=self._queued, limit=self.max_queued)
                self.close("too slow: its events piled up")
            return
        vlog(log, 2, "Sending {type} to operator event subscriber {id}", type=event.type, id=self.stream_id)
        self.request.write(record)

    def close(self, reason: str) -> None:
        """End the stream: the response ends, as a failed-over Mesos master's streams do."""
        if self.closed:
            return
        log.info("Closing operator event subscriber {id}: {reason}", id=self.stream_id, reason=reason)
        self._stop()
        request = self.request
        if request.finished or getattr(request, "_disconnected", False):
            return
        if request.producer is not None:
            request.unregisterProducer()
        request.finish()

    # -- IPushProducer --------------------------------------------------------------------

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self._write_snapshot()
        while not self._snapshot and self._queue and not self.paused and not self.closed:
            record = self._queue.popleft()
            self._queued -= len(record)
            self.request.write(record)

    def stopProducing(self) -> None:
        self._stop()

    def _write_snapshot(self) -> None:
        """Write what is left of SUBSCRIBED, piece by piece, until the connection is full (each piece is
        let go once written: the record is held once, not copied whole into the connection's buffer)."""
        snapshot = self._snapshot
        while snapshot and not self.paused and not self.closed:
            self.request.write(snapshot.popleft())

    # -- ending -----------------------------------------------------------------------------

    def _stop(self) -> None:
        self.closed = True
        self._queue.clear()
        self._snapshot.clear()
        self._queued = 0
        if self._heartbeat.running:
            self._heartbeat.stop()
        self.events.unsubscribe(self)

    def _gone(self, _: Any) -> None:
        if not self.closed:
            log.info("Operator event subscriber {id} went away", id=self.stream_id)
        self._stop()


class SubscribeStream(Stream):
    """SUBSCRIBE's answer: a new :class:`EventSubscriber` on the request."""

    def __init__(self, streams: EventStreams, context: CallContext):
        self.streams = streams
        self.context = context

    def start(self, request: Any) -> Any:
        streams = self.streams
        subscriber = EventSubscriber(streams.master.events, request, self.context.approvers, streams.clock,
                                     streams.heartbeat, streams.max_queued)
        snapshot = Fields({"type": SUBSCRIBED, "subscribed": Fields({
            "get_state": v1_json.get_state_fields(streams.master, self.context.approvers),
            "heartbeat_interval_seconds": streams.heartbeat})})
        subscriber.start(pieces(snapshot))
        return server.NOT_DONE_YET


class EventStreams:
    """Registers SUBSCRIBE on a master's call table."""

    def __init__(self, master: Any, clock: Any, heartbeat: float = HEARTBEAT_INTERVAL,
                 max_queued: int = MAX_QUEUED_BYTES):
        self.master = master
        self.clock = clock
        self.heartbeat = heartbeat
        self.max_queued = max_queued

    def register(self, table: CallTable) -> None:
        table.register("SUBSCRIBE", self.subscribe)

    def subscribe(self, context: CallContext, reader: Reader | None) -> Stream:
        return SubscribeStream(self, context)
