"""An agent's connection to the leading master, over Perspective Broker.

:class:`MasterClient` finds the master (a detector), keeps one connection to it with backoff (a
:class:`~mesostw.wire.connector.Connector`), authenticates with the agent's ``--credential``
(CRAM-MD5), and (re-)registers the agent over a :class:`~mesostw.agent.pb.PBMasterLink` on every
new connection. A watchdog drops a connection on which the master has stopped pinging, so that the
agent looks for the master again, as Mesos's agents do.

It needs nothing of the agent's process but the :class:`~mesostw.agent.agent.Agent` core and a
reactor, which is all that connects: the agent's service composes it, and the in-process cluster
over PB (``tests/helpers/pbcluster.py``) runs it on a reactor whose TCP is in memory.
"""

from __future__ import annotations

from typing import Any

from twisted.application import internet, service
from twisted.internet import defer
from twisted.logger import Logger

from mesostw.agent.agent import Agent
from mesostw.agent.pb import PBMasterLink
from mesostw.auth.client import authenticate
from mesostw.detector import detector_for
from mesostw.wire.connector import Connector

log = Logger()


class MasterClient(service.MultiService):
    """The agent's side of its master connection, configured from the agent's flags (``--master``,
    ``--credential``, ``--registration_backoff_factor``, ``--agent_ping_timeout``,
    ``--zk_session_timeout``). ``tls`` is the agent's TLSConfig when it speaks TLS, else None."""

    name = "master-client"  # type: ignore[assignment]  # twisted declares Service.name as None

    def __init__(self, agent: Agent, reactor: Any, tls: Any = None):
        super().__init__()
        config = agent.config
        self.agent = agent
        self.reactor = reactor
        self.credential = config.credential
        self.detector = detector_for(reactor, config.master, config.zk_session_timeout)
        self.detector.setServiceParent(self)
        self.connector = Connector(reactor, self.detector.address, self._connected, self._lost,
                                   backoff=config.registration_backoff_factor, name="master", tls=tls)
        self.connector.setServiceParent(self)
        self.detector.listeners.append(self.connector.follow)
        watchdog = internet.TimerService(config.agent_ping_timeout, self._check_master)
        watchdog.clock = reactor
        watchdog.setName("master-watchdog")
        watchdog.setServiceParent(self)

    def _connected(self, root: Any) -> defer.Deferred:
        d = authenticate(root, self.credential) if self.credential else defer.succeed(None)
        d.addCallback(lambda _: self.agent.masterConnected(PBMasterLink(root, self.agent, self.reactor)))
        return d

    def _lost(self) -> None:
        self.agent.masterDisconnected()

    def _check_master(self) -> None:
        if self.agent.master_silent():
            log.warn("The master has not pinged this agent for too long; reconnecting")
            self.connector.drop()
