"""JSON text exactly as ``json.dumps(value, separators=(",", ":"))`` writes it, made faster.

:func:`encode` keeps one C encoder instead of building one per call (``json.dumps`` does, which
costs more than encoding a small object); :func:`value` writes one scalar without calling the
encoder at all. Both give the same text as ``json.dumps`` with the compact separators: ASCII only,
floats as their repr, NaN and the infinities as ``NaN``, ``Infinity``, ``-Infinity``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

try:
    from json.encoder import c_make_encoder as _c_make_encoder  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - CPython has it
    _c_make_encoder = None
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]

_dumps = json.JSONEncoder(separators=(",", ":")).encode

#: The JSON text of one string (with its quotes).
string: Callable[[str], str] = encode_basestring_ascii

_SPECIAL = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _float(value: float) -> str:
    text = float.__repr__(value)
    return _SPECIAL.get(text, text)


if _c_make_encoder is not None:
    # No circular-reference markers: what is encoded here is built from plain records, never cyclic.
    _c_encoder = _c_make_encoder(None, _refuse, encode_basestring_ascii, None, ":", ",", False, False, True)

    def encode(value: Any) -> str:
        """``json.dumps(value, separators=(",", ":"))``."""
        kind = type(value)
        if kind is str:
            return encode_basestring_ascii(value)
        if kind is float:
            return _float(value)
        return "".join(_c_encoder(value, 0))
else:  # pragma: no cover

    def encode(value: Any) -> str:
        """``json.dumps(value, separators=(",", ":"))``."""
        return _dumps(value)


def value(item: Any) -> str:
    """The JSON text of one value; scalars without the encoder."""
    kind = type(item)
    if kind is str:
        return encode_basestring_ascii(item)
    if kind is float:
        return _float(item)
    if item is None:
        return "null"
    if item is True:
        return "true"
    if item is False:
        return "false"
    if kind is int:
        return int.__repr__(item)
    return encode(item)
