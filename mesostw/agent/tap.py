"""``twistd mesos-slave`` (also ``mesos-agent``): an agent."""

from mesostw.agent.flags import Options
from mesostw.agent.service import AgentService

__all__ = ["Options", "makeService"]


def makeService(options: Options) -> AgentService:
    return AgentService(options.config)
