"""``twistd mesos-slave`` (also ``mesos-agent``): an agent."""

from twisted.application import service

from mesostw.agent.flags import Options
from mesostw.agent.service import AgentService
from mesostw.daemon import daemon
from mesostw.flags import FlagOptions

__all__ = ["Options", "makeService"]


def makeService(options: FlagOptions) -> service.MultiService:
    return daemon(AgentService(options.config))
