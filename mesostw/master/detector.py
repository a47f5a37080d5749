"""Finding the leading master: a fixed ``host:port``, or ZooKeeper for ``zk://`` URLs."""

from __future__ import annotations

from typing import Any, Callable

from twisted.application import service
from twisted.internet import defer
from zope.interface import implementer

from mesostw.interfaces import IMasterDetector
from mesostw.model.info import MasterInfo


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


@implementer(IMasterDetector)
class StandaloneMasterDetector(service.Service):
    """The master is wherever ``--master`` says; it never changes."""

    def __init__(self, address: str):
        self.setName("detector")
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

    def __init__(self, reactor: Any, url: str, session_timeout: float = 10.0):
        self.setName("detector")
        from mesostw.zk.client import ZooKeeper
        from mesostw.zk.election import ZooKeeperMasterDetector
        from mesostw.zk.url import parse_zk_url

        parsed = parse_zk_url(url)
        self.zk = ZooKeeper(reactor, parsed, session_timeout)
        self.detector = ZooKeeperMasterDetector(self.zk, parsed.path)
        self.listeners: list[Callable[[MasterInfo | None], None]] = []
        self.detector.listeners.append(self._leader_changed)

    @property
    def leader(self) -> MasterInfo | None:
        return self.detector.leader

    def _leader_changed(self, info: MasterInfo | None, node: str | None) -> None:
        for listener in list(self.listeners):
            listener(info)

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
