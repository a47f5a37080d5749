"""Reliable status updates: an ordered stream per task, retried until acknowledged.

As Mesos's status update manager: only the head of each task's stream is in
flight; it is re-sent with exponential backoff (10 s doubling to 10 min) until
the scheduler's acknowledgement comes back through the master, and then the
next update of that task goes out. Duplicates (same UUID) are ignored.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterable, Iterator

from mesostw.model.task import TaskStatus

RETRY_MIN = 10.0
RETRY_MAX = 600.0

Forward = Callable[[list[tuple[str, TaskStatus]]], None]


class _Stream:
    __slots__ = ("framework_id", "pending", "timer", "interval", "seen", "sent")

    def __init__(self, framework_id: str):
        self.framework_id = framework_id
        self.pending: deque[TaskStatus] = deque()
        self.timer: Any = None
        self.interval = RETRY_MIN
        self.seen: set[bytes] = set()
        self.sent = False


class StatusUpdateManager:
    """Holds unacknowledged updates and forwards them to the master through ``forward``."""

    def __init__(self, clock: Any, forward: Forward, retry_min: float = RETRY_MIN, retry_max: float = RETRY_MAX):
        self._clock = clock
        self._forward = forward
        self._retry_min = retry_min
        self._retry_max = retry_max
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._outbox: list[tuple[str, TaskStatus]] = []
        self._flush_call: Any = None
        self.paused = True

    def update(self, framework_id: str, status: TaskStatus) -> bool:
        """Queue a reliable update; False if it is a duplicate of one already queued."""
        assert status.uuid is not None, "reliable updates carry a UUID"
        key = (framework_id, status.task_id)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(framework_id)
        if status.uuid in stream.seen:
            return False
        stream.seen.add(status.uuid)
        stream.pending.append(status)
        if len(stream.pending) == 1:
            self._send_head(stream)
        return True

    def recover(self, framework_id: str, task_id: str, pending: list[TaskStatus], seen: Iterable[bytes]) -> None:
        """Take back a task's stream from a checkpoint: its unacknowledged updates in order, and the
        UUIDs of all it ever received (so that an executor re-sending one is not taken twice)."""
        stream = self._streams[(framework_id, task_id)] = _Stream(framework_id)
        stream.seen.update(seen)
        stream.pending.extend(pending)
        if stream.pending:
            self._send_head(stream)
        elif not stream.seen:
            del self._streams[(framework_id, task_id)]

    def acknowledge(self, framework_id: str, task_id: str, uuid: bytes) -> TaskStatus | None:
        """Retire the head update if ``uuid`` names it; returns it, or None for a stale ack."""
        key = (framework_id, task_id)
        stream = self._streams.get(key)
        if stream is None or not stream.pending or stream.pending[0].uuid != uuid:
            return None
        acked = stream.pending.popleft()
        self._cancel(stream)
        stream.interval = self._retry_min
        if stream.pending:
            self._send_head(stream)
        elif acked.terminal:
            del self._streams[key]
        return acked

    def pending(self, framework_id: str, task_id: str) -> list[TaskStatus]:
        stream = self._streams.get((framework_id, task_id))
        return list(stream.pending) if stream else []

    def heads(self) -> Iterator[tuple[str, TaskStatus]]:
        for stream in self._streams.values():
            if stream.pending:
                yield stream.framework_id, stream.pending[0]

    def has_pending(self, framework_id: str, task_id: str) -> bool:
        stream = self._streams.get((framework_id, task_id))
        return bool(stream and stream.pending)

    def pause(self) -> None:
        """No master: hold everything until :meth:`resume`."""
        self.paused = True
        for stream in self._streams.values():
            self._cancel(stream)
            stream.sent = False

    def resume(self) -> None:
        """A master is back: send every head again at once."""
        self.paused = False
        for stream in self._streams.values():
            if stream.pending:
                stream.interval = self._retry_min
                self._send_head(stream)

    def cleanup(self, framework_id: str) -> None:
        """Drop every stream of a framework that is gone."""
        for key in [k for k in self._streams if k[0] == framework_id]:
            self._cancel(self._streams.pop(key))

    def stop(self) -> None:
        for stream in self._streams.values():
            self._cancel(stream)
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None

    def _send_head(self, stream: _Stream) -> None:
        if self.paused:
            return
        self._cancel(stream)
        self._outbox.append((stream.framework_id, stream.pending[0]))
        stream.sent = True
        stream.timer = self._clock.callLater(stream.interval, self._retry, stream)
        if self._flush_call is None:
            self._flush_call = self._clock.callLater(0, self._flush)

    def _retry(self, stream: _Stream) -> None:
        stream.timer = None
        if stream.pending and not self.paused:
            stream.interval = min(stream.interval * 2, self._retry_max)
            self._send_head(stream)

    def _cancel(self, stream: _Stream) -> None:
        if stream.timer is not None and stream.timer.active():
            stream.timer.cancel()
        stream.timer = None

    def _flush(self) -> None:
        self._flush_call = None
        batch, self._outbox = self._outbox, []
        if batch:
            self._forward(batch)
