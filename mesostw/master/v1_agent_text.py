"""The JSON text of a v1 ``Response.GetAgents.Agent``, written directly (``GET_STATE``, ``GET_AGENTS``).

:func:`agent_v1_json` gives exactly ``json.dumps(agent_v1(master, agent), separators=(",", ":"))``
(:func:`mesostw.master.v1_json.agent_v1`, checked against it by the tests) for a caller who may view
everything. Nothing is kept per agent: the text is made from the agent's record each time, of pieces
that agents share, each made once and kept in a small bounded table: the texts of resources (by
object, see :mod:`mesostw.master.v1_text`) and of attributes (by value), so that an agent costs a few
microseconds whatever its resources.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mesostw import __version__
from mesostw.master.records import AgentRecord
from mesostw.master.v1_text import resources_v1_json
from mesostw.model import jsontext
from mesostw.model.attributes import attributes_to_json

if TYPE_CHECKING:
    from mesostw.master.master import Master

#: What every mesostw agent can do (AgentInfo.Capability).
AGENT_CAPABILITIES = ("MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT")
_CAPABILITIES_TEXT = ',"capabilities":' + jsontext.encode([{"type": c} for c in AGENT_CAPABILITIES])

_string = jsontext.string
_encode = jsontext.encode

#: an agent's attributes (as items) -> the text of their v1 ``attributes`` field (with its leading
#: comma; empty for none); agents of a cluster share a few (racks, zones); bounded
_ATTRIBUTES: dict[tuple[tuple[str, Any], ...], str] = {}
_ATTRIBUTES_MAX = 1024


def _attributes_text(attributes: dict[str, Any]) -> str:
    if not attributes:
        return ""
    key = tuple(attributes.items())
    try:
        text = _ATTRIBUTES.get(key)
    except TypeError:  # a value that cannot be a key: made each time
        return ',"attributes":' + _encode(attributes_to_json(attributes))
    if text is None:
        text = ',"attributes":' + _encode(attributes_to_json(attributes))
        if len(_ATTRIBUTES) >= _ATTRIBUTES_MAX:
            _ATTRIBUTES.clear()
        _ATTRIBUTES[key] = text
    return text


def _time_text(seconds: float) -> str:
    """The text of :func:`mesostw.operator.v1.time_info`."""
    return '{"nanoseconds":' + int.__repr__(int(round(seconds * 1e9))) + "}"


def _joined(key: str, texts: list[str]) -> str:
    """The field ``key`` (with its leading comma) holding one JSON array of the items of several arrays'
    ``texts``; empty when there are none (repeated fields are left out when empty)."""
    if len(texts) == 1:
        joined = texts[0]
    else:
        joined = "[" + ",".join([text[1:-1] for text in texts if text != "[]"]) + "]"
    return "" if joined == "[]" else "," + key + ":" + joined


def agent_info_v1_json(agent: AgentRecord) -> str:
    """The text of :func:`mesostw.master.v1_json.agent_info_v1` of the agent's AgentInfo (for a caller
    who may view everything)."""
    info = agent.info
    resources = ',"resources":' + resources_v1_json(info.resources, None) if info.resources else ""
    agent_id = ',"id":{"value":' + _string(info.id) + "}" if info.id else ""
    return (f'{{"hostname":{_string(info.hostname)},"port":{int.__repr__(info.port)}'
            f'{_attributes_text(info.attributes)}{agent_id}{resources}}}')


def agent_v1_json(master: Master, agent: AgentRecord) -> str:
    """The text of :func:`mesostw.master.v1_json.agent_v1` (for a caller who may view everything)."""
    agent_id = agent.id
    states = master.agent_states
    deactivated = agent_id in states.deactivated
    active = agent.active and not deactivated
    reregistered = ',"reregistered_time":' + _time_text(agent.reregistered_time) \
        if agent.reregistered_time is not None else ""
    total = agent.total
    total_text = ',"total_resources":' + resources_v1_json(total, None) if total else ""
    allocated: list[str] = []
    usage = master.tasks.usage_on(agent_id)
    if usage:
        frameworks = master.frameworks
        for framework_id in sorted(usage) if len(usage) > 1 else usage:
            framework = frameworks.get(framework_id)
            allocated.append(resources_v1_json(usage[framework_id],
                                               framework.info.allocation_role if framework is not None else None))
    allocated_text = _joined('"allocated_resources"', allocated) if allocated else ""
    offers = master.offers.on_agent(agent_id)
    offered_text = _joined('"offered_resources"', [resources_v1_json(offer.resources, offer.role)
                                                    for offer in offers]) if offers else ""
    drain = states.draining.get(agent_id)
    drain_text = "" if drain is None else ',"drain_info":' + _encode(drain.to_json())
    version = agent.version or __version__
    return (f'{{"agent_info":{agent_info_v1_json(agent)},"active":{"true" if active else "false"},'
            f'"deactivated":{"true" if deactivated else "false"},"version":{_string(version)},'
            f'"pid":{jsontext.value(agent.pid)},"registered_time":{_time_text(agent.registered_time)}{reregistered}'
            f'{total_text}{allocated_text}{offered_text}{_CAPABILITIES_TEXT}{drain_text}}}')
