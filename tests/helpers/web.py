"""An HTTP/1.0 client for a Twisted Site over an in-memory transport: real HTTP parsing, no sockets."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web import resource, server


class Reply:
    """A parsed response: ``code``, lower-cased ``headers`` and ``body`` bytes."""

    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.code = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """Sends one request per connection to ``root`` and returns the :class:`Reply`."""

    def __init__(self, root: resource.IResource, clock: task.Clock | None = None) -> None:
        self.clock = clock or task.Clock()
        self.site = server.Site(root, reactor=self.clock)

    def request(self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Reply:
        channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport()
        channel.makeConnection(transport)
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        head = f"{method} {target} HTTP/1.0\r\nHost: mesos\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        channel.dataReceived(head.encode() + body)
        for _ in range(100):
            if transport.disconnecting:
                break
            if transport.producer is not None and not transport.streaming:
                transport.producer.resumeProducing()  # a pull producer, e.g. static.File's
            self.clock.advance(0)
        assert transport.disconnecting, "the response never finished"
        channel.connectionLost(Failure(ConnectionDone()))
        return Reply(transport.value())

    def get(self, target: str) -> Reply:
        return self.request("GET", target)

    def get_json(self, target: str) -> Any:
        reply = self.get(target)
        assert reply.code == 200, (target, reply.code, reply.body)
        assert reply.headers["content-type"] == "application/json", reply.headers
        return reply.json()
