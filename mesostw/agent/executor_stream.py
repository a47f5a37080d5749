"""The command executor's channel to its agent: the v1 executor API as RecordIO over one socket.

Third-party executors use HTTP (``/api/v1/executor``). Our own command
executor, started once per task, opens a raw connection on the agent's port
with :data:`PREAMBLE` and then writes v1 executor Calls and reads v1 Events,
each framed as a RecordIO record: the same messages without HTTP's request
and response machinery on either side, which is most of an agent's work per
task.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import protocol
from twisted.logger import Logger
from zope.interface import implementer

from mesostw.agent.agent import Agent
from mesostw.http import recordio
from mesostw.interfaces import IExecutorLink
from mesostw.model import executor_api as xapi
from mesostw.model.validation import ValidationError, decode_json

log = Logger()

PREAMBLE = b"\x89MESOSTW-EXEC\r\n"
MAX_RECORD = 16 * 1024 * 1024


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
    """One executor's connection: the first Call must be SUBSCRIBE; the connection is then bound to it."""

    def __init__(self, agent: Agent):
        self.agent = agent
        self.decoder = recordio.Decoder(MAX_RECORD)
        self.bound: tuple[str, str] | None = None
        self.link = StreamExecutorLink(self)
        self.closed = False

    def dataReceived(self, data: bytes) -> None:
        try:
            for record in self.decoder.feed(data):
                self.handle(decode_json(record, "Call"))
        except (ValueError, ValidationError) as exc:
            self.refuse(str(exc))

    def handle(self, data: Any) -> None:
        framework_id, executor_id, call = xapi.parse_call(data)
        if self.bound is None:
            if not isinstance(call, xapi.Subscribe):
                raise ValidationError("the first call must be SUBSCRIBE")
            self.bound = (framework_id, executor_id)
            self.agent.executorSubscribe(self.link, framework_id, executor_id, call)
            return
        if (framework_id, executor_id) != self.bound:
            raise ValidationError("the call names another executor than the subscribed one")
        if isinstance(call, xapi.Update):
            if not self.agent.executorUpdate(framework_id, executor_id, call.status):
                log.warn("Dropping an update for unknown task {task} of executor {e}", task=call.status.task_id,
                         e=executor_id)
        elif isinstance(call, xapi.Message):
            self.agent.executorMessage(framework_id, executor_id, call.data)

    def refuse(self, message: str) -> None:
        log.warn("Closing an executor connection: {m}", m=message)
        self.link.send(xapi.error_event(message))
        self.link.close()

    def connectionLost(self, reason: Any = protocol.connectionDone) -> None:
        self.closed = True
        if self.bound is not None:
            self.agent.executorDisconnected(*self.bound, self.link)


class ExecutorStreamFactory(protocol.Factory):
    def __init__(self, agent: Agent):
        self.agent = agent

    def buildProtocol(self, addr: Any) -> ExecutorStream:
        return ExecutorStream(self.agent)
