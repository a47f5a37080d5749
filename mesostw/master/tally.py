"""Running sums of resources, kept exactly as items come and go.

A :class:`ResourceTally` is what summing the resources of its current members with ``+`` gives,
without summing them again on every read: scalars are fixed-point integers (exact under addition
and subtraction), and ranges and set items are counted, so that removing one member's ports leaves
those another member holds. The sum is built again only when read after a change.
"""

from __future__ import annotations

from collections import Counter

from mesostw.model.resources import EMPTY, Resources, normalize_ranges

Key = tuple  # a Resources key: (name, role) or (name, role, reservations and disk)


class ResourceTally:
    """The sum of the :class:`Resources` added and not removed since (a multiset of them)."""

    __slots__ = ("_scalars", "_ranges", "_items", "_total")

    #: A master holds one per agent: the counters are made when the first range or set item comes (an
    #: empty one is as large as a dict).
    _NONE: Counter = Counter()  # type: ignore[type-arg]  # read-only: never added to

    def __init__(self) -> None:
        self._scalars: dict[Key, int] = {}
        #: (key, (begin, end)) -> how many members hold that interval
        self._ranges: Counter[tuple[Key, tuple[int, int]]] = self._NONE
        #: (key, item) -> how many members hold that set item
        self._items: Counter[tuple[Key, str]] = self._NONE
        self._total: Resources | None = EMPTY

    def add(self, resources: Resources, times: int = 1) -> None:
        """Add ``resources`` (``times`` members holding them)."""
        if not resources:
            return
        self._total = None
        for key, value in resources.entries():
            if isinstance(value, int):
                self._scalars[key] = self._scalars.get(key, 0) + value * times
            elif isinstance(value, tuple):
                if self._ranges is self._NONE:
                    self._ranges = Counter()
                for interval in value:
                    self._ranges[(key, interval)] += times
            else:
                if self._items is self._NONE:
                    self._items = Counter()
                for item in value:
                    self._items[(key, item)] += times

    def remove(self, resources: Resources) -> None:
        """Take out resources added before (anything else is a caller's error, ignored where it shows)."""
        if not resources:
            return
        self._total = None
        for key, value in resources.entries():
            if isinstance(value, int):
                left = self._scalars.get(key, 0) - value
                if left > 0:
                    self._scalars[key] = left
                else:
                    self._scalars.pop(key, None)
            elif isinstance(value, tuple):
                for interval in value:
                    _drop(self._ranges, (key, interval))
            else:
                for item in value:
                    _drop(self._items, (key, item))

    def total(self) -> Resources:
        """The sum, as ``+`` over the members would give it."""
        total = self._total
        if total is None:
            items: dict[Key, object] = {key: value for key, value in self._scalars.items() if value}
            intervals: dict[Key, list[tuple[int, int]]] = {}
            for key, interval in self._ranges:
                intervals.setdefault(key, []).append(interval)
            for key, pairs in intervals.items():
                items[key] = normalize_ranges(pairs)
            members: dict[Key, set[str]] = {}
            for key, item in self._items:
                members.setdefault(key, set()).add(item)
            for key, found in members.items():
                items[key] = frozenset(found)
            total = self._total = Resources(items) if items else EMPTY  # type: ignore[arg-type]
        return total

    def __bool__(self) -> bool:
        return bool(self.total())


def _drop(counter: Counter, key: object) -> None:  # type: ignore[type-arg]
    count = counter.get(key, 0)
    if count > 1:
        counter[key] = count - 1
    elif count:
        del counter[key]
