"""The agent over Perspective Broker: its link to the master, and executors' links to it."""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.spread import pb
from zope.interface import implementer

from mesostw import __version__
from mesostw.agent.agent import Agent
from mesostw.agent.session import CallRefused, ExecutorSession
from mesostw.interfaces import IExecutorLink, IMasterLink
from mesostw.model import executor_api as xapi
from mesostw.model import internal
from mesostw.model.validation import ValidationError
from mesostw.wire.pb import (
    Batcher,
    RefusedError,
    decode,
    decode_batch,
    encode,
    encode_errors,
    parse_messages,
    pieces,
    reference,
)

log = Logger()


class AgentRemote(pb.Referenceable):
    """What the master calls on the agent."""

    def __init__(self, agent: Agent):
        self.agent = agent
        #: message type -> the agent's handler (see :func:`mesostw.model.internal.parse_for_agent`)
        self.handlers: dict[str, Callable[..., Any]] = {
            internal.RUN_TASK: agent.runTasks,
            internal.KILL_TASK: agent.killTask,
            internal.ACKNOWLEDGEMENT: agent.acknowledge,
            internal.SHUTDOWN_FRAMEWORK: agent.shutdownFramework,
            internal.SHUTDOWN_EXECUTOR: agent.shutdownExecutor,
            internal.FRAMEWORK_TO_EXECUTOR: agent.frameworkMessage,
            internal.AGENT_REMOVED: agent.removedByMaster,
            internal.CHECKPOINT_RESOURCES: agent.checkpointResources,
        }

    def remote_ping(self) -> str:
        return self.agent.ping()

    def remote_messages(self, payload: bytes) -> None:
        parsed, _ = parse_messages(payload, internal.parse_for_agent, "the master")
        for kind, args in parsed:
            self.handlers[kind](*args)


@implementer(IMasterLink)
class PBMasterLink:
    """The agent's handle on the master's root object for one connection."""

    def __init__(self, root: pb.RemoteReference, agent: Agent, clock: Any):
        self.root = root
        self.remote = AgentRemote(agent)
        self._batch = Batcher(clock, lambda payload: root.callRemote("messages", payload))

    def register(self, agent_info: Any) -> defer.Deferred:
        payload = pieces(encode(internal.registration(agent_info, __version__)))
        d = self.root.callRemote("registerAgent", self.remote, payload)
        d.addCallback(lambda payload: internal.parse_registered(decode(payload)))
        return d

    def reregister(self, agent_info: Any, tasks: Any, executors: Any, frameworks: Any) -> defer.Deferred:
        payload = internal.reregistration(agent_info, list(tasks), list(executors), list(frameworks), __version__)
        d = self.root.callRemote("reregisterAgent", self.remote, pieces(encode(payload)))
        d.addCallback(lambda answer: internal.parse_registered(decode(answer))[1])
        return d

    def statusUpdates(self, updates: Any) -> None:
        for framework_id, status in updates:
            self._batch.add(internal.status_update(framework_id, status))

    def exitedExecutor(self, framework_id: str, executor_id: str, status: int | None) -> None:
        self._batch.add(internal.exited_executor(framework_id, executor_id, status))

    def executorMessage(self, framework_id: str, executor_id: str, data: bytes) -> None:
        self._batch.add(internal.executor_to_framework(framework_id, executor_id, data))

    def unregister(self) -> defer.Deferred:
        self._batch.add(internal.unregister_agent())
        self._batch.flush()
        return defer.succeed(None)

    def disconnect(self) -> None:
        self._batch.discard()
        transport = self.root.broker.transport
        if transport is not None:
            transport.loseConnection()


@implementer(IExecutorLink)
class PBExecutorLink:
    """The agent's handle on an executor process: events are batched per turn."""

    def __init__(self, remote: pb.RemoteReference, clock: Any):
        self.remote = remote
        self._batch = Batcher(clock, lambda payload: remote.callRemote("events", payload))

    def send(self, event: dict[str, Any]) -> None:
        self._batch.add(event)

    def close(self) -> None:
        self._batch.flush()
        transport = self.remote.broker.transport
        if transport is not None:
            transport.loseConnection()


class ExecutorConnection(pb.Referenceable):
    """The root object an executor's PB connection sees on the agent's port: frames an
    :class:`ExecutorSession`."""

    def __init__(self, agent: Agent, broker: pb.Broker, clock: Any):
        self.session = ExecutorSession(agent)
        self.clock = clock
        broker.notifyOnDisconnect(self.session.disconnected)

    def remote_subscribe(self, executor: pb.RemoteReference, payload: bytes, secret: Any = None) -> None:
        """SUBSCRIBE with the executor's secret (``MESOS_EXECUTOR_AUTHENTICATION_TOKEN``)."""
        try:
            framework_id, executor_id, call = xapi.parse_call(decode(payload))
        except ValidationError as exc:
            raise RefusedError(f"invalid SUBSCRIBE: {exc}") from None
        if not isinstance(call, xapi.Subscribe):
            raise RefusedError("the first call must be SUBSCRIBE")
        link = PBExecutorLink(reference(executor, "the executor"), self.clock)
        try:
            self.session.subscribe(link, framework_id, executor_id, call, secret if isinstance(secret, str) else None)
        except CallRefused as exc:
            raise RefusedError(str(exc)) from None

    def remote_calls(self, payload: bytes) -> bytes:
        if self.session.bound is None:
            raise RefusedError("subscribe first")
        try:
            calls = decode_batch(payload, "calls")
        except ValidationError as exc:
            raise RefusedError(str(exc)) from None
        errors = []
        for data in calls:
            try:
                self.session.call(*xapi.parse_call(data))
            except (ValidationError, CallRefused) as exc:
                errors.append(str(exc))
        return encode_errors(errors)


@implementer(pb.IPBRoot)
class AgentRoot:
    """Gives every executor connection its own :class:`ExecutorConnection`."""

    def __init__(self, agent: Agent, clock: Any):
        self.agent, self.clock = agent, clock

    def rootObject(self, broker: pb.Broker) -> ExecutorConnection:
        return ExecutorConnection(self.agent, broker, self.clock)
