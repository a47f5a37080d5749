"""One executor's session with its agent, whatever carries it.

Executors reach the agent three ways: Perspective Broker (:mod:`mesostw.agent.pb`), the v1 HTTP API
(:mod:`mesostw.agent.executor_http`) and RecordIO on a raw connection (:mod:`mesostw.agent.executor_stream`).
Each transport only frames bytes into parsed v1 executor Calls and hands them to an
:class:`ExecutorSession`: SUBSCRIBE binds the session to one executor, and UPDATE and MESSAGE then act
for that executor only. Refusals come back as :class:`CallRefused`, which each transport answers in
its own way (a PB error list, an HTTP 4xx, a closed stream).
"""

from __future__ import annotations

from typing import Any, Callable

from mesostw.agent.agent import Agent
from mesostw.interfaces import IExecutorLink
from mesostw.model import executor_api as xapi


class CallRefused(Exception):
    """The agent will not act on this executor call; the message says why."""


class UnknownTask(CallRefused):
    """An UPDATE for a task the subscribed executor does not run (dropped; the session goes on)."""


class ExecutorSession:
    """SUBSCRIBE binds; then UPDATE goes to :meth:`Agent.executorUpdate`, MESSAGE to :meth:`Agent.executorMessage`.

    ``bound`` binds a session at once, for transports whose every call arrives on its own request
    (HTTP) once the caller has checked that the agent holds that executor as subscribed.
    """

    def __init__(self, agent: Agent, bound: tuple[str, str] | None = None):
        self.agent = agent
        self.bound = bound
        self.link: IExecutorLink | None = None
        self._handlers: dict[type, Callable[[str, str, Any], None]] = {
            xapi.Update: self._update,
            xapi.Message: self._message,
            xapi.Heartbeat: self._ignore,
            xapi.Subscribe: self._ignore,  # one SUBSCRIBE per session; a repeat changes nothing
        }

    def subscribe(self, link: IExecutorLink, framework_id: str, executor_id: str, call: xapi.Subscribe) -> bool:
        """Bind to the executor over ``link`` and hand it its tasks; False when the agent does not know it
        (the agent has then sent ERROR and closed the link)."""
        self.bound, self.link = (framework_id, executor_id), link
        return self.agent.executorSubscribe(link, framework_id, executor_id, call)

    def call(self, framework_id: str, executor_id: str, call: xapi.Call) -> None:
        """Act on a call of the subscribed executor, or raise :class:`CallRefused`."""
        if self.bound is None:
            raise CallRefused("subscribe first")
        if (framework_id, executor_id) != self.bound:
            raise CallRefused("the call names another executor than the subscribed one")
        self._handlers[type(call)](framework_id, executor_id, call)

    def disconnected(self) -> None:
        """The transport's connection went away."""
        if self.bound is not None and self.link is not None:
            self.agent.executorDisconnected(*self.bound, self.link)

    def _update(self, framework_id: str, executor_id: str, call: xapi.Update) -> None:
        if not self.agent.executorUpdate(framework_id, executor_id, call.status):
            raise UnknownTask(f"Task {call.status.task_id} of executor {executor_id} is not known here")

    def _message(self, framework_id: str, executor_id: str, call: xapi.Message) -> None:
        self.agent.executorMessage(framework_id, executor_id, call.data)

    def _ignore(self, framework_id: str, executor_id: str, call: Any) -> None:
        pass
