"""Refusal filters: resources a framework declined stay away from it for a while."""

from __future__ import annotations

from typing import Iterable

from mesostw.model.resources import Resources


class RefusedResources:
    """The refusals of one framework, per agent, each with an expiry time.

    A refusal hides an offer only if the offer is a subset of what was refused
    (as Mesos's ``RefusedOfferFilter``): when more becomes free on the agent,
    the framework sees it again without waiting.
    """

    __slots__ = ("_by_agent",)

    def __init__(self) -> None:
        self._by_agent: dict[str, list[tuple[float, Resources]]] = {}

    def add(self, agent_id: str, resources: Resources, until: float) -> None:
        # Kept until it expires (an hour for a framework that declines what it cannot use): the refusals of
        # many frameworks on many agents mostly share a few shapes, one bag each.
        self._by_agent.setdefault(agent_id, []).append((until, resources.interned()))

    def filtered(self, agent_id: str, resources: Resources, now: float) -> bool:
        """Whether a refusal on ``agent_id`` alive at ``now`` hides ``resources``."""
        return bool(self.hides(agent_id, resources, now))

    def hides(self, agent_id: str, resources: Resources, now: float) -> bool | None:
        """:meth:`filtered`, telling apart the two ways of not hiding: None when no refusal concerns
        ``agent_id`` any more (expired ones are dropped here), False when some still does."""
        entries = self._by_agent.get(agent_id)
        if not entries:
            return None
        hidden = expired = False
        for until, refused in entries:
            if until <= now:
                expired = True
            elif not hidden and (refused is resources or refused.contains(resources)):
                hidden = True
        if expired:
            alive = [(until, refused) for until, refused in entries if until > now]
            if alive:
                self._by_agent[agent_id] = alive
            else:
                del self._by_agent[agent_id]
                return None
        return hidden

    def holds(self, agent_id: str) -> bool:
        """Whether some refusal (maybe expired, not yet dropped) concerns ``agent_id``."""
        return agent_id in self._by_agent

    def agents(self) -> Iterable[str]:
        """The agents some refusal (maybe expired, not yet dropped) concerns."""
        return list(self._by_agent)

    def clear(self) -> None:
        self._by_agent.clear()

    def forget_agent(self, agent_id: str) -> None:
        self._by_agent.pop(agent_id, None)

    def __bool__(self) -> bool:
        return bool(self._by_agent)
