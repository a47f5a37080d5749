"""The command executor's channel to its agent: the v1 executor API as RecordIO over one socket.

Third-party executors use HTTP (``/api/v1/executor``). Our own command
executor, started once per task, opens a raw connection on the agent's port
with :data:`PREAMBLE` and then writes v1 executor Calls and reads v1 Events,
each framed as a RecordIO record: the same messages without HTTP's request
and response machinery on either side, which is most of an agent's work per
task. The first record is the SUBSCRIBE Call with one more field, ``token``: the
executor's secret (``MESOS_EXECUTOR_AUTHENTICATION_TOKEN``); a stream whose
SUBSCRIBE lacks the right one is answered ERROR and closed, binding nothing; one that has not
subscribed within ``--connection_setup_timeout`` of its preamble is dropped by the port.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import protocol
from twisted.logger import Logger
from zope.interface import implementer

from mesostw.agent.agent import Agent
from mesostw.agent.session import CallRefused, ExecutorSession, UnknownTask
from mesostw.http import recordio
from mesostw.interfaces import IExecutorLink
from mesostw.model import executor_api as xapi
from mesostw.model.validation import ValidationError, decode_json
from mesostw.wire.preambles import EXECUTOR as PREAMBLE
from mesostw.wire.switch import bound

__all__ = ["PREAMBLE", "ExecutorStream", "ExecutorStreamFactory", "StreamExecutorLink"]

log = Logger()

MAX_RECORD = 16 * 1024 * 1024
#: The field of the first Call that carries the executor's secret.
TOKEN = "token"


@implementer(IExecutorLink)
class StreamExecutorLink:
    def __init__(self, stream: ExecutorStream):
        self.stream = stream

    def send(self, event: dict[str, Any]) -> None:
        transport = self.stream.transport
        if transport is not None and not self.stream.closed:
            transport.write(recordio.encode_json(event))

    def close(self) -> None:
        if self.stream.transport is not None and not self.stream.closed:
            self.stream.closed = True
            self.stream.transport.loseConnection()


class ExecutorStream(protocol.Protocol):
    """One executor's connection, framing an :class:`ExecutorSession`: the first Call must be SUBSCRIBE."""

    def __init__(self, agent: Agent):
        self.session = ExecutorSession(agent)
        self.decoder = recordio.Decoder(MAX_RECORD)
        self.link = StreamExecutorLink(self)
        self.closed = False

    def dataReceived(self, data: bytes) -> None:
        try:
            for record in self.decoder.feed(data):
                self.handle(decode_json(record, "Call"))
        except (ValueError, ValidationError, CallRefused) as exc:
            self.refuse(str(exc))

    def handle(self, data: Any) -> None:
        token = data.pop(TOKEN, None) if isinstance(data, dict) and self.session.bound is None else None
        framework_id, executor_id, call = xapi.parse_call(data)
        if self.session.bound is None:
            if not isinstance(call, xapi.Subscribe):
                raise ValidationError("the first call must be SUBSCRIBE")
            if self.session.subscribe(self.link, framework_id, executor_id, call,
                                      token if isinstance(token, str) else None):
                bound(self)  # the port's deadline to subscribe is met
            return
        try:
            self.session.call(framework_id, executor_id, call)
        except UnknownTask as exc:
            log.warn("Dropping an update: {e}", e=exc)

    def refuse(self, message: str) -> None:
        log.warn("Closing an executor connection: {m}", m=message)
        self.link.send(xapi.error_event(message))
        self.link.close()

    def connectionLost(self, reason: Any = protocol.connectionDone) -> None:
        self.closed = True
        self.session.disconnected()


class ExecutorStreamFactory(protocol.Factory):
    def __init__(self, agent: Agent):
        self.agent = agent

    def buildProtocol(self, addr: Any) -> ExecutorStream:
        return ExecutorStream(self.agent)
