"""Where hosted frameworks keep their state: the one place both hosts open a framework's IStateStore.

* In the master (:func:`master_store`, scoped by the host to ``hosted/<name>``): the store the
  master keeps its registry in (``MasterService.store``) once the registry is kept in an
  IStateStore, so a framework's state has the registry's durability and fence. Until then, one
  store of the master's hosted frameworks: ZooKeeper under ``<--zk path>/hosted`` (fenced on the
  master's election node), ``<--work_dir>/hosted/state.json``, or memory.
* Standalone (:func:`standalone_store`): ZooKeeper under ``<--zk path>/state`` (fenced on the
  instance's election node), else files under ``--work_dir``, else memory with a warning.

:func:`open_store` has the signature of ``mesostw.store.factory.open_store`` and stands in for it:
its provider is deliberately small, a :class:`SnapshotStore` that keeps the tree in memory and writes
all of it (one file written atomically, or one fenced znode) before a write's Deferred fires.
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

def master_store(master_service: Any) -> Any:
    """The one store every framework hosted by ``master_service`` (a MasterService) keeps its state in."""
    store = getattr(master_service, "store", None)
    if store is not None:
        return store  # the registry's own store
    config = master_service.config
    if config.registry == "in_memory":
        return MemoryStateStore()
    zk_path = None
    if master_service.zk is not None:
        from mesostw.zk.url import parse_zk_url

        zk_path = f"{parse_zk_url(config.zk).path.rstrip('/')}/hosted"
    return open_store(master_service.reactor, directory=os.path.join(config.work_dir, "hosted") if config.work_dir
                      else None, zk=master_service.zk, zk_path=zk_path,
                      fence=lambda: master_service.leadership.contender.node_path, what="hosted frameworks' state")


def standalone_store(reactor: Any, config: Any, zk: Any, election: Any) -> Any:
    """The IStateStore of a standalone framework (``--zk``, else ``--work_dir``, else memory)."""
    zk_path = None
    if zk is not None:
        from mesostw.zk.url import parse_zk_url

        zk_path = f"{parse_zk_url(config.zk).path.rstrip('/')}/state"
    return open_store(reactor, directory=config.work_dir, zk=zk, zk_path=zk_path, fence=lambda: election.fence,
                      what="framework's state")


def open_store(reactor: Any, *, directory: str | None = None, zk: Any = None, zk_path: str | None = None,
               fence: Callable[[], str | None] | None = None, what: str = "state") -> Any:
    """An IStateStore in ZooKeeper under ``zk_path`` when ``zk`` is given (fenced on ``fence``), else
    in ``directory``, else in memory with a warning that ``what`` is lost when the process stops."""
    if zk is not None:
        if not zk_path:
            raise ValueError("a ZooKeeper store needs a path")
        return SnapshotStore(*zookeeper_snapshot(zk, zk_path), fence=fence or (lambda: ""))
    if directory:
        return SnapshotStore(*file_snapshot(os.path.join(directory, "state.json")))
    log.warn("No --work_dir and no --zk: the {what} is kept in memory and lost when the process stops", what=what)
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

    def close(self) -> defer.Deferred:
        """Fires once the writes in flight are done (the host calls it when it stops)."""
        return self._lock.run(lambda: None)


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
