"""Forwarding to the leader over real loopback HTTP: requests intact, answers streamed back."""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any

from twisted.internet import defer, protocol, reactor
from twisted.trial import unittest
from twisted.web import client, server
from twisted.web.http_headers import Headers

from mesostw.http.proxy import ReverseProxy
from mesostw.http.router import Router, read_body
from mesostw.wire.listen import Listener
from tests.helpers.processes import free_port, wait_for


class Leader:
    """The instance that answers: an echo endpoint and an endless event stream."""

    def __init__(self) -> None:
        self.streams: list[server.Request] = []
        self.closed: list[server.Request] = []
        self.router = Router()
        self.router.route("/v2/echo/{what}", self.echo, methods=("GET", "POST", "PUT", "DELETE"))
        self.router.route("/v2/events", self.events)

    def echo(self, request: server.Request, what: str) -> Any:
        request.setResponseCode(201)
        request.setHeader("X-Leader", "yes")
        headers = {name.decode().lower(): values[-1].decode() for name, values in
                   request.requestHeaders.getAllRawHeaders()}
        return {"method": request.method.decode(), "uri": request.uri.decode(), "what": what,
                "body": read_body(request, 1 << 20).decode(), "headers": headers}

    def events(self, request: server.Request) -> Any:
        request.setHeader("Content-Type", "text/event-stream")
        request.write(b"event: hello\ndata: one\n\n")
        self.streams.append(request)
        request.notifyFinish().addBoth(lambda _: self.closed.append(request))
        return server.NOT_DONE_YET


class Collect(protocol.Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.lost: Any = None

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = reason


class ReverseProxyTests(unittest.TestCase):
    def setUp(self) -> None:
        self.leader = Leader()
        self.leader_port = self.listen(self.leader.router)
        self.proxy = ReverseProxy(reactor, "probe@follower")
        follower = Router()
        follower.filter(lambda request: self.proxy.forward(request, f"127.0.0.1:{self.leader_port}"))
        follower.mount("", Router())  # the standby's own routes, never reached (filters run after routing)
        self.follower_port = self.listen(follower)
        self.agent = client.Agent(reactor, pool=client.HTTPConnectionPool(reactor, persistent=False))

    def listen(self, site: Any) -> int:
        listener = Listener(reactor, "127.0.0.1", 0, site)
        listener.startService()
        self.addCleanup(listener.stopService)
        return listener.port

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> defer.Deferred:
        producer = client.FileBodyProducer(BytesIO(body)) if body is not None else None
        return self.agent.request(method.encode(), f"http://127.0.0.1:{self.follower_port}{path}".encode(),
                                  Headers({k.encode(): [v.encode()] for k, v in (headers or {}).items()}), producer)

    @defer.inlineCallbacks
    def test_the_request_arrives_whole_and_the_answer_comes_back(self) -> Any:
        """Method, path, query, body and headers (credentials included) reach the leader; its status,
        headers and body come back; the leader sees that the request was forwarded and for whom."""
        response = yield self.request("PUT", "/v2/echo/app%201?force=true", b'{"cmd": "sleep 1"}',
                                      {"Content-Type": "application/json", "X-Custom": "kept",
                                       "Authorization": "Basic b3BzOnMzY3JldA==", "Connection": "close"})
        body = json.loads((yield client.readBody(response)))
        self.assertEqual(response.code, 201)
        self.assertEqual(response.headers.getRawHeaders(b"x-leader"), [b"yes"])
        self.assertEqual((body["method"], body["uri"], body["what"], body["body"]),
                         ("PUT", "/v2/echo/app%201?force=true", "app 1", '{"cmd": "sleep 1"}'))
        headers = body["headers"]
        self.assertEqual((headers["x-custom"], headers["content-type"]), ("kept", "application/json"))
        self.assertEqual(headers["authorization"], "Basic b3BzOnMzY3JldA==")
        self.assertEqual(headers["x-mesostw-forwarded-by"], "probe@follower")
        self.assertEqual(headers["x-forwarded-for"], "127.0.0.1")
        self.assertEqual(headers["host"], f"127.0.0.1:{self.leader_port}")

    @defer.inlineCallbacks
    def test_event_streams_flow_through_and_stop_with_the_client(self) -> Any:
        """An event stream reaches the client event by event while it stays open; when the client
        goes away, the forwarded request to the leader is closed too."""
        response = yield self.request("GET", "/v2/events", headers={"Accept": "text/event-stream"})
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"text/event-stream"])
        reader = Collect()
        response.deliverBody(reader)
        yield wait_for(lambda: b"data: one" in reader.data, 10, what="the first event through the proxy")
        (stream,) = self.leader.streams
        stream.write(b"data: two\n\n")
        yield wait_for(lambda: b"data: two" in reader.data, 10, what="a later event through the proxy")
        self.assertEqual(self.leader.closed, [])
        reader.transport.stopProducing()
        yield wait_for(lambda: self.leader.closed, 10, what="the leader's stream to close")

    @defer.inlineCallbacks
    def test_an_unreachable_leader_is_a_502_with_a_message(self) -> Any:
        """When the leader cannot be reached the client gets 502 and a JSON message naming it."""
        nowhere = free_port()
        proxy = ReverseProxy(reactor, "probe@follower", connect_timeout=5)
        router = Router()
        router.filter(lambda request: proxy.forward(request, f"127.0.0.1:{nowhere}"))
        router.mount("", Router())
        port = self.listen(router)
        response = yield self.agent.request(b"GET", f"http://127.0.0.1:{port}/v2/apps".encode())
        body = json.loads((yield client.readBody(response)))
        self.assertEqual(response.code, 502)
        self.assertIn(f"127.0.0.1:{nowhere} cannot be reached", body["message"])

    @defer.inlineCallbacks
    def test_a_forwarded_request_is_not_forwarded_again(self) -> Any:
        """Two standbys that each think the other leads do not bounce a request: the second answers 503."""
        response = yield self.request("GET", "/v2/echo/x", headers={"X-Mesostw-Forwarded-By": "probe@other"})
        body = json.loads((yield client.readBody(response)))
        self.assertEqual(response.code, 503)
        self.assertIn("does not lead either", body["message"])

    @defer.inlineCallbacks
    def test_a_leader_speaking_tls_is_reached_over_tls(self) -> Any:
        """With TLS on (the process's settings), the leader is reached over HTTPS, its certificate
        checked against the CA."""
        from mesostw.auth.tls import TLSConfig
        from tests.helpers.tls import pki

        files = pki()
        tls = TLSConfig(enabled=True, cert_file=files.server_cert, key_file=files.server_key, ca_file=files.ca_file)
        leader = Listener(reactor, "127.0.0.1", 0, self.leader.router, tls=tls)
        leader.startService()
        self.addCleanup(leader.stopService)
        proxy = ReverseProxy(reactor, "probe@follower", tls=tls)
        router = Router()
        router.filter(lambda request: proxy.forward(request, f"127.0.0.1:{leader.port}"))
        router.mount("", Router())
        port = self.listen(router)
        response = yield self.agent.request(b"GET", f"http://127.0.0.1:{port}/v2/echo/x".encode())
        body = json.loads((yield client.readBody(response)))
        self.assertEqual((response.code, body["what"]), (201, "x"))
