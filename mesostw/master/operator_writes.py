"""The master's calls of the operator API that change things: UPDATE_WEIGHTS, TEARDOWN and MARK_AGENT_GONE.

Each is authorized as Mesos does: ``update_weights`` per role, ``teardown_frameworks`` by the
principal of the framework torn down, and ``mark_agents_gone`` (no object); each answers an empty 200
once the change is durable.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from mesostw.http.router import HTTPError
from mesostw.master.agents import AgentTransitioning, UnknownAgent
from mesostw.master.frameworks import RegistrationRefused, TeardownOutcome
from mesostw.master.master import Master
from mesostw.master.operator_http import update_weights
from mesostw.model.validation import Reader
from mesostw.operator.calls import CallContext, CallTable


def register(table: CallTable, master: Master) -> None:
    """Add the calls that change the master to ``table``."""

    def update(context: CallContext, reader: Reader | None) -> defer.Deferred:
        assert reader is not None
        infos = reader.list("weight_infos")
        reader.check()
        return update_weights(master, infos, context.principal).addCallback(lambda _: None)

    def teardown(context: CallContext, reader: Reader | None) -> None:
        assert reader is not None
        framework_id = reader.id("framework_id", None, required=True)
        reader.check()
        outcome = master.teardown(framework_id, context.principal)
        if outcome is TeardownOutcome.UNKNOWN_FRAMEWORK:
            raise HTTPError(400, f"No framework found with specified ID '{framework_id}'")
        if outcome is TeardownOutcome.NOT_AUTHORIZED:
            raise HTTPError(403, f"Principal {context.principal or '(none)'} may not tear down framework "
                                 f"{framework_id}")

    def mark_gone(context: CallContext, reader: Reader | None) -> defer.Deferred:
        assert reader is not None
        agent_id = reader.id("agent_id", None, required=True)
        reader.check()

        def refused(failure: Failure) -> Any:
            if failure.check(UnknownAgent):
                raise HTTPError(404, failure.getErrorMessage())
            if failure.check(AgentTransitioning):
                raise HTTPError(503, failure.getErrorMessage())
            if failure.check(RegistrationRefused):
                raise HTTPError(503, f"Failed to mark agent '{agent_id}' gone: {failure.getErrorMessage()}")
            return failure

        return master.markAgentGone(agent_id).addCallbacks(lambda _: None, refused)

    table.register("UPDATE_WEIGHTS", update, required=True)
    table.register("TEARDOWN", teardown, required=True)
    table.register("MARK_AGENT_GONE", mark_gone, required=True, acl="mark_agents_gone")
