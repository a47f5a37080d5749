"""Marathon's REST API (``/v2/...``, ``/ping``, ``/metrics``) on the framework's own router."""

from __future__ import annotations

import base64
from typing import Any

import attrs

from mesostw.http.router import HTTPError, Router, header


@attrs.define
class ApiContext:
    """What the handlers work with (one per framework instance)."""

    host: Any
    config: Any
    state: Any
    controller: Any
    runtime: Any
    views: Any
    bus: Any
    started: float = 0.0
    leading: bool = False
    streams: Any = None

    def ready(self) -> bool:
        return self.leading


def install(router: Router, context: ApiContext) -> None:
    from frameworks.service.api import apps, deployments, events, groups, misc, tasks

    credentials = getattr(context.config, "http_credentials", "") or ""
    if credentials:
        router.filter(basic_auth(credentials), exempt=("/ping",))
    for module in (apps, tasks, deployments, groups, misc, events):
        module.install(router, context)


def basic_auth(credentials: str) -> Any:
    """A router filter accepting HTTP Basic with one of ``user:password[,user:password...]``."""
    allowed = {entry.strip() for entry in credentials.split(",") if ":" in entry}

    def check(request: Any) -> HTTPError | None:
        raw = header(request, "authorization") or ""
        scheme, _, token = raw.partition(" ")
        if scheme.lower() == "basic":
            try:
                if base64.b64decode(token.strip(), validate=True).decode("utf-8") in allowed:
                    return None
            except (ValueError, UnicodeDecodeError):
                pass
        return HTTPError(401, "Invalid username or password.", {"WWW-Authenticate": 'Basic realm="Marathon"'})

    return check
