"""Leader election for standalone frameworks: several instances, one leads, the others proxy to it.

:class:`IElection` is all a :class:`~mesostw.scheduler.standalone.StandaloneFramework` needs. Without
``--zk`` an instance is :class:`Unopposed`; with it, a :class:`GroupElection` contends the way Mesos
masters do: each instance creates an ephemeral sequential ``<path>/member_NNNNNNNNNN`` node holding
its API address, and the lowest sequence number leads. Leadership is never handed back: an instance
that loses its session exits (the host's job). An instance whose node goes while its session lives
on (removed by hand, or by a session that expired and was replaced) is told by :meth:`whenDeposed`,
and its host exits too: its store writes are fenced off from then on.

A GroupElection joins a generic contender (puts the node in) and a group detector (watches who
leads), both from :mod:`mesostw.zk.election`.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

log = Logger()

MEMBER = "member_"


class IElection(Interface):
    """One instance's part in an election among instances of the same framework."""

    leading = Attribute("True once this instance was elected (it stays so while the process lives).")
    fence = Attribute("The path of this instance's election node, which fences its store writes; None before "
                      "it contends or once the node is gone; '' when there is nothing to fence on.")

    def contend(data):
        """Join with ``data`` (bytes: this instance's API address); fires once the node exists."""

    def whenElected():
        """A Deferred firing once this instance leads (at once if it already does)."""

    def whenDeposed():
        """A Deferred firing if this instance, having led, finds its election node gone; never fires
        for an instance that never led, that withdrew, or that has no rivals."""

    def leader():
        """The leading instance's data (bytes) when another instance leads; None otherwise."""

    def withdraw():
        """Leave the election (on a clean stop); fires once the node is removed."""


class _Elected:
    """Deferreds waiting for the election to be won, or lost again."""

    leading = False
    deposed = False

    def __init__(self) -> None:
        self._waiters: list[defer.Deferred] = []
        self._deposed_waiters: list[defer.Deferred] = []

    def whenDeposed(self) -> defer.Deferred:
        if self.deposed:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._deposed_waiters.append(d)
        return d

    def _lost(self) -> None:
        self.deposed = True
        waiters, self._deposed_waiters = self._deposed_waiters, []
        for d in waiters:
            d.callback(None)

    def whenElected(self) -> defer.Deferred:
        if self.leading:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._waiters.append(d)
        return d

    def _won(self) -> None:
        self.leading = True
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)


@implementer(IElection)
class Unopposed(_Elected):
    """The only instance: it leads as soon as it contends."""

    fence = ""

    def contend(self, data: bytes) -> defer.Deferred:
        self._won()
        return defer.succeed(None)

    def leader(self) -> bytes | None:
        return None

    def withdraw(self) -> defer.Deferred:
        return defer.succeed(None)


def zookeeper_election(zk: Any, path: str) -> GroupElection:
    """The election among the instances under ``path`` (the one place that builds it)."""
    from mesostw.zk.election import Contender, GroupDetector

    return GroupElection(Contender(zk, path, label=MEMBER), GroupDetector(zk, path, labels=(MEMBER,)))


@implementer(IElection)
class GroupElection(_Elected):
    """This instance's contender and a detector of the group's leader: elected when the leader's
    node is our own."""

    def __init__(self, contender: Any, detector: Any):
        super().__init__()
        self.contender = contender
        self.detector = detector
        detector.listeners.append(self._changed)

    @property
    def fence(self) -> str | None:
        return self.contender.node_path

    @defer.inlineCallbacks
    def contend(self, data: bytes) -> Any:
        yield self.contender.contend(data)
        yield self.detector.start()

    def _changed(self, value: Any, node: str | None) -> None:
        mine = self.contender.node
        if node is not None and node == mine and not self.leading:
            log.info("Elected as the leading instance ({node})", node=node)
            self._won()
        elif self.leading and mine is not None and node != mine and not self.deposed:
            log.warn("This instance's election node {mine} is gone (the leader is {node})", mine=mine,
                     node=node or "unknown")
            self._lost()

    def leader(self) -> bytes | None:
        if self.leading or self.detector.leader_node == self.contender.node:
            return None
        return self.detector.leader

    def withdraw(self) -> defer.Deferred:
        return self.contender.withdraw()
