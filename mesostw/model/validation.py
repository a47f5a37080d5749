"""Validation of untrusted JSON at the boundary.

A :class:`Reader` walks a decoded JSON object, converts fields into Python
values and collects every problem it meets, so that a caller is told about all
of them at once (``ValidationError.errors``) instead of the first only.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
from typing import Any, Callable, Iterator, TypeAlias, TypeVar

T = TypeVar("T")

#: Upper bound on any single string field; IDs are capped lower (NAME_MAX).
MAX_STRING = 1 << 20
NAME_MAX = 255
#: Integers are protobuf's int64 and uint64: anything outside both is refused (it would also overflow
#: a float in arithmetic such as ``nanoseconds / 1e9``).
INT_MIN, INT_MAX = -(1 << 63), (1 << 64) - 1
#: How deeply a JSON value kept as-is (an unknown field) may nest: deep enough for any real message,
#: shallow enough that encoding it again can never hit the interpreter's recursion limit.
MAX_DEPTH = 32
#: protobuf's JSON mapping renders 64-bit integers as strings of ASCII digits.
_INT_TEXT = re.compile(r"-?[0-9]{1,20}")
#: ASCII control characters, which no Mesos ID may hold (one C-speed search instead of a loop per character)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FLOAT_MAX = int(sys.float_info.max)

_MISSING = object()


class ValidationError(ValueError):
    """Raised when input does not fit the expected shape; ``errors`` lists every problem."""

    def __init__(self, errors: list[str] | str):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("; ".join(self.errors))


def validate_id(value: str) -> str | None:
    """Return why ``value`` is not a valid Mesos ID, or ``None`` if it is (as ``validateID``)."""
    if not value:
        return "must not be empty"
    if len(value) > NAME_MAX:
        return f"must be at most {NAME_MAX} characters"
    if value in (".", ".."):
        return "must not be '.' or '..'"
    if "/" in value or "\\" in value:
        return "must not contain '/' or '\\'"
    if _CONTROL.search(value):
        return "must not contain control characters"
    return None


def decode_json(payload: bytes | str, what: str = "body") -> Any:
    """Decode JSON text, turning every failure into a :class:`ValidationError`."""
    try:
        return json.loads(payload)
    except (ValueError, TypeError, RecursionError) as exc:
        raise ValidationError(f"{what} is not valid JSON: {exc}") from None


#: Reader's methods are named after what they read (str, int, ...), which shadows those builtins in the
#: annotations of the methods that follow them; these aliases keep meaning the builtins.
_str: TypeAlias = str
_int: TypeAlias = int
_float: TypeAlias = float
_bool: TypeAlias = bool
_list: TypeAlias = list


class Reader:
    """Typed access to one JSON object, collecting errors into a shared list."""

    __slots__ = ("errors", "data", "_path", "_parent", "_key", "_index")

    def __init__(self, data: Any, path: str = "", errors: list[str] | None = None):
        self.errors: list[str] = [] if errors is None else errors
        self._path: str | None = path
        self._parent: Reader | None = None
        self._key: str | None = None
        self._index: int | None = None
        if isinstance(data, dict):
            self.data: dict[str, Any] = data
        else:
            self.data = {}
            self.error(f"must be an object, not {_kind(data)}")

    def _child(self, data: Any, key: _str, index: _int | None = None) -> Reader:
        """A reader of ``data``, found at ``key`` (and ``index`` in that list) of this one, sharing its errors.
        Its path is spelt out only when an error needs it: a registration reads tens of thousands of objects."""
        child = Reader.__new__(Reader)
        child.errors = self.errors
        child._path = None
        child._parent, child._key, child._index = self, key, index
        if isinstance(data, dict):
            child.data = data
        else:
            child.data = {}
            child.error(f"must be an object, not {_kind(data)}")
        return child

    @property
    def path(self) -> _str:
        if self._path is None:
            assert self._parent is not None
            where = self._parent.where(self._key)
            self._path = where if self._index is None else f"{where}[{self._index}]"
        return self._path

    # -- bookkeeping -----------------------------------------------------

    def where(self, key: str | None = None) -> str:
        if key is None:
            return self.path or "message"
        return f"{self.path}.{key}" if self.path else key

    def error(self, message: str, key: str | None = None) -> None:
        self.errors.append(f"{self.where(key)} {message}")

    def check(self) -> None:
        """Raise :class:`ValidationError` if anything read so far was wrong."""
        if self.errors:
            raise ValidationError(self.errors)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def _get(self, key: str, required: bool) -> Any:
        value = self.data.get(key)
        if value is None:  # absent, or null
            if required:
                self.error("is required", key)
            return _MISSING
        return value

    # -- scalars ---------------------------------------------------------

    def str(self, key: str, default: Any = None, required: bool = False, max_len: int = MAX_STRING) -> Any:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if not isinstance(value, str):
            self.error(f"must be a string, not {_kind(value)}", key)
            return default
        if len(value) > max_len:
            self.error(f"must be at most {max_len} characters", key)
            return default
        return value

    def float(self, key: _str, default: Any = None, required: _bool = False, minimum: _float | None = None) -> Any:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.error(f"must be a number, not {_kind(value)}", key)
            return default
        if isinstance(value, int) and abs(value) > _FLOAT_MAX:
            self.error("must be a finite number", key)  # float(value) would overflow
            return default
        if value != value or value in (float("inf"), float("-inf")):
            self.error("must be a finite number", key)
            return default
        if minimum is not None and value < minimum:
            self.error(f"must be at least {minimum}", key)
            return default
        return float(value)

    def int(self, key: _str, default: Any = None, required: _bool = False, minimum: _int | None = None) -> Any:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if isinstance(value, str) and _INT_TEXT.fullmatch(value):
            value = int(value)  # protobuf's JSON mapping renders 64-bit ints as strings
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(f"must be an integer, not {_kind(value)}", key)
            return default
        if not INT_MIN <= value <= INT_MAX:
            self.error("must fit in 64 bits", key)
            return default
        if minimum is not None and value < minimum:
            self.error(f"must be at least {minimum}", key)
            return default
        return value

    def bool(self, key: _str, default: Any = None, required: _bool = False) -> Any:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.error(f"must be true or false, not {_kind(value)}", key)
            return default
        return value

    def enum(self, key: _str, choices: Any, default: Any = None, required: _bool = False) -> Any:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if value not in choices:
            self.error(f"must be one of {', '.join(sorted(map(str, choices)))}, not {value!r}", key)
            return default
        # One string object per choice, not one per message read (a task keeps a state in each status).
        return _CHOSEN.setdefault(value, value) if isinstance(value, str) else value

    def id(self, key: _str, default: Any = None, required: _bool = False, strict: _bool = True) -> Any:
        """Read a Mesos ID wrapper ``{"value": "..."}`` into its string.

        ``strict=False`` accepts any non-empty string of sane length: for IDs
        echoed back to a client (a TASK_ERROR about an ill-formed task ID).
        """
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if isinstance(value, dict) and isinstance(value.get("value"), str):
            value = value["value"]
        elif not isinstance(value, str):
            self.error('must be an ID object {"value": "..."}', key)
            return default
        problem = validate_id(value) if strict else (None if 0 < len(value) <= 1024 else "must be 1-1024 characters")
        if problem:
            self.error(problem, key)
            return default
        # IDs recur (an agent's and a framework's in every task and status): one object each, not one per read.
        return sys.intern(value)

    def bytes(self, key: _str, default: Any = None, required: _bool = False, max_len: _int = MAX_STRING) -> Any:
        """Read a protobuf ``bytes`` field, base64 in JSON."""
        value = self.str(key, _MISSING, required, max_len=max_len * 2)
        if value is _MISSING:
            return default
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            self.error("must be base64", key)
            return default

    # -- containers ------------------------------------------------------

    def extra(self, known: tuple[_str, ...]) -> dict[_str, Any]:
        """The fields not in ``known``, kept as they are (to pass on); ones nested too deeply are refused.
        Without any, the one shared :data:`NO_EXTRA` (every task and status keeps its ``extra``: read them,
        never change them)."""
        out = {}
        for key, value in self.data.items():
            if key in known:
                continue
            if too_deep(value):
                self.error(f"must not nest more than {MAX_DEPTH} levels deep", key)
                continue
            out[key] = value
        return out or NO_EXTRA

    def obj(self, key: _str, required: _bool = False) -> Reader | None:
        value = self._get(key, required)
        if value is _MISSING:
            return None
        return self._child(value, key)

    def list(self, key: _str, required: _bool = False, max_items: _int = 100_000) -> _list[Any]:
        value = self._get(key, required)
        if value is _MISSING:
            return []
        if not isinstance(value, list):
            self.error(f"must be a list, not {_kind(value)}", key)
            return []
        if len(value) > max_items:
            self.error(f"must have at most {max_items} items", key)
            return []
        return value

    def objs(self, key: _str, required: _bool = False, max_items: _int = 100_000) -> Iterator[Reader]:
        for index, item in enumerate(self.list(key, required, max_items)):
            yield self._child(item, key, index)

    def each(self, key: _str, parse: Callable[[Reader], T], required: _bool = False,
             max_items: _int = 100_000) -> _list[T]:
        """Parse every object of a list with ``parse``, skipping the ones that failed."""
        out = []
        for item in self.objs(key, required, max_items):
            before = len(self.errors)
            value = parse(item)
            if len(self.errors) == before:
                out.append(value)
        return out

    def ids(self, key: _str, max_items: _int = 100_000) -> _list[_str]:
        out = []
        for index, item in enumerate(self.list(key, max_items=max_items)):
            holder = self._child({"value": item}, key, index)
            value = holder.id("value")
            if value is not None:
                out.append(value)
        return out

    def strs(self, key: _str, max_items: _int = 10_000) -> _list[_str]:
        items = self.list(key, max_items=max_items)
        if not all(isinstance(item, str) for item in items):
            self.error("must be a list of strings", key)
            return []
        return list(items)


#: every enum value read, as one object (bounded: only values among the choices get here)
_CHOSEN: dict[str, str] = {}
#: what :meth:`Reader.extra` gives for a message without unknown fields (never changed)
NO_EXTRA: dict[str, Any] = {}


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether a JSON value nests lists and objects more than ``limit`` deep (checked without recursion)."""
    if not isinstance(value, (dict, list)):
        return False
    # Only containers go on the stack: a task's many scalar fields cost a type check each, nothing more.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def read(data: Any, parse: Callable[[Reader], T], what: str = "") -> T:
    """Parse ``data`` with ``parse`` and raise one :class:`ValidationError` listing every problem."""
    reader = Reader(data, what)
    value = parse(reader)
    reader.check()
    return value


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )
