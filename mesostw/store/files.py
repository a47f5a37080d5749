"""A durable store in a directory: a snapshot plus an append-only journal (see :mod:`mesostw.store.disk`).

Opening is explicit or implicit: :meth:`FileStateStore.open` locks the directory and recovers it
(a Deferred that fails with StoreError naming the pid of another process holding it), and any
call made before that opens the store first. Reads are then served from memory; they see what is
durable, not writes still in flight.

A commit is one checksummed journal record, fsync'd before its Deferred fires. Commits made while
a write is in flight go into the next one together (group commit), so a burst costs one fsync per
batch. Once the journal outgrows the snapshot, the write that would have appended to it replaces
the snapshot instead (compaction), so a journal never holds more than about the state's size
and recovery stays proportional to the state. A failed write (ENOSPC, EIO) fails its commits with
StoreError and leaves the store as it was: its records are cut off the journal again.

The disk work runs in the reactor's thread pool, one call at a time; without a reactor it runs
in the calling thread (tools and tests that need no concurrency).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from mesostw.interfaces import IStateStore
from mesostw.store import Operation, StoreError, StoreFenced, records, validate
from mesostw.store.disk import Disk, Recovered
from mesostw.store.memory import TreeStore
from mesostw.store.tree import Tree

log = Logger()

#: The journal is compacted into the snapshot once it is larger than the snapshot and than this.
COMPACT_BYTES = 1 << 20
#: A group commit writes at most about this much (at least one commit).
MAX_BATCH_BYTES = 8 << 20

_NEW, _OPENING, _OPEN, _CLOSING, _CLOSED = "new", "opening", "open", "closing", "closed"


@implementer(IStateStore)
class FileStateStore(TreeStore):
    """The store in ``directory`` (created when missing)."""

    def __init__(self, directory: str, reactor: Any = None, compact_bytes: int = COMPACT_BYTES,
                 disk: Disk | None = None):
        self.disk = disk or Disk(directory)
        self.directory = self.disk.directory
        self.reactor = reactor
        self.compact_bytes = compact_bytes
        self.tree = Tree()
        self.snapshot_size = 0
        self.journal_size = 0
        self._state = _NEW
        self._opening: list[defer.Deferred] = []
        self._closing: list[defer.Deferred] = []
        self._queue: list[tuple[list[Operation], bytes, defer.Deferred]] = []
        self._writing = False

    def _run(self, function: Callable[..., Any], *args: Any) -> defer.Deferred:
        if self.reactor is None:
            return defer.maybeDeferred(function, *args)
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), function, *args)

    # -- opening and closing -------------------------------------------------------------------

    def open(self) -> defer.Deferred:
        """Lock and recover the directory (once); fires with this store."""
        if self._state == _OPEN:
            return defer.succeed(self)
        if self._state in (_CLOSING, _CLOSED):
            return defer.fail(StoreFenced(f"the store {self.directory} is closed"))
        d: defer.Deferred = defer.Deferred()
        self._opening.append(d)
        if self._state == _NEW:
            self._state = _OPENING
            self._run(self.disk.open).addBoth(self._opened)
        return d

    def _opened(self, result: Recovered | Failure) -> None:
        waiters, self._opening = self._opening, []
        if isinstance(result, Failure):
            # Opening may be tried again (e.g. once the other process is gone).
            self._state = _CLOSED if self._closing else _NEW
            failed, self._queue = self._queue, []
            for d in waiters:
                d.errback(result)
            for _, _, d in failed:
                d.errback(result)
            if self._closing:
                self._closed(None)
            return
        self._state = _CLOSING if self._closing else _OPEN
        self.tree, self.snapshot_size, self.journal_size = result.tree, result.snapshot_size, result.journal_size
        if result.dropped:
            log.warn("The store {dir} ended in a torn write of {n} bytes (never acknowledged); dropped it",
                     dir=self.directory, n=result.dropped)
        for d in waiters:
            d.callback(self)
        self._flush()
        self._maybe_closed()

    def close(self) -> defer.Deferred:
        """Finish the writes already made, then release the directory; later writes fail with StoreFenced."""
        if self._state in (_NEW, _CLOSED):
            self._state = _CLOSED
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._closing.append(d)
        if self._state == _OPEN:
            self._state = _CLOSING
            self._maybe_closed()
        return d

    def _maybe_closed(self) -> None:
        if self._state == _CLOSING and not self._writing and not self._queue:
            self._run(self.disk.close).addBoth(self._closed)

    def _closed(self, result: Any) -> None:
        self._state = _CLOSED
        waiters, self._closing = self._closing, []
        for d in waiters:
            d.callback(None)

    def _ready(self, read: Callable[[], Any]) -> defer.Deferred:
        if self._state in (_OPEN, _CLOSING):
            return defer.execute(read)
        return self.open().addCallback(lambda _: read())

    # -- IStateStore -------------------------------------------------------------------------

    def commit(self, operations: Iterable[Operation]) -> defer.Deferred:
        try:
            checked = validate(operations)
        except (TypeError, ValueError) as exc:
            return defer.fail(exc)
        if self._state in (_CLOSING, _CLOSED):
            return defer.fail(StoreFenced(f"the store {self.directory} is closed"))
        d: defer.Deferred = defer.Deferred()
        self._queue.append((checked, records.record(records.encode(checked)), d))
        if self._state == _NEW:
            self.open().addErrback(lambda _: None)  # the queued commits fail with it
        else:
            self._flush()
        return d

    # -- writing -----------------------------------------------------------------------------

    def _flush(self) -> None:
        if self._writing or not self._queue or self._state not in (_OPEN, _CLOSING):
            return
        size, count = 0, 0
        for _, payload, _ in self._queue:
            if count and size + len(payload) > MAX_BATCH_BYTES:
                break
            size, count = size + len(payload), count + 1
        batch, self._queue = self._queue[:count], self._queue[count:]
        self._writing = True
        if self.journal_size + size > max(self.snapshot_size, self.compact_bytes):
            after = self.tree.copy()
            for operations, _, _ in batch:
                after.apply(operations)
            d = self._run(self.disk.compact, after.items())
            d.addCallback(lambda snapshot_size: self._compacted(after, snapshot_size))
        else:
            d = self._run(self.disk.append, b"".join(payload for _, payload, _ in batch))
            d.addCallback(lambda journal_size: self._appended(batch, journal_size))
        d.addBoth(self._written, batch)

    def _appended(self, batch: list[tuple[list[Operation], bytes, defer.Deferred]], journal_size: int) -> None:
        for operations, _, _ in batch:
            self.tree.apply(operations)
        self.journal_size = journal_size

    def _compacted(self, after: Tree, snapshot_size: int) -> None:
        self.tree, self.snapshot_size, self.journal_size = after, snapshot_size, 0

    def _written(self, result: Any, batch: list[tuple[list[Operation], bytes, defer.Deferred]]) -> None:
        self._writing = False
        if isinstance(result, Failure):
            error = result.value if isinstance(result.value, StoreError) else StoreError(
                f"cannot write the store {self.directory}: {result.getErrorMessage()}")
            log.error("{e}", e=error)
        for _, _, d in batch:
            if isinstance(result, Failure):
                d.errback(StoreError(str(error)))
            else:
                d.callback(None)
        # A waiter's callback may have started the next write already: never two at once.
        self._flush()
        self._maybe_closed()
