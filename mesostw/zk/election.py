"""Electing and finding the leading master, as Mesos does it in ZooKeeper.

Each master creates an ephemeral sequential ``<path>/json.info_NNNNNNNNNN``
node holding its MasterInfo as JSON; the lowest sequence number leads. Other
children (``log_replicas``, foreign nodes) are ignored; older ``info_`` nodes
count in the order but their binary payload cannot be read here.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from mesostw.interfaces import IMasterDetector
from mesostw.model.info import MasterInfo
from mesostw.model.validation import ValidationError
from mesostw.zk.client import ZooKeeper

log = Logger()

LABEL = "json.info_"
_MEMBER = re.compile(r"^(json\.info_|info_)?(\d{10})$")


def sequence(name: str) -> int | None:
    match = _MEMBER.match(name)
    return int(match.group(2)) if match else None


def leader_of(children: list[str]) -> str | None:
    """The member node with the lowest sequence number (Mesos's leader)."""
    members = [(seq, name) for name in children if (seq := sequence(name)) is not None]
    return min(members)[1] if members else None


class MasterContender:
    """Puts this master's MasterInfo into the group."""

    def __init__(self, zk: ZooKeeper, path: str):
        self.zk = zk
        self.path = path.rstrip("/") or "/"
        self.node: str | None = None

    @defer.inlineCallbacks
    def contend(self, info: MasterInfo) -> Any:
        """Create our member node; fires with its name (e.g. ``json.info_0000000003``)."""
        yield self.zk.ensure_path(self.path)
        prefix = f"{self.path.rstrip('/')}/{LABEL}"
        created = yield self.zk.create(prefix, json.dumps(info.to_json()).encode(), ephemeral=True, sequence=True)
        self.node = created.rsplit("/", 1)[1]
        log.info("Contending for leadership as {node}", node=self.node)
        return self.node

    @property
    def node_path(self) -> str | None:
        return f"{self.path.rstrip('/')}/{self.node}" if self.node else None

    def withdraw(self) -> defer.Deferred:
        path, self.node = self.node_path, None
        if path is None:
            return defer.succeed(None)
        return self.zk.delete(path).addErrback(lambda _: None)


@implementer(IMasterDetector)
class ZooKeeperMasterDetector:
    """Watches the group and tells who leads; ``on_change(info, node)`` is called on every change."""

    def __init__(self, zk: ZooKeeper, path: str):
        self.zk = zk
        self.path = path.rstrip("/") or "/"
        self.leader: MasterInfo | None = None
        self.leader_node: str | None = None
        self.listeners: list[Callable[[MasterInfo | None, str | None], None]] = []
        self._waiters: list[tuple[MasterInfo | None, defer.Deferred]] = []
        self._watch: Any = None
        self._generation = 0
        self._seen = False

    @defer.inlineCallbacks
    def start(self) -> Any:
        yield self.zk.ensure_path(self.path)
        self._watch = self.zk.watch_children(self.path, self._children)

    def _children(self, children: list[str]) -> None:
        node = leader_of(children)
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
            info = MasterInfo.from_json(json.loads(data))
        except (ValueError, ValidationError) as exc:
            log.warn("Leader node {node} holds no readable JSON MasterInfo ({e})", node=node, e=exc)
            info = None
        self._set(info, node)

    def _fetch_failed(self, generation: int, node: str, failure: Any) -> None:
        if generation == self._generation:
            log.info("Leader node {node} vanished before it could be read", node=node)
            self._set(None, None)

    def _set(self, info: MasterInfo | None, node: str | None) -> None:
        self.leader, self.leader_node = info, node
        if info is not None:
            log.info("The leading master is {pid} ({node})", pid=info.pid, node=node)
        else:
            log.info("No master is leading")
        for listener in list(self.listeners):
            listener(info, node)
        waiters, self._waiters = self._waiters, []
        for previous, d in waiters:
            if _differs(previous, info):
                d.callback(info)
            else:
                self._waiters.append((previous, d))

    def detect(self, previous: MasterInfo | None = None) -> defer.Deferred:
        """Fires with the leader once it differs from ``previous`` (None: no leader)."""
        if _differs(previous, self.leader):
            return defer.succeed(self.leader)
        d: defer.Deferred = defer.Deferred()
        self._waiters.append((previous, d))
        return d

    def leader_address(self) -> defer.Deferred:
        """Fires with (ip, port) of the leader, waiting until there is one."""
        if self.leader is not None:
            return defer.succeed((self.leader.ip, self.leader.port))
        return self.detect(None).addCallback(lambda info: (info.ip, info.port))


def _differs(a: MasterInfo | None, b: MasterInfo | None) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    return (a.id, a.endpoint) != (b.id, b.endpoint)


def find_leader(url: str, timeout: float = 10.0) -> MasterInfo:
    """Look the leading master up once, blocking (for command-line tools, as ``mesos-resolve``)."""
    from kazoo.client import KazooClient

    from mesostw.zk.url import parse_zk_url

    parsed = parse_zk_url(url)
    client = KazooClient(hosts=parsed.hosts, timeout=timeout, auth_data=[parsed.auth] if parsed.auth else None)
    try:
        client.start(timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - kazoo's own timeout type
        raise LookupError(f"cannot reach ZooKeeper at {parsed.hosts}: {exc}") from None
    try:
        node = leader_of(client.get_children(parsed.path)) if client.exists(parsed.path) else None
        if node is None:
            raise LookupError(f"no master is elected under {parsed}")
        data, _ = client.get(f"{parsed.path.rstrip('/')}/{node}")
        try:
            return MasterInfo.from_json(json.loads(data))
        except (ValueError, ValidationError):
            raise LookupError(f"the leader's node {node} holds no JSON MasterInfo") from None
    finally:
        client.stop()
        client.close()
