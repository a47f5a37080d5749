"""Finding the leading master: a fixed address (``host:port``)."""

from __future__ import annotations

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
class StandaloneMasterDetector:
    """The master is wherever ``--master`` says; it never changes."""

    def __init__(self, address: str):
        self.host, self.port = parse_address(address)

    def detect(self, previous: MasterInfo | None = None) -> defer.Deferred:
        info = MasterInfo(id="", ip=self.host, port=self.port, hostname=self.host)
        if previous is not None and previous.endpoint == info.endpoint:
            return defer.Deferred()  # never changes
        return defer.succeed(info)

    def address(self) -> tuple[str, int]:
        return self.host, self.port
