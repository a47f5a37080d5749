"""``twistd mesos-master``: a master."""

from twisted.application import service

from mesostw.daemon import daemon
from mesostw.master.flags import Options
from mesostw.master.service import MasterService

__all__ = ["Options", "makeService"]


def makeService(options: Options) -> service.MultiService:
    return daemon(MasterService(options.config))
