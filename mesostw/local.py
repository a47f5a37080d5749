"""``twistd mesos-local``: a master, agents and frameworks in one process, for trying mesostw out.

No ZooKeeper; everything lives under ``--work_dir``. Agents listen on free
ports next to the master and register with it over loopback like any agent.
The master hosts every installed framework plugin (``--frameworks=`` for none).
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application import service

from mesostw import flags as flaglib
from mesostw.agent.flags import AGENT_FLAGS, check_work_dir_and_resources
from mesostw.agent.service import AgentService
from mesostw.flags import Config, Flag, FlagOptions
from mesostw.master.flags import MASTER_FLAGS, MasterOptions
from mesostw.master.service import MasterService
from mesostw.scheduler.hosted_flags import hosting_options
from mesostw.scheduler.plugins import FrameworkFlagsError
from mesostw.scheduler.standalone_tap import refuse
from mesostw.shutdown import daemon_root

#: Flags of a lone master that make no sense here: ZooKeeper, and where the registry lives.
_NOT_LOCAL = {"work_dir", "zk", "quorum", "zk_session_timeout", "registry", "authenticate_agents"}

LOCAL_FLAGS = tuple(f for f in MASTER_FLAGS if f.name not in _NOT_LOCAL) + (
    Flag.int("num_slaves", 2, "Number of agents to run", aliases=("num_agents",)),
    Flag("work_dir", "/tmp/mesos-local", "Directory for the master's registry and the agents' sandboxes"),
    Flag("resources", None, "Resources of each agent (default: probed, as for mesos-slave)"),
)


class LocalOptions(MasterOptions):
    def check(self, config: Config, errors: list[str]) -> None:
        super().check(config, errors)
        if config.num_slaves < 1:
            errors.append("--num_slaves must be at least 1")
        if config.port == 0 and not config.advertise_port:
            errors.append("--port must be a port number here (not 0): the agents are given it to register")
        config.work_dir = os.path.abspath(config.work_dir)
        check_work_dir_and_resources(agent_config(config, 0), errors)


Options = hosting_options(LOCAL_FLAGS, LocalOptions, default="all")


def agent_config(config: Config, index: int) -> Config:
    return flaglib.defaults(
        AGENT_FLAGS,
        ip=config.ip,
        port=0,
        hostname=config.hostname,
        master=f"{config.advertise_ip or config.ip}:{config.advertise_port or config.port}",
        work_dir=os.path.join(config.work_dir, f"agent-{index}"),
        resources=config.resources,
        agent_ping_timeout=config.agent_ping_timeout,
        max_agent_ping_timeouts=config.max_agent_ping_timeouts,
    )


def makeService(options: Any) -> service.MultiService:
    config = options.config
    hosting = tuple(getattr(options, "hosting_flags", ()))
    master_config = flaglib.defaults((*MASTER_FLAGS, *hosting), work_dir=os.path.join(config.work_dir, "master"),
                                     **{f.name: getattr(config, f.name) for f in (*MASTER_FLAGS, *hosting)
                                        if f.name not in _NOT_LOCAL})
    agents = [AgentService(agent_config(config, index), name=f"agent-{index}") for index in range(config.num_slaves)]
    try:
        master = MasterService(master_config, plugins=getattr(options, "plugins", None))
    except FrameworkFlagsError as exc:
        raise refuse("mesos-local", exc) from None
    return daemon_root(master, *agents)


__all__ = ["Options", "makeService", "FlagOptions"]
