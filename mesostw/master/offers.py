"""Outstanding offers: IDs, indexes by framework and agent, and the offer timeout."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from mesostw.model.task import Offer


class OfferManager:
    """Keeps the offers a framework has not answered yet.

    ``on_timeout(offer)`` is called when ``--offer_timeout`` passes on an offer
    (``timeout`` of None means offers never time out, as in Mesos).
    """

    def __init__(self, clock: Any, master_id: str, timeout: float | None,
                 on_timeout: Callable[[Offer], None]):
        self._clock = clock
        self._prefix = f"{master_id}-O"
        self._next = 0
        self._timeout = timeout
        self._on_timeout = on_timeout
        self._offers: dict[str, Offer] = {}
        self._timers: dict[str, Any] = {}
        self._by_agent: dict[str, set[str]] = {}

    def new_id(self) -> str:
        offer_id = f"{self._prefix}{self._next}"
        self._next += 1
        return offer_id

    def add(self, offer: Offer) -> None:
        self._offers[offer.id] = offer
        self._by_agent.setdefault(offer.agent_id, set()).add(offer.id)
        if self._timeout is not None:
            self._timers[offer.id] = self._clock.callLater(self._timeout, self._expire, offer.id)

    def get(self, offer_id: str) -> Offer | None:
        return self._offers.get(offer_id)

    def remove(self, offer_id: str) -> Offer | None:
        offer = self._offers.pop(offer_id, None)
        if offer is None:
            return None
        timer = self._timers.pop(offer_id, None)
        if timer is not None and timer.active():
            timer.cancel()
        ids = self._by_agent.get(offer.agent_id)
        if ids is not None:
            ids.discard(offer_id)
            if not ids:
                del self._by_agent[offer.agent_id]
        return offer

    def on_agent(self, agent_id: str) -> list[Offer]:
        return [self._offers[i] for i in self._by_agent.get(agent_id, ())]

    def of(self, offer_ids: Iterable[str]) -> list[Offer]:
        return [self._offers[i] for i in offer_ids if i in self._offers]

    def __len__(self) -> int:
        return len(self._offers)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._offers.values()))

    def _expire(self, offer_id: str) -> None:
        self._timers.pop(offer_id, None)
        offer = self._offers.get(offer_id)
        if offer is not None:
            self._on_timeout(offer)

    def stop(self) -> None:
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()
