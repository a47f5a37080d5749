"""A store in memory: not durable at all; for tests and daemons run without a work_dir."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet import defer
from zope.interface import implementer

from mesostw.interfaces import IStateStore
from mesostw.store import Delete, Operation, Put, StoreFenced, join, normalize


@implementer(IStateStore)
class ScopedStore:
    """A view of a store under a prefix (shared by every provider)."""

    def __init__(self, base: Any, prefix: str):
        self.base = base
        self.prefix = normalize(prefix)

    def _at(self, path: str) -> str:
        return join(self.prefix, path)

    def get(self, path: str) -> defer.Deferred:
        return self.base.get(self._at(path))

    def children(self, path: str) -> defer.Deferred:
        return self.base.children(self._at(path))

    def put(self, path: str, value: bytes) -> defer.Deferred:
        return self.base.put(self._at(path), value)

    def delete(self, path: str) -> defer.Deferred:
        return self.base.delete(self._at(path))

    def commit(self, operations: Iterable[Operation]) -> defer.Deferred:
        return self.base.commit([Put(self._at(op.path), op.value) if isinstance(op, Put) else Delete(self._at(op.path))
                                 for op in operations])

    def scoped(self, prefix: str) -> Any:
        return ScopedStore(self.base, join(self.prefix, prefix))


def apply(values: dict[str, bytes], operations: Iterable[Operation]) -> None:
    """Apply operations to a flat ``{path: value}`` map (a parent exists while it has children)."""
    for op in operations:
        path = normalize(op.path)
        if isinstance(op, Put):
            if not isinstance(op.value, bytes):
                raise TypeError(f"a store value is bytes, not {type(op.value).__name__}")
            values[path] = op.value
        else:
            below = path + "/"
            for key in [k for k in values if k == path or k.startswith(below) or not path]:
                del values[key]


def children_of(paths: Iterable[str], path: str) -> list[str]:
    """Names directly under ``path`` among ``paths`` (which imply their parents)."""
    path = normalize(path)
    below = path + "/" if path else ""
    return sorted({p[len(below):].split("/", 1)[0] for p in paths if p.startswith(below) and p != path})


@implementer(IStateStore)
class MemoryStateStore:
    """Values in a dict. ``fence`` (a callable returning whether the writer still holds its claim)
    lets tests depose a writer."""

    def __init__(self, fence: Callable[[], bool] = lambda: True):
        self.values: dict[str, bytes] = {}
        self.fence = fence

    def get(self, path: str) -> defer.Deferred:
        return defer.succeed(self.values.get(normalize(path)))

    def children(self, path: str) -> defer.Deferred:
        return defer.succeed(children_of(self.values, path))

    def put(self, path: str, value: bytes) -> defer.Deferred:
        return self.commit([Put(path, value)])

    def delete(self, path: str) -> defer.Deferred:
        return self.commit([Delete(path)])

    def commit(self, operations: Iterable[Operation]) -> defer.Deferred:
        if not self.fence():
            return defer.fail(StoreFenced("this writer no longer holds the store"))
        changed = dict(self.values)
        try:
            apply(changed, list(operations))
        except (TypeError, ValueError) as exc:
            return defer.fail(exc)
        self.values = changed
        return defer.succeed(None)

    def scoped(self, prefix: str) -> Any:
        return ScopedStore(self, prefix)
