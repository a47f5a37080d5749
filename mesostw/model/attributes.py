"""Agent attributes (``--attributes``): parsing, and the JSON shapes Mesos uses for them.

Attributes are opaque to Mesos: name -> a float (scalar), a range tuple, a frozenset (set) or text,
passed through in offers and shown by the state endpoints.
"""

from __future__ import annotations

import sys
from typing import Any, Mapping

from mesostw.model.resources import (
    RANGES,
    SCALAR,
    SET,
    _parse_value,
    format_ranges,
    format_set,
    normalize_ranges,
)
from mesostw.model.validation import Reader, ValidationError


def parse_attributes(text: str) -> dict[str, Any]:
    """Parse ``--attributes`` (``rack:r1;zone:a;level:10;keys:[1000-1500]``) into name -> value.

    Values are floats (scalars), range tuples, frozensets or text, as Mesos
    infers them from the syntax.
    """
    out: dict[str, Any] = {}
    errors = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, raw = part.partition(":")
        name, raw = name.strip(), raw.strip()
        if not sep or not name or not raw:
            errors.append(f"bad attribute {part!r}: expected name:value")
            continue
        try:
            value = _parse_value(raw) if raw[0] in "[{" else raw
        except ValueError as exc:
            errors.append(f"bad attribute {part!r}: {exc}")
            continue
        if isinstance(value, str):
            try:
                out[name] = float(value)
                continue
            except ValueError:
                pass
        out[name] = value
    if errors:
        raise ValidationError(errors)
    return out


def attributes_to_json(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, value in attributes.items():
        if isinstance(value, float):
            out.append({"name": name, "type": SCALAR, "scalar": {"value": value}})
        elif isinstance(value, tuple):
            out.append({"name": name, "type": RANGES, "ranges": {"range": [{"begin": b, "end": e} for b, e in value]}})
        elif isinstance(value, frozenset):
            out.append({"name": name, "type": SET, "set": {"item": sorted(value)}})
        else:
            out.append({"name": name, "type": "TEXT", "text": {"value": str(value)}})
    return out


def attributes_from_json(reader: Reader, key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in reader.objs(key, max_items=1000):
        name = attr.str("name", required=True, max_len=255)
        kind = attr.enum("type", (SCALAR, RANGES, SET, "TEXT"), required=True)
        if name is None or kind is None:
            continue
        # Names and texts recur over the agents of a cluster (rack, zone): one object each.
        name = sys.intern(name)
        if kind == SCALAR:
            holder = attr.obj("scalar", required=True)
            out[name] = holder.float("value", 0.0) if holder else 0.0
        elif kind == RANGES:
            holder = attr.obj("ranges", required=True)
            pairs = [(r.int("begin", 0), r.int("end", 0)) for r in holder.objs("range")] if holder else []
            out[name] = normalize_ranges(pairs)
        elif kind == SET:
            holder = attr.obj("set", required=True)
            out[name] = frozenset(holder.strs("item")) if holder else frozenset()
        else:
            holder = attr.obj("text", required=True)
            text = holder.str("value", "") if holder else ""
            out[name] = sys.intern(text) if isinstance(text, str) else text
    return out


def attributes_model(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The flat object v0 endpoints use for attributes."""
    out: dict[str, Any] = {}
    for name, value in attributes.items():
        if isinstance(value, tuple):
            out[name] = format_ranges(value)
        elif isinstance(value, frozenset):
            out[name] = format_set(value)
        else:
            out[name] = value
    return out
