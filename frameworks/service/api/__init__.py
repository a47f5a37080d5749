"""Marathon's REST API (``/v2/...``, ``/ping``, ``/metrics``) on the framework's own router."""

from __future__ import annotations

from typing import Any

import attrs

from mesostw.http.router import Router


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

    for module in (apps, tasks, deployments, groups, misc, events):
        module.install(router, context)
