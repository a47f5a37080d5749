"""HTTP Basic authentication of requests against a :class:`~mesostw.auth.policy.Security`'s credentials."""

from __future__ import annotations

import base64
from typing import Any

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.web import server

from mesostw.auth.policy import Security
from mesostw.http.router import HTTPError

log = Logger()

REALM_SCHEDULER = "mesos-master-scheduler"
REALM_READONLY = "mesos-master-readonly"
REALM_READWRITE = "mesos-master-readwrite"
REALM_AGENT_READONLY = "mesos-agent-readonly"


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


def peer_of(request: server.Request) -> str:
    """The address failures are throttled by (see :class:`~mesostw.auth.crammd5.FailureThrottle`)."""
    address = request.getClientAddress()
    return getattr(address, "host", None) or str(address)


def http_principal(security: Security, request: server.Request, realm: str, required: bool) -> defer.Deferred:
    """The request's principal from HTTP Basic (None when absent and not ``required``); 401 otherwise.

    A peer whose attempts failed has them checked one at a time, further and further apart, as for
    CRAM-MD5 (the same throttle); 429 when too many of its attempts wait already."""
    principal = getattr(request, "principal", _UNCHECKED)
    if principal is not _UNCHECKED and (principal is not None or not required):
        return defer.succeed(principal)  # checked already (before the body was read)
    credentials = basic_credentials(request)
    challenge = {"WWW-Authenticate": f'Basic realm="{realm}"'}
    if credentials is None:
        if required:
            return defer.fail(HTTPError(401, "Authentication required", challenge))
        return defer.succeed(None)
    checker = security.checker
    if checker is None:
        # Nothing to check credentials against: anonymous, as without them (flag checks make sure that
        # a daemon requiring authentication has credentials).
        if required:
            return defer.fail(HTTPError(401, "No credentials to check against", challenge))
        return defer.succeed(None)
    throttle = security.throttle
    peer = peer_of(request)
    wait = throttle.admit(peer) if throttle is not None else 0.0
    if wait is None:
        return defer.fail(HTTPError(429, "Too many authentication attempts from this address; retry later",
                                    {"Retry-After": str(int(throttle.cap if throttle is not None else 1))}))

    def check() -> defer.Deferred:
        if throttle is not None and wait:
            throttle.evaluating(peer)
        return checker.requestAvatarId(credentials)

    def accepted(principal: str) -> str:
        if throttle is not None:
            throttle.succeeded(peer, principal)
        request.principal = principal  # type: ignore[attr-defined]
        return principal

    def refused(failure: Any) -> None:
        failure.trap(UnauthorizedLogin)
        if throttle is not None:
            throttle.failed(peer, credentials.username.decode("utf-8", "replace"))
        log.warn("HTTP authentication failed for {path} from {peer}", path=request.path, peer=peer)
        raise HTTPError(401, "Invalid credentials", challenge)

    d = task.deferLater(throttle.clock, wait, check) if throttle is not None and wait else check()
    return d.addCallbacks(accepted, refused)


#: No principal checked yet on this request.
_UNCHECKED = object()
