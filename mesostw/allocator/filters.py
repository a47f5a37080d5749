"""Refusal filters: resources a framework declined stay away from it for a while."""

from __future__ import annotations

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
        self._by_agent.setdefault(agent_id, []).append((until, resources))

    def filtered(self, agent_id: str, resources: Resources, now: float) -> bool:
        entries = self._by_agent.get(agent_id)
        if not entries:
            return False
        alive = [(until, refused) for until, refused in entries if until > now]
        if len(alive) != len(entries):
            if alive:
                self._by_agent[agent_id] = alive
            else:
                del self._by_agent[agent_id]
        return any(refused.contains(resources) for _, refused in alive)

    def clear(self) -> None:
        self._by_agent.clear()

    def forget_agent(self, agent_id: str) -> None:
        self._by_agent.pop(agent_id, None)

    def __bool__(self) -> bool:
        return bool(self._by_agent)
