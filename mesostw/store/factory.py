"""The store a daemon's flags ask for: ZooKeeper with ``--zk``, else files under ``--work_dir``, else memory.

The master uses it for its registry; a framework host for the framework's state. Every store it
returns opens on first use and has ``close()`` (release a file store's lock; let a ZooKeeper store's
writes finish), which its host calls when it stops.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.logger import Logger

log = Logger()


def open_store(reactor: Any, *, directory: str | None = None, zk: Any = None, zk_path: str | None = None,
               fence: Callable[[], str | None] | None = None, what: str = "state") -> Any:
    """An IStateStore: under ``zk_path`` in ZooKeeper when ``zk`` (a :class:`mesostw.zk.client.ZooKeeper`)
    is given, its writes fenced on ``fence`` (see :mod:`mesostw.store.zookeeper`); else in
    ``directory`` (locked against other processes); else in memory, with a warning that ``what``
    is lost when the process stops."""
    if zk is not None:
        from mesostw.store.zookeeper import ZooKeeperStateStore

        if not zk_path:
            raise ValueError("a ZooKeeper store needs a path")
        return ZooKeeperStateStore(zk, zk_path, fence)
    if directory:
        from mesostw.store.files import FileStateStore

        return FileStateStore(directory, reactor)
    from mesostw.store.memory import MemoryStateStore

    log.warn("No --work_dir and no --zk: the {what} is kept in memory and lost when the process stops", what=what)
    return MemoryStateStore()
