"""Finding the leading master: a fixed ``host:port``, or ZooKeeper for ``zk://`` URLs.

Used by everything that talks to a master (agents, scheduler drivers, command-line tools) and by
the masters themselves. In ZooKeeper a master's member node holds its MasterInfo as JSON (Mesos's
``json.info_`` layout); :func:`encode_master_info` and :func:`decode_master_info` are that format.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from mesostw.interfaces import IMasterDetector
from mesostw.model.info import MasterInfo
from mesostw.model.validation import ValidationError
from mesostw.zk.election import GroupDetector

log = Logger()


def parse_address(text: str, default_port: int = 5050) -> tuple[str, int]:
    """``host[:port]`` (also ``master@host:port``, as a Mesos pid) into (host, port)."""
    text = text.strip()
    if "@" in text:
        text = text.split("@", 1)[1]
    if text.startswith(("http://", "https://")):
        text = text.split("://", 1)[1].rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(default_port)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid master address {text!r}: expected host:port")
    return host, int(port)


def encode_master_info(info: MasterInfo) -> bytes:
    """A master's member node data."""
    return json.dumps(info.to_json()).encode()


def decode_master_info(data: bytes) -> MasterInfo:
    """The MasterInfo in a member node; ValueError when it holds none (e.g. pre-0.24 protobuf)."""
    try:
        return MasterInfo.from_json(json.loads(data))
    except ValidationError as exc:
        raise ValueError(f"no JSON MasterInfo: {exc}") from None


def same_master(a: MasterInfo, b: MasterInfo) -> bool:
    return (a.id, a.endpoint) == (b.id, b.endpoint)


@implementer(IMasterDetector)
class ZooKeeperMasterDetector(GroupDetector):
    """Follows the masters' group; ``leader`` is the leading master's MasterInfo."""

    leader: MasterInfo | None

    def __init__(self, zk: Any, path: str):
        super().__init__(zk, path, parse=decode_master_info, same=same_master)

    def log_change(self, value: MasterInfo | None, node: str | None) -> None:
        if value is not None:
            log.info("The leading master is {pid} ({node})", pid=value.pid, node=node)
        else:
            log.info("No master is leading")

    def leader_address(self) -> defer.Deferred:
        """Fires with (ip, port) of the leader, waiting until there is one."""
        if self.leader is not None:
            return defer.succeed((self.leader.ip, self.leader.port))
        return self.detect(None).addCallback(lambda info: (info.ip, info.port))


@implementer(IMasterDetector)
class StandaloneMasterDetector(service.Service):
    """The master is wherever ``--master`` says; it never changes."""

    name = "detector"  # type: ignore[assignment]  # twisted declares Service.name as None

    def __init__(self, address: str):
        self.host, self.port = parse_address(address)
        self.listeners: list[Callable[[MasterInfo | None], None]] = []

    @property
    def leader(self) -> MasterInfo:
        return MasterInfo(id="", ip=self.host, port=self.port, hostname=self.host)

    def detect(self, previous: MasterInfo | None = None) -> defer.Deferred:
        if previous is not None and previous.endpoint == self.leader.endpoint:
            return defer.Deferred()  # never changes
        return defer.succeed(self.leader)

    def address(self) -> defer.Deferred:
        return defer.succeed((self.host, self.port))


class ZooKeeperDetectorService(service.Service):
    """Follows the leader elected in ZooKeeper; ``listeners`` hear of every change."""

    name = "detector"  # type: ignore[assignment]  # twisted declares Service.name as None

    def __init__(self, reactor: Any, url: str, session_timeout: float = 10.0):
        from mesostw.zk.client import ZooKeeper
        from mesostw.zk.url import parse_zk_url

        parsed = parse_zk_url(url)
        self.zk = ZooKeeper(reactor, parsed, session_timeout)
        self.detector = ZooKeeperMasterDetector(self.zk, parsed.path)
        self.listeners: list[Callable[[MasterInfo | None], None]] = []
        self.detector.listeners.append(self._changed)

    def _changed(self, info: MasterInfo | None, node: str | None) -> None:
        for listener in list(self.listeners):
            listener(info)

    @property
    def leader(self) -> MasterInfo | None:
        return self.detector.leader

    def startService(self) -> None:
        super().startService()
        d = self.zk.start()
        d.addCallback(lambda _: self.detector.start())

    def stopService(self) -> defer.Deferred:
        super().stopService()
        return self.zk.stop()

    def detect(self, previous: MasterInfo | None = None) -> defer.Deferred:
        return self.detector.detect(previous)

    def address(self) -> defer.Deferred:
        return self.detector.leader_address()


def detector_for(reactor: Any, master: str, session_timeout: float = 10.0) -> Any:
    """The detector for a ``--master`` value (``host:port``, ``zk://...``, or ``file://`` holding either)."""
    from mesostw.flags import read_value
    from mesostw.zk.url import is_zk

    if is_zk(master):
        return ZooKeeperDetectorService(reactor, master, session_timeout)
    return StandaloneMasterDetector(read_value(master))


def find_leader(url: str, timeout: float = 10.0) -> MasterInfo:
    """Look the leading master up once, blocking (for command-line tools, as ``mesos-resolve``)."""
    from mesostw.zk.election import find_leader_data

    try:
        node, data = find_leader_data(url, timeout)
    except LookupError as exc:
        raise LookupError(str(exc).replace("no leader is elected", "no master is elected")) from None
    try:
        return decode_master_info(data)
    except ValueError:
        raise LookupError(f"the leader's node {node} holds no JSON MasterInfo") from None
