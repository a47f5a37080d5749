"""Durable state behind :class:`mesostw.interfaces.IStateStore`: memory, atomic files, ZooKeeper.

The master's registry, agents' checkpoints and the bundled frameworks' state are all written
through a store; this module names the operations and errors every provider shares.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import attrs
from twisted.internet import defer


class StoreError(Exception):
    """The store could not be read or written."""


class StoreFenced(StoreError):
    """The writer's claim on the store is gone (another leader took over): nothing was written."""


@attrs.frozen
class Put:
    """Store ``value`` at ``path``."""

    path: str
    value: bytes


@attrs.frozen
class Delete:
    """Remove ``path`` and everything under it."""

    path: str


Operation = Put | Delete


def normalize(path: str) -> str:
    """A path without empty segments: ``"/a//b/"`` is ``"a/b"``; the root is ``""``."""
    if not isinstance(path, str):
        raise TypeError(f"a store path is a str, not {type(path).__name__}")
    parts = [part for part in path.split("/") if part]
    for part in parts:
        if part in (".", ".."):
            raise ValueError(f"invalid store path {path!r}")
    return "/".join(parts)


def join(prefix: str, path: str) -> str:
    """``path`` under ``prefix``, both normalized."""
    return normalize(f"{prefix}/{path}")


def validate(operations: Iterable[Operation]) -> list[Operation]:
    """The operations with normalized paths; TypeError or ValueError for any that is not well formed.

    Every provider checks a whole batch this way before it writes anything, so a batch holding one
    bad operation changes nothing.
    """
    checked: list[Operation] = []
    for op in operations:
        if isinstance(op, Put):
            if not isinstance(op.value, bytes):
                raise TypeError(f"a store value is bytes, not {type(op.value).__name__}")
            path = normalize(op.path)
            if not path:
                raise ValueError("cannot put a value at the root of a store")
            checked.append(Put(path, op.value))
        elif isinstance(op, Delete):
            checked.append(Delete(normalize(op.path)))
        else:
            raise TypeError(f"a store operation is a Put or a Delete, not {type(op).__name__}")
    return checked


def dump(value: Any) -> bytes:
    """Compact JSON bytes, the usual content of a store value."""
    return json.dumps(value, separators=(",", ":")).encode()


def get_json(store: Any, path: str, default: Any = None) -> defer.Deferred:
    """Deferred firing with the JSON value at ``path`` (``default`` when absent)."""
    return store.get(path).addCallback(lambda raw: default if raw is None else json.loads(raw))


def put_json(store: Any, path: str, value: Any) -> defer.Deferred:
    """Store ``value`` as JSON at ``path``."""
    return store.put(path, dump(value))
