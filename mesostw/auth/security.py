"""What a master enforces, built from its flags: who must authenticate, against which
credentials, and which ACLs authorize them; plus the two transports' authentication steps."""

from __future__ import annotations

import base64
from typing import Any, Callable

import attrs
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.web import server

from mesostw.auth.acls import Authorizer
from mesostw.auth.crammd5 import MECHANISMS, AuthenticationError, Authenticator, CredentialsChecker, FailureThrottle
from mesostw.auth.credentials import load_credentials
from mesostw.http.router import HTTPError

log = Logger()

REALM_SCHEDULER = "mesos-master-scheduler"
REALM_READONLY = "mesos-master-readonly"
REALM_READWRITE = "mesos-master-readwrite"


@attrs.define
class Security:
    checker: CredentialsChecker | None = None
    authenticate_frameworks: bool = False
    authenticate_agents: bool = False
    authenticate_http_frameworks: bool = False
    authenticate_http_readonly: bool = False
    authenticate_http_readwrite: bool = False
    authorizer: Authorizer = attrs.field(factory=Authorizer)
    throttle: FailureThrottle | None = None

    @classmethod
    def from_config(cls, config: Any, clock: Any) -> Security:
        checker = CredentialsChecker(load_credentials(config.credentials)) if config.credentials else None
        return cls(checker, config.authenticate_frameworks, config.authenticate_agents,
                   config.authenticate_http_frameworks, config.authenticate_http_readonly,
                   config.authenticate_http_readwrite, Authorizer.from_flag(config.acls), FailureThrottle(clock))


class PBAuthentication:
    """The server's side of CRAM-MD5 on one PB connection (see :mod:`mesostw.auth.crammd5`)."""

    def __init__(self, security: Security, clock: Any, peer: Callable[[], str],
                 on_failure: Callable[[], None] = lambda: None):
        self.on_failure = on_failure
        self.security = security
        self.clock = clock
        self._peer = peer
        self.principal: str | None = None
        self._session: Authenticator | None = None

    @property
    def peer(self) -> str:
        """The remote address, the key failures are throttled by."""
        return self._peer()

    def mechanisms(self) -> list[str]:
        return list(MECHANISMS)

    def start(self, mechanism: Any) -> bytes:
        if self.security.checker is None:
            raise AuthenticationError("this master has no --credentials to authenticate against")
        self._session = Authenticator(self.security.checker)
        return self._session.start(mechanism)

    def step(self, response: Any) -> defer.Deferred:
        session, self._session = self._session, None
        if session is None:
            return defer.fail(AuthenticationError("start authentication first"))
        throttle = self.security.throttle
        d = session.step(response if isinstance(response, bytes) else b"")

        def succeeded(principal: str) -> str:
            if throttle is not None:
                throttle.succeeded(self.peer)
            self.principal = principal
            log.info("Authenticated principal {p} from {peer}", p=principal, peer=self.peer)
            return principal

        def failed(failure: Any) -> defer.Deferred:
            self.on_failure()
            log.warn("Authentication failed from {peer}: {why}", peer=self.peer,
                     why=failure.getErrorMessage() or "bad credentials")
            delay = throttle.delay(self.peer) if throttle is not None else 0.0
            if throttle is not None:
                throttle.failed(self.peer)
            # Answer late: guessing secrets becomes slower with every failure from the same peer.
            return task.deferLater(self.clock, delay, lambda: failure)

        return d.addCallbacks(succeeded, failed)


def basic_credentials(request: server.Request) -> UsernamePassword | None:
    header = request.getHeader("authorization")
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or len(decoded) > 4096:
        return None
    return UsernamePassword(user.encode(), password.encode())


def http_principal(security: Security, request: server.Request, realm: str, required: bool) -> defer.Deferred:
    """The request's principal from HTTP Basic (None when absent and not ``required``); 401 otherwise."""
    credentials = basic_credentials(request)
    challenge = {"WWW-Authenticate": f'Basic realm="{realm}"'}
    if credentials is None:
        if required:
            return defer.fail(HTTPError(401, "Authentication required", challenge))
        return defer.succeed(None)
    if security.checker is None:
        return defer.fail(HTTPError(401, "This master has no credentials to check", challenge))
    d = security.checker.requestAvatarId(credentials)

    def refused(failure: Any) -> None:
        failure.trap(UnauthorizedLogin)
        log.warn("HTTP authentication failed for {path}", path=request.path)
        raise HTTPError(401, "Invalid credentials", challenge)

    return d.addErrback(refused)
