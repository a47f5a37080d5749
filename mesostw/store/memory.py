"""A store in memory: not durable at all; for tests and daemons run without a work_dir."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet import defer
from zope.interface import implementer

from mesostw.interfaces import IStateStore
from mesostw.store import Delete, Operation, Put, StoreFenced, join, normalize, validate
from mesostw.store.tree import Tree


@implementer(IStateStore)
class ScopedStore:
    """A view of a store under a prefix (shared by every provider)."""

    def __init__(self, base: Any, prefix: str):
        self.base = base
        self.prefix = normalize(prefix)

    def _at(self, path: str) -> str:
        return join(self.prefix, path)

    def get(self, path: str) -> defer.Deferred:
        return defer.maybeDeferred(lambda: self.base.get(self._at(path)))

    def children(self, path: str) -> defer.Deferred:
        return defer.maybeDeferred(lambda: self.base.children(self._at(path)))

    def put(self, path: str, value: bytes) -> defer.Deferred:
        return self.commit([Put(path, value)])

    def delete(self, path: str) -> defer.Deferred:
        return self.commit([Delete(path)])

    def commit(self, operations: Iterable[Operation]) -> defer.Deferred:
        def scoped() -> defer.Deferred:
            return self.base.commit([Put(self._at(op.path), op.value) if isinstance(op, Put)
                                     else Delete(self._at(op.path)) for op in validate(operations)])

        return defer.maybeDeferred(scoped)

    def scoped(self, prefix: str) -> Any:
        return ScopedStore(self.base, join(self.prefix, prefix))


def apply(values: dict[str, bytes], operations: Iterable[Operation]) -> None:
    """Apply operations to a flat ``{path: value}`` map (a parent exists while it has children)."""
    tree = Tree(values.items())
    tree.apply(validate(operations))
    values.clear()
    values.update(tree.items())


def children_of(paths: Iterable[str], path: str) -> list[str]:
    """Names directly under ``path`` among ``paths`` (which imply their parents)."""
    return Tree((p, b"") for p in paths).children(normalize(path))


class TreeStore(abc.ABC):
    """What every provider shares: reads served from an in-memory :class:`~mesostw.store.tree.Tree`
    (once :meth:`_ready` has it), single writes as one-operation commits, scoped views.
    Providers supply ``tree``, ``commit`` and, when reads must wait for a load, ``_ready``."""

    tree: Tree

    def _ready(self, read: Callable[[], Any]) -> defer.Deferred:
        return defer.execute(read)

    def get(self, path: str) -> defer.Deferred:
        return self._ready(lambda: self.tree.get(normalize(path)))

    def children(self, path: str) -> defer.Deferred:
        return self._ready(lambda: self.tree.children(normalize(path)))

    def put(self, path: str, value: bytes) -> defer.Deferred:
        return self.commit([Put(path, value)])

    def delete(self, path: str) -> defer.Deferred:
        return self.commit([Delete(path)])

    @abc.abstractmethod
    def commit(self, operations: Iterable[Operation]) -> defer.Deferred:
        """Apply ``operations`` atomically; fires once durable."""

    def scoped(self, prefix: str) -> Any:
        return ScopedStore(self, prefix)


@implementer(IStateStore)
class MemoryStateStore(TreeStore):
    """Values in a :class:`~mesostw.store.tree.Tree`. ``fence`` (a callable returning whether the
    writer still holds its claim) lets tests depose a writer."""

    def __init__(self, fence: Callable[[], bool] = lambda: True):
        self.tree = Tree()
        self.fence = fence

    def commit(self, operations: Iterable[Operation]) -> defer.Deferred:
        try:
            checked = validate(operations)
        except (TypeError, ValueError) as exc:
            return defer.fail(exc)
        if not self.fence():
            return defer.fail(StoreFenced("this writer no longer holds the store"))
        self.tree.apply(checked)
        return defer.succeed(None)

    def close(self) -> defer.Deferred:
        """Nothing to release."""
        return defer.succeed(None)
