"""Where hosted frameworks keep their state: the one place both hosts open a framework's IStateStore.

* In the master (:func:`master_store`, scoped by the host to ``hosted/<name>``): the store the master
  keeps its registry in (``MasterService.store``: ZooKeeper fenced on the master's election node,
  files under ``--work_dir``, or memory), so a framework's state has the registry's durability and fence.
* Standalone (:func:`standalone_store`): ZooKeeper under ``<--zk path>/state`` (fenced on the
  instance's election node), else files under ``--work_dir``, else memory with a warning.
"""

from __future__ import annotations

from typing import Any

from mesostw.store.factory import open_store


def master_store(master_service: Any) -> Any:
    """The one store every framework hosted by ``master_service`` (a MasterService) keeps its state in."""
    return master_service.store


def standalone_store(reactor: Any, config: Any, zk: Any, election: Any) -> Any:
    """The IStateStore of a standalone framework (``--zk``, else ``--work_dir``, else memory)."""
    zk_path = None
    if zk is not None:
        from mesostw.zk.url import parse_zk_url

        zk_path = f"{parse_zk_url(config.zk).path.rstrip('/')}/state"
    return open_store(reactor, directory=config.work_dir, zk=zk, zk_path=zk_path, fence=lambda: election.fence,
                      what="framework's state")
