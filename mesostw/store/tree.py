"""The values of a store in memory, kept sorted by path so that a subtree is one contiguous range.

Every provider serves reads from a :class:`Tree`: the memory store holds nothing else, the file
store keeps in it what its files hold, the ZooKeeper store what its znodes hold. A parent exists
while something is stored below it; it has no value of its own unless one was put there.

Values of :data:`PACK_MIN` bytes or more are kept deflated against :data:`DICTIONARY`, the JSON every
store mostly holds (Mesos's resources, agent and framework infos): an agent's registry entry of about
500 bytes takes about 110 (a master of ten thousand agents holds ten thousand). Packing depends on the
value alone, so equal trees hold equal bytes; a value is unpacked when read.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

from sortedcontainers import SortedDict

from mesostw.store import Delete, Operation, Put

#: The character after "/": every path under ``p`` sorts between ``p + "/"`` and ``p + _AFTER``.
_AFTER = chr(ord("/") + 1)

#: Values shorter than this are kept as they are.
PACK_MIN = 128
#: What values are deflated against: fragments of the JSON stores hold. Changing it is safe (a tree lives
#: in one process; nothing packed is written anywhere).
DICTIONARY = (
    b'{"user":"","name":"","failover_timeout":0.0,"checkpoint":true,"role":"*","roles":[],"principal":"",'
    b'"capabilities":[{"type":"MULTI_ROLE"}],"webui_url":"http://","labels":{"labels":[{"key":"","value":""}]},'
    b'"task_id":{"value":""},"agent_id":{"value":""},"executor_id":{"value":""},"framework_id":{"value":""},'
    b'"command":{"value":"","shell":true},"state":"TASK_RUNNING","status":{"timestamp":.0,"uuid":""},'
    b'"hostname":"","port":5051,"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":.0},"role":"*"},'
    b'{"name":"mem","type":"SCALAR","scalar":{"value":.0},"role":"*"},'
    b'{"name":"disk","type":"SCALAR","scalar":{"value":.0},"role":"*"},'
    b'{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":,"end":}]},"role":"*"}],'
    b'"attributes":[{"name":"","type":"TEXT","text":{"value":""}}],"checkpoint":true,"id":{"value":"-S"}}'
)
_WBITS = -12  # a raw deflate stream (no header), with a 4 KB window


class _Packed(bytes):
    """A value as kept deflated (see :data:`DICTIONARY`)."""

    __slots__ = ()


def _pack(value: bytes) -> bytes:
    if len(value) < PACK_MIN:
        return value
    deflate = zlib.compressobj(6, zlib.DEFLATED, _WBITS, 4, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
    packed = deflate.compress(value) + deflate.flush()
    return _Packed(packed) if len(packed) * 4 < len(value) * 3 else value


def _unpack(value: bytes) -> bytes:
    if type(value) is not _Packed:
        return value
    inflate = zlib.decompressobj(_WBITS, zdict=DICTIONARY)
    return inflate.decompress(value) + inflate.flush()


def _below(path: str) -> str:
    return f"{path}/" if path else ""


class Tree:
    """``{path: bytes}`` with subtree ranges; paths are normalized (see :func:`mesostw.store.validate`)."""

    def __init__(self, values: Iterable[tuple[str, bytes]] = ()):
        self._values: SortedDict = SortedDict((path, _pack(value)) for path, value in values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, path: str) -> bool:
        return path in self._values

    def __eq__(self, other: object) -> bool:
        # Packing depends on the value alone: equal values are equal bytes of the same kind.
        if not isinstance(other, Tree) or len(self._values) != len(other._values):
            return False
        return all(pa == pb and type(va) is type(vb) and va == vb
                   for (pa, va), (pb, vb) in zip(self._values.items(), other._values.items(), strict=True))

    def get(self, path: str) -> bytes | None:
        value = self._values.get(path)
        return None if value is None else _unpack(value)

    def items(self) -> Iterator[tuple[str, bytes]]:
        return ((path, _unpack(value)) for path, value in self._values.items())

    def as_dict(self) -> dict[str, bytes]:
        return dict(self.items())

    def copy(self) -> Tree:
        tree = Tree()
        tree._values = self._values.copy()  # packed as they are
        return tree

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
        self._values[path] = _pack(value)

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
                self._values[op.path] = _pack(op.value)
            elif isinstance(op, Delete):
                if not op.path:
                    self._values.clear()
                    continue
                for key in self.under(op.path):
                    del self._values[key]
                self._values.pop(op.path, None)
