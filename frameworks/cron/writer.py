"""Writes the planner's store operations in order, in one atomic commit per reactor turn.

Everything written during one turn (a burst of status updates, a thousand slots coming due) goes out in
one commit, up to :data:`MAX_COMMIT_BYTES`, so the store's latency is paid once per turn rather than once
per event. An event is all-or-nothing unless it alone is over that size; it is then written job by job
(see :func:`split`), each job's record with its runs. Commits are serialised, so a later write never
overtakes an earlier one. A commit that fails for want of the store
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

#: A commit carries at most about this many bytes (paths, values and a per-operation allowance), half
#: of ZooKeeper's 1 MB request limit, which leaves room for the store's own prefix and for a master's
#: registry writes that its store may send in the same transaction.
MAX_COMMIT_BYTES = 512 * 1024
#: What an operation costs in a request besides its path and value (ZooKeeper: header, version, ACL).
OPERATION_BYTES = 64


def weight(ops: list[Operation]) -> int:
    """About how many bytes ``ops`` take in a store request."""
    return sum(len(op.path) + OPERATION_BYTES + (len(op.value) if isinstance(op, Put) else 0) for op in ops)


def unit(path: str) -> str:
    """What must be written together with ``path``: a job's record and its runs (``jobs/<name>``,
    ``runs/<name>:<due>``) form one unit; any other path is its own."""
    top, _, rest = path.partition("/")
    if top in ("jobs", "runs") and rest:
        return rest.partition(":")[0]
    return path


def split(ops: list[Operation], limit: int) -> list[list[Operation]]:
    """``ops`` in parts of at most ``limit`` bytes, never parting one job's operations (a job larger than
    ``limit`` is a part of its own), each part keeping the order of its operations."""
    units: dict[str, list[Operation]] = {}
    for op in ops:
        units.setdefault(unit(op.path), []).append(op)
    parts: list[list[Operation]] = [[]]
    size = 0
    for group in units.values():
        cost = weight(group)
        if parts[-1] and size + cost > limit:
            parts.append([])
            size = 0
        parts[-1].extend(group)
        size += cost
    return parts


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
        ops = list(ops)
        if weight(ops) <= MAX_COMMIT_BYTES:
            d: defer.Deferred = defer.Deferred()
            self._pending.append((ops, d))
            self._schedule(0)
            return d
        # One event over the limit (a thousand slots coming due at once): its jobs are written in several
        # commits, each job's record with its runs; the event is durable once the last commit is.
        parts: list[defer.Deferred] = []
        for part in split(ops, MAX_COMMIT_BYTES):
            parts.append(defer.Deferred())
            self._pending.append((part, parts[-1]))
        self._schedule(0)
        whole = defer.gatherResults(parts, consumeErrors=True)
        whole.addErrback(lambda failure: failure.value.subFailure)
        return whole.addCallback(lambda _: None)

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
            cost = weight(ops)
            if batch and size + cost > MAX_COMMIT_BYTES:
                break
            batch.append(self._pending.pop(0))
            size += cost
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
