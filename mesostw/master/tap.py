"""``twistd mesos-master``: a master, hosting the frameworks ``--frameworks`` names while it leads."""

import gc
from typing import Any

from twisted.application import service

from mesostw.master.flags import MASTER_FLAGS, MasterOptions
from mesostw.master.service import MasterService
from mesostw.scheduler.hosted_flags import hosting_options
from mesostw.scheduler.plugins import FrameworkFlagsError
from mesostw.scheduler.standalone_tap import refuse
from mesostw.shutdown import daemon_root

__all__ = ["Options", "makeService"]

Options = hosting_options(MASTER_FLAGS, MasterOptions, default="none")


def makeService(options: Any) -> service.MultiService:
    try:
        return daemon_root(MasterService(options.config, plugins=options.plugins, collector=gc))
    except FrameworkFlagsError as exc:
        raise refuse("mesos-master", exc) from None
