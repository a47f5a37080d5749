"""Writes the planner's store operations in order, one atomic commit per reactor turn.

Everything written during one turn (a burst of status updates, a thousand slots coming due) goes out as
one commit, so the store's latency is paid once per turn rather than once per event. Commits are
serialised, so a later write never overtakes an earlier one. A commit that fails for want of the store
(ZooKeeper away) is retried with backoff; one refused because another instance now leads
(:class:`~mesostw.store.StoreFenced`) ends this instance's writing for good.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from mesostw.store import Delete, Operation, Put, StoreFenced

log = Logger()

#: A commit carries at most this many bytes of values (ZooKeeper's transactions stop at 1 MB); one
#: event's operations are never split across commits, so an event is always all-or-nothing.
MAX_COMMIT_BYTES = 512 * 1024


class StoreWriter:
    def __init__(self, store: Any, reactor: Any, fenced: Callable[[Failure], None]):
        self.store, self.reactor, self.fenced = store, reactor, fenced
        self._pending: list[tuple[list[Operation], defer.Deferred]] = []
        self._scheduled: Any = None
        self._busy = False
        self._backoff = 0.5
        self.dead = False
        self.commits = 0

    def write(self, ops: list[Operation]) -> defer.Deferred:
        """Fires once ``ops`` are durable (at once when there are none and nothing is queued before them)."""
        if self.dead:
            return defer.fail(StoreFenced("this instance no longer writes to the store"))
        if not ops and not self._pending and not self._busy:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._pending.append((list(ops), d))
        self._schedule(0)
        return d

    @property
    def idle(self) -> bool:
        return not self._pending and not self._busy

    def _schedule(self, delay: float) -> None:
        if self._scheduled is None and not self._busy:
            self._scheduled = self.reactor.callLater(delay, self._flush)

    def _flush(self) -> None:
        self._scheduled = None
        if not self._pending or self._busy:
            return
        batch: list[tuple[list[Operation], defer.Deferred]] = []
        size = 0
        while self._pending:
            ops, d = self._pending[0]
            weight = sum(len(op.value) for op in ops if isinstance(op, Put))
            if batch and size + weight > MAX_COMMIT_BYTES:
                break
            batch.append(self._pending.pop(0))
            size += weight
        self._commit(batch)

    def _commit(self, batch: list[tuple[list[Operation], defer.Deferred]]) -> None:
        last: dict[str, Operation] = {}
        for ops, _ in batch:
            for op in ops:
                last.pop(op.path, None)  # the last write to a path wins; keep the order of the others
                last[op.path] = op
        self._busy = True
        d = self.store.commit(list(last.values())) if last else defer.succeed(None)
        d.addCallbacks(self._done, self._failed, callbackArgs=(batch,), errbackArgs=(batch,))

    def _done(self, _: Any, batch: list[tuple[list[Operation], defer.Deferred]]) -> None:
        self._busy = False
        self._backoff = 0.5
        self.commits += 1
        for _, d in batch:
            d.callback(None)
        if self._pending:
            self._schedule(0)

    def _failed(self, failure: Failure, batch: list[tuple[list[Operation], defer.Deferred]]) -> None:
        self._busy = False
        if failure.check(StoreFenced):
            self.dead = True
            waiting = batch + self._pending
            self._pending = []
            for _, d in waiting:
                d.errback(failure)
            self.fenced(failure)
            return
        log.failure("Store commit failed; retrying in {delay}s", failure, delay=self._backoff)
        self._pending[:0] = batch
        delay, self._backoff = self._backoff, min(self._backoff * 2, 30.0)
        self._scheduled = self.reactor.callLater(delay, self._flush)

    def cancel(self) -> None:
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
        self._scheduled = None


__all__ = ["Delete", "Put", "StoreWriter"]
