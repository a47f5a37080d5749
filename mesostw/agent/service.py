"""The agent's service tree: launcher, listening port and the connection to the master."""

from __future__ import annotations

import os
from typing import Any

import attrs
from twisted.application import service
from twisted.logger import Logger

from mesostw.agent import executor_stream, paths
from mesostw.agent.agent import Agent
from mesostw.agent.containerizer import PosixContainerizer
from mesostw.agent.executor_http import ExecutorAPI
from mesostw.agent.files import SandboxFiles
from mesostw.agent.http import AgentEndpoints
from mesostw.agent.launcher import Launcher
from mesostw.agent.master_client import MasterClient
from mesostw.agent.operator_api import AgentOperatorAPI
from mesostw.agent.pb import AgentRoot
from mesostw.agent.probe import missing_essentials, probe
from mesostw.auth.tls import tls_from
from mesostw.http.router import Router
from mesostw.model.info import AgentInfo
from mesostw.verbosity import VERBOSITY
from mesostw.wire.listen import Listener

log = Logger()


class AgentStartError(Exception):
    """The agent cannot start as configured; the message says why."""


class AgentService(service.MultiService):
    """One agent, built from its flags."""

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
        self.containerizer = PosixContainerizer(self.launcher)
        self.agent = Agent(config, info, self.containerizer, reactor)
        self.agent.registered.addCallback(self._link_latest)
        self.router = Router()
        AgentEndpoints(self.agent, config.rendered()).install(self.router)
        ExecutorAPI(self.agent).install(self.router)
        sandbox_files = SandboxFiles(os.path.join(config.work_dir, "slaves"))
        sandbox_files.install(self.router)
        AgentOperatorAPI(self.agent, config.rendered(), sandbox_files,
                         log_file=getattr(config, "external_log_file", None)).install(self.router)
        self.tls = tls_from(config)
        if self.tls.enabled:
            self.agent.tls_environment = self.tls.environment()
        self.listener = Listener(reactor, config.ip, config.port, self.router, AgentRoot(self.agent, reactor),
                                 {executor_stream.PREAMBLE: executor_stream.ExecutorStreamFactory(self.agent)},
                                 tls=self.tls if self.tls.enabled else None)
        self.listener.setServiceParent(self)
        #: the connection to the leading master: detector, connector, authentication, watchdog
        self.master_client = MasterClient(self.agent, reactor, tls=self.tls if self.tls.enabled else None)
        self.master_client.setServiceParent(self)

    def startService(self) -> None:
        # The port is known only once listening; the agent advertises it when it registers.
        service.Service.startService(self)
        self.launcher.startService()
        self.listener.startService()
        if not self.config.advertise_port:
            self.agent.info = attrs.evolve(self.agent.info, port=self.listener.port)
        self.master_client.startService()

    def _link_latest(self, agent_id: str) -> str:
        os.makedirs(paths.agent_dir(self.config.work_dir, agent_id), exist_ok=True)
        paths.relink(os.path.join(self.config.work_dir, "slaves", "latest"), agent_id)
        return agent_id

    def stopService(self) -> Any:
        self.agent.stop()
        VERBOSITY.revert()  # no revert timer outlives the daemon
        return super().stopService()
