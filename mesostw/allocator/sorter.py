"""Dominant Resource Fairness sorter, kept incrementally sorted.

A client's dominant share is the largest fraction of the cluster's total it
holds of any scalar resource, divided by its weight. Clients are ordered by
share, then by how often they were allocated to, then by name (as Mesos's
``DRFSorter``).

The order is a plain list of ``(share, count, name)`` keys, searched and
changed with :mod:`bisect` (C code: a re-positioning costs two binary searches
and a move of pointers, where a tree in Python costs tens of calls). A change
to a client only marks it; the next read of the order re-positions the marked
clients, so that an allocation cycle re-sorts each client once per read however
often it was charged in between, and a reader walking the order
(:meth:`DRFSorter.ordered`) sees it unchanged by the charges it makes. A change
of the cluster total marks every share stale, and the order is rebuilt on the
next read.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Iterator, Mapping, Sequence

Key = tuple[float, int, str]


class _Client:
    __slots__ = ("name", "allocated", "weight", "count", "active", "key")

    def __init__(self, name: str, weight: float):
        self.name = name
        self.allocated: dict[str, float] = {}
        self.weight = weight
        self.count = 0
        self.active = False
        #: its key as placed in the order (None when it is not in it)
        self.key: Key | None = None


class DRFSorter:
    """Orders clients (roles, or frameworks within a role) by weighted dominant share."""

    def __init__(self) -> None:
        self._clients: dict[str, _Client] = {}
        self._order: list[Key] = []
        self._total: dict[str, float] = {}
        self._stale = False
        #: active clients changed since the order was last read, to re-position on the next read
        self._dirty: dict[str, _Client] = {}
        #: whether the only client in the order changed since it was placed: alone, it stays first, and
        #: its key is worked out once there is another one to compare it with (one role: every offer)
        self._lone_changed = False

    # -- membership --------------------------------------------------------

    def add(self, name: str, weight: float = 1.0) -> None:
        if name not in self._clients:
            self._clients[name] = _Client(name, weight)
            self.activate(name)

    def remove(self, name: str) -> None:
        client = self._clients.pop(name, None)
        if client is not None:
            self._dirty.pop(name, None)
            self._unplace(client)

    def __contains__(self, name: str) -> bool:
        return name in self._clients

    def __len__(self) -> int:
        return len(self._clients)

    def activate(self, name: str) -> None:
        client = self._clients[name]
        if not client.active:
            client.active = True
            self._dirty[name] = client

    def deactivate(self, name: str) -> None:
        client = self._clients[name]
        if client.active:
            client.active = False
            self._dirty.pop(name, None)
            self._unplace(client)

    def set_weight(self, name: str, weight: float) -> None:
        client = self._clients[name]
        client.weight = weight
        if client.active:
            self._dirty[name] = client

    # -- accounting --------------------------------------------------------

    def set_total(self, total: Mapping[str, float]) -> None:
        """The cluster's total scalars; every share depends on it."""
        self._total = dict(total)
        self._stale = True

    def allocated(self, name: str, scalars: Mapping[str, float]) -> None:
        client = self._clients[name]
        allocated = client.allocated
        for resource, amount in scalars.items():
            allocated[resource] = allocated.get(resource, 0.0) + amount
        client.count += 1
        if client.active:  # an inactive one is re-positioned when it is activated
            # _mark, inline: this runs twice for every offer
            order = self._order
            if len(order) == 1 and order[0] is client.key and not self._dirty and not self._stale:
                self._lone_changed = True
            else:
                self._dirty[name] = client

    def unallocated(self, name: str, scalars: Mapping[str, float]) -> None:
        client = self._clients.get(name)
        if client is None:
            return
        for resource, amount in scalars.items():
            left = client.allocated.get(resource, 0.0) - amount
            if left > 1e-9:
                client.allocated[resource] = left
            else:
                client.allocated.pop(resource, None)
        if client.active:
            self._mark(client)

    def share(self, name: str) -> float:
        return self._share(self._clients[name])

    def allocation(self, name: str) -> dict[str, float]:
        return dict(self._clients[name].allocated)

    # -- order -------------------------------------------------------------

    def sorted(self) -> Iterator[str]:
        """Active clients, lowest share first (a snapshot: changes while iterating do not affect it)."""
        return iter([key[2] for key in self.ordered()])

    def first(self, skip: int = 0) -> str | None:
        order = self.ordered()
        return order[skip][2] if skip < len(order) else None

    def ordered(self) -> Sequence[Key]:
        """The ``(share, count, name)`` keys of the active clients, lowest first: the sorter's own list,
        unchanged until the next read after a change (so a caller may walk it while charging clients),
        and never to be modified."""
        if self._stale:
            self._rebuild()
        elif self._dirty:
            self._settle()
        return self._order

    def _share(self, client: _Client) -> float:
        share = 0.0
        total = self._total
        for resource, amount in client.allocated.items():
            whole = total.get(resource)
            if whole:
                fraction = amount / whole
                if fraction > share:
                    share = fraction
        return share / client.weight if client.weight > 0 else share

    def _unplace(self, client: _Client) -> None:
        key = client.key
        if key is not None:
            client.key = None
            if not self._stale:
                order = self._order
                del order[bisect_left(order, key)]

    def _mark(self, client: _Client) -> None:
        order = self._order
        if len(order) == 1 and order[0] is client.key and not self._dirty and not self._stale:
            self._lone_changed = True
        else:
            self._dirty[client.name] = client

    def _settle(self) -> None:
        """Re-position the clients changed since the last read."""
        order = self._order
        dirty = self._dirty
        if self._lone_changed:
            self._lone_changed = False
            lone = self._clients.get(order[0][2]) if order else None
            if lone is not None and lone.key is order[0]:
                dirty[lone.name] = lone
        total = self._total
        for client in dirty.values():
            key = client.key
            if key is not None:
                del order[bisect_left(order, key)]
            # _share, inline: this runs for every client charged in an allocation cycle
            share = 0.0
            for resource, amount in client.allocated.items():
                whole = total.get(resource)
                if whole:
                    fraction = amount / whole
                    if fraction > share:
                        share = fraction
            weight = client.weight
            if weight > 0 and weight != 1.0:
                share = share / weight
            client.key = key = (share, client.count, client.name)
            insort(order, key)
        dirty.clear()

    def _rebuild(self) -> None:
        self._stale = False
        self._lone_changed = False
        self._dirty.clear()
        keys = []
        for client in self._clients.values():
            if client.active:
                client.key = (self._share(client), client.count, client.name)
                keys.append(client.key)
            else:
                client.key = None
        keys.sort()
        self._order = keys
