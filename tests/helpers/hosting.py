"""A framework host over the in-process :class:`~tests.helpers.cluster.Cluster`.

Bundled frameworks are tested here the way they run inside the master: through a local
scheduler driver, on the cluster's Clock, with a memory store and a Router that
:class:`tests.helpers.web.Client` can call without sockets.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet import defer
from zope.interface import implementer

from mesostw.http.router import Router
from mesostw.interfaces import AbdicationRefused, IFrameworkHost, IScheduler
from mesostw.model.info import FrameworkInfo
from mesostw.scheduler.local import LocalSchedulerDriver
from mesostw.store.memory import MemoryStateStore
from tests.helpers.cluster import Cluster


@implementer(IFrameworkHost)
class ClusterHost:
    """Hosts one framework on a Cluster; ``store`` may be shared to simulate a restart."""

    def __init__(self, cluster: Cluster, name: str, store: Any = None, principal: str | None = None):
        self.cluster = cluster
        self.reactor = cluster.clock
        self.name = name
        self.principal = principal
        self.backing = store if store is not None else MemoryStateStore()
        self.store = self.backing.scoped(f"frameworks/{name}")
        self.router = Router()
        self.api_url = f"http://127.0.0.1:{4400 if name == 'cron' else 8080}"
        self.drivers: list[LocalSchedulerDriver] = []
        #: how many times abdicate() was called; it is refused while ``refuse_abdication`` holds a reason
        self.abdications = 0
        self.refuse_abdication: str | None = None

    def driver(self, scheduler: IScheduler, framework_info: FrameworkInfo,
               implicit_acknowledgements: bool = True) -> LocalSchedulerDriver:
        info = attrs.evolve(framework_info, principal=self.principal or framework_info.principal,
                            webui_url=framework_info.webui_url or self.api_url)
        driver = LocalSchedulerDriver(scheduler, info, self.cluster.master, principal=self.principal,
                                      implicit_acknowledgements=implicit_acknowledgements)
        self.drivers.append(driver)
        return driver

    def whenLeading(self) -> defer.Deferred:
        return defer.succeed(None)

    def leader(self) -> str | None:
        return None

    def abdicate(self) -> None:
        if self.refuse_abdication is not None:
            raise AbdicationRefused(self.refuse_abdication)
        self.abdications += 1
