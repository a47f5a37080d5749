"""The web UI on a master: the page, the hosted frameworks' APIs under one origin, and agents' sandboxes.

One origin serves everything the page reads, so that the browser needs no CORS and sends one set of
credentials, and every call goes through the same filters as the API (the leader guard, HTTP
authentication, then the ACLs of whoever answers):

- ``/<name>/...`` (``/service/v2/apps``, ``/cron/v1/scheduler/jobs``): the API of each framework the
  master hosts (``--frameworks``), answered in process by the framework's own router, its own
  ``--<name>_http_credentials`` check included; the framework's port answers the same calls.
- ``/agent/<agent id>/<path>``: ``files/browse|read|download`` and ``slave(1)/state`` of a registered
  agent, forwarded to it with the caller's ``Authorization``: the agent authenticates the caller and
  applies its ``access_sandboxes`` and view ACLs itself. Nothing else is forwarded, and only to the
  addresses of agents the master admitted, so the master cannot be used to reach anything else.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.web import server

from mesostw.http.proxy import ReverseProxy
from mesostw.http.router import HTTPError, Router
from mesostw.master import state_json
from mesostw.ui import WebUI

#: What of an agent's HTTP API the master forwards for the UI (path after ``/agent/<id>/``).
AGENT_PATHS = frozenset({"files/browse", "files/read", "files/download", "slave(1)/state"})


class MasterUI:
    """Registers the UI, the hosted frameworks' mounts and the agent forwarding on a master's router."""

    def __init__(self, master_service: Any):
        self.master_service = master_service
        self.master = master_service.master
        tls = master_service.tls
        self.proxy = ReverseProxy(master_service.reactor, f"master@{master_service.config.hostname}",
                                  tls if tls.enabled else None)
        self.web = WebUI(self.config)

    def install(self, router: Router) -> None:
        self.web.install(router)
        frameworks = self.master_service.frameworks
        for name, host in (frameworks.hosts.items() if frameworks is not None else ()):
            router.mount(f"/{name}", host.site)
        router.route("/agent/{agent_id}/{path:path}", self.agent)

    def frameworks(self) -> dict[str, dict[str, Any]]:
        """The hosted frameworks by name: where the page reaches their API, and their own port."""
        hosted = self.master_service.frameworks
        if hosted is None:
            return {}
        config = self.master_service.config
        return {name: {"base": name, "api_url": host.api_url,
                       "protected": bool(getattr(config, f"{name}_http_credentials", ""))}
                for name, host in hosted.hosts.items()}

    def config(self) -> dict[str, Any]:
        security = self.master.security
        return {
            "daemon": "master",
            "cluster": True,
            "version": state_json.build_info().get("version", ""),
            "frameworks": self.frameworks(),
            "authentication": {"readonly": bool(security.authenticate_http_readonly),
                               "readwrite": bool(security.authenticate_http_readwrite)},
        }

    def agent(self, request: server.Request, agent_id: str, path: str) -> Any:
        """Forward ``path`` (one of :data:`AGENT_PATHS`) to the registered agent ``agent_id``."""
        if path not in AGENT_PATHS:
            raise HTTPError(404, f"The master forwards only {', '.join(sorted(AGENT_PATHS))} to agents")
        record = self.master.agents.get(agent_id)
        if record is None:
            raise HTTPError(404, f"Agent {agent_id} is not registered")
        if not record.connected:
            raise HTTPError(503, f"Agent {agent_id} is not connected")
        query = request.uri.split(b"?", 1)[1] if b"?" in request.uri else b""
        uri = b"/" + quote(path, safe="/()").encode() + (b"?" + query if query else b"")
        return self.proxy.forward(request, f"{record.info.hostname}:{record.info.port}", uri=uri)
