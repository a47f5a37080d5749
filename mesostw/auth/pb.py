"""The server's side of SASL CRAM-MD5 on one Perspective Broker connection (agents, PB drivers)."""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet import defer, task
from twisted.logger import Logger

from mesostw.auth.crammd5 import MECHANISMS, AuthenticationError, Authenticator
from mesostw.auth.policy import Security

log = Logger()


class PBAuthentication:
    """CRAM-MD5 against a :class:`Security`'s credentials (see :mod:`mesostw.auth.crammd5`)."""

    def __init__(self, security: Security, clock: Any, peer: Callable[[], str],
                 on_failure: Callable[[], None] = lambda: None):
        self.on_failure = on_failure
        self.security = security
        self.clock = clock
        self._peer = peer
        self.principal: str | None = None
        self._session: Authenticator | None = None
        #: a failure's late answer, until it is sent (see :meth:`step`)
        self._answer: defer.Deferred | None = None

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
        """Check the response to the challenge, once this peer's turn comes (see :class:`FailureThrottle`)."""
        session, self._session = self._session, None
        if session is None:
            return defer.fail(AuthenticationError("start authentication first"))
        throttle = self.security.throttle
        peer = self.peer
        wait = throttle.admit(peer) if throttle is not None else 0.0
        if wait is None:
            self.on_failure()
            log.warn("Refused an authentication attempt from {peer}: too many are waiting", peer=peer)
            return defer.fail(AuthenticationError("too many authentication attempts from this address; retry later"))

        def check() -> defer.Deferred:
            if throttle is not None and wait:
                throttle.evaluating(peer)
            return session.step(response if isinstance(response, bytes) else b"")

        def succeeded(principal: str) -> str:
            if throttle is not None:
                throttle.succeeded(peer, principal)
            self.principal = principal
            log.info("Authenticated principal {p} from {peer}", p=principal, peer=peer)
            return principal

        def failed(failure: Any) -> Any:
            if failure.check(defer.CancelledError):
                # The connection went while the attempt waited its turn: give the turn up, uncounted.
                if throttle is not None:
                    throttle.evaluating(peer)
                return failure
            self.on_failure()
            log.warn("Authentication failed from {peer}: {why}", peer=peer,
                     why=failure.getErrorMessage() or "bad credentials")
            if throttle is not None:
                throttle.failed(peer, session.claimed)
            return failure

        # Parallel attempts of a peer that failed are checked one at a time, further and further apart.
        if not wait:
            return check().addCallbacks(succeeded, failed)
        d = self._answer = task.deferLater(self.clock, wait, check)
        d.addBoth(self._answered, d)
        return d.addCallbacks(succeeded, failed)

    def _answered(self, result: Any, answer: defer.Deferred) -> Any:
        if self._answer is answer:
            self._answer = None
        return result

    def disconnected(self) -> None:
        """The connection went away: an attempt waiting its turn has nobody to answer (and must not
        keep a timer)."""
        if self._answer is not None:
            self._answer.cancel()
