"""DRAIN_AGENT, DEACTIVATE_AGENT and REACTIVATE_AGENT over the v1 operator API (Mesos 1.9+).

Their ACLs have implicit objects: ``drain_agents`` (and ``mark_agents_gone`` too when the drain marks
the agent gone), ``deactivate_agents`` and ``reactivate_agents``. An agent that is neither registered,
recovered from the registry nor unreachable is a 400, as is draining an agent of a machine in the
maintenance schedule (Mesos keeps the two apart), or reactivating one that is not deactivated or
still DRAINING; draining an agent being marked gone is a 409.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from mesostw.http.router import HTTPError
from mesostw.master.agents import UnknownAgent
from mesostw.master.draining import AgentStateConflict, AgentStateRefused
from mesostw.master.frameworks import RegistrationRefused
from mesostw.master.maintenance import agent_address
from mesostw.master.master import Master
from mesostw.model.units import parse_duration
from mesostw.model.validation import Reader
from mesostw.operator.calls import CallContext, CallTable

#: protobuf's JSON of a google.protobuf.Duration: seconds with an ``s`` ("1.5s").
_PROTO_DURATION = re.compile(r"^\s*(-?[0-9]+(?:\.[0-9]+)?)s\s*$")


def read_duration(reader: Reader, key: str) -> float | None:
    """A ``google.protobuf.Duration`` at ``key``: protobuf's ``"1.5s"``, a Mesos duration (``"10mins"``),
    ``{"seconds", "nanos"}`` or a number of seconds; None when absent."""
    raw = reader.raw(key)
    if raw is None:
        return None
    seconds: float | None = None
    if isinstance(raw, str):
        match = _PROTO_DURATION.match(raw)
        try:
            seconds = float(match.group(1)) if match else parse_duration(raw)
        except ValueError as exc:
            reader.error(str(exc), key)
            return None
    elif isinstance(raw, dict):
        holder = reader.obj(key)
        assert holder is not None
        seconds = float(holder.int("seconds", 0)) + holder.int("nanos", 0) / 1e9
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        seconds = float(raw)
    else:
        reader.error("must be a duration (\"30s\", \"10mins\" or {\"seconds\": ...})", key)
        return None
    if seconds < 0 or seconds != seconds or seconds > 1e12:
        reader.error("must be a non-negative duration", key)
        return None
    return seconds


def refusals(what: str) -> Any:
    def refused(failure: Failure) -> Any:
        if failure.check(UnknownAgent):
            raise HTTPError(400, failure.getErrorMessage())
        if failure.check(AgentStateConflict):
            raise HTTPError(409, failure.getErrorMessage())
        if failure.check(AgentStateRefused):
            raise HTTPError(400, failure.getErrorMessage())
        if failure.check(RegistrationRefused):
            raise HTTPError(503, f"Failed to {what}: {failure.getErrorMessage()}")
        return failure

    return refused


def register(table: CallTable, master: Master) -> None:
    """Add DRAIN_AGENT, DEACTIVATE_AGENT and REACTIVATE_AGENT to ``table``."""

    def drain(context: CallContext, reader: Reader | None) -> defer.Deferred:
        assert reader is not None
        agent_id = reader.id("agent_id", None, required=True)
        grace = read_duration(reader, "max_grace_period")
        mark_gone = bool(reader.bool("mark_gone", False))
        reader.check()
        if mark_gone and not context.approvers.allowed("mark_agents_gone"):
            raise HTTPError(403, f"Principal {context.principal or '(none)'} is not authorized to mark agents gone")
        record = master.agents.get(agent_id)
        if record is not None and master.maintenance.machine_of(*agent_address(record)) is not None:
            raise HTTPError(400, f"Agent {agent_id} is part of a maintenance schedule")
        d = master.agent_states.drain(agent_id, grace, mark_gone)
        return d.addCallbacks(lambda _: None, refusals("drain the agent"))

    def deactivate(context: CallContext, reader: Reader | None) -> defer.Deferred:
        assert reader is not None
        agent_id = reader.id("agent_id", None, required=True)
        reader.check()
        return master.agent_states.deactivate(agent_id).addCallbacks(lambda _: None, refusals("deactivate the agent"))

    def reactivate(context: CallContext, reader: Reader | None) -> defer.Deferred:
        assert reader is not None
        agent_id = reader.id("agent_id", None, required=True)
        reader.check()
        return master.agent_states.reactivate(agent_id).addCallbacks(lambda _: None, refusals("reactivate the agent"))

    table.register("DRAIN_AGENT", drain, required=True, acl="drain_agents")
    table.register("DEACTIVATE_AGENT", deactivate, required=True, acl="deactivate_agents")
    table.register("REACTIVATE_AGENT", reactivate, required=True, acl="reactivate_agents")
