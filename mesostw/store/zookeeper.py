"""A store in ZooKeeper: one znode per path under a root, every commit one fenced transaction.

A value is the data of the znode ``<root>/<path>``; its parents are created as needed (empty) and
removed again, in the same transaction, once nothing is left below them, so every znode holds a
value or has children. (Read back, an empty znode with children is a parent only, a childless
one the empty value.) Nothing but the data goes into a znode, so other programs can read it.

**Fencing.** ``fence`` is None for an unfenced store, or a callable returning the path of the
writer's ephemeral election node (None while it has none). Every transaction first checks that
node, so once the writer's session is gone, its writes fail with StoreFenced and change nothing:
a deposed leader can never overwrite its successor's state.

**Reads** are served from a mirror of the subtree, read on first use (or :meth:`load`). The store
is meant for its writer, which alone changes the subtree while it holds the fence, so the mirror
stays exact; a transaction refused because the subtree is not what the mirror says (another
program changed it) drops the mirror and the next call reads it again. Reads see what is
committed, not commits in flight.

**A standby's mirror.** A store whose owner does not write yet (a master that is not the leader) can
:meth:`follow` the subtree: it reads it ahead, with a watch on every znode, and reads it again, at most
every few seconds, after any change ZooKeeper reports (the connection lost included: that drops every
watch). The mirror is trusted only while no change was reported since it was read. Once its owner is
elected, :meth:`lead` ends the watching, and the mirror, if still trusted, serves at once: ZooKeeper
reports the changes of one session's watches in order with its other events, and the previous writer's
last write came before its election node went away (every write checks that node), so its report is
handled before the owner learns it is elected. A mirror no longer trusted is read again, as at first use.

**Connection loss.** A transaction whose outcome is unknown (the connection broke while it was in
flight) is in doubt, not failed: the store reads the subtree again once ZooKeeper answers (retrying
for up to the session timeout) and compares. Found committed, its commits succeed; found not
committed, it is sent again (the fence check makes that safe: a writer whose session expired
meanwhile is refused); anything else means another program wrote, and its commits fail.

**Writes.** One transaction is in flight at a time; commits made meanwhile go into the next one
together (group commit, at most ``max_batch`` commits and ZooKeeper's 1 MB request limit). A value
over that limit is refused with StoreError before anything is sent. A transaction ZooKeeper refuses
is undone exactly from the mirror, and the commits queued behind it proceed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from kazoo.exceptions import RolledBackError, RuntimeInconsistency
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from mesostw.interfaces import IStateStore
from mesostw.store import Operation, Put, StoreError, StoreFenced, normalize, validate
from mesostw.store.memory import TreeStore
from mesostw.store.tree import Tree

log = Logger()

#: ZooKeeper refuses requests over ``jute.maxbuffer`` (1 MB by default), a multi as a whole included.
MAX_REQUEST_BYTES = 1_000_000
#: What an operation adds to a request besides its path and data (header, version, ACL).
_OPERATION_BYTES = 64
#: Commits sent together at most.
MAX_BATCH = 64

_STALE, _LOADING, _LOADED = "stale", "loading", "loaded"
#: seconds between attempts to read the subtree while a transaction is in doubt
RETRY_READ = 0.5
#: A standby reads the subtree again this long after a change at the soonest, and never sooner than
#: REFRESH_FACTOR times its last read took (its reads cost ZooKeeper too).
REFRESH_DELAY = 2.0
REFRESH_FACTOR = 10.0

Batch = list[tuple[list[Operation], defer.Deferred]]
#: Operations of a transaction: ("create" | "set" | "delete", znode path, data)
TxOps = list[tuple[str, str, bytes]]
#: How to take back what building a transaction did to the mirror: (action, path, value before)
Undo = list[tuple[str, str, bool | None]]


@implementer(IStateStore)
class ZooKeeperStateStore(TreeStore):
    def __init__(self, zk: Any, root: str, fence: Callable[[], str | None] | None = None,
                 max_batch: int = MAX_BATCH):
        relative = normalize(root)
        if not relative:
            raise ValueError("a ZooKeeper store needs a root below /")
        self.zk = zk
        self.root = f"/{relative}"
        self.fence = fence
        self.max_batch = max_batch
        #: committed values
        self.tree = Tree()
        #: the znodes that exist below the root (committed, and the transaction in flight)
        self._nodes = Tree()
        self._state = _STALE
        self._loading: list[defer.Deferred] = []
        self._queue: Batch = []
        self._writing = False
        self._idle: list[defer.Deferred] = []
        #: transactions whose outcome is unknown: (their commits, the values before, the values after)
        self._in_doubt: list[tuple[Batch, Tree, Tree]] = []
        self._doubt_deadline: float | None = None
        #: whether the subtree is watched for another writer's changes (see :meth:`follow`)
        self._following = False
        #: changes reported while following: a read that saw a change happen under it is read again
        self._changes = 0
        self._refresh_call: Any = None
        self._read_seconds = 0.0
        #: how many times the subtree was read (a standby that leads with a trusted mirror reads it no more)
        self.reads = 0

    def _znode(self, path: str) -> str:
        return f"{self.root}/{path}" if path else self.root

    # -- reading the subtree -------------------------------------------------------------------

    def load(self) -> defer.Deferred:
        """Read the subtree into the mirror (once, or again after an unknown outcome); fires with this store."""
        if self._state == _LOADED:
            return defer.succeed(self)
        d: defer.Deferred = defer.Deferred()
        self._loading.append(d)
        if self._state == _STALE:
            self._start_read()
        return d

    def _start_read(self) -> None:
        self._state = _LOADING
        self.reads += 1
        changes, started = self._changes, self.zk.reactor.seconds()
        self._read().addBoth(self._loaded, changes, started, self._following)

    @defer.inlineCallbacks
    def _read(self) -> Any:
        yield self.zk.ensure_path(self.root)
        found = yield (self.zk.read_tree(self.root, self._watcher) if self._following else self.zk.read_tree(self.root))
        values = [(path, data) for path, (data, children) in found.items() if data or not children]
        return Tree(values), Tree((path, b"") for path in found)

    def _loaded(self, result: Any, changes: int, started: float, watched: bool) -> None:
        self._read_seconds = self.zk.reactor.seconds() - started
        if not isinstance(result, Failure) and (changes != self._changes or (self._following and not watched)):
            # A change was reported while the subtree was read, or it was read unwatched and is to be followed
            # now: what was read may not be what is.
            self._state = _STALE
            if self._loading:
                self._start_read()
            else:
                self._schedule_refresh()
            return
        if isinstance(result, Failure) and self._in_doubt and self._may_retry_load():
            log.info("Cannot read the store {root} yet ({e}); trying again", root=self.root,
                     e=result.getErrorMessage() or result.type.__name__)
            self.zk.reactor.callLater(RETRY_READ, self._start_read)
            return
        waiters, self._loading = self._loading, []
        if isinstance(result, Failure):
            self._state = _STALE
            if self._following and not waiters:
                log.info("Cannot read the store {root} ahead ({e}); trying again later", root=self.root,
                         e=result.getErrorMessage() or result.type.__name__)
                self._schedule_refresh()
                return
            failure = Failure(StoreError(f"cannot read the store {self.root} from ZooKeeper: "
                                         f"{result.getErrorMessage() or result.type.__name__}"))
            doubtful, self._in_doubt = self._in_doubt, []
            queued, self._queue = self._queue, []
            for d in [*waiters, *(d for batch, _, _ in doubtful for _, d in batch), *(d for _, d in queued)]:
                d.errback(failure)
            self._maybe_idle()
            return
        self.tree, self._nodes = result
        self._state = _LOADED
        self._resolve_doubts()
        for d in waiters:
            d.callback(self)
        self._flush()

    # -- a standby's mirror ----------------------------------------------------------------------

    def follow(self) -> None:
        """Read the subtree ahead and keep the mirror while another writer changes it (see the module's
        documentation), until :meth:`lead`."""
        self._following = True
        if self._state == _STALE and not self._in_doubt:
            self._start_read()

    def lead(self) -> None:
        """This store's owner is the writer from now on: the mirror, if no change was reported since it was
        read, serves as it is; otherwise the subtree is read again at first use. Changes reported from now
        on are this writer's own."""
        self._following = False
        if self._refresh_call is not None and self._refresh_call.active():
            self._refresh_call.cancel()
        self._refresh_call = None

    @property
    def following(self) -> bool:
        return self._following

    @property
    def trusted(self) -> bool:
        """Whether the mirror is read and no change was reported since (it serves without a read)."""
        return self._state == _LOADED

    def _watcher(self, event: Any) -> None:
        """kazoo's watch (in its thread): one for every znode, so that kazoo keeps one registration each."""
        self.zk.reactor.callFromThread(self._changed)

    def _changed(self) -> None:
        if not self._following:
            return
        self._changes += 1
        if self._state == _LOADED:
            self._state = _STALE
        self._schedule_refresh()

    def _schedule_refresh(self) -> None:
        if not self._following or self._refresh_call is not None:
            return
        delay = max(REFRESH_DELAY, REFRESH_FACTOR * self._read_seconds)
        self._refresh_call = self.zk.reactor.callLater(delay, self._refresh)

    def _refresh(self) -> None:
        self._refresh_call = None
        if self._following and self._state == _STALE and not self._in_doubt:
            self._start_read()

    def _may_retry_load(self) -> bool:
        now = self.zk.reactor.seconds()
        if self._doubt_deadline is None:
            self._doubt_deadline = now + getattr(self.zk, "session_timeout", 10.0)
        return now < self._doubt_deadline

    def _resolve_doubts(self) -> None:
        """Decide each transaction in doubt from the subtree as read again (oldest first)."""
        doubtful, self._in_doubt = self._in_doubt, []
        self._doubt_deadline = None
        resend: Batch = []
        for batch, before, after in doubtful:
            if self.tree == after:
                log.info("A write to {root} whose outcome was unknown had committed", root=self.root)
                for _, d in batch:
                    d.callback(None)
            elif self.tree == before:
                log.info("A write to {root} whose outcome was unknown had not committed; sending it again",
                         root=self.root)
                resend.extend(batch)
            else:
                error = StoreError(f"the outcome of a write to {self.root} is unknown and the store was changed "
                                   f"meanwhile by another program: nothing is known to be written")
                for _, d in batch:
                    d.errback(StoreError(str(error)))
        self._queue[:0] = resend

    def _ready(self, read: Callable[[], Any]) -> defer.Deferred:
        if self._state == _LOADED:
            return defer.execute(read)
        return self.load().addCallback(lambda _: read())

    # -- IStateStore -------------------------------------------------------------------------

    def commit(self, operations: Iterable[Operation]) -> defer.Deferred:
        try:
            checked = validate(operations)
        except (TypeError, ValueError) as exc:
            return defer.fail(exc)
        for op in checked:
            if isinstance(op, Put) and len(op.value) + len(self._znode(op.path)) > MAX_REQUEST_BYTES:
                return defer.fail(StoreError(f"the value at {op.path} is {len(op.value)} bytes, over ZooKeeper's "
                                             f"1 MB limit of a node"))
        if self.fence is not None and self.fence() is None:
            return defer.fail(StoreFenced("this writer holds no election node (it is not contending)"))
        d: defer.Deferred = defer.Deferred()
        self._queue.append((checked, d))
        self._flush()
        return d

    def close(self) -> defer.Deferred:
        """Fires once nothing is queued, in flight or in doubt (the ZooKeeper session is the caller's)."""
        self.lead()  # no more reads ahead
        if not self._writing and not self._queue and not self._in_doubt:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._idle.append(d)
        return d

    def _maybe_idle(self) -> None:
        if not self._writing and not self._queue and not self._in_doubt:
            waiters, self._idle = self._idle, []
            for d in waiters:
                d.callback(None)

    # -- transactions --------------------------------------------------------------------------

    def _flush(self) -> None:
        if self._writing or not self._queue:
            self._maybe_idle()
            return
        if self._state != _LOADED:
            if self._state == _STALE:
                self.load().addErrback(lambda _: None)  # the queued commits fail with it
            return
        fence = self.fence() if self.fence is not None else None
        if self.fence is not None and fence is None:
            queued, self._queue = self._queue, []
            for _, d in queued:
                d.errback(StoreFenced("this writer holds no election node (it is not contending)"))
            self._maybe_idle()
            return
        batch: Batch = []
        ops: TxOps = []
        undo: Undo = []
        #: whether a path holds a value after the operations built so far (where they changed that)
        valued: dict[str, bool] = {}
        size = len(fence or "") + _OPERATION_BYTES
        while self._queue and len(batch) < self.max_batch:
            operations, d = self._queue[0]
            first_op, first_undo = len(ops), len(undo)
            self._build(operations, ops, undo, valued)
            added = sum(len(path) + len(data) + _OPERATION_BYTES for _, path, data in ops[first_op:])
            if size + added <= MAX_REQUEST_BYTES:
                size += added
                batch.append(self._queue.pop(0))
                continue
            self._undo(undo[first_undo:], valued)
            del ops[first_op:], undo[first_undo:]
            if batch:
                break
            self._queue.pop(0)
            d.errback(StoreError(f"a commit of about {added} bytes is over ZooKeeper's 1 MB request limit"))
        if not batch:
            self._flush()
            return
        if fence is None and not ops:
            self._committed([], batch, undo, fence)
            return
        transaction = self.zk.transaction()
        if fence is not None:
            transaction.check(fence, -1)
        for kind, path, data in ops:
            if kind == "create":
                transaction.create(path, data)
            elif kind == "set":
                transaction.set_data(path, data)
            else:
                transaction.delete(path)
        self._writing = True
        d = self.zk.results(transaction)
        d.addCallbacks(self._committed, self._unknown, callbackArgs=(batch, undo, fence), errbackArgs=(batch, undo))

    def _build(self, operations: list[Operation], ops: TxOps, undo: Undo, valued: dict[str, bool]) -> None:
        """Append the znode operations for ``operations`` to ``ops``, updating the node mirror and
        ``valued`` (and recording how to go back in ``undo``)."""
        nodes = self._nodes

        def has_value(path: str) -> bool:
            return valued[path] if path in valued else path in self.tree

        def mark(path: str, value: bool) -> None:
            undo.append(("valued", path, valued.get(path)))
            valued[path] = value

        def create(path: str, data: bytes) -> None:
            ops.append(("create", self._znode(path), data))
            nodes.set(path, b"")
            undo.append(("created", path, None))

        def remove(path: str) -> None:
            ops.append(("delete", self._znode(path), b""))
            nodes.discard(path)
            undo.append(("deleted", path, None))

        for op in operations:
            if isinstance(op, Put):
                parts = op.path.split("/")
                for depth in range(1, len(parts)):
                    parent = "/".join(parts[:depth])
                    if parent not in nodes:
                        create(parent, b"")
                        mark(parent, False)
                if op.path in nodes:
                    ops.append(("set", self._znode(op.path), op.value))
                else:
                    create(op.path, op.value)
                mark(op.path, True)
                continue
            targets = nodes.under(op.path) + ([op.path] if op.path in nodes else [])
            for path in sorted(targets, reverse=True):  # children before their parents
                remove(path)
                mark(path, False)
            # Parents left with neither a value nor children go too.
            parts = op.path.split("/")
            for depth in range(len(parts) - 1, 0, -1):
                parent = "/".join(parts[:depth])
                if parent not in nodes or nodes.has_under(parent) or has_value(parent):
                    break
                remove(parent)

    def _undo(self, undo: Undo, valued: dict[str, bool] | None = None) -> None:
        for action, path, before in reversed(undo):
            if action == "created":
                self._nodes.discard(path)
            elif action == "deleted":
                self._nodes.set(path, b"")
            elif valued is not None:
                if before is None:
                    valued.pop(path, None)
                else:
                    valued[path] = before

    def _committed(self, results: list[Any], batch: Batch, undo: Undo, fence: str | None) -> None:
        self._writing = False
        errors = [result for result in results if isinstance(result, Exception)]
        if not errors:
            for operations, _ in batch:
                self.tree.apply(operations)
            for _, d in batch:
                d.callback(None)
            self._flush()
            return
        self._undo(undo)
        causes = [e for e in errors if not isinstance(e, (RolledBackError, RuntimeInconsistency))] or errors
        cause = f"{type(causes[0]).__name__}{': ' + str(causes[0]) if str(causes[0]) else ''}"
        error: StoreError
        if fence is not None and isinstance(results[0], Exception) and results[0] is causes[0]:
            error = StoreFenced(f"the writer's election node {fence} is gone ({cause}): nothing was written")
        else:
            # The subtree is not what the mirror says (another program changed it): read it again.
            self._state = _STALE
            error = StoreError(f"ZooKeeper refused the transaction ({cause}): nothing was written")
        for _, d in batch:
            d.errback(type(error)(str(error)))
        self._flush()

    def _unknown(self, failure: Failure, batch: Batch, undo: Undo) -> None:
        """ZooKeeper could not be asked: whether the transaction committed is unknown, so read the
        subtree again and see (:meth:`_resolve_doubts`)."""
        self._writing = False
        self._undo(undo)
        after = self.tree.copy()
        for operations, _ in batch:
            after.apply(operations)
        self._in_doubt.append((batch, self.tree.copy(), after))
        self._state = _STALE
        log.warn("The outcome of a write to {root} is unknown ({e}); reading the store again to learn it",
                 root=self.root, e=failure.getErrorMessage() or failure.type.__name__)
        self.load().addErrback(lambda _: None)  # its waiters are the commits in doubt
