"""Outstanding offers: IDs, indexes by framework and agent, what they hold, and the offer timeout."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mesostw.interfaces import IAllocator
from mesostw.master.marks import Marks
from mesostw.master.tally import ResourceTally
from mesostw.model.resources import EMPTY, Resources
from mesostw.model.task import Offer


class OfferBook:
    """The offers frameworks have not answered yet; the only code that adds or removes one.

    An offer leaves the book in one of two ways: :meth:`take` hands its resources to the caller (the
    framework is answering it, or the agent is going away), :meth:`rescind` gives them back to the
    allocator. Telling the framework (a RESCIND event) is the caller's business.
    ``on_expired(offer)`` is called when ``--offer_timeout`` passes on an offer (``timeout`` of None
    means offers never time out, as in Mesos).
    """

    def __init__(self, clock: Any, master_id: str, timeout: float | None, allocator: IAllocator,
                 on_expired: Callable[[Offer], None], marks: Marks | None = None):
        self._clock = clock
        self._prefix = f"{master_id}-O"
        self._next = 0
        self._timeout = timeout
        self._allocator = allocator
        self._on_expired = on_expired
        self._offers: dict[str, Offer] = {}
        self._timers: dict[str, Any] = {}
        self._by_agent: dict[str, set[str]] = {}
        self._by_framework: dict[str, set[str]] = {}
        self._offered: dict[str, Resources] = {}
        #: framework ID -> what its offers hold; and what all offers hold
        self._offered_to: dict[str, ResourceTally] = {}
        self._all = ResourceTally()
        #: how many times an offer came or went (what shows offers is still valid while this stays the same)
        self.changes = 0
        #: where the agent and the framework of an offer coming or going are marked
        self.marks = marks if marks is not None else Marks()

    def new_id(self) -> str:
        offer_id = f"{self._prefix}{self._next}"
        self._next += 1
        return offer_id

    def add(self, offer: Offer) -> None:
        self.changes += 1
        self.marks.agent(offer.agent_id)
        self.marks.framework(offer.framework_id)
        self._offers[offer.id] = offer
        self._by_agent.setdefault(offer.agent_id, set()).add(offer.id)
        self._by_framework.setdefault(offer.framework_id, set()).add(offer.id)
        self._offered[offer.agent_id] = self._offered.get(offer.agent_id, EMPTY) + offer.resources
        tally = self._offered_to.get(offer.framework_id)
        if tally is None:
            tally = self._offered_to[offer.framework_id] = ResourceTally()
        tally.add(offer.resources)
        self._all.add(offer.resources)
        if self._timeout is not None:
            self._timers[offer.id] = self._clock.callLater(self._timeout, self._expire, offer.id)

    # -- queries -------------------------------------------------------------------------

    def get(self, offer_id: str) -> Offer | None:
        return self._offers.get(offer_id)

    def of(self, offer_ids: Iterable[str]) -> list[Offer]:
        return [self._offers[i] for i in offer_ids if i in self._offers]

    def on_agent(self, agent_id: str) -> list[Offer]:
        return [self._offers[i] for i in self._by_agent.get(agent_id, ())]

    def of_framework(self, framework_id: str) -> list[Offer]:
        return [self._offers[i] for i in self._by_framework.get(framework_id, ())]

    def offered_on(self, agent_id: str) -> Resources:
        """What the outstanding offers of an agent hold."""
        return self._offered.get(agent_id, EMPTY)

    def offered_to(self, framework_id: str) -> Resources:
        """What a framework's outstanding offers hold."""
        tally = self._offered_to.get(framework_id)
        return tally.total() if tally is not None else EMPTY

    def offered_in_all(self) -> Resources:
        """What every outstanding offer holds."""
        return self._all.total()

    def __len__(self) -> int:
        return len(self._offers)

    def __iter__(self) -> Iterator[Offer]:
        return iter(list(self._offers.values()))

    # -- offers leaving ---------------------------------------------------------------------

    def take(self, offer_id: str) -> Offer | None:
        """Remove an offer being answered; the caller owns its resources now."""
        offer = self._offers.pop(offer_id, None)
        if offer is None:
            return None
        self.changes += 1
        self.marks.agent(offer.agent_id)
        self.marks.framework(offer.framework_id)
        timer = self._timers.pop(offer_id, None)
        if timer is not None and timer.active():
            timer.cancel()
        if not _discard(self._by_framework, offer.framework_id, offer_id):
            self._offered_to.pop(offer.framework_id, None)
        else:
            self._offered_to[offer.framework_id].remove(offer.resources)
        self._all.remove(offer.resources)
        if _discard(self._by_agent, offer.agent_id, offer_id):
            self._offered[offer.agent_id] = self._offered[offer.agent_id] - offer.resources
        else:
            self._offered.pop(offer.agent_id, None)  # no offers left: nothing offered (no rounding left over)
        return offer

    def rescind(self, offer_id: str) -> Offer | None:
        """Withdraw an offer and give its resources back to the allocator."""
        offer = self.take(offer_id)
        if offer is not None:
            self._allocator.recoverResources(offer.framework_id, offer.agent_id, offer.resources)
        return offer

    def rescind_agent(self, agent_id: str) -> list[Offer]:
        """Withdraw every offer of an agent (it disconnected), giving the resources back."""
        return [o for o in map(self.rescind, [*self._by_agent.get(agent_id, ())]) if o is not None]

    def rescind_framework(self, framework_id: str) -> list[Offer]:
        """Withdraw every offer to a framework, giving the resources back."""
        return [o for o in map(self.rescind, [*self._by_framework.get(framework_id, ())]) if o is not None]

    def forget_agent(self, agent_id: str) -> list[Offer]:
        """Drop every offer of an agent that is leaving the allocator altogether."""
        return [o for o in map(self.take, [*self._by_agent.get(agent_id, ())]) if o is not None]

    def _expire(self, offer_id: str) -> None:
        self._timers.pop(offer_id, None)
        offer = self._offers.get(offer_id)
        if offer is not None:
            self._on_expired(offer)

    def problems(self) -> list[str]:
        """Where the sums of what offers hold differ from a recount (nothing when sound)."""
        found = []
        on: dict[str, Resources] = {}
        to: dict[str, Resources] = {}
        total = EMPTY
        for offer in self._offers.values():
            on[offer.agent_id] = on.get(offer.agent_id, EMPTY) + offer.resources
            to[offer.framework_id] = to.get(offer.framework_id, EMPTY) + offer.resources
            total = total + offer.resources
        for agent_id in on.keys() | self._offered.keys():
            if on.get(agent_id, EMPTY) != self.offered_on(agent_id):
                found.append(f"offers on agent {agent_id} are counted as {self.offered_on(agent_id)}, "
                             f"not {on.get(agent_id, EMPTY)}")
        for framework_id in to.keys() | self._offered_to.keys():
            if to.get(framework_id, EMPTY) != self.offered_to(framework_id):
                found.append(f"offers to framework {framework_id} are counted as {self.offered_to(framework_id)}, "
                             f"not {to.get(framework_id, EMPTY)}")
        if total != self.offered_in_all():
            found.append(f"all offers are counted as {self.offered_in_all()}, not {total}")
        return found

    def stop(self) -> None:
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()


def _discard(index: dict[str, set[str]], key: str, offer_id: str) -> bool:
    """Remove ``offer_id`` from ``index[key]``; True while other IDs remain there."""
    ids = index.get(key)
    if ids is None:
        return False
    ids.discard(offer_id)
    if ids:
        return True
    del index[key]
    return False
