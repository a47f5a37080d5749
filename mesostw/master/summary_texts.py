"""The agents and frameworks of ``/master/state-summary``, made again only where something changed.

The agents' array (~10 MB of text at ten thousand agents) is kept as the texts of its agents and, a
few hundred agents to a piece, as the encoded pieces a summary writes. The owners of what an agent's
or a framework's text shows mark it when they change it (:mod:`~mesostw.master.marks`); a summary
takes the marks, makes the texts of the marked agents and frameworks again, re-encodes the pieces
they are in, and writes the kept pieces: after one task ended it costs two texts and a piece, not ten
thousand agents checked. Agents joining or leaving (the master's list of records is not the one
kept, compared by weak references: what is kept keeps no record alive) lay the pieces out again from
the kept texts.

When many texts are to be made (the first summary, or after changes all over the cluster) they are
made as they are written, over several turns of the reactor (see :mod:`mesostw.http.stream`); the
pieces are then kept only if the summary was written to its end and no marks were taken meanwhile
(another summary made in between may have made texts again that this one holds as they were).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary, ref

from mesostw.master.agent_text import agent_texts
from mesostw.master.records import AgentRecord, FrameworkRecord
from mesostw.model.lazyjson import Raw, Texts

if TYPE_CHECKING:
    from mesostw.master.master import Master

#: Agents' texts encoded together into one kept piece.
BATCH = 256
#: At most this many agents' texts are made at once, in one turn; more are made as they are written.
EAGER = 1024


class SummaryTexts:
    """The kept texts of one master's summaries."""

    def __init__(self, master: Master) -> None:
        self._marked = master.marks.follow(self)
        #: agent ID -> (its record, the text made of it)
        self._agents: dict[str, tuple[Any, str]] = {}
        #: the agent IDs of each kept piece, and the pieces (None: nothing kept)
        self._batches: list[list[str]] = []
        self._pieces: list[bytes] | None = None
        #: agent ID -> which piece it is in and its record (a weak reference); the pieces to encode again
        self._where: dict[str, tuple[int, Any]] = {}
        self._stale: set[int] = set()
        #: whether agents joined or left since the pieces were laid out
        self._moved = False
        #: framework ID -> (its record, the text made of it); the frameworks of the kept array, and the array
        self._frameworks: dict[str, tuple[Any, str]] = {}
        self._framework_array: tuple[list[Any], bytes] | None = None
        #: framework ID -> the text of the IDs of the agents where it has tasks, kept by whoever makes its text
        self.agent_lists: dict[str, tuple[int, str]] = {}
        #: how many times marks were taken
        self._taken = 0
        #: whether the last arrays made were the kept ones as they were (nothing made again)
        self.reused = False

    def arrays(self, master: Master, agent_text: Callable[[AgentRecord], str],
               framework_text: Callable[[FrameworkRecord], str]) -> tuple[Raw | Texts, Raw]:
        """The summary's agents and frameworks: the texts ``agent_text`` and ``framework_text`` make, made
        again for the agents and frameworks marked since the last time."""
        agents_marked, frameworks_marked = self._marked.take()
        if agents_marked or frameworks_marked:
            self._taken += 1
        records = master.agents
        for agent_id in agents_marked:
            self._agents.pop(agent_id, None)
            where = self._where.get(agent_id)
            record = records.get(agent_id)
            if where is None:
                self._moved = self._moved or record is not None  # one joined
            elif record is None or where[1]() is not record:
                self._moved = True  # one left, or came back (in another place)
            else:
                self._stale.add(where[0])
        for framework_id in frameworks_marked:
            self._frameworks.pop(framework_id, None)
        self.reused = True
        return self._agent_array(master, agent_text), self._framework_array_of(master, framework_text)

    def _text(self, agent: AgentRecord, make: Callable[[AgentRecord], str]) -> str:
        cached = self._agents.get(agent.id)
        if cached is not None and cached[0]() is agent:
            return cached[1]
        self.reused = False
        text = make(agent)
        self._agents[agent.id] = (ref(agent), text)
        return text

    def _agent_array(self, master: Master, make: Callable[[AgentRecord], str]) -> Raw | Texts:
        pieces = self._pieces
        if pieces is not None and not self._moved:
            if self._stale:
                self.reused = False
                batches = self._batches
                by_id = master.agents
                for index in self._stale:
                    texts = [self._text(by_id[agent_id], make) for agent_id in batches[index]]
                    pieces[index] = _piece(texts, index == 0, index == len(batches) - 1)
                self._stale.clear()
            return Raw(tuple(pieces))
        self.reused = False
        # agents joined or left: the texts kept are laid out again (those of agents gone are dropped)
        records = list(master.agents.values())
        present = {agent.id for agent in records}
        for agent_id in self._agents.keys() - present:
            del self._agents[agent_id]
        agent_texts(master).prune(present)
        missing = sum(1 for agent in records if agent.id not in self._agents)
        if missing <= EAGER:
            self._lay_out(records, [self._text(agent, make) for agent in records])
            assert self._pieces is not None
            return Raw(tuple(self._pieces))
        self._batches, self._pieces, self._where, self._stale = [], None, {}, set()  # not held meanwhile
        return Texts(self._streamed(records, make))

    def _streamed(self, records: list[AgentRecord], make: Callable[[AgentRecord], str]) -> Iterator[str]:
        taken = self._taken
        texts = []
        for agent in records:
            text = self._text(agent, make)
            texts.append(text)
            yield text
        if self._taken == taken:
            self._lay_out(records, texts)

    def _lay_out(self, records: list[AgentRecord], texts: list[str]) -> None:
        count = len(records)
        self._batches = [[agent.id for agent in records[start:start + BATCH]] for start in range(0, count, BATCH)]
        self._pieces = [_piece(texts[start:start + BATCH], start == 0, start + BATCH >= count)
                        for start in range(0, count, BATCH)] or [b"[]"]
        self._where = {agent.id: (index // BATCH, ref(agent)) for index, agent in enumerate(records)}
        self._stale = set()
        self._moved = False

    def _framework_array_of(self, master: Master, make: Callable[[FrameworkRecord], str]) -> Raw:
        records = list(master.frameworks.values())
        order = list(map(ref, records))
        texts = []
        for framework in records:
            cached = self._frameworks.get(framework.id)
            if cached is not None and cached[0]() is framework:
                texts.append(cached[1])
                continue
            text = make(framework)
            self._frameworks[framework.id] = (ref(framework), text)
            texts.append(text)
            self._framework_array = None
        if self._framework_array is None or self._framework_array[0] != order:
            self.reused = False
            for framework_id in self._frameworks.keys() - {framework.id for framework in records}:
                del self._frameworks[framework_id]
                self.agent_lists.pop(framework_id, None)
            self._framework_array = (order, ("[" + ",".join(texts) + "]").encode())
        return Raw(self._framework_array[1])


def _piece(texts: list[str], first: bool, last: bool) -> bytes:
    """The kept piece of ``texts``: with the array's opening bracket if it is the first, its closing one if the
    last, and the comma before it if not the first."""
    return "".join(("[" if first else ",", ",".join(texts), "]" if last else "")).encode()


_SUMMARIES: WeakKeyDictionary[Any, SummaryTexts] = WeakKeyDictionary()


def summary_texts(master: Master) -> SummaryTexts:
    """The summary texts kept for ``master`` (as long as it lives)."""
    texts = _SUMMARIES.get(master)
    if texts is None:
        texts = _SUMMARIES[master] = SummaryTexts(master)
    return texts
