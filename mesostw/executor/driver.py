"""The executor driver: an executor process's connection to its agent.

Speaks the v1 executor API (as JSON bytes over Perspective Broker) and calls
Mesos's ``Executor`` callbacks. Status updates are kept until the agent
acknowledges them and re-sent when the executor subscribes again.
"""

from __future__ import annotations

import base64
import os
from typing import Any, Mapping

import attrs
from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.spread import pb

from mesostw.auth.tls import tls_from
from mesostw.model import executor_api as xapi
from mesostw.model import task as T
from mesostw.model.info import AgentInfo, ExecutorInfo, FrameworkInfo
from mesostw.model.task import TaskInfo, TaskStatus, new_uuid
from mesostw.model.units import parse_duration
from mesostw.model.validation import ValidationError
from mesostw.wire.connector import Connector
from mesostw.wire.pb import Batcher, decode, encode, pieces

log = Logger()


class Executor:
    """Mesos's executor callbacks; subclass and override what you need."""

    def registered(self, driver: Any, executorInfo: ExecutorInfo, frameworkInfo: FrameworkInfo,
                   agentInfo: AgentInfo) -> None:
        pass

    def reregistered(self, driver: Any, agentInfo: AgentInfo) -> None:
        pass

    def disconnected(self, driver: Any) -> None:
        pass

    def launchTask(self, driver: Any, task: TaskInfo) -> None:
        pass

    def killTask(self, driver: Any, taskId: str, gracePeriod: float | None = None) -> None:
        pass

    def frameworkMessage(self, driver: Any, message: bytes) -> None:
        pass

    def shutdown(self, driver: Any) -> None:
        pass

    def error(self, driver: Any, message: str) -> None:
        log.error("Executor error: {message}", message=message)

    def acknowledged(self, driver: Any, status: TaskStatus) -> None:
        """The agent has taken responsibility for ``status`` (not part of Mesos's interface)."""


class _Remote(pb.Referenceable):
    def __init__(self, driver: ExecutorDriver):
        self.driver = driver

    def remote_events(self, payload: bytes) -> None:
        try:
            events = decode(payload)
        except ValidationError as exc:
            log.error("Malformed events from the agent: {e}", e=exc)
            return
        for event in events if isinstance(events, list) else ():
            try:
                self.driver.handle_event(event)
            except Exception:
                log.failure("Executor callback raised")


class ExecutorDriver:
    """Runs an :class:`Executor` against the agent named in the environment."""

    def __init__(self, executor: Executor, environ: Mapping[str, str] | None = None, reactor: Any = None):
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        env = os.environ if environ is None else environ
        missing = [k for k in ("MESOS_AGENT_ENDPOINT", "MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID") if not env.get(k)]
        if missing:
            raise ValueError(f"not started by an agent: {', '.join(missing)} not set")
        self.executor = executor
        self.reactor = reactor
        self.framework_id = env["MESOS_FRAMEWORK_ID"]
        self.executor_id = env["MESOS_EXECUTOR_ID"]
        host, _, port = env["MESOS_AGENT_ENDPOINT"].rpartition(":")
        self.agent_address = (host, int(port))
        self.checkpoint = env.get("MESOS_CHECKPOINT") == "1"
        #: presented with every SUBSCRIBE: the agent binds nothing without it
        self.secret = env.get("MESOS_EXECUTOR_AUTHENTICATION_TOKEN")
        self.recovery_timeout = parse_duration(env.get("MESOS_RECOVERY_TIMEOUT", "15mins"))
        self.shutdown_grace_period = parse_duration(env.get("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "5secs"))
        backoff_max = parse_duration(env.get("MESOS_SUBSCRIPTION_BACKOFF_MAX", "2secs"))
        self.unacked_updates: dict[bytes, TaskStatus] = {}
        self.unacked_tasks: dict[str, TaskInfo] = {}
        self.subscribed = False
        self._registered_once = False
        self._batch: Batcher | None = None
        self._remote = _Remote(self)
        self._lost_since: float | None = None
        self.stopped: defer.Deferred[None] = defer.Deferred()
        self._services = service.MultiService()
        tls = tls_from(None, env, server=False)
        self.connector = Connector(reactor, lambda: self.agent_address, self._connected, self._lost,
                                   backoff=min(0.5, backoff_max), max_backoff=backoff_max, name="executor",
                                   tls=tls if tls.enabled else None)
        self.connector.setServiceParent(self._services)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> defer.Deferred:
        """Connect and subscribe; the Deferred fires when the driver stops."""
        self._services.startService()
        return self.stopped

    def stop(self) -> defer.Deferred:
        if self._batch is not None:
            self._batch.flush()
        def stopped(_: Any) -> None:
            if not self.stopped.called:
                self.stopped.callback(None)

        defer.maybeDeferred(self._services.stopService).addBoth(stopped)
        return self.stopped

    def _connected(self, root: pb.RemoteReference) -> defer.Deferred:
        self._batch = Batcher(self.reactor, lambda payload: root.callRemote("calls", payload))
        self._lost_since = None
        call = xapi.subscribe_call(self.framework_id, self.executor_id, list(self.unacked_tasks.values()),
                                   list(self.unacked_updates.values()))
        return root.callRemote("subscribe", self._remote, pieces(encode(call)), self.secret)

    def _lost(self) -> None:
        self.subscribed = False
        self._batch = None
        self.executor.disconnected(self)
        now = self.reactor.seconds()
        if not self.checkpoint:
            log.info("Lost the agent and the framework does not checkpoint; exiting")
            self.stop()
        elif self._lost_since is None:
            self._lost_since = now
        elif now - self._lost_since > self.recovery_timeout:
            log.info("The agent did not come back within the recovery timeout; exiting")
            self.stop()

    # -- calls ------------------------------------------------------------------------

    def sendStatusUpdate(self, status: TaskStatus) -> None:
        """Send an update reliably (a UUID is added; kept until the agent acknowledges it)."""
        uuid = status.uuid or new_uuid()
        status = attrs.evolve(status, uuid=uuid, source=T.SOURCE_EXECUTOR, executor_id=self.executor_id,
                              timestamp=self.reactor.seconds())
        self.unacked_updates[uuid] = status
        self.unacked_tasks.pop(status.task_id, None)
        if self._batch is not None:
            self._batch.add(xapi.update_call(self.framework_id, self.executor_id, status))

    def sendFrameworkMessage(self, data: bytes) -> None:
        if self._batch is not None:
            self._batch.add(xapi.message_call(self.framework_id, self.executor_id, data))

    # -- events -----------------------------------------------------------------------

    def handle_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        body = event.get(str(kind).lower(), {}) or {}
        if kind == "SUBSCRIBED":
            self.subscribed = True
            agent = AgentInfo.from_json(body["agent_info"])
            if self._registered_once:
                self.executor.reregistered(self, agent)
            else:
                self._registered_once = True
                self.executor.registered(self, ExecutorInfo.from_json(body["executor_info"]),
                                         FrameworkInfo.from_json(body["framework_info"]), agent)
        elif kind == "LAUNCH":
            task = TaskInfo.from_json(body["task"])
            self.unacked_tasks[task.task_id] = task
            self.executor.launchTask(self, task)
        elif kind == "LAUNCH_GROUP":
            for data in body.get("task_group", {}).get("tasks", []):
                task = TaskInfo.from_json(data)
                self.unacked_tasks[task.task_id] = task
                self.executor.launchTask(self, task)
        elif kind == "KILL":
            nanos = body.get("kill_policy", {}).get("grace_period", {}).get("nanoseconds")
            self.executor.killTask(self, body["task_id"]["value"], int(nanos) / 1e9 if nanos is not None else None)
        elif kind == "ACKNOWLEDGED":
            uuid = base64.b64decode(body["uuid"])
            status = self.unacked_updates.pop(uuid, None)
            if status is not None:
                self.executor.acknowledged(self, status)
        elif kind == "MESSAGE":
            self.executor.frameworkMessage(self, base64.b64decode(body.get("data", "")))
        elif kind == "SHUTDOWN":
            self.executor.shutdown(self)
        elif kind == "ERROR":
            self.executor.error(self, body.get("message", ""))
            self.stop()
