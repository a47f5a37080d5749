"""The agent's service tree: launcher, listening port and the connection to the master."""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any

import attrs
from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from mesostw.agent import executor_stream, isolation, paths
from mesostw.agent.access import AgentAccess
from mesostw.agent.agent import Agent
from mesostw.agent.cgroups import CgroupsError
from mesostw.agent.checkpoint import Checkpoint, Checkpointer, CheckpointError, boot_id
from mesostw.agent.containerizer import Containerizer
from mesostw.agent.executor_auth import KEY_PATH, ExecutorSecrets
from mesostw.agent.executor_http import ExecutorAPI
from mesostw.agent.fetcher import Cache, Fetcher
from mesostw.agent.files import SandboxFiles
from mesostw.agent.http import AgentEndpoints
from mesostw.agent.launcher import Launcher
from mesostw.agent.master_client import MasterClient
from mesostw.agent.operator_api import AgentOperatorAPI
from mesostw.agent.pb import AgentRoot
from mesostw.agent.probe import missing_essentials, probe
from mesostw.agent.volumes import Volumes
from mesostw.auth.policy import Security
from mesostw.auth.tls import tls_from
from mesostw.http.router import Router
from mesostw.model.info import AgentInfo
from mesostw.model.operations import Incompatible, apply_checkpointed
from mesostw.store import StoreError
from mesostw.store.files import FileStateStore
from mesostw.verbosity import VERBOSITY
from mesostw.wire.guard import HTTPLimits
from mesostw.wire.listen import Listener

log = Logger()

#: Where the checkpoint's store lives under --work_dir (Mesos's meta/).
CHECKPOINT_PATH = os.path.join("meta", "checkpoint")


def default_cgroups_root(work_dir: str) -> str:
    """``mesostw/<digest of the work_dir>``: the same for every run of an agent, and its own on a shared host."""
    return "mesostw/" + hashlib.sha256(os.path.realpath(work_dir).encode()).hexdigest()[:12]


class AgentStartError(Exception):
    """The agent cannot start as configured; the message says why."""


def abort(reason: str) -> None:
    """Stop this agent process now (exit status 1), as a Mesos agent exits when it cannot recover."""
    log.critical("Aborting: {reason}", reason=reason)
    sys.stderr.write(f"mesos-slave: aborting: {reason}\n")
    sys.stderr.flush()
    os._exit(1)


class AgentService(service.MultiService):
    """One agent, built from its flags.

    Starting it recovers the checkpoint under ``--work_dir/meta`` (see :mod:`mesostw.agent.recovery`),
    then listens (for executors to reconnect), and registers with the master once the executors
    it waits for are back.
    """

    def __init__(self, config: Any, reactor: Any = None, name: str | None = None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.config = config
        self.reactor = reactor
        if name:
            self.setName(name)
        os.makedirs(config.work_dir, exist_ok=True)
        resources = probe(config.work_dir, config.resources, config.default_role)
        problem = missing_essentials(resources)
        if problem:
            raise AgentStartError(problem)
        info = AgentInfo(hostname=config.hostname, port=config.advertise_port or config.port, resources=resources,
                         attributes=config.attributes)
        self.launcher = Launcher(reactor)
        self.launcher.setServiceParent(self)
        try:
            isolators, containment = isolation.build(
                config.isolation, reactor, config.cgroups_root or default_cgroups_root(config.work_dir),
                config.cgroups_hierarchy, config.cgroups_enable_cfs, config.container_disk_watch_interval,
                config.enforce_container_disk_quota)
        except CgroupsError as exc:
            raise AgentStartError(f"--isolation={config.isolation}: {exc}") from None
        cache = Cache(config.fetcher_cache_dir or os.path.join(config.work_dir, "fetch"), config.fetcher_cache_size)
        self.fetcher = Fetcher(reactor, cache, config.frameworks_home, config.fetcher_timeout)
        volumes = Volumes(config.work_dir)
        self.containerizer = Containerizer(self.launcher, isolators, containment, reactor, self.fetcher,
                                           volumes=volumes)
        self.store = FileStateStore(os.path.join(config.work_dir, CHECKPOINT_PATH), reactor)
        self.agent = Agent(config, info, self.containerizer, reactor, Checkpointer(self.store))
        self.agent.volumes = volumes
        key_file = getattr(config, "executor_secret_key", None)
        # The key outlives the agent's process, so that executors it recovers after a restart keep
        # their secrets (which are derived from it and their container IDs).
        self.agent.executor_secrets = ExecutorSecrets.from_file(key_file or os.path.join(config.work_dir, KEY_PATH),
                                                                create=not key_file)
        self.agent.registered.addCallback(self._link_latest)
        self.router = Router()
        sandboxes = os.path.join(config.work_dir, "slaves")
        self.access = AgentAccess(self.agent, Security.for_agent(config, reactor), sandboxes)
        self.access.install(self.router)
        AgentEndpoints(self.agent, config.rendered()).install(self.router)
        ExecutorAPI(self.agent, getattr(config, "authenticate_http_executors", True)).install(self.router)
        sandbox_files = SandboxFiles(sandboxes, self.access.check_sandbox)
        sandbox_files.install(self.router)
        AgentOperatorAPI(self.agent, config.rendered(), sandbox_files, security=self.access.security,
                         log_file=getattr(config, "external_log_file", None)).install(self.router)
        self.tls = tls_from(config)
        if self.tls.enabled:
            self.agent.tls_environment = self.tls.environment()
        self.listener = Listener(reactor, config.ip, config.port, self.router, AgentRoot(self.agent, reactor),
                                 {executor_stream.PREAMBLE: executor_stream.ExecutorStreamFactory(self.agent)},
                                 tls=self.tls if self.tls.enabled else None, limits=HTTPLimits.from_config(config))
        self.listener.setServiceParent(self)
        #: the connection to the leading master: detector, connector, authentication, watchdog; joined to
        #: the tree once recovery is done, since the agent registers only then
        self.master_client = MasterClient(self.agent, reactor, tls=self.tls if self.tls.enabled else None)
        #: fires once the agent has recovered and goes for the master
        self.started: defer.Deferred[None] = defer.Deferred()
        self.recovery_seconds: float | None = None

    def startService(self) -> None:
        service.Service.startService(self)
        self.launcher.startService()
        began = self.reactor.seconds()
        d = self._recover()
        d.addCallback(lambda _: self._listen())
        d.addCallback(lambda _: self.agent.recovered)
        d.addCallback(lambda _: self._join(began))
        d.addErrback(self._failed)

    @defer.inlineCallbacks
    def _recover(self) -> Any:
        config = self.config
        try:
            yield self.store.open()
        except StoreError as exc:
            raise AgentStartError(f"--work_dir={config.work_dir}: {exc}") from None
        try:
            checkpoint = yield self.agent.checkpointer.read()
        except CheckpointError as exc:
            if config.strict:
                raise AgentStartError(f"cannot recover: {exc} (--strict=false starts without it)") from None
            log.warn("Cannot recover: {e}; starting without the checkpoint", e=exc)
            self.agent.checkpointer.forget_all()
            checkpoint = Checkpoint()
        if checkpoint.errors:
            listed = "; ".join(checkpoint.errors[:10])
            if config.strict:
                raise AgentStartError(f"cannot recover the checkpoint whole: {listed} (--strict=false recovers "
                                      "what can be read)")
            log.warn("Recovering what can be read of the checkpoint; skipped: {e}", e=listed)
        if checkpoint.resources is not None:
            try:
                apply_checkpointed(self.agent.info.resources, checkpoint.resources)
            except Incompatible as exc:
                raise AgentStartError(f"the checkpointed resources (dynamic reservations and persistent volumes) "
                                      f"are incompatible with the agent's resources: {exc}; give the "
                                      f"--resources they were made from") from None
        if checkpoint.boot_id and checkpoint.boot_id != boot_id():
            log.info("The host rebooted since the agent last ran: none of its executors survived")
        alive = yield self.containerizer.recover(list(checkpoint.containers.values()))
        self.agent.recover(checkpoint, alive, config.recover)

    def _listen(self) -> None:
        # The port is known only once listening; the agent advertises it when it registers.
        self.listener.startService()
        if not self.config.advertise_port:
            self.agent.info = attrs.evolve(self.agent.info, port=self.listener.port)

    def _join(self, began: float) -> None:
        self.recovery_seconds = self.reactor.seconds() - began
        if self.agent.info.id is not None:
            log.info("Recovered agent {id} in {s:.3f}s", id=self.agent.info.id, s=self.recovery_seconds)
        self.master_client.setServiceParent(self)
        self.started.callback(None)

    def _failed(self, failure: Any) -> None:
        if not self.running:
            return
        if failure.check(AgentStartError):
            abort(failure.getErrorMessage())
        else:
            log.failure("Recovery failed", failure)
            abort(f"recovery failed: {failure.getErrorMessage()}")

    def _link_latest(self, agent_id: str) -> str:
        os.makedirs(paths.agent_dir(self.config.work_dir, agent_id), exist_ok=True)
        paths.relink(os.path.join(self.config.work_dir, "slaves", "latest"), agent_id)
        return agent_id

    def stopService(self) -> Any:
        self.agent.stop()
        self.containerizer.stop()
        self.fetcher.stop()
        VERBOSITY.revert()  # no revert timer outlives the daemon
        d = defer.maybeDeferred(super().stopService)
        # Release the checkpoint's store (its lock) once everything above it stopped.
        d.addBoth(lambda result: self.store.close().addBoth(lambda _: result))
        return d
