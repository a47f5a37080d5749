"""The framework as a Twisted service on an IFrameworkHost.

Built at once (the API's routes go on the host's router then, answering 503 until
ready); started, it waits for leadership, loads its state from the host's store,
and only then creates its scheduler driver as a child service (so stopping the
framework fails the driver over: the master keeps the tasks for
``failover_timeout``), reconciles and resumes the stored deployments.
"""

from __future__ import annotations

import getpass
from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from frameworks.service.api import ApiContext, install
from frameworks.service.appdef import App
from frameworks.service.controller import Controller
from frameworks.service.deployments import Deployment
from frameworks.service.events import EventBus
from frameworks.service.instances import Instance
from frameworks.service.probes import Prober, ReactorProber
from frameworks.service.runtime import Runtime
from frameworks.service.scheduler import ServiceScheduler
from frameworks.service.state import ServiceState
from frameworks.service.storage import Snapshot, Storage
from frameworks.service.timestamps import VersionClock
from frameworks.service.views import Views
from mesostw.model.info import FrameworkInfo

log = Logger()


class ServiceFramework(service.MultiService):
    def __init__(self, host: Any, config: Any, prober: Prober | None = None):
        super().__init__()
        self.host = host
        self.config = config
        clock = host.reactor
        self.state = ServiceState(config.local_port_min, config.local_port_max)
        self.storage = Storage(host.store)
        self.bus = EventBus(clock)
        self.runtime = Runtime(self.state, self.storage, self.bus, clock, config, prober or ReactorProber(clock))
        self.versions = VersionClock(clock)
        self.controller = Controller(self.state, self.storage, self.runtime, self.bus, self.versions,
                                     config.zk_max_versions)
        self.views = Views(self.state, clock)
        self.api = ApiContext(host, config, self.state, self.controller, self.runtime, self.views, self.bus,
                              started=clock.seconds())
        install(host.router, self.api)
        self.scheduler = ServiceScheduler(self.runtime)
        self.driver: Any = None
        self._leading: defer.Deferred | None = None

    def startService(self) -> None:
        super().startService()
        self._leading = self.host.whenLeading()
        self._leading.addCallback(self._lead)
        self._leading.addErrback(self._failed)

    def _failed(self, failure: Failure) -> None:
        if not failure.check(defer.CancelledError):
            log.failure("The service framework could not take over", failure)

    @defer.inlineCallbacks
    def _lead(self, _: Any) -> Any:
        if not self.running:
            return
        snapshot = yield self.storage.load()
        specs = yield self._instance_specs(snapshot)
        if not self.running:
            return
        self.recover(snapshot, specs)
        config = self.config
        info = FrameworkInfo(user=config.mesos_user or getpass.getuser(), name=config.framework_name,
                             id=self.state.framework_id, failover_timeout=config.failover_timeout, checkpoint=True,
                             role=config.mesos_role, capabilities=frozenset({"PARTITION_AWARE"}))
        self.driver = self.host.driver(self.scheduler, info)
        self.runtime.attach(self.driver)
        self.runtime.recovered()
        self.api.leading = True
        for deployment in sorted(self.state.deployments.values(), key=lambda d: d.version):
            self.runtime.deployer.start_deployment(deployment)
        self.driver.setServiceParent(self)
        log.info("Service framework leading with {apps} apps, {instances} instances, {deployments} deployments",
                 apps=len(self.state.apps), instances=len(self.state.instances),
                 deployments=len(self.state.deployments))

    @defer.inlineCallbacks
    def _instance_specs(self, snapshot: Snapshot) -> Any:
        """The stored versions that recovered instances run, beyond the apps' current ones."""
        current = {(a["id"], a["version"]) for a in snapshot.apps}
        wanted = {(i["appId"], i["version"]) for i in snapshot.instances} - current
        found: dict[tuple[str, str], App] = {}
        for app_id, version in sorted(wanted):
            stored = yield self.storage.version(app_id, version)
            if stored is not None:
                found[(app_id, version)] = App.from_json(stored)
        return found

    def recover(self, snapshot: Snapshot, specs: dict[tuple[str, str], App]) -> None:
        """Load a snapshot of the store into memory (nothing is running yet)."""
        state = self.state
        state.framework_id = snapshot.framework_id
        for data in snapshot.apps:
            app = App.from_json(data)
            state.set_app(app)
            self.versions.observe(app.version)
        for app_id, versions in snapshot.versions.items():
            if app_id in state.apps:
                state.versions[app_id] = sorted(set(versions) | {state.apps[app_id].version})
        for group in snapshot.groups:
            state.groups[group["id"]] = group
            self.versions.observe(group.get("version", ""))
        for data in snapshot.deployments:
            deployment = Deployment.from_store(data)
            self.versions.observe(deployment.version)
            state.add_deployment(deployment)
            for version in [*deployment.original.values(), *deployment.target.values()]:
                if version is not None:
                    state.specs.setdefault((version.id, version.version), version)
        state.specs.update(specs)
        for data in snapshot.instances:
            state.instances.add(Instance.from_store(data))
        for group_version in snapshot.group_versions:
            state.group_versions[group_version["version"]] = group_version
        for failure in snapshot.failures:
            if failure.get("appId") in state.apps:
                state.failures[failure["appId"]] = failure
        versions = [a.version for a in state.apps.values()] + [g.get("version", "") for g in snapshot.groups]
        state.root_version = max([v for v in versions if v] or [state.root_version])

    def stopService(self) -> Any:
        if self._leading is not None and not self._leading.called:
            self._leading.cancel()
        self.runtime.stop()
        streams = getattr(self.api, "streams", None)
        if streams is not None:
            streams.close_all()
        self.api.leading = False
        return super().stopService()
