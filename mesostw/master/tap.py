"""``twistd mesos-master``: a master."""

from mesostw.master.flags import Options
from mesostw.master.service import MasterService

__all__ = ["Options", "makeService"]


def makeService(options: Options) -> MasterService:
    return MasterService(options.config)
