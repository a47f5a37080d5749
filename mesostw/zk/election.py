"""Leader election in ZooKeeper, as Mesos does it, for any group: masters, or a framework's instances.

Each contender creates an ephemeral sequential ``<path>/<label>NNNNNNNNNN`` node holding its data;
the lowest sequence number leads. A detector watches the group and reads the leader's data.
Other children (``log_replicas``, a ``registry``, foreign nodes) are ignored. Masters use Mesos's
layout (label ``json.info_``, MasterInfo JSON; older ``info_`` nodes count in the order): see
:mod:`mesostw.detector`. A framework run on its own uses e.g. ``<zk path>/leader`` with its API
address as data. The contender's :attr:`Contender.node_path` is what a fenced store checks.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from mesostw.zk.client import ZooKeeper

log = Logger()

#: The label of Mesos's JSON member nodes.
LABEL = "json.info_"
#: The labels a Mesos master group's members have: JSON, pre-0.24 protobuf, and bare sequences.
MESOS_LABELS: tuple[str, ...] = (LABEL, "info_", "")


def _pattern(labels: Sequence[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True))
    return re.compile(rf"^(?:{alternatives})(\d{{10}})$")


_MESOS = _pattern(MESOS_LABELS)


def sequence(name: str, labels: Sequence[str] = MESOS_LABELS) -> int | None:
    """The sequence number of a member node, or None for a child that is no member."""
    match = (_MESOS if labels is MESOS_LABELS else _pattern(labels)).match(name)
    return int(match.group(1)) if match else None


def leader_of(children: list[str], labels: Sequence[str] = MESOS_LABELS) -> str | None:
    """The member node with the lowest sequence number (whatever its label)."""
    members = [(seq, name) for name in children if (seq := sequence(name, labels)) is not None]
    return min(members)[1] if members else None


class Contender:
    """Puts ``data`` into the group at ``path`` as an ephemeral sequential member."""

    def __init__(self, zk: ZooKeeper, path: str, data: bytes = b"", label: str = LABEL):
        self.zk = zk
        self.path = path.rstrip("/") or "/"
        self.data = data
        self.label = label
        self.node: str | None = None

    @defer.inlineCallbacks
    def contend(self, data: bytes | None = None) -> Any:
        """Create our member node (with ``data`` when given); fires with its name (``json.info_0000000003``)."""
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
        """The member node's full path while contending (the fence of the leader's writes)."""
        return f"{self.path.rstrip('/')}/{self.node}" if self.node else None

    def withdraw(self) -> defer.Deferred:
        path, self.node = self.node_path, None
        if path is None:
            return defer.succeed(None)
        return self.zk.delete(path).addErrback(lambda _: None)


class GroupDetector:
    """Watches a group and tells who leads: ``leader`` is the leader's data as ``parse`` made it (None
    when there is no leader or its data does not parse), ``leader_node`` its node. ``on_change(value,
    node)`` listeners hear of every change; ``same`` decides which changes wake ``detect`` waiters."""

    def __init__(self, zk: ZooKeeper, path: str, parse: Callable[[bytes], Any] = bytes,
                 same: Callable[[Any, Any], bool] = operator.eq, labels: Sequence[str] = MESOS_LABELS):
        self.zk = zk
        self.path = path.rstrip("/") or "/"
        self.parse = parse
        self.same = same
        self.labels = labels
        self.leader: Any = None
        self.leader_node: str | None = None
        self.listeners: list[Callable[[Any, str | None], None]] = []
        self._waiters: list[tuple[Any, defer.Deferred]] = []
        self._watch: Any = None
        self._generation = 0
        self._seen = False

    @defer.inlineCallbacks
    def start(self) -> Any:
        yield self.zk.ensure_path(self.path)
        self._watch = self.zk.watch_children(self.path, self._children)

    def _children(self, children: list[str]) -> None:
        node = leader_of(children, self.labels)
        if self._seen and node == self.leader_node and (node is None or self.leader is not None):
            return
        self._seen = True
        self._generation += 1
        generation = self._generation
        if node is None:
            self._set(None, None)
            return
        d = self.zk.get(f"{self.path.rstrip('/')}/{node}")
        d.addCallbacks(lambda result: self._fetched(generation, node, result[0]),
                       lambda failure: self._fetch_failed(generation, node, failure))

    def _fetched(self, generation: int, node: str, data: bytes) -> None:
        if generation != self._generation:
            return
        try:
            value = self.parse(data)
        except ValueError as exc:
            log.warn("The leader's node {node} holds unreadable data ({e})", node=node, e=exc)
            value = None
        self._set(value, node)

    def _fetch_failed(self, generation: int, node: str, failure: Any) -> None:
        if generation == self._generation:
            log.info("Leader node {node} vanished before it could be read", node=node)
            self._set(None, None)

    def _set(self, value: Any, node: str | None) -> None:
        self.leader, self.leader_node = value, node
        self.log_change(value, node)
        for listener in list(self.listeners):
            listener(value, node)
        waiters, self._waiters = self._waiters, []
        for previous, d in waiters:
            if self._differs(previous, value):
                d.callback(value)
            else:
                self._waiters.append((previous, d))

    def log_change(self, value: Any, node: str | None) -> None:
        """Say who leads now (a group of masters says it in Mesos's words)."""
        if value is not None:
            log.info("The leader under {path} is {node} ({value!r})", path=self.path, node=node, value=value)
        else:
            log.info("No leader under {path}", path=self.path)

    def _differs(self, a: Any, b: Any) -> bool:
        if a is None or b is None:
            return (a is None) != (b is None)
        return not self.same(a, b)

    def detect(self, previous: Any = None) -> defer.Deferred:
        """Fires with the leader once it differs from ``previous`` (None: no leader)."""
        if self._differs(previous, self.leader):
            return defer.succeed(self.leader)
        d: defer.Deferred = defer.Deferred()
        self._waiters.append((previous, d))
        return d


def find_leader_data(url: str, timeout: float = 10.0, labels: Sequence[str] = MESOS_LABELS) -> tuple[str, bytes]:
    """The leading member of the group a ``zk://`` URL names, once and blocking (for command-line
    tools): (node name, data). LookupError when ZooKeeper cannot be reached or nobody leads."""
    from kazoo.client import KazooClient

    from mesostw.zk.url import parse_zk_url

    parsed = parse_zk_url(url)
    client = KazooClient(hosts=parsed.hosts, timeout=timeout, auth_data=[parsed.auth] if parsed.auth else None)
    try:
        client.start(timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - kazoo's own timeout type
        raise LookupError(f"cannot reach ZooKeeper at {parsed.hosts}: {exc}") from None
    try:
        node = leader_of(client.get_children(parsed.path), labels) if client.exists(parsed.path) else None
        if node is None:
            raise LookupError(f"no leader is elected under {parsed}")
        data, _ = client.get(f"{parsed.path.rstrip('/')}/{node}")
        return node, data
    finally:
        client.stop()
        client.close()
