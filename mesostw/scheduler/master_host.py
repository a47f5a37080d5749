"""Frameworks hosted inside the master's process (``mesos-master --frameworks=cron,service``).

:class:`HostedFrameworks` is a child of the MasterService. For each framework it builds a
:class:`MasterHost` (its own port on the master's ``--ip``, its own store, its principal) and the
framework's service, at once, so that a bad configuration stops the master before it starts.
The ports listen from the start; the frameworks' services start only once the registry is
recovered and this master leads, and stop before the master does.

A standby master runs no framework: its framework ports answer every request with a 307 redirect
to the same port on the leading master (masters of one cluster share their flags, as they share
``--port``), or 503 with a JSON message while no leader is known. A master that loses leadership
aborts, so a running framework never has to give it back.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from mesostw.flags import Config, unprefixed
from mesostw.http.router import HTTPError, Router
from mesostw.interfaces import AbdicationRefused, IFrameworkHost, IScheduler
from mesostw.model.info import FrameworkInfo
from mesostw.scheduler.plugins import make_framework
from mesostw.scheduler.stores import master_store
from mesostw.wire.listen import Listener

log = Logger()


def _local_driver(master_service: Any, scheduler: IScheduler, info: FrameworkInfo, principal: str | None,
                  implicit_acknowledgements: bool = True) -> Any:
    """The in-process scheduler driver of a hosted framework (the one place that builds it).

    The master sees the driver's link as authenticated as ``principal``, so that the
    register_frameworks and run_tasks ACLs apply to the framework as to any other; the scheduler
    session refuses it while the master does not lead, as over PB and HTTP."""
    from mesostw.scheduler.local import LocalSchedulerDriver

    return LocalSchedulerDriver(scheduler, info, master_service.master, principal=principal,
                                implicit_acknowledgements=implicit_acknowledgements)


@implementer(IFrameworkHost)
class MasterHost:
    """One framework's view of the master that hosts it."""

    def __init__(self, master_service: Any, name: str, port: int, principal: str | None, store: Any):
        self.master_service = master_service
        self.reactor = master_service.reactor
        self.name = name
        self.principal = principal
        self.store = store
        self.router = Router()
        self.port = port
        tls = master_service.tls
        self.scheme = "https" if tls.enabled else "http"
        # The framework's routes sit behind an outer router, so that the standby guard also covers
        # routes a framework adds only once it runs.
        self.site = Router()
        self.site.filter(self._standby)
        self.site.mount("", self.router)
        self.listener = Listener(self.reactor, master_service.config.ip, port, self.site,
                                 tls=tls if tls.enabled else None)
        self.listener.setName(f"{name}-api")

    @property
    def api_url(self) -> str:
        return f"{self.scheme}://{self.master_service.config.hostname}:{self.listener.port}"

    def driver(self, scheduler: IScheduler, framework_info: FrameworkInfo,
               implicit_acknowledgements: bool = True) -> Any:
        info = attrs.evolve(framework_info, principal=self.principal,
                            webui_url=framework_info.webui_url or self.api_url)
        return _local_driver(self.master_service, scheduler, info, self.principal, implicit_acknowledgements)

    def whenLeading(self) -> defer.Deferred:
        return self.master_service.leadership.whenLeading()

    def leader(self) -> str | None:
        master = self.master_service.master
        if master.leading:
            return None
        leader = self.master_service.leadership.leader
        if leader is None or leader.id == master.id:
            return None
        return f"{leader.hostname}:{self.listener.port}"

    def abdicate(self) -> None:
        raise AbdicationRefused(f"The {self.name} framework runs inside the leading master and leads with it: "
                                "stop this master to have another one (and its framework) lead")

    def _standby(self, request: Any) -> HTTPError | None:
        if self.master_service.master.leading:
            return None
        address = self.leader()
        if address is None:
            return HTTPError(503, f"No leading master is elected yet; the {self.name} framework runs on the leader")
        path = request.uri.decode("utf-8", "replace")
        return HTTPError(307, f"This master is not the leader; the {self.name} framework runs on {address}",
                         {"Location": f"{self.scheme}://{address}{path}"})


class HostedFrameworks(service.MultiService):
    """The frameworks ``--frameworks`` names, each with its host, run while the master leads."""

    def __init__(self, master_service: Any, plugins: dict[str, Any], config: Config):
        super().__init__()
        self.setName("frameworks")
        self.master_service = master_service
        self.hosts: dict[str, MasterHost] = {}
        self.frameworks: dict[str, service.IService] = {}
        self._stopping = False
        if not config.frameworks:
            return
        store = master_store(master_service)
        for name in config.frameworks:
            plugin = plugins[name]
            host = MasterHost(master_service, name, getattr(config, f"{name}_http_port"),
                              getattr(config, f"{name}_principal") or None, store.scoped(f"hosted/{name}"))
            host.listener.setServiceParent(self)
            self.hosts[name] = host
            self.frameworks[name] = make_framework(plugin, host, unprefixed(config, plugin.flags, name))

    def startService(self) -> None:
        super().startService()
        if self.frameworks:
            self.master_service.leadership.whenLeading().addCallback(self._lead)

    def _lead(self, _: Any) -> None:
        if not self.running or self._stopping:
            return
        for name, framework in self.frameworks.items():
            log.info("Starting framework {name}; its API is {url}", name=name, url=self.hosts[name].api_url)
            framework.setServiceParent(self)

    def stopFrameworks(self) -> defer.Deferred:
        """Stop the frameworks (their drivers fail over), before the master itself stops; fires once
        they have stopped (at once when they already have)."""
        self._stopping = True
        running = [f for f in self.frameworks.values() if f.parent is self]
        return defer.DeferredList([defer.maybeDeferred(f.disownServiceParent) for f in running])

    def stopService(self) -> defer.Deferred:
        d = self.stopFrameworks()
        d.addCallback(lambda _: service.MultiService.stopService(self))
        return d
