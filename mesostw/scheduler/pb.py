"""A scheduler driver for frameworks in their own process, over Perspective Broker.

``MesosSchedulerDriver(scheduler, framework_info, "host:5050")`` (or ``"zk://..."``) connects,
subscribes, and follows the master through disconnections: it re-subscribes
with its framework ID (a failover) after a backoff, as Mesos's drivers do.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.spread import pb

from mesostw.auth.client import authenticate
from mesostw.auth.credentials import Credential
from mesostw.auth.tls import tls_from
from mesostw.detector import detector_for
from mesostw.interfaces import IScheduler
from mesostw.model.info import FrameworkInfo
from mesostw.model.task import TaskStatus
from mesostw.scheduler.driver import RUNNING, SchedulerDriverBase, launch_lost
from mesostw.wire.connector import Connector
from mesostw.wire.pb import Batcher, decode, encode, pieces
from mesostw.wire.pb import refused as refused_by_peer

log = Logger()


class _SchedulerRemote(pb.Referenceable):
    def __init__(self, driver: MesosSchedulerDriver):
        self.driver = driver

    def remote_events(self, payload: bytes) -> None:
        events = decode(payload, "events")
        if isinstance(events, list):
            self.driver.handle_events(events)


class MesosSchedulerDriver(SchedulerDriverBase, service.MultiService):
    """The PB transport for :class:`SchedulerDriverBase`.

    A service with two children: the detector that finds the leading master and the connector that
    keeps a connection to it. Starting the driver (or its service) starts them; stopping or aborting
    it stops them, which closes the connection.
    """

    def __init__(self, scheduler: IScheduler, framework: FrameworkInfo | dict[str, Any], master: str,
                 implicit_acknowledgements: bool = True, reactor: Any = None, backoff: float = 1.0,
                 credential: Credential | None = None):
        if isinstance(framework, dict):
            framework = FrameworkInfo.from_json(framework)
        SchedulerDriverBase.__init__(self, scheduler, framework, implicit_acknowledgements)
        service.MultiService.__init__(self)
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self.credential = credential
        if credential is not None and self.framework.principal is None:
            self.framework = attrs.evolve(self.framework, principal=credential.principal)
        self.detector = detector_for(reactor, master)
        self._remote = _SchedulerRemote(self)
        self._batch: Batcher | None = None
        self._backlog: list[dict[str, Any]] = []
        self.detector.setServiceParent(self)
        tls = tls_from(None, server=False)
        self.connector = Connector(reactor, self.detector.address, self._connected, self._lost, backoff=backoff,
                                   max_backoff=15.0, name="scheduler", tls=tls if tls.enabled else None)
        self.connector.setServiceParent(self)
        self.detector.listeners.append(self.connector.follow)
        self.refusals: list[str] = []

    def start(self) -> defer.Deferred:
        d = super().start()
        if not self.running:
            self.startService()  # the detector and the connector
        return d

    def _connected(self, root: pb.RemoteReference) -> defer.Deferred:
        batch = Batcher(self.reactor, lambda payload: self._deliver(root, payload), self._unsent)
        if self.credential is not None:
            d = authenticate(root, self.credential)
            d.addCallback(lambda _: root.callRemote("subscribe", self._remote, pieces(encode(self._subscribe_call()))))
        else:
            d = root.callRemote("subscribe", self._remote, pieces(encode(self._subscribe_call())))

        def subscribed(_: Any) -> None:
            self._batch = batch
            backlog, self._backlog = self._backlog, []
            for call in backlog:
                batch.add(call)

        def refused(failure: Any) -> Any:
            if refused_by_peer(failure):
                # The master will not take this framework as it is; retrying would not help.
                self.scheduler.error(self, failure.getErrorMessage())
                self.abort()
                return None
            return failure

        d.addCallbacks(subscribed, refused)
        return d

    def _deliver(self, root: pb.RemoteReference, payload: bytes | list[bytes]) -> defer.Deferred:
        d = root.callRemote("calls", payload)
        d.addCallback(self._refused_calls)
        return d

    def _refused_calls(self, payload: bytes) -> None:
        for message in decode(payload, "errors"):
            log.warn("The master refused a call: {message}", message=message)
            self.refusals.append(message)

    def _lost(self) -> None:
        self._batch = None
        if self.status == RUNNING:
            self.scheduler.disconnected(self)

    def _send(self, call: dict[str, Any]) -> None:
        if self._batch is not None:
            self._batch.add(call)
        elif call.get("type") not in ("DECLINE", "ACCEPT"):
            # Offers do not survive a reconnection; other calls are worth delivering late.
            self._backlog.append(call)
        else:
            self._unsent([call], ConnectionError("Master disconnected"))

    def _unsent(self, calls: list[dict[str, Any]], error: Exception) -> None:
        """Calls that never left: as Mesos's driver does, the tasks they would have launched are reported
        lost (on the next reactor turn, from the master as the source), so the scheduler knows at once
        rather than at its next reconciliation."""
        statuses = launch_lost(calls, self.framework, str(error) or type(error).__name__, self.reactor.seconds())
        if statuses:
            log.warn("{n} task(s) could not be sent to the master ({why}); reporting them lost", n=len(statuses),
                     why=str(error) or type(error).__name__)
            self.reactor.callLater(0, self._report, statuses)
        elif not isinstance(error, (pb.DeadReferenceError, ConnectionError)):
            log.error("Calls could not be sent to the master: {why}", why=error)

    def _report(self, statuses: list[TaskStatus]) -> None:
        for status in statuses:
            if self.status != RUNNING:
                return
            self.scheduler.statusUpdate(self, status)

    def _finish(self) -> None:
        if self._batch is not None:
            self._batch.flush()
        super()._finish()  # stops the detector and the connector, which closes the connection
