"""One executor's session with its agent, whatever carries it.

Executors reach the agent three ways: Perspective Broker (:mod:`mesostw.agent.pb`), the v1 HTTP API
(:mod:`mesostw.agent.executor_http`) and RecordIO on a raw connection (:mod:`mesostw.agent.executor_stream`).
Each transport only frames bytes into parsed v1 executor Calls and hands them to an
:class:`ExecutorSession`: SUBSCRIBE binds the session to one executor, and UPDATE and MESSAGE then act
for that executor only. Refusals come back as :class:`CallRefused`, which each transport answers in
its own way (a PB error list, an HTTP 4xx, a closed stream).

This is also the one place where an executor proves who it is: SUBSCRIBE (and, over HTTP, every
call) must carry the executor's secret (:mod:`mesostw.agent.executor_auth`), or nothing is bound.
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


class NotAuthenticated(CallRefused):
    """The call does not carry the secret of the executor it names."""


class ExecutorSession:
    """SUBSCRIBE binds; then UPDATE goes to :meth:`Agent.executorUpdate`, MESSAGE to :meth:`Agent.executorMessage`.

    Every transport that binds (SUBSCRIBE, and each HTTP call through :meth:`bind`) hands over the
    secret the caller presented; ``require_secret=False`` (HTTP with ``--authenticate_http_executors=false``)
    lets a call without one through, never one with a wrong one.
    """

    def __init__(self, agent: Agent, require_secret: bool = True):
        self.agent = agent
        self.require_secret = require_secret
        self.bound: tuple[str, str] | None = None
        self.link: IExecutorLink | None = None
        self._handlers: dict[type, Callable[[str, str, Any], None]] = {
            xapi.Update: self._update,
            xapi.Message: self._message,
            xapi.Heartbeat: self._ignore,
            xapi.Subscribe: self._ignore,  # one SUBSCRIBE per session; a repeat changes nothing
        }

    def subscribe(self, link: IExecutorLink, framework_id: str, executor_id: str, call: xapi.Subscribe,
                  secret: str | None) -> bool:
        """Bind to the executor over ``link`` and hand it its tasks; False when the agent does not know it
        (the agent has then sent ERROR and closed the link). Raises :class:`NotAuthenticated`, binding
        nothing, when ``secret`` is not that executor's."""
        self.authenticate(framework_id, executor_id, secret)
        self.bound, self.link = (framework_id, executor_id), link
        return self.agent.executorSubscribe(link, framework_id, executor_id, call)

    def bind(self, framework_id: str, executor_id: str, secret: str | None) -> None:
        """Bind to a subscribed executor without a link (HTTP: every call comes on its own request)."""
        self.authenticate(framework_id, executor_id, secret)
        self.bound = (framework_id, executor_id)

    def authenticate(self, framework_id: str, executor_id: str, secret: str | None) -> None:
        """Raise :class:`NotAuthenticated` unless ``secret`` is the one of the executor's current run.

        An executor the agent does not know passes here: the agent refuses it with a reason of its own."""
        framework = self.agent.frameworks.get(framework_id)
        executor = framework.executors.get(executor_id) if framework is not None else None
        if executor is None:
            return
        if secret is None and not self.require_secret:
            return
        if not self.agent.executor_secrets.check(framework_id, executor_id, executor.container_id, secret):
            self.agent.metrics["executor_authentication_failures"] += 1
            raise NotAuthenticated(f"Executor {executor_id} of framework {framework_id}: "
                                   + ("no executor secret presented" if secret is None else "wrong executor secret"))

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
