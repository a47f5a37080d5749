"""Dominant Resource Fairness sorter, kept incrementally sorted.

A client's dominant share is the largest fraction of the cluster's total it
holds of any scalar resource, divided by its weight. Clients are ordered by
share, then by how often they were allocated to, then by name (as Mesos's
``DRFSorter``). Each change re-positions one client in O(log n); a change of
the cluster total marks every share stale, and the order is rebuilt lazily on
the next read.
"""

from __future__ import annotations

from typing import Iterator, Mapping

from sortedcontainers import SortedList


class _Client:
    __slots__ = ("name", "allocated", "weight", "count", "active", "key")

    def __init__(self, name: str, weight: float):
        self.name = name
        self.allocated: dict[str, float] = {}
        self.weight = weight
        self.count = 0
        self.active = False
        self.key: tuple[float, int, str] | None = None


class DRFSorter:
    """Orders clients (roles, or frameworks within a role) by weighted dominant share."""

    def __init__(self) -> None:
        self._clients: dict[str, _Client] = {}
        self._order: SortedList = SortedList()
        self._total: dict[str, float] = {}
        self._stale = False

    # -- membership --------------------------------------------------------

    def add(self, name: str, weight: float = 1.0) -> None:
        if name not in self._clients:
            self._clients[name] = _Client(name, weight)
            self.activate(name)

    def remove(self, name: str) -> None:
        client = self._clients.pop(name, None)
        if client is not None and client.key is not None:
            self._order.discard(client.key)

    def __contains__(self, name: str) -> bool:
        return name in self._clients

    def __len__(self) -> int:
        return len(self._clients)

    def activate(self, name: str) -> None:
        client = self._clients[name]
        if not client.active:
            client.active = True
            self._place(client)

    def deactivate(self, name: str) -> None:
        client = self._clients[name]
        if client.active:
            client.active = False
            if client.key is not None:
                self._order.discard(client.key)
                client.key = None

    def set_weight(self, name: str, weight: float) -> None:
        client = self._clients[name]
        client.weight = weight
        self._replace(client)

    # -- accounting --------------------------------------------------------

    def set_total(self, total: Mapping[str, float]) -> None:
        """The cluster's total scalars; every share depends on it."""
        self._total = dict(total)
        self._stale = True

    def allocated(self, name: str, scalars: Mapping[str, float]) -> None:
        client = self._clients[name]
        for resource, amount in scalars.items():
            client.allocated[resource] = client.allocated.get(resource, 0.0) + amount
        client.count += 1
        self._replace(client)

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
        self._replace(client)

    def share(self, name: str) -> float:
        return self._share(self._clients[name])

    def allocation(self, name: str) -> dict[str, float]:
        return dict(self._clients[name].allocated)

    # -- order -------------------------------------------------------------

    def sorted(self) -> Iterator[str]:
        """Active clients, lowest share first."""
        if self._stale:
            self._rebuild()
        for key in self._order:
            yield key[2]

    def first(self, skip: int = 0) -> str | None:
        if self._stale:
            self._rebuild()
        return self._order[skip][2] if skip < len(self._order) else None

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

    def _place(self, client: _Client) -> None:
        if self._stale:
            return  # the rebuild will place it
        client.key = (self._share(client), client.count, client.name)
        self._order.add(client.key)

    def _replace(self, client: _Client) -> None:
        if not client.active:
            return
        if client.key is not None and not self._stale:
            self._order.discard(client.key)
        self._place(client)

    def _rebuild(self) -> None:
        self._stale = False
        keys = []
        for client in self._clients.values():
            if client.active:
                client.key = (self._share(client), client.count, client.name)
                keys.append(client.key)
            else:
                client.key = None
        self._order = SortedList(keys)
