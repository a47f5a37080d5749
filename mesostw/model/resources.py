"""Resources: parsing, arithmetic and the JSON shapes Mesos uses for them.

A :class:`Resources` value is immutable and maps keys to values of one of three kinds, as in Mesos:

* scalars (``cpus``, ``mem`` in MB, ``disk`` in MB, ``gpus``, custom ones),
  kept as integer thousandths so that arithmetic is exact (Mesos uses the same
  three-decimal fixed point);
* ranges (``ports:[31000-32000]``), kept as sorted, merged, inclusive intervals;
* sets (``bugs:{a,b,c}``), kept as frozensets.

A key is ``(name, role)`` for an unreserved resource (role ``*``) or one reserved statically for
``role``, and ``(name, role, meta)`` for one with dynamic or refined reservations or a persistent
volume, ``meta`` holding its reservation stack and DiskInfo (see :mod:`mesostw.model.reservation`);
``role`` is always the top reservation's. Resources that differ in any of that never mix: they add up,
subtract and compare per key, and a persistent volume is contained only whole.
"""

from __future__ import annotations

import json
import re
import weakref
from typing import Any, Callable, Iterable, Iterator, Mapping, Union

from mesostw.model.reservation import (
    UNRESERVED,
    DiskInfo,
    Key,
    describe,
    is_allocatable_to,
    is_refined,
    is_volume,
    make_key,
    needs_checkpointing,
    read_disk,
    read_stack,
    stack_json,
    static_of,
    validate_role,
)
from mesostw.model.validation import Reader, ValidationError, read

__all__ = ["EMPTY", "PREDEFINED", "RANGES", "SCALAR", "SET", "UNRESERVED", "Key", "Resources", "Value",
           "format_ranges", "format_scalar", "format_set", "from_millis", "named_in", "normalize_ranges",
           "ranges_contain", "sort_key", "subtract_ranges", "to_millis", "validate_role"]

SCALAR, RANGES, SET = "SCALAR", "RANGES", "SET"
PREDEFINED = ("cpus", "gpus", "mem", "disk", "ports")

Ranges = tuple  # tuple[tuple[int, int], ...]
Value = Union[int, "tuple[tuple[int, int], ...]", "frozenset[str]"]

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


class Resources:
    """An immutable bag of resources (see the module's docstring for its keys)."""

    # _volumes: whether a key may be a persistent volume (never false when one is), so that the
    # whole-volume rule of :meth:`contains` costs nothing for everything else.
    # _sums, _shares: the scalar totals (thousandths, and as floats), computed on first use and kept,
    # since the value never changes: the allocator reads them for every offer it makes.
    # __weakref__: for sharing equal bags (see :meth:`_shared`).
    __slots__ = ("_items", "_volumes", "_sums", "_shares", "__weakref__")

    def __init__(self, items: Mapping[Key, Value] | None = None):
        self._items: dict[Key, Value] = dict(items) if items else {}
        self._volumes = any(len(k) == 3 and k[2].volume for k in self._items)
        self._sums: dict[str, int] | None = None
        self._shares: dict[str, float] | None = None

    @classmethod
    def _of(cls, items: dict[Key, Value], volumes: bool) -> Resources:
        """Wrap ``items`` (owned from now on) without checking them: for arithmetic on valid bags."""
        made = object.__new__(cls)
        made._items = items
        made._volumes = volumes
        made._sums = None
        made._shares = None
        return made

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

    def interned(self) -> Resources:
        """This bag or an equal one alive (same items in the same order), the same object for all of
        them: for bags kept long, one per agent or per framework on an agent (what a framework holds
        there, what it refused), which in a large cluster mostly have a few shapes."""
        items = self._items
        if not items:
            return EMPTY if type(self) is Resources else self
        key = tuple(items.items())
        try:
            found = _SHARED.get(key)
        except TypeError:  # an unhashable value: nothing to share
            return self
        if found is None or type(found) is not type(self):
            _SHARED[key] = self
            return self
        return found

    # -- construction ----------------------------------------------------

    @classmethod
    def of(cls, role: str = UNRESERVED, **scalars: float) -> Resources:
        """Scalars by keyword: ``Resources.of(cpus=1, mem=128)``."""
        return cls({(name, role): to_millis(v) for name, v in scalars.items() if v > 0})

    @classmethod
    def parse(cls, text: str, default_role: str = UNRESERVED) -> Resources:
        """Parse Mesos's ``--resources`` syntax (static reservations only: ``cpus(ads):8``) or a JSON
        array of Resource objects (any reservation, volumes)."""
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
        """Read the Resource list at ``reader[key]``, recording problems on the reader.

        A list read without problems before is not read again: the same JSON text gives the same bag
        (the tasks of an agent re-registering, or of a launch, mostly ask for a few shapes of resources)."""
        raw = reader.raw(key)
        known = _key_of(raw) if isinstance(raw, list) else None
        if known is not None:
            found = _READ.get((cls, known))
            if found is not None:
                return found
        before = len(reader.errors)
        resources = cls._read(reader, key)
        if known is not None and len(reader.errors) == before:
            if len(_READ) >= _READ_MAX:
                _READ.clear()
            _READ[(cls, known)] = resources
        return resources

    @classmethod
    def _read(cls, reader: Reader, key: str) -> Resources:
        items: dict[Key, Value] = {}
        for res in reader.objs(key, max_items=10_000):
            entry = _read_resource(res)
            if entry is None:
                continue
            k, value = entry
            if k in items:
                if len(k) == 3 and k[2].volume:
                    res.error(f"gives persistent volume {k[2].disk.persistence_id!r} twice")
                    continue
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
        """(name, role, value) of every resource; ``role`` is its top reservation's (``*``: unreserved)."""
        for key, value in self._items.items():
            yield key[0], key[1], value

    def entries(self) -> Iterator[tuple[Key, Value]]:
        """(key, value) of every resource, with its whole reservation stack and DiskInfo in the key."""
        return iter(self._items.items())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Resources) and self._items == other._items

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return f"Resources({str(self)!r})"

    def __str__(self) -> str:
        """Mesos's ``--resources`` syntax for what it can express (``cpus:2;mem(ads):64``), Mesos's way of
        printing the rest (``disk(reservations: [(DYNAMIC,ads,ops)])[vol1:data]:64``)."""
        parts = []
        for key, value in sorted(self._items.items(), key=lambda kv: sort_key(kv[0])):
            parts.append(f"{describe(key)}:{_format_value(value)}")
        return ";".join(parts)

    def keys(self) -> Iterable[Key]:
        return self._items.keys()

    def get(self, name: str, role: str = UNRESERVED) -> Value | None:
        """The value of an unreserved or statically reserved resource."""
        return self._items.get((name, role))

    def names(self) -> set[str]:
        return {key[0] for key in self._items}

    def roles(self) -> set[str]:
        """The roles resources are reserved for (their top reservations), and ``*`` if some are not."""
        return {key[1] for key in self._items}

    def scalar(self, name: str) -> float:
        """Total of a scalar over all roles."""
        return from_millis(sum(v for k, v in self._items.items() if k[0] == name and isinstance(v, int)))

    def scalars(self) -> dict[str, float]:
        """Totals of every scalar over all roles: what DRF measures shares with."""
        return dict(self.scalars_view())

    def scalars_view(self) -> Mapping[str, float]:
        """:meth:`scalars` without the copy, computed once per value: read it, never change it."""
        shares = self._shares
        if shares is None:
            shares = self._shares = {name: from_millis(v) for name, v in self.scalar_sums().items()}
        return shares

    def scalar_sums(self) -> Mapping[str, int]:
        """Totals of every scalar over all roles in thousandths, computed once per value: read it, never
        change it."""
        sums = self._sums
        if sums is None:
            sums = {}
            for key, value in self._items.items():
                if isinstance(value, int):
                    name = key[0]
                    sums[name] = sums.get(name, 0) + value
            self._sums = sums
        return sums

    def ranges(self, name: str) -> tuple[tuple[int, int], ...]:
        out: list[tuple[int, int]] = []
        for key, value in self._items.items():
            if key[0] == name and isinstance(value, tuple):
                out.extend(value)
        return normalize_ranges(out)

    def set_items(self, name: str) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for key, value in self._items.items():
            if key[0] == name and isinstance(value, frozenset):
                out |= value
        return out

    def filter(self, keep: Callable[[Key], bool]) -> Resources:
        """The resources whose keys ``keep`` accepts."""
        return Resources._of({k: v for k, v in self._items.items() if keep(k)}, self._volumes)

    def unreserved(self) -> Resources:
        return Resources._of({k: v for k, v in self._items.items() if k[1] == UNRESERVED}, self._volumes)

    def reserved(self, role: str | None = None) -> Resources:
        """Resources reserved for ``role`` (its top reservation; for any role when ``None``)."""
        if role is None:
            return Resources._of({k: v for k, v in self._items.items() if k[1] != UNRESERVED}, self._volumes)
        return Resources._of({k: v for k, v in self._items.items() if k[1] == role}, self._volumes)

    def reservations(self) -> dict[str, Resources]:
        """Role -> the resources reserved for it (by their top reservations), as Mesos's ``reservations()``."""
        by_role: dict[str, dict[Key, Value]] = {}
        for key, value in self._items.items():
            if key[1] != UNRESERVED:
                by_role.setdefault(key[1], {})[key] = value
        return {role: Resources._of(items, self._volumes) for role, items in by_role.items()}

    def allocatable_to(self, role: str) -> Resources:
        """What a framework in ``role`` may be offered: unreserved resources, and those reserved for
        ``role`` or for a role above it (``eng``'s go to ``eng/web`` too)."""
        items = {}
        for key, value in self._items.items():
            reserved_for = key[1]
            if reserved_for == UNRESERVED or reserved_for == role or is_allocatable_to(reserved_for, role):
                items[key] = value
        return Resources._of(items, self._volumes)

    def volumes(self) -> Resources:
        """The persistent volumes."""
        if not self._volumes:
            return EMPTY
        return Resources._of({k: v for k, v in self._items.items() if is_volume(k)}, True)

    def checkpointed(self) -> Resources:
        """What agents checkpoint and the registry keeps: dynamic reservations and persistent volumes."""
        return Resources({k: v for k, v in self._items.items() if len(k) == 3 and needs_checkpointing(k)})

    def static(self) -> Resources:
        """The same quantities as the agent's ``--resources`` gave them: dynamic reservations and volumes
        undone."""
        out: dict[Key, Value] = {}
        for key, value in self._items.items():
            if len(key) == 3:
                key = static_of(key)
            out[key] = _add(out[key], value) if key in out else value
        return Resources(out)

    def has_refined(self) -> bool:
        return any(len(k) == 3 and is_refined(k) for k in self._items)

    def without_refined(self) -> Resources:
        """What a framework without the RESERVATION_REFINEMENT capability may be offered."""
        return Resources._of({k: v for k, v in self._items.items() if not is_refined(k)}, self._volumes)

    def flatten(self) -> Resources:
        """The same quantities with every reservation and DiskInfo erased (all ``*``)."""
        out: dict[Key, Value] = {}
        for key, value in self._items.items():
            key = (key[0], UNRESERVED)
            out[key] = _add(out[key], value) if key in out else value
        return Resources._of(out, False)

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
        return Resources._of(items, self._volumes or other._volumes)

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
        return Resources._of(items, self._volumes)

    def contains(self, other: Resources) -> bool:
        """Whether ``other`` fits entirely inside this bag (per key; a persistent volume only whole)."""
        mine = self._items
        for key, value in other._items.items():
            have = mine.get(key)
            if have is None or not _contains(have, value):
                return False
        if other._volumes:
            return all(mine[key] == value for key, value in other._items.items() if len(key) == 3 and key[2].volume)
        return True

    __ge__ = contains

    def __le__(self, other: Resources) -> bool:
        return other.contains(self)

    # -- JSON --------------------------------------------------------------

    def to_json(self, allocation_role: str | None = None) -> list[dict[str, Any]]:
        """The v1 array of Resource objects, in Mesos's endpoint format (see
        :func:`mesostw.model.reservation.stack_json`)."""
        out = []
        for key, value in sorted(self._items.items(), key=lambda kv: sort_key(kv[0])):
            res: dict[str, Any] = {"name": key[0]}
            if isinstance(value, int):
                res["type"] = SCALAR
                res["scalar"] = {"value": from_millis(value)}
            elif isinstance(value, tuple):
                res["type"] = RANGES
                res["ranges"] = {"range": [{"begin": b, "end": e} for b, e in value]}
            else:
                res["type"] = SET
                res["set"] = {"item": sorted(value)}
            stack_json(res, key)
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

#: (class, what a Resource list is: see _key_of) -> the bag it was read as, without problems (see Resources.read)
_READ: dict[tuple[type, Any], Resources] = {}
#: Lists remembered at most; all are forgotten at once past it (a few shapes recur, the rest are rare).
_READ_MAX = 4096
#: Longer lists are read every time (the text would cost more to keep than the bag to read).
_READ_TEXT_MAX = 2048


def _key_of(raw: list[Any]) -> Any:
    """What tells a decoded Resource list from every other, for :data:`_READ`: for unreserved scalars, the
    most common, a tuple of (name, value, type of value, role) built at once; else its JSON text (which, like
    the tuple, tells ``1`` from ``1.0`` and ``true``, unlike the values' equality). None when it is not plain
    JSON or too long to remember."""
    simple = []
    for item in raw:
        if type(item) is not dict or len(item) != 4:
            break
        name, kind, scalar, role = item.get("name"), item.get("type"), item.get("scalar"), item.get("role")
        if type(name) is not str or kind != SCALAR or type(role) is not str or type(scalar) is not dict \
                or len(scalar) != 1:
            break
        value = scalar.get("value")
        if type(value) is not float and type(value) is not int:
            break
        simple.append((name, value, type(value), role))
    else:
        return tuple(simple)
    try:
        text = json.dumps(raw, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return None
    return text if len(text) <= _READ_TEXT_MAX else None


def sort_key(key: Key) -> tuple[Any, ...]:
    """What orders resources in :meth:`Resources.to_json`: predefined names first, then by name, role,
    and reservations and disk."""
    name = key[0]
    rank = PREDEFINED.index(name) if name in PREDEFINED else len(PREDEFINED)
    if len(key) == 2:
        return rank, name, key[1], 0
    return rank, name, key[1], 1, key[2]


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
    stack = read_stack(res)
    disk = read_disk(res, name) if isinstance(name, str) else None
    if res.has("shared"):
        res.error("is not supported: mesostw has no shared resources", "shared")
        return None
    if name is None or kind is None or stack is None or not (disk is None or isinstance(disk, DiskInfo)):
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
    if disk is not None and kind != SCALAR:
        res.error("must be a SCALAR to have a DiskInfo", "type")
        return None
    return make_key(name, stack, disk), value


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
