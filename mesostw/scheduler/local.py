"""A scheduler driver for frameworks that live inside the master's process.

Calls reach the master core directly and events come back the same way, each
delivered on a later reactor turn so that neither side re-enters the other.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from mesostw.interfaces import IFrameworkLink, IScheduler
from mesostw.master.calls import SchedulerCalls, UnknownFramework
from mesostw.master.master import Master, RegistrationRefused
from mesostw.model import scheduler_api as api
from mesostw.model.info import FrameworkInfo
from mesostw.model.validation import ValidationError
from mesostw.scheduler.driver import RUNNING, SchedulerDriverBase

log = Logger()


@implementer(IFrameworkLink)
class LocalFrameworkLink:
    """The master's handle on an in-process driver: events are queued and delivered in batches."""

    principal = None

    def __init__(self, driver: LocalSchedulerDriver, clock: Any):
        self._driver = driver
        self._clock = clock
        self._queue: list[dict[str, Any]] = []
        self._pending: Any = None
        self.closing = False
        self.closed = False

    def send(self, event: dict[str, Any]) -> None:
        if self.closed or self.closing:
            return
        self._queue.append(event)
        if self._pending is None:
            self._pending = self._clock.callLater(0, self._deliver)

    def _deliver(self) -> None:
        self._pending = None
        events, self._queue = self._queue, []
        if not self.closed:
            self._driver.handle_events(events)
        if self.closing:
            self.closed = True

    def close(self) -> None:
        """Stop accepting events; what is queued is still delivered, as a connection flushes before closing."""
        self.closing = True
        if not self._queue:
            self.closed = True

    def discard(self) -> None:
        """Drop the link at once, losing queued events (a broken connection)."""
        self.closed = True
        self._queue = []
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None


class LocalSchedulerDriver(SchedulerDriverBase):
    """Runs a scheduler against a :class:`Master` in the same process."""

    def __init__(self, scheduler: IScheduler, framework: FrameworkInfo, master: Master,
                 calls: SchedulerCalls | None = None, implicit_acknowledgements: bool = True):
        super().__init__(scheduler, framework, implicit_acknowledgements)
        self.master = master
        self.calls = calls or SchedulerCalls(master)
        self.link: LocalFrameworkLink | None = None
        self._outbox: list[dict[str, Any]] = []
        self._pending: Any = None

    def start(self):  # type: ignore[no-untyped-def]
        d = super().start()
        self.master.clock.callLater(0, self._connect)
        return d

    def _connect(self) -> None:
        if self.status != RUNNING:
            return
        self.link = LocalFrameworkLink(self, self.master.clock)
        try:
            self.master.subscribe(self.link, self.framework)
        except RegistrationRefused as exc:
            self.scheduler.error(self, str(exc))
            self.abort()

    def disconnect(self) -> None:
        """Drop the link as if the connection broke (the framework may fail over later)."""
        if self.link is not None and self.framework.id:
            self.link.discard()
            self.master.frameworkDisconnected(self.framework.id, self.link)
        self.link = None

    def reconnect(self) -> None:
        self.disconnect()
        self._connect()

    def _send(self, call: dict[str, Any]) -> None:
        self._outbox.append(call)
        if self._pending is None:
            self._pending = self.master.clock.callLater(0, self._flush)

    def _flush(self) -> None:
        self._pending = None
        calls, self._outbox = self._outbox, []
        for call in calls:
            try:
                framework_id, parsed = api.parse_call(call)
                if framework_id is not None:
                    self.calls.handle(framework_id, parsed)
            except (ValidationError, UnknownFramework) as exc:
                log.error("Call refused: {e}", e=exc)

    def _finish(self) -> None:
        if self._outbox:
            self._flush()
        if self.link is not None:
            self.link.discard()
            if self.framework.id and self.framework.id in self.master.frameworks:
                self.master.frameworkDisconnected(self.framework.id, self.link)
            self.link = None
        super()._finish()
