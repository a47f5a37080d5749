"""JSON values whose large arrays are made only as they are written (the shapes of :mod:`mesostw.http.stream`).

A builder of a large answer (``/master/state``, ``GET_STATE``) returns :class:`Fields` holding
:class:`Items` or :class:`Texts` instead of lists (or :class:`Raw`, text already encoded); the HTTP
side streams them, and :func:`materialize` builds them whole for those that need the value at once.
Plain data, no transport: the master's core may build them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


class Items:
    """A JSON array whose items come from ``iterable`` as it is written. Items are JSON values;
    those that are :class:`Fields` or :class:`Items` are streamed in turn."""

    __slots__ = ("iterable",)

    def __init__(self, iterable: Iterable[Any]):
        self.iterable = iterable


class Texts(Items):
    """A JSON array whose items come from ``iterable`` as JSON text already (``str``), e.g. made by a
    builder that writes text directly rather than a dict to encode."""

    __slots__ = ()


class Raw:
    """A JSON value given as its encoded text (UTF-8 ``bytes``, or pieces of it in order), written as it is:
    an answer, or a part of one, kept from an earlier time."""

    __slots__ = ("pieces",)

    def __init__(self, data: bytes | tuple[bytes, ...]):
        self.pieces = (data,) if isinstance(data, bytes) else data


class Fields(dict):  # type: ignore[type-arg]
    """A JSON object (string keys, in order) whose values may be :class:`Items` or :class:`Fields`."""


def materialize(value: Any) -> Any:
    """``value`` built in full: :class:`Items` become lists and :class:`Fields` dicts (for answers that
    need the whole value at once, such as a RecordIO event whose length comes first)."""
    if isinstance(value, Raw):
        return json.loads(b"".join(value.pieces))
    if isinstance(value, Texts):
        return [json.loads(text) for text in value.iterable]
    if isinstance(value, Items):
        return [materialize(item) for item in value.iterable]
    if isinstance(value, Fields):
        return {key: materialize(item) for key, item in value.items()}
    return value
