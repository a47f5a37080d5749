"""Where hosted frameworks keep their state: the one place both hosts open a framework's IStateStore.

* In the master (:func:`master_framework_store`): next to the master's registry, scoped to
  ``frameworks/<name>``: in ZooKeeper under ``<--zk path>/frameworks`` (fenced on the master's
  election node) with ``--zk``, in ``<--work_dir>/frameworks.json`` with ``--work_dir``, in memory
  otherwise (or with ``--registry=in_memory``).
* Standalone (:func:`standalone_store`): in ZooKeeper under ``<--zk path>/state`` (fenced on the
  instance's election node) with ``--zk``, in ``<--work_dir>/state.json`` with ``--work_dir``, in
  memory (with a warning) otherwise.

The two providers here are deliberately small: a :class:`SnapshotStore` keeps the tree in memory
and writes all of it (one file written atomically, or one fenced znode) before a write's Deferred
fires. They are interim: once ``mesostw.store`` has its file and ZooKeeper stores and
``open_store``, the two functions below open those instead and this module shrinks to them.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from kazoo.exceptions import NodeExistsError, NoNodeError
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from mesostw.interfaces import IStateStore
from mesostw.store import Operation, StoreError, StoreFenced
from mesostw.store.memory import MemoryStateStore, ScopedStore, apply

log = Logger()


# -- the seam ---------------------------------------------------------------------------------

def master_framework_store(master_service: Any, name: str) -> Any:
    """The IStateStore of framework ``name`` hosted by ``master_service`` (a MasterService)."""
    config = master_service.config
    if config.registry == "in_memory":
        return MemoryStateStore().scoped(name)
    if master_service.zk is not None:
        from mesostw.zk.url import parse_zk_url

        root = f"{parse_zk_url(config.zk).path.rstrip('/')}/frameworks"
        base: Any = SnapshotStore(*zookeeper_snapshot(master_service.zk, root),
                                  fence=lambda: master_service.leadership.contender.node_path)
    elif config.work_dir:
        base = SnapshotStore(*file_snapshot(os.path.join(config.work_dir, "frameworks.json")))
    else:
        base = MemoryStateStore()
    return base.scoped(name)


def standalone_store(config: Any, zk: Any, election: Any) -> Any:
    """The IStateStore of a standalone framework (``--zk``, else ``--work_dir``, else memory)."""
    if zk is not None:
        from mesostw.zk.url import parse_zk_url

        root = f"{parse_zk_url(config.zk).path.rstrip('/')}/state"
        return SnapshotStore(*zookeeper_snapshot(zk, root), fence=lambda: election.fence)
    if config.work_dir:
        return SnapshotStore(*file_snapshot(os.path.join(config.work_dir, "state.json")))
    log.warn("No --zk and no --work_dir: the framework's state is kept in memory and lost when it stops")
    return MemoryStateStore()


# -- interim providers ------------------------------------------------------------------------

#: ``load() -> bytes | None`` and ``save(snapshot, claim)``, each may return a Deferred
Loader = Callable[[], Any]
Saver = Callable[[bytes, str | None], Any]


@implementer(IStateStore)
class SnapshotStore(MemoryStateStore):
    """The whole tree in memory, loaded on first use and saved whole (``save(snapshot, fence)``)
    before each write is acknowledged; writes go one at a time. ``fence()`` names the writer's
    claim (an election node), None when it holds none."""

    def __init__(self, load: Loader, save: Saver, fence: Callable[[], str | None] = lambda: ""):
        super().__init__()
        self._load, self._save, self._claim = load, save, fence
        self._loaded = False
        self._waiters: list[defer.Deferred] | None = None
        self._lock = defer.DeferredLock()

    def _ready(self) -> defer.Deferred:
        """Fires once the snapshot is loaded (a failed load is tried again by the next call)."""
        if self._loaded:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        if self._waiters is not None:
            self._waiters.append(d)
        else:
            self._waiters = [d]
            defer.maybeDeferred(self._load).addBoth(self._read)
        return d

    def _read(self, result: Any) -> None:
        waiters, self._waiters = self._waiters or [], None
        if not isinstance(result, Failure):
            try:
                values = {str(path): base64.b64decode(value) for path, value in json.loads(result).items()} \
                    if result else {}
            except (ValueError, TypeError, AttributeError) as exc:
                result = Failure(StoreError(f"the stored state is unreadable ({exc}); nothing was changed"))
            else:
                self.values, self._loaded = values, True
        for d in waiters:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(None)

    def get(self, path: str) -> defer.Deferred:
        return self._ready().addCallback(lambda _: MemoryStateStore.get(self, path))

    def children(self, path: str) -> defer.Deferred:
        return self._ready().addCallback(lambda _: MemoryStateStore.children(self, path))

    def commit(self, operations: Iterable[Operation]) -> defer.Deferred:
        operations = list(operations)
        return self._lock.run(lambda: self._ready().addCallback(lambda _: self._commit(operations)))

    def _commit(self, operations: list[Operation]) -> defer.Deferred:
        claim = self._claim()
        if claim is None:
            return defer.fail(StoreFenced("this writer no longer holds the store"))
        changed = dict(self.values)
        try:
            apply(changed, operations)
        except (TypeError, ValueError) as exc:
            return defer.fail(exc)
        snapshot = json.dumps({p: base64.b64encode(v).decode() for p, v in sorted(changed.items())}).encode()
        d = defer.maybeDeferred(self._save, snapshot, claim)
        d.addCallback(lambda _: setattr(self, "values", changed))
        return d

    def scoped(self, prefix: str) -> Any:
        return ScopedStore(self, prefix)


def file_snapshot(path: str) -> tuple[Loader, Saver]:
    """Load and save a snapshot in one file, written atomically (fsync'd, then renamed)."""
    from mesostw.master.registry import write_atomically

    def load() -> bytes | None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from None

    def save(snapshot: bytes, claim: str | None) -> None:
        try:
            write_atomically(path, snapshot)
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc.strerror}") from None

    return load, save


def zookeeper_snapshot(zk: Any, root: str) -> tuple[Loader, Saver]:
    """Load and save a snapshot in the znode ``<root>/snapshot``; a save is one transaction that
    first checks the writer's election node, so it fails once that node is gone."""
    node = f"{root}/snapshot"
    exists = {"value": False}

    @defer.inlineCallbacks
    def load() -> Any:
        yield zk.ensure_path(root)
        try:
            data, _ = yield zk.get(node)
        except NoNodeError:
            return None
        exists["value"] = True
        return data

    @defer.inlineCallbacks
    def save(snapshot: bytes, claim: str | None) -> Any:
        tx = zk.transaction()
        if claim:
            tx.check(claim, 0)
        if exists["value"]:
            tx.set_data(node, snapshot)
        else:
            tx.create(node, snapshot)
        try:
            yield zk.commit(tx)
        except NoNodeError:
            raise StoreFenced("the writer's election node is gone: another instance leads") from None
        except NodeExistsError:
            raise StoreFenced("another writer created the state first") from None
        except Exception as exc:  # noqa: BLE001 - kazoo's errors, reported as the store's
            raise StoreError(f"ZooKeeper refused the write: {exc!r}") from None
        exists["value"] = True

    return load, save
