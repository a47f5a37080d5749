"""The values of a store in memory, kept sorted by path so that a subtree is one contiguous range.

Every provider serves reads from a :class:`Tree`: the memory store holds nothing else, the file
store keeps in it what its files hold, the ZooKeeper store what its znodes hold. A parent exists
while something is stored below it; it has no value of its own unless one was put there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sortedcontainers import SortedDict

from mesostw.store import Delete, Operation, Put

#: The character after "/": every path under ``p`` sorts between ``p + "/"`` and ``p + _AFTER``.
_AFTER = chr(ord("/") + 1)


def _below(path: str) -> str:
    return f"{path}/" if path else ""


class Tree:
    """``{path: bytes}`` with subtree ranges; paths are normalized (see :func:`mesostw.store.validate`)."""

    def __init__(self, values: Iterable[tuple[str, bytes]] = ()):
        self._values: SortedDict = SortedDict(values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, path: str) -> bool:
        return path in self._values

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tree) and self._values == other._values

    def get(self, path: str) -> bytes | None:
        return self._values.get(path)

    def items(self) -> Iterator[tuple[str, bytes]]:
        return iter(self._values.items())

    def as_dict(self) -> dict[str, bytes]:
        return dict(self._values)

    def copy(self) -> Tree:
        return Tree(self._values.items())

    def under(self, path: str) -> list[str]:
        """Paths stored strictly below ``path``, in order."""
        below = _below(path)
        if not below:
            return list(self._values.keys())
        return list(self._values.irange(below, path + _AFTER, inclusive=(True, False)))

    def exists(self, path: str) -> bool:
        """Whether ``path`` holds a value or has something below it (the root always exists)."""
        return not path or path in self._values or self.has_under(path)

    def has_under(self, path: str) -> bool:
        """Whether anything is stored below ``path``."""
        return self._first_under(path) is not None

    def set(self, path: str, value: bytes) -> None:
        self._values[path] = value

    def discard(self, path: str) -> None:
        self._values.pop(path, None)

    def _first_under(self, path: str) -> str | None:
        below = _below(path)
        keys = self._values.keys()
        index = self._values.bisect_left(below)
        if index < len(keys) and keys[index].startswith(below):
            return keys[index]
        return None

    def children(self, path: str) -> list[str]:
        """Sorted names directly under ``path``; one bisection per child, whatever the subtree's size."""
        below = _below(path)
        keys = self._values.keys()
        names: set[str] = set()
        index = self._values.bisect_left(below)
        while index < len(keys):
            key = keys[index]
            if not key.startswith(below):
                break
            name, nested, _ = key[len(below):].partition("/")
            names.add(name)
            # A child's subtree ("<child>/...") is one range: skip it. Siblings such as "<child>-x"
            # sort between "<child>" and "<child>/", so a leaf only steps to the next key.
            index = self._values.bisect_left(f"{below}{name}{_AFTER}") if nested else index + 1
        return sorted(names)

    def apply(self, operations: Iterable[Operation]) -> None:
        """Apply validated operations in order."""
        for op in operations:
            if isinstance(op, Put):
                self._values[op.path] = op.value
            elif isinstance(op, Delete):
                if not op.path:
                    self._values.clear()
                    continue
                for key in self.under(op.path):
                    del self._values[key]
                self._values.pop(op.path, None)
