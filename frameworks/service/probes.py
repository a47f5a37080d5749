"""The I/O of the framework's health and readiness checks: HTTP(S) and TCP probes with timeouts.

A thin shell: each probe returns a Deferred firing with a
:class:`~frameworks.service.health.Result` and never fails; the time limit runs on
the injected reactor. HTTP passes on 200-399 (1xx too when ``ignoreHttp1xx``), TCP on
an accepted connection. HTTPS probes do not verify the certificate, as Marathon's do
not. COMMAND and MESOS_* checks are not probed from here: the task's executor runs them
on its agent (:mod:`mesostw.executor.health`) and reports in status updates.
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet import defer, error, protocol
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.python.failure import Failure
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from frameworks.service.health import Result

#: At most this much of a readiness response body is kept.
MAX_BODY = 8192


class Prober(Protocol):
    def http(self, host: str, port: int, path: str, https: bool, timeout: float,
             keep_body: bool = False) -> defer.Deferred: ...

    def tcp(self, host: str, port: int, timeout: float) -> defer.Deferred: ...


@implementer(IPolicyForHTTPS)
class _Insecure:
    """TLS without certificate checks for HTTPS probes (the task's certificate is its business)."""

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        from twisted.internet import ssl

        return ssl.CertificateOptions(verify=False)


class _Connected(protocol.Protocol):
    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.loseConnection()


class ReactorProber:
    """Probes over real sockets and processes on ``reactor``."""

    def __init__(self, reactor: Any):
        self.reactor = reactor
        self.agent = Agent(reactor, contextFactory=_Insecure(), connectTimeout=30)

    def _limit(self, d: defer.Deferred, timeout: float, what: str) -> defer.Deferred:
        expired = Result(False, f"{what} timed out after {timeout:g}s")
        d.addTimeout(timeout, self.reactor, onTimeoutCancel=lambda result, seconds: expired)

        def failed(failure: Failure) -> Result:
            if failure.check(defer.TimeoutError, defer.CancelledError):
                return expired
            if failure.check(error.ConnectionRefusedError):
                return Result(False, f"{what}: connection refused")
            return Result(False, f"{what}: {failure.getErrorMessage()}")

        return d.addErrback(failed)

    def http(self, host: str, port: int, path: str, https: bool, timeout: float,
             keep_body: bool = False) -> defer.Deferred:
        url = f"{'https' if https else 'http'}://{host}:{port}{path}"
        d = self.agent.request(b"GET", url.encode(), Headers({b"User-Agent": [b"mesostw-service"]}))

        def answered(response: Any) -> Any:
            code = response.code
            if keep_body:
                return readBody(response).addCallback(
                    lambda body: Result(200 <= code < 400, None if 200 <= code < 400 else f"HTTP {code}",
                                        code, body[:MAX_BODY].decode("utf-8", "replace")))
            response.deliverBody(_Discard())
            return Result(200 <= code < 400, None if 200 <= code < 400 else f"HTTP {code}", code)

        d.addCallback(answered)
        return self._limit(d, timeout, f"GET {url}")

    def tcp(self, host: str, port: int, timeout: float) -> defer.Deferred:
        endpoint = TCP4ClientEndpoint(self.reactor, host, port, timeout=max(1, int(timeout)))
        d = endpoint.connect(protocol.Factory.forProtocol(_Connected))
        d.addCallback(lambda _: Result(True))
        return self._limit(d, timeout, f"TCP {host}:{port}")


class _Discard(protocol.Protocol):
    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        pass
