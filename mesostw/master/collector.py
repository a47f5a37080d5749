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


#: How often the frozen heap is thawed, so that reference cycles among long-lived objects are collected
#: (by the next full collection) at most this late.
THAW_EVERY = 600.0


class HeapFreezer:
    """Keeps full collections to what is new since the last one: the heap a full collection leaves is frozen.

    At 100,000 tasks the master holds about a million objects tracked by the collector; a full collection
    passes over every one (about a second of CPU in a daemon), and bursts of short tasks set one off every
    few seconds: while they lasted, full collections took a quarter to a third of the master's CPU, and
    whatever answer or update was being handled waited for them. What survived a full collection is the
    long-lived heap (agents, tasks, the history): frozen (:func:`gc.freeze`), the next full collections
    pass over what came after it only. Reference counting still frees frozen objects; only reference cycles
    among them wait, until the heap is thawed every ``thaw_every`` seconds and the next full collection
    passes over everything once.

    ``collector`` is the :mod:`gc` module (or anything with its ``callbacks``, ``freeze`` and ``unfreeze``).
    """

    def __init__(self, clock: Any, collector: Any, thaw_every: float = THAW_EVERY):
        self.clock = clock
        self.collector = collector
        self.thaw_every = thaw_every
        self._freeze_call: Any = None
        self._thaw_call: Any = None

    def start(self) -> None:
        """Freeze after every full collection from now on, thawing every ``thaw_every`` seconds."""
        if self._observe not in self.collector.callbacks:
            self.collector.callbacks.append(self._observe)
        self._thaw_call = self.clock.callLater(self.thaw_every, self.thaw)

    def stop(self) -> None:
        """Stop freezing, and thaw what is frozen (cycles among it are then collected as usual)."""
        if self._observe in self.collector.callbacks:
            self.collector.callbacks.remove(self._observe)
        for call in (self._freeze_call, self._thaw_call):
            if call is not None and call.active():
                call.cancel()
        self._freeze_call = self._thaw_call = None
        self.collector.unfreeze()

    def thaw(self) -> None:
        """Give the frozen heap back to the collector: the next full collection passes over all of it."""
        self.collector.unfreeze()
        self._thaw_call = self.clock.callLater(self.thaw_every, self.thaw)

    def _observe(self, phase: str, info: dict[str, Any]) -> None:
        # Called by the collector itself, in the middle of whatever code allocated: the freeze waits for
        # the reactor's next turn.
        if phase == "stop" and info.get("generation") == 2 and self._freeze_call is None:
            self._freeze_call = self.clock.callLater(0, self._freeze)

    def _freeze(self) -> None:
        self._freeze_call = None
        self.collector.freeze()
