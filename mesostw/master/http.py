"""The master's HTTP endpoints (Mesos's operator API shapes)."""

from __future__ import annotations

from typing import Any

from twisted.web import server

from mesostw.http.router import HTTPError, Response, Router
from mesostw.master import metrics, state_json
from mesostw.master.master import Master


class MasterEndpoints:
    """Registers the master's read-only endpoints on a :class:`Router`."""

    def __init__(self, master: Master, flags: dict[str, str]):
        self.master = master
        self.flags = flags

    def install(self, router: Router) -> None:
        for path in ("/master/state", "/master/state.json", "/state", "/state.json"):
            router.route(path, self.state)
        router.route("/master/health", self.health)
        router.route("/health", self.health)
        for path in ("/master/flags", "/flags"):
            router.route(path, lambda request: {"flags": self.flags})
        for path in ("/version", "/master/version"):
            router.route(path, lambda request: state_json.build_info())
        router.route("/metrics/snapshot", self.snapshot)
        for path in ("/master/redirect", "/redirect"):
            router.route(path, self.redirect)

    def state(self, request: server.Request) -> dict[str, Any]:
        return state_json.state(self.master, self.flags)

    def health(self, request: server.Request) -> Response:
        return Response(b"", 200)

    def snapshot(self, request: server.Request) -> dict[str, Any]:
        return metrics.snapshot(self.master)

    def redirect(self, request: server.Request) -> None:
        info = self.master.info
        raise HTTPError(307, "the leading master", {"Location": f"//{info.hostname}:{info.port}"})
