"""Arrays of agents of earlier state answers, served again while nothing they show changed.

The agents of ``GET_AGENTS`` cost ~10 us per agent to make (those of ``/master/state-summary`` are
made again only where something changed instead: :mod:`~mesostw.master.summary_texts`). What these
arrays show changes only through a few owners, each of which counts its changes: the task tracker
(tasks, their states and what they hold, completed tasks, executors), the offer book, the agents'
operator states (deactivated, draining) and the agent and framework records (every field set is
counted). :func:`summary_key` is those counts with the agents and frameworks themselves (which records,
in which order); while it is the same, an array made before is the array of a new answer, kept as the
bytes that were written.

An array is kept only if the key was the same when its last text was made as when its first was: a
streamed answer is made over several turns, and what changed in between may show in part of it. An
answer whose client went away before the end keeps nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from weakref import ref

from mesostw.master import records

if TYPE_CHECKING:
    from mesostw.master.master import Master


#: Texts encoded together into one piece of a kept array.
_BATCH = 256


def summary_key(master: Master) -> tuple[Any, ...]:
    """What the agents and frameworks of the state answers are made from, as counts of its changes and the
    records themselves (weak references, equal while both are alive and the same record: a kept array
    does not keep records, nor through their links the master, alive)."""
    return (master.tasks.changes, master.offers.changes, master.agent_states.changes, records.changes(),
            list(map(ref, master.agents.values())), list(map(ref, master.frameworks.values())))


class KeptArrays:
    """Named arrays (JSON text, encoded) of one master's answers, each with the key it was made under."""

    def __init__(self) -> None:
        self._arrays: dict[str, tuple[tuple[Any, ...], tuple[bytes, ...]]] = {}

    def get(self, name: str, key: tuple[Any, ...]) -> tuple[bytes, ...] | None:
        """The text of the array kept as ``name`` (in pieces) if it was made under ``key``, else None."""
        kept = self._arrays.get(name)
        return kept[1] if kept is not None and kept[0] == key else None

    def recorded(self, master: Master, name: str, key: tuple[Any, ...], texts: Iterable[str]) -> Iterator[str]:
        """``texts`` (the items of an array made under ``key``), each kept as it goes by; once the last is
        made, and if ``master``'s key is still ``key``, the array is kept as ``name``."""
        self._arrays.pop(name, None)  # what was kept is out of date: no need to hold it meanwhile
        # encoded a batch at a time: what is kept is all that is held (not the texts, their join and its bytes)
        made: list[bytes] = []
        batch: list[str] = []
        separator = "["
        for text in texts:
            batch.append(text)
            yield text
            if len(batch) >= _BATCH:
                made.append((separator + ",".join(batch)).encode())
                batch, separator = [], ","
        made.append((separator + ",".join(batch) + "]").encode() if batch or not made else b"]")
        if summary_key(master) == key:
            self._arrays[name] = (key, tuple(made))
