"""``twistd mesos-master``: a master."""

from twisted.application import service

from mesostw.daemon import daemon
from mesostw.flags import FlagOptions
from mesostw.master.flags import Options
from mesostw.master.service import MasterService

__all__ = ["Options", "makeService"]


def makeService(options: FlagOptions) -> service.MultiService:
    return daemon(MasterService(options.config))
