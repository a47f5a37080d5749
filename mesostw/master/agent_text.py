"""An agent as the v0 endpoints show it (``/master/state``, ``/master/slaves``, ``/master/state-summary``).

The model has three parts that change at different rates: what the agent registered with (its
resources, attributes, times, version: new only when it re-registers), what its tasks and offers
hold (on every task's start and end, every offer), and whether it is active. :func:`agent_json`
writes the JSON text of the model (the same text as encoding :func:`agent_model`) from the first
part cached per agent and the others as they are now, so that listing ten thousand agents costs
little more than joining their texts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

import attrs

from mesostw import __version__
from mesostw.master.records import AgentRecord
from mesostw.master.summary_cache import KeptArrays
from mesostw.model import jsontext
from mesostw.model.attributes import attributes_model
from mesostw.model.resources import Resources
from mesostw.model.v0 import resources_json, resources_model

if TYPE_CHECKING:
    from mesostw.master.master import Master

CAPABILITIES = ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"]


def _registered(agent: AgentRecord) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """What the agent registered with, in the model's order: the fields before ``used_resources``,
    those between ``offered_resources`` and ``active``, and those after it."""
    info = agent.info
    total = agent.total
    reserved = {role: resources_model(resources) for role, resources in sorted(total.reservations().items())}
    head = {"id": agent.id, "pid": agent.pid, "hostname": info.hostname, "port": info.port,
            "registered_time": agent.registered_time, "resources": resources_model(total)}
    middle = {"reserved_resources": reserved, "unreserved_resources": resources_model(total.unreserved()),
              "attributes": attributes_model(info.attributes)}
    tail: dict[str, Any] = {"version": agent.version or __version__, "capabilities": CAPABILITIES}
    if agent.reregistered_time is not None:
        tail["reregistered_time"] = agent.reregistered_time
    return head, middle, tail


def _standing(master: Master, agent: AgentRecord) -> tuple[bool, bool, str]:
    """What an operator made of the agent: whether it is offered (active and not deactivated), whether
    it is deactivated, and the text of its ``drain_info`` field (with its leading comma; empty when the
    agent is not draining)."""
    states = master.agent_states
    deactivated = agent.id in states.deactivated
    drain = states.draining.get(agent.id)
    drain_text = "" if drain is None else ',"drain_info":' + jsontext.encode(drain.to_json())
    return agent.active and not deactivated, deactivated, drain_text


def agent_model(master: Master, agent: AgentRecord) -> dict[str, Any]:
    """An agent as ``/master/state`` shows it."""
    head, middle, tail = _registered(agent)
    out = {**head, "used_resources": resources_model(master.tasks.used_on_agent(agent.id)),
           "offered_resources": resources_model(master.offers.offered_on(agent.id)), **middle,
           "active": agent.active and agent.id not in master.agent_states.deactivated,
           "deactivated": agent.id in master.agent_states.deactivated, **tail}
    drain = master.agent_states.draining.get(agent.id)
    if drain is not None:
        out["drain_info"] = drain.to_json()
    return out


def _fields(fields: dict[str, Any]) -> str:
    """``"key":value`` pairs of ``fields``, comma separated (the inside of an object's text)."""
    return ",".join(f"{jsontext.string(key)}:{jsontext.encode(value)}" for key, value in fields.items())


@attrs.define
class _Text:
    """One agent's cached text: valid while its record shows the same registration."""

    #: the AgentInfo, the total resources (with reservations and volumes), the times and version it was made from
    info: Any
    total: Any
    key: tuple[Any, ...]
    #: ``{...,"resources":{...},"used_resources":``
    head: str
    #: ``,"reserved_resources":...,"active":``
    middle: str
    #: ``,"version":...`` (without the closing brace)
    tail: str
    used: Resources | None = None
    used_text: str = ""
    offered: Resources | None = None
    offered_text: str = ""


class AgentTexts:
    """The cached parts of each agent's text, for one master."""

    def __init__(self) -> None:
        self._texts: dict[str, _Text] = {}
        #: arrays of the last state answers, while nothing they show changed (see :mod:`summary_cache`)
        self.kept = KeptArrays()

    def prune(self, agent_ids: Any) -> None:
        """Forget agents that are not among ``agent_ids`` any more."""
        for agent_id in self._texts.keys() - set(agent_ids):
            del self._texts[agent_id]

    def open_text(self, master: Master, agent: AgentRecord) -> str:
        """The agent's text without its closing brace (a summary adds fields)."""
        agent_id = agent.id
        active, deactivated, drain_text = _standing(master, agent)
        return self._text(agent, agent_id, master.tasks.used_on_agent(agent_id), master.offers.offered_on(agent_id),
                          active, deactivated, drain_text)

    def _text(self, agent: AgentRecord, agent_id: str, used: Resources, offered: Resources, active: bool,
              deactivated: bool, drain_text: str) -> str:
        key = (agent.registered_time, agent.reregistered_time, agent.version)
        text = self._texts.get(agent_id)
        if text is None or text.info is not agent.info or text.total is not agent.total or text.key != key:
            head, middle, tail = _registered(agent)
            text = self._texts[agent_id] = _Text(
                agent.info, agent.total, key, "{" + _fields(head) + ',"used_resources":',
                "," + _fields(middle) + ',"active":', "," + _fields(tail))
        if used is not text.used:
            text.used, text.used_text = used, resources_json(used)
        if offered is not text.offered:
            text.offered, text.offered_text = offered, resources_json(offered)
        return "".join((text.head, text.used_text, ',"offered_resources":', text.offered_text, text.middle,
                        "true" if active else "false", ',"deactivated":', "true" if deactivated else "false",
                        text.tail, drain_text))


_TEXTS: WeakKeyDictionary[Any, AgentTexts] = WeakKeyDictionary()


def agent_texts(master: Master) -> AgentTexts:
    """The agent texts cached for ``master`` (kept as long as it lives)."""
    texts = _TEXTS.get(master)
    if texts is None:
        texts = _TEXTS[master] = AgentTexts()
    return texts


def agent_json(master: Master, agent: AgentRecord) -> str:
    """The JSON text of :func:`agent_model`."""
    return agent_texts(master).open_text(master, agent) + "}"
