"""Agent health checks: the master pings every agent and gives up after enough misses."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from mesostw.interfaces import IAgentLink


class _Watch:
    """One agent's watch; it waits in the queue of rounds itself (no tuple per agent)."""

    __slots__ = ("link", "misses", "outstanding", "agent_id", "due")

    def __init__(self, agent_id: str, link: IAgentLink):
        self.agent_id = agent_id
        self.link: IAgentLink | None = link
        self.misses = 0
        self.outstanding = False
        #: when its next round comes
        self.due = 0.0


class AgentHealth:
    """Pings each watched agent every ``timeout`` seconds (Mesos's ``SlaveObserver``).

    A ping not answered by the next round counts as a miss; ``max_misses`` in a
    row call ``on_unreachable(agent_id)``. Any answer resets the count.

    The rounds of all agents wait in one queue under one timer, not one timer each (a master watches
    ten thousand agents): every round comes ``timeout`` after the agent's previous one or its watch,
    so they join the queue in the order they are due.
    """

    def __init__(self, clock: Any, timeout: float, max_misses: int, on_unreachable: Callable[[str], object]):
        self._clock = clock
        self._timeout = timeout
        self._max_misses = max_misses
        self._on_unreachable = on_unreachable
        self._watches: dict[str, _Watch] = {}
        #: the watches whose rounds are to come, the soonest first; those of watches that ended are skipped when due
        self._rounds: deque[_Watch] = deque()
        self._timer: Any = None
        self._running = False

    def watch(self, agent_id: str, link: IAgentLink) -> None:
        self.unwatch(agent_id)
        watch = self._watches[agent_id] = _Watch(agent_id, link)
        self._schedule(agent_id, watch)
        self._ping(agent_id, watch)

    def unwatch(self, agent_id: str) -> None:
        watch = self._watches.pop(agent_id, None)
        if watch is not None:
            watch.link = None  # its round, still queued, keeps nothing of the agent
            if not self._watches:
                self._drop_rounds()

    def misses(self, agent_id: str) -> int:
        return self._watches[agent_id].misses

    def _schedule(self, agent_id: str, watch: _Watch) -> None:
        watch.due = self._clock.seconds() + self._timeout
        self._rounds.append(watch)
        if self._timer is None and not self._running:
            self._timer = self._clock.callLater(self._timeout, self._due)

    def _due(self) -> None:
        self._timer = None
        self._running = True
        try:
            rounds = self._rounds
            while rounds and rounds[0].due <= self._clock.seconds():
                watch = rounds.popleft()
                self._round(watch.agent_id, watch)
        finally:
            self._running = False
        if self._rounds and self._timer is None:
            self._timer = self._clock.callLater(max(0.0, self._rounds[0].due - self._clock.seconds()), self._due)

    def _ping(self, agent_id: str, watch: _Watch) -> None:
        assert watch.link is not None
        watch.outstanding = True
        d = watch.link.ping()
        d.addCallbacks(lambda _: self._pong(watch), lambda _: None)

    def _pong(self, watch: _Watch) -> None:
        watch.outstanding = False
        watch.misses = 0

    def _round(self, agent_id: str, watch: _Watch) -> None:
        if self._watches.get(agent_id) is not watch:
            return
        if watch.outstanding:
            watch.misses += 1
            if watch.misses >= self._max_misses:
                self.unwatch(agent_id)
                self._on_unreachable(agent_id)
                return
        self._schedule(agent_id, watch)
        self._ping(agent_id, watch)

    def _drop_rounds(self) -> None:
        self._rounds.clear()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def stop(self) -> None:
        for agent_id in list(self._watches):
            self.unwatch(agent_id)
        self._drop_rounds()
