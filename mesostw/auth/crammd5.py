"""SASL CRAM-MD5 (RFC 2195) as Mesos authenticates frameworks and agents, built on twisted.cred.

The exchange (``mesos:docs/authentication.md``; see the spec, section 4.1) maps onto these objects::

    server                                           client
    auth = Authenticator(checker)                    (sends AuthenticateMessage)
    MECHANISMS  -> AuthenticationMechanismsMessage
                                                     AuthenticationStartMessage{mechanism}
    challenge = auth.start(mechanism)  -> AuthenticationStepMessage{challenge}
                                                     response = respond(credential, challenge)
                                                     AuthenticationStepMessage{response}
    auth.step(response): Deferred
        fires with the principal  -> AuthenticationCompletedMessage
        fails with UnauthorizedLogin -> AuthenticationFailedMessage
    (a peer that failed waits FailureThrottle.admit before its next response is even checked)
        fails with AuthenticationError -> AuthenticationErrorMessage{error}

:class:`CredentialsChecker` is an ``ICredentialsChecker``, so the same object also guards HTTP Basic
authentication (``UsernamePassword``) through a ``Portal``. The transport (PB, HTTP) owns the timeouts
(``--authentication_v0_timeout``) and binds the principal to the connection; this module owns no sockets
and no timers.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import CramMD5Credentials, IUsernameHashedPassword, IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.mail.imap4 import CramMD5ClientAuthenticator
from zope.interface import implementer

from mesostw.auth.credentials import Credential

__all__ = [
    "MECHANISMS",
    "AuthenticationError",
    "Authenticator",
    "CredentialsChecker",
    "FailureThrottle",
    "UnsupportedMechanism",
    "respond",
]

#: The SASL mechanisms a server offers (Mesos's ``AuthenticationMechanismsMessage``).
MECHANISMS = ("CRAM-MD5",)

#: Longer responses are refused unread: a principal (at most a few hundred bytes), a space, 32 hex digits.
MAX_RESPONSE = 4096

# Compared against when the principal is unknown, so both failures cost the same work.
_NO_SECRET = b"\0" * 32


class AuthenticationError(Exception):
    """The exchange itself went wrong (Mesos's ``AuthenticationErrorMessage``), as opposed to a wrong
    principal or secret (``UnauthorizedLogin``, Mesos's ``AuthenticationFailedMessage``)."""


class UnsupportedMechanism(AuthenticationError):
    """The client asked for a mechanism other than those in :data:`MECHANISMS`."""


@implementer(ICredentialsChecker)
class CredentialsChecker:
    """Checks a principal and its proof against the ``{principal: secret}`` of ``--credentials``.

    ``requestAvatarId`` returns a Deferred that fires with the principal (a ``str``) or fails with
    ``UnauthorizedLogin``; an unknown principal and a wrong secret fail alike, with the same exception
    and the same work. It takes ``IUsernameHashedPassword`` credentials (``CramMD5Credentials``, which
    check the HMAC themselves) and ``IUsernamePassword`` ones (HTTP Basic), whose password is compared in
    constant time. Usernames and passwords may be ``bytes`` (UTF-8) or ``str``.
    """

    credentialInterfaces = (IUsernamePassword, IUsernameHashedPassword)

    def __init__(self, credentials: Mapping[str, str]):
        self._secrets = {principal: secret.encode("utf-8") for principal, secret in credentials.items()}

    def __repr__(self) -> str:
        return f"<CredentialsChecker for {len(self._secrets)} principals>"

    def requestAvatarId(self, credentials: Any) -> defer.Deferred[Any]:
        """Fire with the principal of ``credentials`` if they prove its secret; fail otherwise.

        The avatar ID is the principal as ``str`` (Twisted's stubs say ``bytes``; realms here take ``str``).
        """
        principal = _text(credentials.username)
        secret = self._secrets.get(principal) if principal is not None else None
        if IUsernamePassword.providedBy(credentials):
            password = _bytes(credentials.password)
            checked = defer.succeed(hmac.compare_digest(password, secret if secret is not None else _NO_SECRET))
        else:
            checked = defer.maybeDeferred(credentials.checkPassword, secret if secret is not None else _NO_SECRET)

        def decide(matched: object) -> str:
            if matched and secret is not None and principal is not None:
                return principal
            raise UnauthorizedLogin()

        return checked.addCallback(decide)


class Authenticator:
    """One server-side CRAM-MD5 exchange with one client: Mesos's authenticator session.

    Single use: :meth:`start` once, then :meth:`step` once; any other call fails and so does every call
    after the exchange ended. Each instance issues its own challenge, so a response captured from one
    exchange fails in every other (no replay). Make one per ``AuthenticateMessage``.
    """

    def __init__(self, checker: ICredentialsChecker, host: str = "mesostw"):
        self._checker = checker
        self._credentials = CramMD5Credentials(host.encode("utf-8"))
        self._state = "new"  # -> "started" -> "done"
        self.principal: str | None = None  # set once a step succeeded
        #: the principal a well-formed response named, proved or not (for the failure throttle)
        self.claimed: str | None = None

    def start(self, mechanism: str | bytes) -> bytes:
        """Begin the exchange with ``mechanism`` (only ``CRAM-MD5``); return the challenge to send.

        Raises :class:`UnsupportedMechanism` (listing the supported ones) for any other mechanism and
        :class:`AuthenticationError` if called twice; either ends the exchange.
        """
        if isinstance(mechanism, bytes):
            mechanism = mechanism.decode("ascii", "replace")
        if self._state != "new":
            self._state = "done"
            raise AuthenticationError("authentication already started")
        if mechanism.upper() not in MECHANISMS:
            self._state = "done"
            raise UnsupportedMechanism(
                f"unsupported SASL mechanism {mechanism[:40]!r}; supported: {', '.join(MECHANISMS)}")
        self._state = "started"
        return self._credentials.getChallenge()

    def step(self, response: bytes) -> defer.Deferred[str]:
        """Check the client's ``b"<principal> <hex HMAC-MD5(secret, challenge)>"``.

        Fires with the principal; fails with ``UnauthorizedLogin`` for a wrong principal, secret or
        malformed response, or with :class:`AuthenticationError` when called out of order.
        """
        state, self._state = self._state, "done"
        if state != "started":
            why = "authentication not started" if state == "new" else "authentication already ended"
            return defer.fail(AuthenticationError(why))
        if not isinstance(response, bytes):
            return defer.fail(AuthenticationError("the response must be bytes"))
        if len(response) > MAX_RESPONSE:
            return defer.fail(UnauthorizedLogin())
        try:
            self._credentials.setResponse(response)
        except ValueError:  # not "<principal> <digest>"
            return defer.fail(UnauthorizedLogin())
        self.claimed = _text(self._credentials.username)

        def authenticated(principal: str) -> str:
            self.principal = principal
            return principal

        checked: defer.Deferred[Any] = defer.maybeDeferred(self._checker.requestAvatarId, self._credentials)
        return checked.addCallback(authenticated)


def respond(credential: Credential, challenge: bytes) -> bytes:
    """The client's answer to ``challenge``: ``b"<principal> <hex HMAC-MD5(secret, challenge)>"``."""
    client = CramMD5ClientAuthenticator(credential.principal.encode("utf-8"))
    response: bytes = client.challengeResponse(credential.secret.encode("utf-8"), challenge)
    return response


class FailureThrottle:
    """Slows down guessing, per peer key (an IP): CRAM-MD5 and HTTP Basic share one.

    After a key's first failure its attempts are checked one at a time: the next no sooner than
    ``base`` seconds later, then the wait doubles with every failure up to ``cap``. Attempts that
    arrive meanwhile, however many in parallel, wait their turn in line (at most ``max_waiting``;
    beyond that they are refused), so the rate of guesses is held, not just the rate of answers: the
    right secret sent amid wrong ones waits its turn too. A success forgets the key's failures when
    they were all failures of the principal that succeeded (someone who mistyped their own secret),
    never when any was another principal's: a tenant proving its own secret between guesses at
    another's gains nothing. ``expiry`` seconds without a failure forget the key too. At most
    ``max_entries`` keys are remembered: beyond that the one that failed longest ago is forgotten,
    so memory stays bounded whatever a flood of peers does (a principal is remembered as a digest).
    Time comes from ``clock.seconds()``; the throttle schedules nothing itself. Use::

        wait = throttle.admit(peer)          # None: refuse now
        clock.callLater(wait, check)         # check(): throttle.evaluating(peer), then the secret;
                                             # then throttle.failed(peer, principal)
                                             # or throttle.succeeded(peer, principal)
    """

    def __init__(self, clock: IReactorTime, base: float = 0.5, cap: float = 30.0, expiry: float = 300.0,
                 max_entries: int = 10_000, max_waiting: int = 64):
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        #: the clock turns are measured on (shells schedule the waits on it)
        self.clock = clock
        self.base = base
        self.cap = cap
        self.expiry = expiry
        self.max_entries = max_entries
        self.max_waiting = max_waiting
        #: key -> (failures, when the last was, whose: the digest of the principal all were of, or _SEVERAL);
        #: the oldest failure first
        self._failures: OrderedDict[Hashable, tuple[int, float, bytes]] = OrderedDict()
        #: key -> (when its next attempt may be checked, how many attempts wait for their turn)
        self._turns: dict[Hashable, tuple[float, int]] = {}

    def __len__(self) -> int:
        self._expire()
        return len(self._failures)

    def delay(self, key: Hashable) -> float:
        """Seconds to wait before answering the next failure of ``key``."""
        self._expire()
        entry = self._failures.get(key)
        return 0.0 if entry is None else min(self.cap, self.base * 2.0 ** (entry[0] - 1))

    def admit(self, key: Hashable) -> float | None:
        """Seconds a new attempt of ``key`` must wait before it is checked (0.0: check it now), or
        None: refuse it, ``max_waiting`` attempts of ``key`` wait already. Each admitted attempt of a
        key that failed takes the next turn, ``delay(key)`` after the one before; one that must wait
        is counted as waiting until :meth:`evaluating` (one checked now never is)."""
        self._expire()
        now = self._clock.seconds()
        free_at, waiting = self._turns.get(key, (now, 0))
        if free_at <= now and key not in self._failures:
            return 0.0
        if waiting >= self.max_waiting:
            return None
        start = max(now, free_at)
        self._turns[key] = (start + self.delay(key), waiting + 1 if start > now else waiting)
        return start - now

    def evaluating(self, key: Hashable) -> None:
        """An attempt admitted with a wait is being checked now (its turn came)."""
        turn = self._turns.get(key)
        if turn is not None and turn[1] > 0:
            self._turns[key] = (turn[0], turn[1] - 1)

    def failed(self, key: Hashable, principal: str | None = None) -> None:
        """Record a failed attempt by ``key`` for ``principal`` (None: none could be read from it): its
        next attempt waits ``delay(key)`` from now at least."""
        self._expire()
        whose = _digest(principal)
        entry = self._failures.pop(key, None)
        if entry is not None:
            count, _, before = entry
            whose = whose if before == whose else _SEVERAL
        else:
            count = 0
        while len(self._failures) >= self.max_entries:
            self._failures.popitem(last=False)
        now = self._clock.seconds()
        self._failures[key] = (min(count + 1, 64), now, whose)
        free_at, waiting = self._turns.get(key, (now, 0))
        self._turns[key] = (max(free_at, now + self.delay(key)), waiting)

    def succeeded(self, key: Hashable, principal: str | None = None) -> None:
        """``key`` proved ``principal``'s secret: forget its failures if they were all ``principal``'s
        (attempts already in line keep their turns either way)."""
        entry = self._failures.get(key)
        if entry is not None:
            if entry[2] != _digest(principal):
                return  # failures for another principal: proving one's own secret wipes none of them out
            del self._failures[key]
        turn = self._turns.get(key)
        if turn is not None and turn[1] == 0:
            del self._turns[key]

    def _expire(self) -> None:
        now = self._clock.seconds()
        deadline = now - self.expiry
        while self._failures:
            key, (_, when, _) = next(iter(self._failures.items()))
            if when > deadline:
                break
            del self._failures[key]
        if len(self._turns) > len(self._failures):
            # Turns of forgotten keys with nobody waiting and no wait left: forgotten too (memory stays bounded).
            for key in [k for k, (free_at, waiting) in self._turns.items()
                        if waiting == 0 and (free_at <= now or k not in self._failures)]:
                del self._turns[key]


#: What the failures of a key are of once they were of more than one principal.
_SEVERAL = b"several"


def _digest(principal: str | None) -> bytes:
    """What a key's failures remember of their principal: a fixed-size digest, whatever its length."""
    if principal is None:
        return b"none"
    return hashlib.blake2b(principal.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def _bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return b""
