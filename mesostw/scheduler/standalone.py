"""A framework in its own process (``twistd mesos-cron``, ``mesos-service``): its own port, store and election.

The framework talks to the master through the PB scheduler driver, serves its API on
``--http_port`` and keeps its state in ZooKeeper (``--zk``), a file under ``--work_dir``, or memory.
With ``--zk`` several instances may run: they elect a leader under ``<zk path>/leader``; the
framework's service runs only on the leader, and the others forward every API request to it,
answers streamed back (503 with a JSON message while no leader is known). An instance whose
ZooKeeper session is lost exits, as a Mesos master and Marathon do; a supervisor restarts it as a
contender. Without ``--zk`` the instance leads at once.

``host.abdicate()`` (Marathon's ``DELETE /v2/leader``) stops the process cleanly: the framework fails
over, the election node goes at once (so another instance is elected without waiting for a session
to expire), and the process exits with status 0; its supervisor restarts it, as a standby. Leadership
is never handed back inside one process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import attrs
from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from mesostw.auth.credentials import Credential
from mesostw.auth.tls import tls_from
from mesostw.flags import Config
from mesostw.http.proxy import ReverseProxy
from mesostw.http.router import HTTPError, Router
from mesostw.interfaces import AbdicationRefused, IFrameworkHost, IScheduler
from mesostw.model.info import FrameworkInfo
from mesostw.scheduler.election import Unopposed, zookeeper_election
from mesostw.scheduler.plugins import make_framework
from mesostw.scheduler.stores import standalone_store
from mesostw.ui import PUBLIC_ROUTES, WebUI
from mesostw.wire.listen import Listener

log = Logger()


def abort(name: str, reason: str) -> None:
    """End this framework's process now (exit status 1), as Marathon does when it loses leadership."""
    log.critical("Aborting: {reason}", reason=reason)
    sys.stderr.write(f"mesos-{name}: aborting: {reason}\n")
    sys.stderr.flush()
    os._exit(1)


def _pb_driver(scheduler: IScheduler, info: FrameworkInfo, master: str, credential: Credential | None,
               reactor: Any, implicit_acknowledgements: bool = True) -> Any:
    """The PB scheduler driver of a standalone framework (the one place that builds it)."""
    from mesostw.scheduler.pb import MesosSchedulerDriver

    return MesosSchedulerDriver(scheduler, info, master, reactor=reactor, credential=credential,
                                implicit_acknowledgements=implicit_acknowledgements)


@implementer(IFrameworkHost)
class StandaloneHost:
    """What a framework gets when it runs on its own."""

    def __init__(self, reactor: Any, name: str, master: str, principal: str | None, credential: Credential | None,
                 store: Any, election: Any, address: Callable[[], str], scheme: str = "http",
                 on_abdicate: Callable[[], None] | None = None):
        self.reactor = reactor
        self.name = name
        self.master = master
        self.principal = principal
        self.credential = credential
        self.store = store
        self.election = election
        self.router = Router()
        self._address = address
        self.scheme = scheme
        self._on_abdicate = on_abdicate

    @property
    def api_url(self) -> str:
        return f"{self.scheme}://{self._address()}"

    def driver(self, scheduler: IScheduler, framework_info: FrameworkInfo,
               implicit_acknowledgements: bool = True) -> Any:
        info = attrs.evolve(framework_info, principal=self.principal,
                            webui_url=framework_info.webui_url or self.api_url)
        return _pb_driver(scheduler, info, self.master, self.credential, self.reactor, implicit_acknowledgements)

    def whenLeading(self) -> defer.Deferred:
        return self.election.whenElected()

    def leader(self) -> str | None:
        data = self.election.leader()
        return data.decode("utf-8", "replace") if data else None

    def abdicate(self) -> None:
        if self._on_abdicate is None:
            raise AbdicationRefused("This instance cannot hand over leadership")
        self._on_abdicate()


class StandaloneFramework(service.MultiService):
    """One instance of a framework: listener, ZooKeeper session and election, and (once it leads)
    the framework's own service. ``config`` holds the host's flags (see
    :mod:`mesostw.scheduler.standalone_tap`), ``framework_config`` the plugin's."""

    def __init__(self, plugin: Any, config: Config, framework_config: Config, reactor: Any = None,
                 zk: Any = None, election: Any = None, store: Any = None,
                 on_abort: Callable[[str, str], None] = abort, end: Callable[[], None] | None = None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self.framework_name = plugin.name
        self.setName(plugin.name)
        self.config = config
        self.on_abort = on_abort
        #: ends the process cleanly (the reactor's stop: twistd then stops every service)
        self.end = end if end is not None else reactor.stop
        if config.zk:
            from mesostw.zk.client import ZooKeeper
            from mesostw.zk.url import parse_zk_url

            url = parse_zk_url(config.zk)
            zk = zk if zk is not None else ZooKeeper(reactor, url, config.zk_session_timeout)
            election = election if election is not None else zookeeper_election(zk, f"{url.path.rstrip('/')}/leader")
        self.zk = zk
        self.election = election if election is not None else Unopposed()
        self.tls = tls_from(config)
        tls = self.tls if self.tls.enabled else None
        credential = config.credential
        principal = credential.principal if credential is not None else (config.principal or plugin.name)
        if credential is None and config.secret:
            credential = Credential(principal, config.secret)
        self.host = StandaloneHost(reactor, plugin.name, config.master, principal, credential,
                                   store if store is not None else standalone_store(reactor, config, zk, self.election),
                                   self.election, self.address,
                                   "https" if tls is not None else "http", on_abdicate=self.abdicate)
        self.proxy = ReverseProxy(reactor, f"{plugin.name}@{config.hostname}:{config.http_port}", tls)
        # The framework's routes sit behind an outer router, so that forwarding to the leader also
        # covers routes a framework adds only once it runs.
        self.site = Router()
        # The web UI at / shows this framework's own pages (its API at the same origin); any instance serves
        # the page, whose API calls a standby forwards like any others.
        self.site.filter(self._follow, exempt=PUBLIC_ROUTES)
        self.site.mount("", self.host.router)
        self._protected = bool(getattr(framework_config, "http_credentials", ""))
        WebUI(self.ui_config).install(self.site)
        self.listener = Listener(reactor, config.ip, config.http_port, self.site, tls=tls)
        self.listener.setServiceParent(self)
        self.framework = make_framework(plugin, self.host, framework_config)
        self._suspended: Any = None
        self._stopping = False

    def ui_config(self) -> dict[str, Any]:
        """What the web UI on this port shows: this framework's pages, its API at this origin."""
        return {"daemon": self.framework_name, "cluster": False,
                "frameworks": {self.framework_name: {"base": "", "api_url": self.host.api_url}},
                "authentication": {"readonly": self._protected, "readwrite": self._protected}}

    def address(self) -> str:
        """This instance's API as ``host:port`` (the port is known once listening)."""
        return f"{self.config.hostname}:{self.listener.port}"

    # -- lifecycle --------------------------------------------------------------------------

    def startService(self) -> None:
        service.MultiService.startService(self)  # listens first: with --http_port=0 the port is known only then
        log.info("Framework {name} listening on {url}", name=self.framework_name, url=self.host.api_url)
        data = self.address().encode()
        if self.zk is not None:
            self.zk.listeners.append(self._session)
            d = self.zk.start()
            d.addCallback(lambda _: self.election.contend(data))
        else:
            d = defer.maybeDeferred(self.election.contend, data)
        d.addErrback(lambda failure: self.on_abort(self.framework_name, f"cannot join the election: "
                                                              f"{failure.getErrorMessage()}"))
        self.election.whenElected().addCallback(self._lead)
        self.election.whenDeposed().addCallback(self._deposed)

    def _lead(self, _: Any) -> None:
        if not self.running or self._stopping:
            return
        log.info("Framework {name} leads; starting it", name=self.framework_name)
        self.framework.setServiceParent(self)

    def _deposed(self, _: Any) -> None:
        """Another instance may lead now and this one's store writes are fenced: end the process, as
        when the session is lost, so that a supervisor restarts it as a contender."""
        if not self._stopping:
            self.on_abort(self.framework_name, "this instance's election node is gone: it no longer leads")

    def stopService(self) -> defer.Deferred:
        self._stopping = True
        if self._suspended is not None and self._suspended.active():
            self._suspended.cancel()
        self._suspended = None
        # The framework first (its driver fails over), then its store (writes in flight finish, a
        # file store's lock goes), then the election node, then the session.
        first = (defer.maybeDeferred(self.framework.disownServiceParent) if self.framework.parent is self
                 else defer.succeed(None))
        close = getattr(self.host.store, "close", None)
        first.addCallback(lambda _: close() if close is not None else None)
        first.addCallback(lambda _: self.election.withdraw() if self.zk is not None else None)
        first.addCallback(lambda _: self.zk.stop() if self.zk is not None else None)
        first.addBoth(lambda _: service.MultiService.stopService(self))
        return first

    def abdicate(self) -> None:
        """Let another instance lead: end this process cleanly on the next reactor turn (the caller
        answers first); refused without ``--zk`` (no other instance can lead) or on a standby."""
        if self.zk is None:
            raise AbdicationRefused(f"This {self.framework_name} instance runs without --zk: no other instance "
                                    "can take over; stop it instead")
        if not self.election.leading:
            raise AbdicationRefused(f"This {self.framework_name} instance does not lead")
        if self._stopping:
            return
        log.info("Abdicating: stopping so that another instance leads")
        self.reactor.callLater(0, self.end)

    # -- ZooKeeper session ------------------------------------------------------------------

    def _session(self, state: str) -> None:
        from mesostw.zk.client import CONNECTED, LOST, SUSPENDED

        if self._stopping:
            return
        if state == LOST:
            self.on_abort(self.framework_name, "the ZooKeeper session expired")
        elif state == SUSPENDED and self._suspended is None:
            timeout = self.zk.session_timeout
            log.warn("Lost the connection to ZooKeeper; the session lasts {t}s", t=timeout)
            self._suspended = self.reactor.callLater(timeout, self._expired)
        elif state == CONNECTED and self._suspended is not None:
            if self._suspended.active():
                self._suspended.cancel()
            self._suspended = None

    def _expired(self) -> None:
        self._suspended = None
        self.on_abort(self.framework_name, f"disconnected from ZooKeeper for longer than the session timeout "
                                 f"({self.zk.session_timeout}s)")

    # -- requests on a standby --------------------------------------------------------------

    def _follow(self, request: Any) -> Any:
        if self.election.leading:
            return None
        address = self.host.leader()
        if address is None:
            raise HTTPError(503, f"No leading {self.framework_name} instance is elected yet")
        return self.proxy.forward(request, address)
