"""``twistd mesos-master``: a master."""

from twisted.application import service

from mesostw.flags import FlagOptions
from mesostw.master.flags import Options
from mesostw.master.service import MasterService
from mesostw.shutdown import daemon_root

__all__ = ["Options", "makeService"]


def makeService(options: FlagOptions) -> service.MultiService:
    return daemon_root(MasterService(options.config))
