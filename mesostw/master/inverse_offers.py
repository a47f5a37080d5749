"""Inverse offers: the master asks frameworks for an agent's resources back before its machine goes down.

Mesos sends one to every framework with resources (offered or in use) on an agent of a machine that
is scheduled for maintenance (DRAINING), at most one outstanding per framework and agent; the
framework accepts (it will free them in time) or declines (it cannot), and either way may ask, with
``filters.refuse_seconds``, not to be asked again for a while. Answers change nothing but the
maintenance status operators read. An answered or expired inverse offer is asked again on a later
allocation, as Mesos's allocator does.
"""

from __future__ import annotations

from collections.abc import Iterator

from mesostw.model.info import Filters
from mesostw.model.maintenance import InverseOffer, Unavailability


class InverseOfferBook:
    """Outstanding inverse offers, the refusal filters on them and the frameworks' last answers."""

    def __init__(self, master_id: str):
        self._prefix = f"{master_id}-IO"
        self._next = 0
        self._offers: dict[str, InverseOffer] = {}
        #: (framework ID, agent ID) -> the outstanding inverse offer's ID
        self._by_pair: dict[tuple[str, str], str] = {}
        #: (framework ID, agent ID) -> when its refusal filter expires
        self._filters: dict[tuple[str, str], float] = {}

    def __len__(self) -> int:
        return len(self._offers)

    def __iter__(self) -> Iterator[InverseOffer]:
        return iter(list(self._offers.values()))

    def get(self, inverse_offer_id: str) -> InverseOffer | None:
        return self._offers.get(inverse_offer_id)

    def of_framework(self, framework_id: str) -> list[InverseOffer]:
        return [o for o in self._offers.values() if o.framework_id == framework_id]

    def on_agent(self, agent_id: str) -> list[InverseOffer]:
        return [o for o in self._offers.values() if o.agent_id == agent_id]

    def wanted(self, framework_id: str, agent_id: str, now: float) -> bool:
        """Whether to send this framework an inverse offer for this agent: none is outstanding and no
        refusal filter holds."""
        pair = (framework_id, agent_id)
        if pair in self._by_pair:
            return False
        until = self._filters.get(pair)
        if until is not None:
            if until > now:
                return False
            del self._filters[pair]
        return True

    def make(self, framework_id: str, agent_id: str, unavailability: Unavailability, hostname: str = "",
             port: int = 5051) -> InverseOffer:
        """A new outstanding inverse offer."""
        offer = InverseOffer(f"{self._prefix}{self._next}", framework_id, agent_id, unavailability, hostname, port)
        self._next += 1
        self._offers[offer.id] = offer
        self._by_pair[(framework_id, agent_id)] = offer.id
        return offer

    def answer(self, inverse_offer_id: str, framework_id: str, filters: Filters, now: float) -> InverseOffer | None:
        """The framework answered: the offer is no longer outstanding, and its filter starts. None when the
        ID names no outstanding inverse offer of this framework."""
        offer = self._offers.get(inverse_offer_id)
        if offer is None or offer.framework_id != framework_id:
            return None
        self.remove(offer)
        if filters.refuse_seconds > 0:
            self._filters[(offer.framework_id, offer.agent_id)] = now + filters.refuse_seconds
        return offer

    def remove(self, offer: InverseOffer) -> None:
        """Forget an outstanding inverse offer (answered or rescinded)."""
        if self._offers.pop(offer.id, None) is not None:
            self._by_pair.pop((offer.framework_id, offer.agent_id), None)

    def forget_agent(self, agent_id: str) -> list[InverseOffer]:
        """Drop an agent's inverse offers and filters; returns the inverse offers dropped."""
        dropped = self.on_agent(agent_id)
        for offer in dropped:
            self.remove(offer)
        self._filters = {pair: until for pair, until in self._filters.items() if pair[1] != agent_id}
        return dropped

    def forget_framework(self, framework_id: str) -> list[InverseOffer]:
        """Drop a framework's inverse offers (it went away; a new subscription is asked afresh)."""
        dropped = self.of_framework(framework_id)
        for offer in dropped:
            self.remove(offer)
        return dropped
