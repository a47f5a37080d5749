"""``twistd mesos-master``: a master, hosting the frameworks ``--frameworks`` names while it leads."""

from typing import Any

from mesostw.master.flags import MASTER_FLAGS, MasterOptions
from mesostw.master.service import MasterService
from mesostw.scheduler.hosted_flags import hosting_options

__all__ = ["Options", "makeService"]

Options = hosting_options(MASTER_FLAGS, MasterOptions, default="none")


def makeService(options: Any) -> MasterService:
    return MasterService(options.config, plugins=options.plugins)
