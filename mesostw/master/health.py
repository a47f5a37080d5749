"""Agent health checks: the master pings every agent and gives up after enough misses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mesostw.interfaces import IAgentLink


class _Watch:
    __slots__ = ("link", "misses", "outstanding", "timer")

    def __init__(self, link: IAgentLink):
        self.link = link
        self.misses = 0
        self.outstanding = False
        self.timer: Any = None


class AgentHealth:
    """Pings each watched agent every ``timeout`` seconds (Mesos's ``SlaveObserver``).

    A ping not answered by the next round counts as a miss; ``max_misses`` in a
    row call ``on_unreachable(agent_id)``. Any answer resets the count.
    """

    def __init__(self, clock: Any, timeout: float, max_misses: int, on_unreachable: Callable[[str], object]):
        self._clock = clock
        self._timeout = timeout
        self._max_misses = max_misses
        self._on_unreachable = on_unreachable
        self._watches: dict[str, _Watch] = {}

    def watch(self, agent_id: str, link: IAgentLink) -> None:
        self.unwatch(agent_id)
        watch = self._watches[agent_id] = _Watch(link)
        watch.timer = self._clock.callLater(self._timeout, self._round, agent_id, watch)
        self._ping(agent_id, watch)

    def unwatch(self, agent_id: str) -> None:
        watch = self._watches.pop(agent_id, None)
        if watch is not None and watch.timer is not None and watch.timer.active():
            watch.timer.cancel()

    def misses(self, agent_id: str) -> int:
        return self._watches[agent_id].misses

    def _ping(self, agent_id: str, watch: _Watch) -> None:
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
        watch.timer = self._clock.callLater(self._timeout, self._round, agent_id, watch)
        self._ping(agent_id, watch)

    def stop(self) -> None:
        for agent_id in list(self._watches):
            self.unwatch(agent_id)
