"""The master's service tree: core, allocation loop and the listening port."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.application import internet, service
from twisted.logger import Logger

from mesostw.allocator.hierarchical import HierarchicalAllocator
from mesostw.http.router import Router
from mesostw.master.calls import SchedulerCalls
from mesostw.master.http import MasterEndpoints
from mesostw.master.master import Master
from mesostw.master.pb import MasterRoot
from mesostw.master.scheduler_http import SchedulerAPI
from mesostw.wire.listen import Listener

log = Logger()


class MasterService(service.MultiService):
    """One master: built from its flags, started and stopped as one tree."""

    def __init__(self, config: Any, reactor: Any = None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.config = config
        self.reactor = reactor
        self.allocator = HierarchicalAllocator(reactor, config.weights)
        self.master = Master(config, self.allocator, reactor)
        self.calls = SchedulerCalls(self.master)
        self.router = Router()
        MasterEndpoints(self.master, config.rendered()).install(self.router)
        self.scheduler_api = SchedulerAPI(self.master, self.calls, reactor)
        self.scheduler_api.install(self.router)
        self.listener = Listener(reactor, config.ip, config.port, self.router,
                                 MasterRoot(self.master, self.calls, reactor))
        self.listener.setServiceParent(self)
        loop = internet.TimerService(config.allocation_interval, self.master.allocate)
        loop.clock = reactor
        loop.setName("allocation")
        loop.setServiceParent(self)

    def startService(self) -> None:
        super().startService()
        if self.config.port == 0 and not self.config.advertise_port:
            self.master.info = attrs.evolve(self.master.info, port=self.listener.port)
        log.info("Master {id} listening on {ip}:{port}", id=self.master.id, ip=self.config.ip,
                 port=self.listener.port)

    def stopService(self) -> Any:
        self.master.stop()
        return super().stopService()
