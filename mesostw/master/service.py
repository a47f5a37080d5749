"""The master's service tree: core, registry, leadership, allocation loop and the listening port."""

from __future__ import annotations

import os
from typing import Any

import attrs
from twisted.application import internet, service
from twisted.internet import defer
from twisted.logger import Logger

from mesostw.allocator.hierarchical import HierarchicalAllocator
from mesostw.auth.policy import Security
from mesostw.auth.tls import tls_from
from mesostw.http.router import Router
from mesostw.master.collector import HeapFreezer
from mesostw.master.http import LeaderRouting, MasterEndpoints
from mesostw.master.leadership import StandaloneLeadership, ZooKeeperLeadership, abort
from mesostw.master.master import Master
from mesostw.master.pb import MasterRoot
from mesostw.master.registry import InMemoryRegistry, IRegistry, Registry
from mesostw.master.scheduler_http import SchedulerAPI
from mesostw.scheduler.master_host import HostedFrameworks
from mesostw.store.factory import open_store
from mesostw.ui.master import MasterUI
from mesostw.verbosity import VERBOSITY
from mesostw.wire.guard import HTTPLimits
from mesostw.wire.listen import Listener

log = Logger()


class MasterService(service.MultiService):
    """One master: built from its flags, started and stopped as one tree."""

    def __init__(self, config: Any, reactor: Any = None, plugins: dict[str, Any] | None = None,
                 collector: Any = None):
        """``collector``: the :mod:`gc` module, for the master to hold back while a failover's agents
        re-register and to freeze the heap full collections leave (a daemon's; None: left alone, as in
        tests sharing their process)."""
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.config = config
        self.reactor = reactor
        self.allocator = HierarchicalAllocator(reactor, config.weights)
        self.zk: Any = None
        self.store: Any = None
        registry = self._registry()
        self.master = Master(config, self.allocator, reactor, registry=registry,
                             security=Security.from_config(config, reactor), collector=collector)
        self.master.on_registry_failure = self._registry_failed
        #: keeps full collections to what is new (see :class:`HeapFreezer`); only with a ``collector``
        self.freezer = HeapFreezer(reactor, collector) if collector is not None else None
        if self.zk is not None:
            from mesostw.zk.url import parse_zk_url

            self.leadership: Any = ZooKeeperLeadership(reactor, self.zk, parse_zk_url(config.zk).path, self.master,
                                                       registry, standby=self.store)
        else:
            self.leadership = StandaloneLeadership(self.master, registry)
        self.router = Router()
        #: one answer to "does this master serve the request?" for every HTTP endpoint, /master/redirect included
        self.routing = LeaderRouting(self.master, lambda: self.leadership.leader)
        self.endpoints = MasterEndpoints(self.master, config.rendered(), self.routing)
        self.endpoints.install(self.router)
        self.scheduler_api = SchedulerAPI(self.master, reactor)
        self.scheduler_api.not_leading = self.routing.not_leading
        self.scheduler_api.install(self.router)
        self.tls = tls_from(config)
        self.listener = Listener(reactor, config.ip, config.port, self.router,
                                 MasterRoot(self.master, reactor, self.leader_pid),
                                 tls=self.tls if self.tls.enabled else None, limits=HTTPLimits.from_config(config))
        self.listener.setServiceParent(self)
        self.leadership.setServiceParent(self)
        loop = internet.TimerService(config.allocation_interval, self._allocate)
        loop.clock = reactor
        loop.setName("allocation")
        loop.setServiceParent(self)
        #: the frameworks this master hosts while it leads (``--frameworks``), or None
        self.frameworks: HostedFrameworks | None = None
        if getattr(config, "frameworks", ()):
            if plugins is None:
                from mesostw.scheduler.plugins import framework_plugins

                plugins = framework_plugins()[0]
            self.frameworks = HostedFrameworks(self, plugins, config)
            self.frameworks.setServiceParent(self)
        #: the web UI at / (with the hosted frameworks' APIs under /<name> and agents' sandboxes)
        self.ui = MasterUI(self)
        self.ui.install(self.router)

    def _registry(self) -> IRegistry:
        """The registry in ZooKeeper (``<zk path>/registry``, fenced on this master's election node),
        in files (``<work_dir>/registry``, importing an earlier version's ``registry.json`` once),
        or in memory."""
        config = self.config
        if config.registry == "in_memory":
            registry = InMemoryRegistry()
            self.store = registry.store
            return registry
        if config.zk:
            from mesostw.zk.client import ZooKeeper
            from mesostw.zk.url import parse_zk_url

            url = parse_zk_url(config.zk)
            self.zk = ZooKeeper(self.reactor, url, config.zk_session_timeout)
            self.store = open_store(self.reactor, zk=self.zk, zk_path=f"{url.path.rstrip('/')}/registry",
                                    fence=lambda: self.leadership.contender.node_path, what="registry")
            return Registry(self.store, clock=self.reactor)
        directory = os.path.join(config.work_dir, "registry") if config.work_dir else None
        self.store = open_store(self.reactor, directory=directory, what="registry")
        legacy = os.path.join(config.work_dir, "registry.json") if config.work_dir else None
        return Registry(self.store, legacy_file=legacy, clock=self.reactor)

    def _allocate(self) -> None:
        if self.master.leading:
            self.master.allocate()

    def _registry_failed(self, failure: Any) -> None:
        abort(f"the registry refused a write: {failure.getErrorMessage()}")

    def leader_pid(self) -> str | None:
        """Who leads, for PB refusals when this master does not (None when it does)."""
        return self.routing.leader_pid()

    def startService(self) -> None:
        # Listen first: with --port=0 the port is known only then, and it goes into the MasterInfo
        # this master contends with.
        service.Service.startService(self)
        self.listener.startService()
        if self.config.port == 0 and not self.config.advertise_port:
            self.master.info = attrs.evolve(self.master.info, port=self.listener.port)
        for child in self:
            if child is not self.listener:
                child.startService()
        if self.freezer is not None:
            self.freezer.start()
        log.info("Master {id} listening on {ip}:{port}", id=self.master.id, ip=self.config.ip,
                 port=self.listener.port)

    def stopService(self) -> Any:
        if self.freezer is not None:
            self.freezer.stop()
        # Hosted frameworks go first, while the master still runs: their drivers fail over cleanly.
        d = self.frameworks.stopFrameworks() if self.frameworks is not None else defer.succeed(None)
        d.addCallback(lambda _: self.master.stop())
        d.addCallback(lambda _: VERBOSITY.revert())  # no revert timer outlives the daemon
        d.addCallback(lambda _: super(MasterService, self).stopService())
        # Release the registry's store (a file store's lock) once everything above it stopped.
        d.addBoth(lambda result: self.store.close().addBoth(lambda _: result))
        return d
