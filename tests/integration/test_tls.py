"""TLS on the one port, with real sockets on 127.0.0.1 and no master.

A :class:`Listener` serves a one-route router, a PB root with ``remote_echo`` and a record echo
on the command executor's preamble, all inside TLS. Clients: Twisted's HTTP ``Agent``, the PB
:class:`Connector`, the CLI's blocking HTTPS and the command executor's socket (both run in a
thread, as they block).
"""

from __future__ import annotations

import os
import selectors
import ssl
import time
from typing import Any
from unittest import mock

from OpenSSL import SSL
from twisted.internet import defer, protocol, reactor, threads
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.spread import pb
from twisted.trial import unittest
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from mesostw.auth.tls import TLSConfig
from mesostw.cli import http as cli_http
from mesostw.cli.errors import CLIError
from mesostw.executor import command
from mesostw.http.router import Router
from mesostw.wire.connector import Connector
from mesostw.wire.listen import Listener
from mesostw.wire.pb import ClientFactory
from tests.helpers.processes import wait_for
from tests.helpers.tls import pki


class EchoRoot(pb.Root):
    def remote_echo(self, value: Any) -> Any:
        return value


class RecordEcho(protocol.Protocol):
    """Stands in for the agent's executor stream: sends back whatever arrives."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


@implementer(IPolicyForHTTPS)
class TLSPolicy:
    """Lets Twisted's HTTP Agent use a TLSConfig's client options (optionally for another name)."""

    def __init__(self, tls: TLSConfig, hostname: str | None = None):
        self.tls, self.hostname = tls, hostname

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return self.tls.client_options(self.hostname or hostname.decode())


def _router() -> Router:
    router = Router()
    router.route("/hello", lambda request: {"hello": "tls"})
    return router


def _executor_exchange(port: int, environ: dict[str, str]) -> list[dict[str, Any]]:
    """As the command executor does: connect, send one record, read events with receive()."""
    sock = command.connect(("127.0.0.1", port), command.tls_context(environ))
    try:
        sock.sendall(command.PREAMBLE + command.record(b'{"type": "HEARTBEAT"}'))
        sock.settimeout(None)
        reader = command.RecordReader()
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if selector.select(deadline - time.monotonic()):
                    data, closed = command.receive(sock)
                    events = reader.feed(data)
                    if events:
                        return events
                    if closed:
                        raise ConnectionError("the server closed the connection")
        raise TimeoutError("no answer within 10 seconds")
    finally:
        sock.close()


class TLSListenerTests(unittest.TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.pki = pki()
        self.listener = self.listen(self.pki.server())
        self.pools: list[HTTPConnectionPool] = []

    def listen(self, tls: TLSConfig) -> Listener:
        others = {command.PREAMBLE: protocol.Factory.forProtocol(RecordEcho)}
        listener = Listener(reactor, "127.0.0.1", 0, _router(), EchoRoot(), others, tls=tls.server_context())
        listener.startService()
        # Cleanups run last-added first: the clients go, then the server side of every connection, then the port.
        self.addCleanup(listener.stopService)
        self.addCleanup(lambda: wait_for(lambda: not listener.factory.protocols, 10,
                                         what="the server side of every connection to close"))
        return listener

    def agent(self, tls: TLSConfig, hostname: str | None = None) -> Agent:
        pool = HTTPConnectionPool(reactor)
        self.addCleanup(pool.closeCachedConnections)
        return Agent(reactor, TLSPolicy(tls, hostname), pool=pool)

    @defer.inlineCallbacks
    def get(self, agent: Agent, url: str) -> Any:
        response = yield agent.request(b"GET", url.encode())
        body = yield readBody(response)
        return response.code, body

    @defer.inlineCallbacks
    def assertRequestFails(self, agent: Agent, url: str) -> Any:
        """The request fails before any response; returns the reasons' text."""
        try:
            yield self.get(agent, url)
        except Exception as exc:  # noqa: BLE001 - which one depends on where the handshake broke
            reasons = getattr(exc, "reasons", [])
            return " ".join(str(r.value) for r in reasons) or str(exc)
        self.fail(f"{url} answered")

    def url(self, listener: Listener | None = None, scheme: str = "https") -> str:
        return f"{scheme}://127.0.0.1:{(listener or self.listener).port}/hello"

    @defer.inlineCallbacks
    def pb_echo(self, listener: Listener, tls: Any, value: bytes = b"over tls") -> Any:
        """Connect with a Connector over TLS, call ``echo``, disconnect; returns the answer."""
        answer: defer.Deferred = defer.Deferred()

        def connected(root: pb.RemoteReference) -> defer.Deferred:
            return root.callRemote("echo", value).addBoth(answer.callback)

        connector = Connector(reactor, lambda: ("127.0.0.1", listener.port), connected, lambda: None,
                              backoff=0.05, tls=tls)
        connector.startService()
        try:
            result = yield answer
        finally:
            yield connector.stopService()
        return result

    def environ(self, **extra: str) -> mock._patch:
        """Patch the process environment for blocking clients that read it (the CLI)."""
        patcher = mock.patch.dict(os.environ, extra)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.addCleanup(setattr, cli_http, "_https_opener", None)
        cli_http._https_opener = None
        return patcher

    # -- (a) HTTPS --------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_https_get_with_the_ca(self) -> Any:
        """A client trusting the CA gets the JSON route over HTTPS on the listener's port."""
        code, body = yield self.get(self.agent(self.pki.client()), self.url())
        self.assertEqual((code, body), (200, b'{"hello":"tls"}'))

    @defer.inlineCallbacks
    def test_cli_uses_https_when_tls_is_enabled(self) -> Any:
        """With LIBPROCESS_SSL_ENABLED the CLI's master URL is https:// and its requests verify the CA."""
        self.environ(LIBPROCESS_SSL_ENABLED="true", LIBPROCESS_SSL_CA_FILE=self.pki.ca_file)
        base = cli_http.base_url(f"127.0.0.1:{self.listener.port}")
        self.assertEqual(base, f"https://127.0.0.1:{self.listener.port}")
        answer = yield threads.deferToThread(cli_http.get_json, base + "/hello")
        self.assertEqual(answer, {"hello": "tls"})

    # -- (b) PB ---------------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_pb_call_through_connector(self) -> Any:
        """A Connector given the TLSConfig reaches the PB root through TLS on the same port."""
        answer = yield self.pb_echo(self.listener, self.pki.client())
        self.assertEqual(answer, b"over tls")

    @defer.inlineCallbacks
    def test_pb_connector_takes_a_creator_callable(self) -> Any:
        """A Connector also takes a plain callable from host name to client options."""
        client = self.pki.client()
        answer = yield self.pb_echo(self.listener, lambda host: client.client_options(host), b"callable")
        self.assertEqual(answer, b"callable")

    @defer.inlineCallbacks
    def test_command_executor_stream_over_tls(self) -> Any:
        """The command executor's socket, with the variables environment() gives it, talks through TLS."""
        environ = self.pki.client().environment()
        events = yield threads.deferToThread(_executor_exchange, self.listener.port, environ)
        self.assertEqual(events, [{"type": "HEARTBEAT"}])

    # -- (c) plain text is refused --------------------------------------------------------

    @defer.inlineCallbacks
    def test_plain_http_is_refused_and_the_port_keeps_serving(self) -> Any:
        """A plain-text HTTP request gets no answer (the handshake fails); the next TLS client is served."""
        plain = Agent(reactor, pool=self._pool())
        yield self.assertRequestFails(plain, self.url(scheme="http"))
        code, _ = yield self.get(self.agent(self.pki.client()), self.url())
        self.assertEqual(code, 200)

    @defer.inlineCallbacks
    def test_plain_pb_is_refused_and_the_port_keeps_serving(self) -> Any:
        """A plain PB client is disconnected without a root object; a TLS PB client then gets its answer."""
        factory = ClientFactory()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.listener.port)
        broker = yield endpoint.connect(factory)
        root = factory.getRootObject()
        yield wait_for(lambda: broker.disconnected, 10, what="the plain PB connection to be dropped")
        self.assertFalse(root.called)
        answer = yield self.pb_echo(self.listener, self.pki.client())
        self.assertEqual(answer, b"over tls")

    @defer.inlineCallbacks
    def test_plain_cli_request_is_refused(self) -> Any:
        """The CLI asked for http:// of a TLS port reports the lost connection in one line."""
        self.environ()
        error = yield self.assertFailure(threads.deferToThread(cli_http.get_json, self.url(scheme="http")),
                                         CLIError)
        self.assertIn(f"http://127.0.0.1:{self.listener.port}", error.message)

    # -- (d) mutual TLS --------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_require_cert_refuses_a_client_without_certificate(self) -> Any:
        """With require_cert, a client without a certificate is refused, over HTTPS and PB alike."""
        mutual = self.listen(self.pki.server(require_cert=True))
        reasons = yield self.assertRequestFails(self.agent(self.pki.client()), self.url(mutual))
        self.assertIn("certificate", reasons)
        failed = yield threads.deferToThread(self._executor_fails, mutual.port, self.pki.client().environment())
        self.assertIsInstance(failed, (ssl.SSLError, ConnectionError))

    @defer.inlineCallbacks
    def test_require_cert_serves_a_client_with_the_client_certificate(self) -> Any:
        """With require_cert, a client presenting a certificate from the CA is served, over HTTPS and PB."""
        mutual = self.listen(self.pki.server(require_cert=True))
        client = self.pki.client(with_certificate=True)
        code, body = yield self.get(self.agent(client), self.url(mutual))
        self.assertEqual((code, body), (200, b'{"hello":"tls"}'))
        answer = yield self.pb_echo(mutual, client)
        self.assertEqual(answer, b"over tls")
        events = yield threads.deferToThread(_executor_exchange, mutual.port, client.environment())
        self.assertEqual(events, [{"type": "HEARTBEAT"}])

    @defer.inlineCallbacks
    def test_require_cert_refuses_a_certificate_from_another_ca(self) -> Any:
        """A client certificate that does not chain to the server's CA is refused too."""
        mutual = self.listen(self.pki.server(require_cert=True))
        stranger = self.pki.client(cert_file=self.pki.other_server_cert, key_file=self.pki.other_server_key)
        reasons = yield self.assertRequestFails(self.agent(stranger), self.url(mutual))
        self.assertTrue(reasons)

    # -- (e) verification -------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_client_with_another_ca_fails_verification(self) -> Any:
        """A client trusting another CA refuses the server: Twisted, CLI and executor clients alike."""
        other = self.pki.client(ca_file=self.pki.other_ca_file)
        reasons = yield self.assertRequestFails(self.agent(other), self.url())
        self.assertIn("certificate verify failed", reasons)
        self.environ(LIBPROCESS_SSL_ENABLED="1", LIBPROCESS_SSL_CA_FILE=self.pki.other_ca_file)
        error = yield self.assertFailure(threads.deferToThread(cli_http.get_json, self.url()), CLIError)
        self.assertIn("certificate verification failed", error.message)
        failed = yield threads.deferToThread(self._executor_fails, self.listener.port, other.environment())
        self.assertIsInstance(failed, ssl.SSLCertVerificationError)

    @defer.inlineCallbacks
    def test_client_checks_the_server_name(self) -> Any:
        """A certificate from the right CA for another name (here 127.0.0.1 asked as mesos.example.com) is refused."""
        reasons = yield self.assertRequestFails(self.agent(self.pki.client(), "mesos.example.com"), self.url())
        self.assertIn("mesos.example.com", reasons)

    @defer.inlineCallbacks
    def test_connector_keeps_retrying_a_server_it_cannot_verify(self) -> Any:
        """A PB Connector that cannot verify the server never calls on_connected, and keeps trying."""
        connected: list[Any] = []
        lost: list[None] = []
        connector = Connector(reactor, lambda: ("127.0.0.1", self.listener.port), connected.append,
                              lambda: lost.append(None), backoff=0.01, max_backoff=0.05,
                              tls=self.pki.client(ca_file=self.pki.other_ca_file))
        connector.startService()
        try:
            yield wait_for(lambda: len(lost) >= 2, 10, what="two failed attempts")
        finally:
            yield connector.stopService()
        self.assertEqual(connected, [])

    @defer.inlineCallbacks
    def test_unverified_client_still_encrypts(self) -> Any:
        """With verify_cert off a client accepts any server certificate (the documented trade-off)."""
        unverified = TLSConfig(enabled=True, verify_cert=False)
        code, _ = yield self.get(self.agent(unverified), self.url())
        self.assertEqual(code, 200)
        answer = yield self.pb_echo(self.listener, unverified)
        self.assertEqual(answer, b"over tls")

    # -- helpers ----------------------------------------------------------------------------

    def _pool(self) -> HTTPConnectionPool:
        pool = HTTPConnectionPool(reactor)
        self.addCleanup(pool.closeCachedConnections)
        return pool

    @staticmethod
    def _executor_fails(port: int, environ: dict[str, str]) -> BaseException:
        try:
            _executor_exchange(port, environ)
        except (OSError, SSL.Error) as exc:
            return exc
        raise AssertionError("the exchange succeeded")
