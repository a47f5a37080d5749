"""Becoming the leading master: at once when alone, by ZooKeeper election when highly available.

A leader first reads the registry and takes over what it holds; only then
does it accept agents and frameworks. A leader that loses its ZooKeeper
session (expired, or disconnected for longer than the session timeout, which
ZooKeeper would only report on reconnection) stops at once, as Mesos's
masters abort: its registry writes would be refused anyway (they are fenced
on its election node), and a supervisor restarts it as a contender.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from mesostw.detector import ZooKeeperMasterDetector, encode_master_info
from mesostw.interfaces import IRegistry
from mesostw.master.master import Master
from mesostw.model.info import MasterInfo
from mesostw.zk.client import CONNECTED, LOST, SUSPENDED, ZooKeeper
from mesostw.zk.election import Contender

log = Logger()


def abort(reason: str) -> None:
    """Stop this master process now (exit status 1), as a Mesos master aborts."""
    log.critical("Aborting: {reason}", reason=reason)
    sys.stderr.write(f"mesos-master: aborting: {reason}\n")
    sys.stderr.flush()
    os._exit(1)


class _LeadingSignal:
    """``whenLeading()`` for what runs only on the leader (hosted frameworks): it fires once the
    registry is recovered and the master leads. There is no signal for the reverse: a master that
    loses leadership aborts."""

    master: Master
    _leading_waiters: list[defer.Deferred]

    def whenLeading(self) -> defer.Deferred:
        if self.master.leading:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._leading_waiters.append(d)
        return d

    def _leads(self) -> None:
        waiters, self._leading_waiters = self._leading_waiters, []
        for d in waiters:
            d.callback(None)


class StandaloneLeadership(_LeadingSignal, service.Service):
    """The only master: recover the registry and lead."""

    name = "leadership"  # type: ignore[assignment]  # twisted declares Service.name as None

    def __init__(self, master: Master, registry: IRegistry):
        self.master = master
        self.registry = registry
        self.leader: MasterInfo | None = None
        self._leading_waiters = []

    def startService(self) -> None:
        super().startService()
        d = self.registry.recover()
        d.addCallback(self._recovered)
        d.addErrback(lambda failure: abort(f"cannot recover the registry: {failure.getErrorMessage()}"))

    def _recovered(self, state: Any) -> None:
        self.master.recover(state)
        self.leader = self.master.info
        self._leads()


class ZooKeeperLeadership(_LeadingSignal, service.Service):
    """Contends in ZooKeeper; leads when its node is the lowest; aborts when its session goes."""

    name = "leadership"  # type: ignore[assignment]  # twisted declares Service.name as None

    def __init__(self, reactor: Any, zk: ZooKeeper, path: str, master: Master, registry: IRegistry,
                 on_abort: Callable[[str], None] = abort, standby: Any = None):
        """``standby``: the registry's store, when it can read the registry ahead while another master leads
        (``follow()``) and serve it at once when this one is elected (``lead()``), as the ZooKeeper store can."""
        self.reactor = reactor
        self.zk = zk
        self.master = master
        self.registry = registry
        self.standby = standby if hasattr(standby, "follow") and hasattr(standby, "lead") else None
        self.contender = Contender(zk, path)
        self.detector = ZooKeeperMasterDetector(zk, path)
        self.detector.listeners.append(self._leader_changed)
        self.on_abort = on_abort
        self._leading_waiters = []
        self._electing = False
        self._suspended: Any = None
        self._stopping = False
        self._session_lost = False

    @property
    def leader(self) -> MasterInfo | None:
        return self.detector.leader

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        self.zk.listeners.append(self._session)
        d = self.zk.start()
        d.addCallback(lambda _: self._contend())
        d.addCallback(lambda _: self.detector.start())
        d.addErrback(lambda failure: self.on_abort(f"cannot join the election: {failure.getErrorMessage()}"))

    def _contend(self) -> defer.Deferred:
        return self.contender.contend(encode_master_info(self.master.info))

    def _leader_changed(self, info: MasterInfo | None, node: str | None) -> None:
        if self._stopping:
            return
        ours = node is not None and node == self.contender.node
        if not ours and node is not None and not self.master.leading and self.standby is not None:
            self.standby.follow()  # another master leads: read the registry ahead
        if ours and not self.master.leading and not self._electing:
            self._electing = True
            log.info("Elected as the leading master; recovering the registry")
            self.master.electing()
            if self.standby is not None:
                self.standby.lead()
            d = self.registry.recover()
            d.addCallback(self._recovered)
            d.addErrback(lambda failure: self.on_abort(f"cannot recover the registry: {failure.getErrorMessage()}"))
        elif not ours and self.master.leading:
            self.on_abort("another master leads now")

    def _recovered(self, state: Any) -> None:
        self._electing = False
        if self.detector.leader_node != self.contender.node:
            self.on_abort("lost the election while recovering the registry")
            return
        self.master.recover(state)
        self._leads()

    def _session(self, state: str) -> None:
        if self._stopping:
            return
        if state == SUSPENDED:
            if self.master.leading and self._suspended is None:
                log.warn("Lost the connection to ZooKeeper; the session lasts {t}s", t=self.zk.session_timeout)
                self._suspended = self.reactor.callLater(self.zk.session_timeout, self._expired)
        elif state == CONNECTED:
            if self._suspended is not None and self._suspended.active():
                self._suspended.cancel()
            self._suspended = None
            if self._session_lost and not self.master.leading and self.running:
                self._session_lost = False
                self._contend().addErrback(lambda f: log.failure("Could not contend again", f))
        elif state == LOST:
            if self.master.leading:
                self.on_abort("the ZooKeeper session expired")
            else:
                log.warn("The ZooKeeper session expired; contending again once reconnected")
                self.contender.node = None
                self._session_lost = True

    def _expired(self) -> None:
        self._suspended = None
        if self.master.leading:
            self.on_abort(f"disconnected from ZooKeeper for longer than the session timeout "
                          f"({self.zk.session_timeout}s)")

    def stopService(self) -> defer.Deferred:
        super().stopService()
        self._stopping = True
        if self._suspended is not None and self._suspended.active():
            self._suspended.cancel()
        d = self.contender.withdraw()
        d.addBoth(lambda _: self.zk.stop())
        return d
