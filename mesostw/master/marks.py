"""The agents and frameworks whose part of ``/master/state-summary`` changed since it was last made.

A summary of ten thousand agents is made again, after a change, from the texts of the agents and
frameworks that changed and the kept texts of the others (:mod:`~mesostw.master.summary_texts`). What
an agent's or a framework's text shows changes only through a few owners, and each marks the agent
(or framework) it changes here: the task tracker (tasks, their states and what they hold, completed
tasks joining and leaving the bounded histories, executors), the offer book, the agents' operator
states (deactivated, draining) and the agent and framework records (every field set, see
:mod:`~mesostw.master.records`). Agents and frameworks joining or leaving are not marks: the reader
sees them in the master's lists.

A mark is only ever extra work: one set where nothing shown changed costs a text made again, one
missing is a stale answer.
"""

from __future__ import annotations

from typing import Any
from weakref import finalize


class Marked:
    """What one reader was marked: the IDs of the agents and frameworks changed since it last took them."""

    def __init__(self) -> None:
        self.agents: set[str] = set()
        self.frameworks: set[str] = set()

    def take(self) -> tuple[set[str], set[str]]:
        """The agents and the frameworks marked so far; none is marked any more."""
        agents, frameworks = self.agents, self.frameworks
        self.agents, self.frameworks = set(), set()
        return agents, frameworks


class Marks:
    """Where the owners mark what they change, for each reader that follows the marks."""

    def __init__(self) -> None:
        self._readers: list[Marked] = []

    def follow(self, owner: Any) -> Marked:
        """A new reader of the marks made from now on, following them while ``owner`` lives."""
        reader = Marked()
        self._readers.append(reader)
        finalize(owner, self._readers.remove, reader)
        return reader

    def agent(self, agent_id: str) -> None:
        """What shows ``agent_id`` changed."""
        for reader in self._readers:
            reader.agents.add(agent_id)

    def framework(self, framework_id: str) -> None:
        """What shows ``framework_id`` changed."""
        for reader in self._readers:
            reader.frameworks.add(framework_id)
