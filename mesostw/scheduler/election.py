"""Leader election for standalone frameworks: several instances, one leads, the others proxy to it.

:class:`IElection` is all a :class:`~mesostw.scheduler.standalone.StandaloneFramework` needs. Without
``--zk`` an instance is :class:`Unopposed`; with it, a :class:`GroupElection` contends the way Mesos
masters do: each instance creates an ephemeral sequential ``<path>/member_NNNNNNNNNN`` node holding
its API address, and the lowest sequence number leads. Leadership is never handed back: an instance
that loses its session exits (the host's job), so there is no "lost" signal.

A GroupElection joins a contender (puts the node in) and a group detector (watches who leads). The
two here (:class:`Contender`, :class:`GroupDetector`) are interim: they have the API of the generic
ones of ``mesostw.zk.election``, which replace them in :func:`zookeeper_election`, the one place
that builds an election.
"""

from __future__ import annotations

from collections.abc import Callable
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


def zookeeper_election(zk: Any, path: str) -> GroupElection:
    """The election among the instances under ``path`` (the one place that builds it)."""
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
        if node is not None and node == self.contender.node and not self.leading:
            log.info("Elected as the leading instance ({node})", node=node)
            self._won()

    def leader(self) -> bytes | None:
        if self.leading or self.detector.leader_node == self.contender.node:
            return None
        return self.detector.leader

    def withdraw(self) -> defer.Deferred:
        return self.contender.withdraw()


class Contender:
    """Puts ``data`` into the group at ``path`` as an ephemeral sequential member (interim)."""

    def __init__(self, zk: Any, path: str, data: bytes = b"", label: str = MEMBER):
        self.zk = zk
        self.path = path.rstrip("/") or "/"
        self.data = data
        self.label = label
        self.node: str | None = None

    @defer.inlineCallbacks
    def contend(self, data: bytes | None = None) -> Any:
        if data is not None:
            self.data = data
        yield self.zk.ensure_path(self.path)
        created = yield self.zk.create(f"{self.path.rstrip('/')}/{self.label}", self.data, ephemeral=True,
                                       sequence=True)
        self.node = created.rsplit("/", 1)[1]
        log.info("Contending for leadership under {path} as {node}", path=self.path, node=self.node)
        return self.node

    @property
    def node_path(self) -> str | None:
        return f"{self.path.rstrip('/')}/{self.node}" if self.node else None

    def withdraw(self) -> defer.Deferred:
        path, self.node = self.node_path, None
        if path is None:
            return defer.succeed(None)
        return self.zk.delete(path).addErrback(lambda _: None)


class GroupDetector:
    """Watches the group at ``path``: ``leader`` is the lowest member's data, ``leader_node`` its name;
    ``listeners`` hear ``(leader, node)`` on every change (interim)."""

    def __init__(self, zk: Any, path: str, labels: tuple[str, ...] = (MEMBER,)):
        self.zk = zk
        self.path = path.rstrip("/") or "/"
        self.labels = labels
        self.leader: bytes | None = None
        self.leader_node: str | None = None
        self.listeners: list[Callable[[bytes | None, str | None], None]] = []
        self._generation = 0
        self._watch: Any = None

    @defer.inlineCallbacks
    def start(self) -> Any:
        yield self.zk.ensure_path(self.path)
        self._watch = self.zk.watch_children(self.path, self._children)

    def _children(self, children: list[str]) -> None:
        members = sorted((name[len(label):], name) for name in children for label in self.labels
                         if name.startswith(label) and name[len(label):].isdigit())
        node = members[0][1] if members else None
        if node == self.leader_node and (node is None or self.leader is not None):
            return
        self._generation += 1
        generation = self._generation
        if node is None:
            self._set(None, None)
            return
        d = self.zk.get(f"{self.path.rstrip('/')}/{node}")
        d.addCallbacks(lambda result: self._fetched(generation, node, result[0]),
                       lambda failure: self._fetched(generation, None, None))

    def _fetched(self, generation: int, node: str | None, data: bytes | None) -> None:
        if generation == self._generation:
            self._set(data, node)

    def _set(self, data: bytes | None, node: str | None) -> None:
        self.leader, self.leader_node = data, node
        log.info("The leader under {path} is {node} ({value!r})", path=self.path, node=node, value=data)
        for listener in list(self.listeners):
            listener(data, node)
