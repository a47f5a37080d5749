"""Leader election for standalone frameworks: several instances, one leads, the others proxy to it.

:class:`IElection` is all a :class:`~mesostw.scheduler.standalone.StandaloneHost` needs. Without
``--zk`` an instance is :class:`Unopposed`; with it, :class:`ZooKeeperElection` contends the way
Mesos masters do: each instance creates an ephemeral sequential ``<path>/member_NNNNNNNNNN`` node
holding its API address, and the lowest sequence number leads. Leadership is never handed back:
an instance that loses its session exits (the host's job), so there is no "lost" signal.

``ZooKeeperElection`` is the interim provider; the generic ``mesostw.zk.election.Contender``
replaces it (through :func:`zookeeper_election`, the one place that builds it) once it lands.
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

    def leader():
        """The leading instance's data (bytes) when another instance leads; None otherwise."""

    def withdraw():
        """Leave the election (on a clean stop); fires once the node is removed."""


class _Elected:
    """Deferreds waiting for the election to be won."""

    leading = False

    def __init__(self) -> None:
        self._waiters: list[defer.Deferred] = []

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


def zookeeper_election(zk: Any, path: str) -> Any:
    """The election among the instances under ``path`` (the one place that builds it)."""
    return ZooKeeperElection(zk, path)


@implementer(IElection)
class ZooKeeperElection(_Elected):
    """Ephemeral sequential member nodes under ``path``; the lowest leads."""

    def __init__(self, zk: Any, path: str):
        super().__init__()
        self.zk = zk
        self.path = path.rstrip("/") or "/"
        self.node: str | None = None
        self._leader_node: str | None = None
        self._leader_data: bytes | None = None
        self._generation = 0
        self._watch: Any = None

    @property
    def fence(self) -> str | None:
        return f"{self.path.rstrip('/')}/{self.node}" if self.node else None

    @defer.inlineCallbacks
    def contend(self, data: bytes) -> Any:
        yield self.zk.ensure_path(self.path)
        created = yield self.zk.create(f"{self.path.rstrip('/')}/{MEMBER}", data, ephemeral=True, sequence=True)
        self.node = created.rsplit("/", 1)[1]
        log.info("Contending for leadership as {node} under {path}", node=self.node, path=self.path)
        self._watch = self.zk.watch_children(self.path, self._children)
        return self.node

    def _children(self, children: list[str]) -> None:
        members = sorted(name for name in children if name.startswith(MEMBER))
        first = members[0] if members else None
        if first == self._leader_node:
            return
        self._leader_node, self._leader_data = first, None
        self._generation += 1
        if first is None:
            log.info("No instance leads under {path}", path=self.path)
        elif first == self.node:
            if not self.leading:
                log.info("Elected as the leading instance ({node})", node=self.node)
                self._won()
        else:
            generation = self._generation
            d = self.zk.get(f"{self.path.rstrip('/')}/{first}")
            d.addCallbacks(lambda result: self._fetched(generation, first, result[0]),
                           lambda failure: self._fetched(generation, first, None))

    def _fetched(self, generation: int, node: str, data: bytes | None) -> None:
        if generation == self._generation:
            self._leader_data = data
            if data is not None:
                log.info("The leading instance is {address} ({node})", address=data.decode("utf-8", "replace"),
                         node=node)

    def leader(self) -> bytes | None:
        if self.leading or self._leader_node == self.node:
            return None
        return self._leader_data

    def withdraw(self) -> defer.Deferred:
        path, self.node = self.fence, None
        if path is None:
            return defer.succeed(None)
        return self.zk.delete(path).addErrback(lambda _: None)
