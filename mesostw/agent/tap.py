"""``twistd mesos-slave`` (also ``mesos-agent``): an agent."""

from twisted.application import service

from mesostw.agent.flags import Options
from mesostw.agent.service import AgentService
from mesostw.flags import FlagOptions
from mesostw.shutdown import daemon_root

__all__ = ["Options", "makeService"]


def makeService(options: FlagOptions) -> service.MultiService:
    return daemon_root(AgentService(options.config))
