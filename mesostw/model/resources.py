"""Resources: parsing, arithmetic and the JSON shapes Mesos uses for them.

A :class:`Resources` value is immutable and maps ``(name, role)`` to a value of
one of three kinds, as in Mesos:

* scalars (``cpus``, ``mem`` in MB, ``disk`` in MB, ``gpus``, custom ones),
  kept as integer thousandths so that arithmetic is exact (Mesos uses the same
  three-decimal fixed point);
* ranges (``ports:[31000-32000]``), kept as sorted, merged, inclusive intervals;
* sets (``bugs:{a,b,c}``), kept as frozensets.

The role ``*`` means unreserved; any other role is a static reservation.
"""

from __future__ import annotations

import json
import re
import weakref
from typing import Any, Iterable, Iterator, Mapping, Union

from mesostw.model.validation import Reader, ValidationError, read

SCALAR, RANGES, SET = "SCALAR", "RANGES", "SET"
UNRESERVED = "*"
PREDEFINED = ("cpus", "gpus", "mem", "disk", "ports")

Ranges = tuple  # tuple[tuple[int, int], ...]
Value = Union[int, "tuple[tuple[int, int], ...]", "frozenset[str]"]
Key = tuple  # (name, role)

_RESOURCE = re.compile(r"^\s*([^():;\s]+)\s*(?:\(\s*([^()]*?)\s*\))?\s*:\s*(.+?)\s*$")
_RANGE_MAX = (1 << 64) - 1


def to_millis(value: float) -> int:
    return int(round(value * 1000))


def from_millis(value: int) -> float:
    return value / 1000


def normalize_ranges(pairs: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sort inclusive intervals and merge the overlapping and adjacent ones."""
    merged: list[list[int]] = []
    for begin, end in sorted(pairs):
        if merged and begin <= merged[-1][1] + 1:
            if end > merged[-1][1]:
                merged[-1][1] = end
        else:
            merged.append([begin, end])
    return tuple((b, e) for b, e in merged)


def subtract_ranges(left: Ranges, right: Ranges) -> Ranges:
    out = []
    for begin, end in left:
        for r_begin, r_end in right:
            if r_end < begin or r_begin > end:
                continue
            if r_begin > begin:
                out.append((begin, r_begin - 1))
            begin = r_end + 1
            if begin > end:
                break
        if begin <= end:
            out.append((begin, end))
    return tuple(out)


def ranges_contain(outer: Ranges, inner: Ranges) -> bool:
    index = 0
    for begin, end in inner:
        while index < len(outer) and outer[index][1] < begin:
            index += 1
        if index == len(outer) or not (outer[index][0] <= begin and end <= outer[index][1]):
            return False
    return True


def format_ranges(ranges: Ranges) -> str:
    return "[" + ", ".join(f"{b}-{e}" for b, e in ranges) + "]"


def format_set(items: frozenset[str]) -> str:
    return "{" + ", ".join(sorted(items)) + "}"


def format_scalar(millis: int) -> str:
    """Exact decimal text of a fixed-point scalar (``1234.567``, ``2``), so that parsing it gives it back."""
    whole, frac = divmod(abs(millis), 1000)
    text = str(whole) if not frac else f"{whole}.{frac:03d}".rstrip("0")
    return "-" + text if millis < 0 else text


def validate_role(role: str) -> str | None:
    """Return why ``role`` is not a valid role name, or ``None`` (as Mesos's ``roles::validate``)."""
    if role == UNRESERVED:
        return None
    if not role:
        return "role must not be empty"
    if role in (".", "..") or role.startswith("-"):
        return f"invalid role {role!r}"
    if any(c in role for c in "/\\\x08 \t\n\r\x0b\x0c") or len(role) > 255:
        return f"invalid role {role!r}: no slashes, whitespace or backspace"
    return None


class Resources:
    """An immutable bag of resources keyed by ``(name, role)``."""

    __slots__ = ("_items", "__weakref__")

    def __init__(self, items: Mapping[Key, Value] | None = None):
        self._items: dict[Key, Value] = dict(items) if items else {}

    @classmethod
    def _shared(cls, items: dict[Key, Value]) -> Resources:
        """A bag of ``items`` (in their order), the same object for the same items while one is alive:
        the hundred thousand tasks of a large cluster mostly ask for a few shapes of resources."""
        if not items:
            return EMPTY if cls is Resources else cls(items)
        key = tuple(items.items())
        try:
            found = _SHARED.get(key)
        except TypeError:  # an unhashable value: nothing to share
            return cls(items)
        if found is None or type(found) is not cls:
            found = cls(items)
            _SHARED[key] = found
        return found

    # -- construction ----------------------------------------------------

    @classmethod
    def of(cls, role: str = UNRESERVED, **scalars: float) -> Resources:
        """Scalars by keyword: ``Resources.of(cpus=1, mem=128)``."""
        return cls({(name, role): to_millis(v) for name, v in scalars.items() if v > 0})

    @classmethod
    def parse(cls, text: str, default_role: str = UNRESERVED) -> Resources:
        """Parse Mesos's ``--resources`` syntax or a JSON array of Resource objects."""
        if not isinstance(text, str):
            raise ValidationError(f"resources must be text, not {type(text).__name__}")
        text = text.strip()
        if text.startswith("["):
            try:
                decoded = json.loads(text)
            except (ValueError, RecursionError) as exc:
                raise ValidationError(f"resources are not valid JSON: {exc}") from None
            return cls.from_json(decoded)
        items: dict[Key, Value] = {}
        errors = []
        for part in filter(None, (p.strip() for p in text.split(";"))):
            match = _RESOURCE.match(part)
            if not match:
                errors.append(f"bad resource {part!r}: expected name[(role)]:value")
                continue
            name, role, raw = match.group(1), match.group(2), match.group(3)
            role = default_role if role is None else role
            problem = validate_role(role)
            if problem:
                errors.append(f"bad resource {part!r}: {problem}")
                continue
            try:
                value = _parse_value(raw)
            except ValueError as exc:
                errors.append(f"bad resource {part!r}: {exc}")
                continue
            if (name, role) in items:
                try:
                    value = _add(items[(name, role)], value)
                except TypeError:
                    errors.append(f"bad resource {part!r}: {name} given with two different types")
                    continue
            items[(name, role)] = value
        if errors:
            raise ValidationError(errors)
        return cls._shared({k: v for k, v in items.items() if v})

    @classmethod
    def from_json(cls, data: Any, what: str = "resources") -> Resources:
        """Build from a list of v1 ``Resource`` objects; raises :class:`ValidationError`."""
        if not isinstance(data, list):
            raise ValidationError(f"{what} must be a list of Resource objects")
        return read({what: data}, lambda r: cls.read(r, what))

    @classmethod
    def read(cls, reader: Reader, key: str) -> Resources:
        """Read the Resource list at ``reader[key]``, recording problems on the reader."""
        items: dict[Key, Value] = {}
        for res in reader.objs(key, max_items=10_000):
            entry = _read_resource(res)
            if entry is None:
                continue
            k, value = entry
            if k in items:
                try:
                    value = _add(items[k], value)
                except TypeError:
                    res.error(f"gives {k[0]} with two different types")
                    continue
            items[k] = value
        return cls._shared({k: v for k, v in items.items() if v})

    # -- inspection ------------------------------------------------------

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[tuple[str, str, Value]]:
        for (name, role), value in self._items.items():
            yield name, role, value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Resources) and self._items == other._items

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return f"Resources({str(self)!r})"

    def __str__(self) -> str:
        parts = []
        for (name, role), value in sorted(self._items.items(), key=lambda kv: _sort_key(kv[0])):
            label = name if role == UNRESERVED else f"{name}({role})"
            parts.append(f"{label}:{_format_value(value)}")
        return ";".join(parts)

    def keys(self) -> Iterable[Key]:
        return self._items.keys()

    def get(self, name: str, role: str = UNRESERVED) -> Value | None:
        return self._items.get((name, role))

    def names(self) -> set[str]:
        return {name for name, _ in self._items}

    def roles(self) -> set[str]:
        return {role for _, role in self._items}

    def scalar(self, name: str) -> float:
        """Total of a scalar over all roles."""
        return from_millis(sum(v for (n, _), v in self._items.items() if n == name and isinstance(v, int)))

    def scalars(self) -> dict[str, float]:
        """Totals of every scalar over all roles: what DRF measures shares with."""
        totals: dict[str, int] = {}
        for (name, _), value in self._items.items():
            if isinstance(value, int):
                totals[name] = totals.get(name, 0) + value
        return {name: from_millis(v) for name, v in totals.items()}

    def ranges(self, name: str) -> tuple[tuple[int, int], ...]:
        out: list[tuple[int, int]] = []
        for (n, _), value in self._items.items():
            if n == name and isinstance(value, tuple):
                out.extend(value)
        return normalize_ranges(out)

    def set_items(self, name: str) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for (n, _), value in self._items.items():
            if n == name and isinstance(value, frozenset):
                out |= value
        return out

    def unreserved(self) -> Resources:
        return Resources({k: v for k, v in self._items.items() if k[1] == UNRESERVED})

    def reserved(self, role: str | None = None) -> Resources:
        """Resources reserved for ``role`` (or for any role when ``None``)."""
        if role is None:
            return Resources({k: v for k, v in self._items.items() if k[1] != UNRESERVED})
        return Resources({k: v for k, v in self._items.items() if k[1] == role})

    def allocatable_to(self, role: str) -> Resources:
        """What a framework in ``role`` may be offered: unreserved plus reserved for ``role``."""
        return Resources({k: v for k, v in self._items.items() if k[1] == UNRESERVED or k[1] == role})

    def flatten(self) -> Resources:
        """The same quantities with every role erased to ``*``."""
        out: dict[Key, Value] = {}
        for (name, _), value in self._items.items():
            key = (name, UNRESERVED)
            out[key] = _add(out[key], value) if key in out else value
        return Resources(out)

    # -- arithmetic ------------------------------------------------------

    def __add__(self, other: Resources) -> Resources:
        if not other._items:
            return self
        if not self._items:
            return other
        items = dict(self._items)
        for key, value in other._items.items():
            mine = items.get(key)
            items[key] = value if mine is None else _add(mine, value)
        return Resources(items)

    def __sub__(self, other: Resources) -> Resources:
        """Remove ``other``; amounts not present are ignored (callers check :meth:`contains`)."""
        if not other._items:
            return self
        items = dict(self._items)
        for key, value in other._items.items():
            mine = items.get(key)
            if mine is None:
                continue
            left = _subtract(mine, value)
            if left:
                items[key] = left
            else:
                del items[key]
        return Resources(items)

    def contains(self, other: Resources) -> bool:
        """Whether ``other`` fits entirely inside this bag (per name and role)."""
        mine = self._items
        for key, value in other._items.items():
            have = mine.get(key)
            if have is None or not _contains(have, value):
                return False
        return True

    __ge__ = contains

    def __le__(self, other: Resources) -> bool:
        return other.contains(self)

    # -- JSON --------------------------------------------------------------

    def to_json(self, allocation_role: str | None = None) -> list[dict[str, Any]]:
        """The v1 array of Resource objects."""
        out = []
        for (name, role), value in sorted(self._items.items(), key=lambda kv: _sort_key(kv[0])):
            res: dict[str, Any] = {"name": name, "role": role}
            if isinstance(value, int):
                res["type"] = SCALAR
                res["scalar"] = {"value": from_millis(value)}
            elif isinstance(value, tuple):
                res["type"] = RANGES
                res["ranges"] = {"range": [{"begin": b, "end": e} for b, e in value]}
            else:
                res["type"] = SET
                res["set"] = {"item": sorted(value)}
            if role != UNRESERVED:
                res["reservations"] = [{"type": "STATIC", "role": role}]
            if allocation_role is not None:
                res["allocation_info"] = {"role": allocation_role}
            out.append(res)
        return out

    def model(self) -> dict[str, Any]:
        """The flat object v0 endpoints use: ``{"cpus": 2.0, "mem": 1024.0, "ports": "[31000-32000]"}``."""
        out: dict[str, Any] = {"cpus": 0.0, "gpus": 0.0, "mem": 0.0, "disk": 0.0}
        for name in sorted(self.names()):
            scalar = self.scalar(name)
            ranges = self.ranges(name)
            items = self.set_items(name)
            if ranges:
                out[name] = format_ranges(ranges)
            elif items:
                out[name] = format_set(items)
            else:
                out[name] = scalar
        return out


EMPTY = Resources()
#: items -> the Resources alive with exactly those items (see :meth:`Resources._shared`)
_SHARED: weakref.WeakValueDictionary[tuple[tuple[Key, Value], ...], Resources] = weakref.WeakValueDictionary()


def _sort_key(key: Key) -> tuple[int, str, str]:
    name, role = key
    rank = PREDEFINED.index(name) if name in PREDEFINED else len(PREDEFINED)
    return rank, name, role


def _parse_value(raw: str) -> Value:
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise ValueError("ranges must look like [begin-end, ...]")
        pairs = []
        for chunk in filter(None, (c.strip() for c in raw[1:-1].split(","))):
            begin, sep, end = chunk.partition("-")
            if not sep or not begin.strip().isdigit() or not end.strip().isdigit():
                raise ValueError(f"bad range {chunk!r}")
            pairs.append(_checked_range(int(begin), int(end)))
        return normalize_ranges(pairs)
    if raw.startswith("{"):
        if not raw.endswith("}"):
            raise ValueError("sets must look like {a,b,c}")
        return frozenset(filter(None, (c.strip() for c in raw[1:-1].split(","))))
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number, a range list or a set") from None
    return _checked_scalar(value)


def _checked_scalar(value: float) -> int:
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("scalar must be finite")
    if value < 0:
        raise ValueError("scalar must not be negative")
    if value > 1e15:
        raise ValueError("scalar is too large")
    return to_millis(value)


def _checked_range(begin: int, end: int) -> tuple[int, int]:
    if begin > end:
        raise ValueError(f"range {begin}-{end} ends before it begins")
    if begin < 0 or end > _RANGE_MAX:
        raise ValueError(f"range {begin}-{end} is outside 0-{_RANGE_MAX}")
    return begin, end


def _read_resource(res: Reader) -> tuple[Key, Value] | None:
    name = res.str("name", required=True, max_len=255)
    kind = res.enum("type", (SCALAR, RANGES, SET), required=True)
    role = res.str("role", UNRESERVED, max_len=255)
    reservations = list(res.objs("reservations", max_items=64))
    if reservations:
        role = reservations[-1].str("role", role, max_len=255)
    problem = validate_role(role) if isinstance(role, str) else None
    if problem:
        res.error(problem, "role")
        return None
    if name is None or kind is None:
        return None
    try:
        value: Value
        if kind == SCALAR:
            scalar = res.obj("scalar", required=True)
            number = scalar.float("value", required=True) if scalar else None
            if number is None:
                return None
            value = _checked_scalar(number)
        elif kind == RANGES:
            holder = res.obj("ranges", required=True)
            pairs = []
            for item in holder.objs("range", max_items=10_000) if holder else ():
                begin, end = item.int("begin", required=True), item.int("end", required=True)
                if begin is not None and end is not None:
                    pairs.append(_checked_range(begin, end))
            value = normalize_ranges(pairs)
        else:
            holder = res.obj("set", required=True)
            value = frozenset(holder.strs("item")) if holder else frozenset()
    except ValueError as exc:
        res.error(str(exc), name)
        return None
    return (name, role), value


def _add(left: Value, right: Value) -> Value:
    if isinstance(left, int) and isinstance(right, int):
        return left + right
    if isinstance(left, tuple) and isinstance(right, tuple):
        return normalize_ranges(left + right)
    if isinstance(left, frozenset) and isinstance(right, frozenset):
        return left | right
    raise TypeError("cannot combine resources of different types")


def _subtract(left: Value, right: Value) -> Value:
    if isinstance(left, int) and isinstance(right, int):
        return max(left - right, 0)
    if isinstance(left, tuple) and isinstance(right, tuple):
        return subtract_ranges(left, right)
    if isinstance(left, frozenset) and isinstance(right, frozenset):
        return left - right
    return left


def _contains(outer: Value, inner: Value) -> bool:
    if isinstance(outer, int) and isinstance(inner, int):
        return inner <= outer
    if isinstance(outer, tuple) and isinstance(inner, tuple):
        return ranges_contain(outer, inner)
    if isinstance(outer, frozenset) and isinstance(inner, frozenset):
        return inner <= outer
    return False


def _format_value(value: Value) -> str:
    if isinstance(value, int):
        return format_scalar(value)
    if isinstance(value, tuple):
        return format_ranges(value).replace(" ", "")
    return format_set(value).replace(" ", "")


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
            out[name] = holder.str("value", "") if holder else ""
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


def named_in(text: str) -> set[str]:
    """Resource names that a ``--resources`` text mentions, including ones given as zero."""
    text = text.strip()
    if text.startswith("["):
        try:
            return {r["name"] for r in json.loads(text) if isinstance(r, dict) and isinstance(r.get("name"), str)}
        except (ValueError, TypeError):
            return set()
    names = set()
    for part in text.split(";"):
        match = _RESOURCE.match(part)
        if match:
            names.add(match.group(1))
    return names
