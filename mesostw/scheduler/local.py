"""A scheduler driver for frameworks that live inside the master's process.

It depends on the master only through :class:`~mesostw.interfaces.IMasterEndpoint`, in one
:class:`~mesostw.scheduler.session.SchedulerSession` like any other connection (leading check, the
principal its host vouches for, ACLs). Calls and events each go across on a later reactor turn, so
that neither side re-enters the other.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from mesostw.interfaces import IFrameworkLink, IMasterEndpoint, IScheduler
from mesostw.model import scheduler_api as api
from mesostw.model.info import FrameworkInfo
from mesostw.model.validation import ValidationError
from mesostw.scheduler.driver import RUNNING, SchedulerDriverBase
from mesostw.scheduler.session import CallRefused, SchedulerSession, SubscriptionRefused

log = Logger()


@implementer(IFrameworkLink)
class LocalFrameworkLink:
    """The master's handle on an in-process driver: events are queued and delivered in batches."""

    def __init__(self, driver: LocalSchedulerDriver, clock: Any, principal: str | None = None):
        self._driver = driver
        self._clock = clock
        self.principal = principal
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
    """Runs a scheduler against a master in the same process.

    ``principal`` is the one the host vouches for (its framework's credential): the master's ACLs see
    it as the connection's authenticated principal. None is anonymous.
    """

    def __init__(self, scheduler: IScheduler, framework: FrameworkInfo, endpoint: IMasterEndpoint,
                 implicit_acknowledgements: bool = True, principal: str | None = None):
        super().__init__(scheduler, framework, implicit_acknowledgements)
        self.endpoint = endpoint
        self.principal = principal
        self.session: SchedulerSession | None = None
        self.link: LocalFrameworkLink | None = None
        self._outbox: list[dict[str, Any]] = []
        self._pending: Any = None

    def start(self):  # type: ignore[no-untyped-def]
        d = super().start()
        self.endpoint.clock.callLater(0, self._connect)
        return d

    def _connect(self) -> None:
        if self.status != RUNNING:
            return
        self.link = LocalFrameworkLink(self, self.endpoint.clock, self.principal)
        self.session = SchedulerSession(self.endpoint, self.principal)
        try:
            self.session.subscribe(self.link, api.Subscribe(self.framework))
        except SubscriptionRefused as exc:
            self.scheduler.error(self, str(exc))
            self.abort()

    def disconnect(self) -> None:
        """Drop the link as if the connection broke (the framework may fail over later); a running driver
        tells its scheduler, as every driver does when it loses the master."""
        if self.link is not None and self.session is not None:
            self.link.discard()
            self.session.disconnected()
            if self.status == RUNNING:
                self.scheduler.disconnected(self)
        self.link = None

    def reconnect(self) -> None:
        self.disconnect()
        self._connect()

    def _send(self, call: dict[str, Any]) -> None:
        self._outbox.append(call)
        if self._pending is None:
            self._pending = self.endpoint.clock.callLater(0, self._flush)

    def _flush(self) -> None:
        self._pending = None
        calls, self._outbox = self._outbox, []
        for call in calls:
            try:
                framework_id, parsed = api.parse_call(call)
                if self.session is None:
                    raise CallRefused("subscribe first")
                self.session.call(framework_id, parsed)
            except (ValidationError, CallRefused) as exc:
                log.error("Call refused: {e}", e=exc)

    def _finish(self) -> None:
        if self._outbox:
            self._flush()
        self.disconnect()
        super()._finish()
