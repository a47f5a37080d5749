"""Holding Python's garbage collector back while a newly elected master takes its cluster back.

A failover's agents re-register all at once, each with every task it runs: in a second or two the new
leader makes hundreds of thousands of objects that live on (tasks, their statuses and resources). Young
collections promote them, and each quarter the heap grows by makes the next collection a full one, a
pass over every object: at 1,000 agents and 10,000 tasks, full collections took 40% of the time a new
leader spent reading re-registrations. Paused, the collector does none of that; reference counting
still frees what the burst drops, and only reference cycles wait for the pause to end: once every agent
the registry holds is back, or after :data:`LIMIT` seconds at most.
"""

from __future__ import annotations

from typing import Any

#: The longest the collector stays paused (an agent that never comes back must not hold it off for the
#: whole --agent_reregister_timeout).
LIMIT = 15.0


class CollectorPause:
    """Pauses ``collector`` (the :mod:`gc` module, or anything with its ``isenabled``, ``disable`` and
    ``enable``; None: nothing is paused) until :meth:`resume`, or ``limit`` seconds.

    Only a collector this object turned off is turned on again: one that was off already (by an operator,
    or by a streamed answer within a turn) is left as it is."""

    def __init__(self, clock: Any, collector: Any = None, limit: float = LIMIT):
        self.clock = clock
        self.limit = limit
        self.collector = collector
        self._limit_call: Any = None

    @property
    def paused(self) -> bool:
        """Whether this pause holds the collector off now."""
        return self._limit_call is not None

    def pause(self) -> None:
        """Turn the collector off (until :meth:`resume` or the limit); nothing when it is off already."""
        if self.collector is None or self._limit_call is not None or not self.collector.isenabled():
            return
        self.collector.disable()
        self._limit_call = self.clock.callLater(self.limit, self.resume)

    def resume(self) -> None:
        """Turn the collector on again, if :meth:`pause` turned it off."""
        call, self._limit_call = self._limit_call, None
        if call is None:
            return
        if call.active():
            call.cancel()
        self.collector.enable()
