"""HTTP Basic authentication of requests against a :class:`~mesostw.auth.policy.Security`'s credentials."""

from __future__ import annotations

import base64
from typing import Any

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
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
