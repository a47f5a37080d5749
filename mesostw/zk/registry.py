"""The master's registry in ZooKeeper, fenced on the leader's own election node.

Layout under ``<path>/registry``: ``agents/<id>`` (AgentInfo JSON),
``unreachable/<id>`` (time), ``frameworks/<id>`` (FrameworkInfo JSON),
``removed/<id>`` (time) and ``weights`` (JSON). One znode per item keeps each
write small and far below ZooKeeper's 1 MB node limit, whatever the cluster's
size. Every write is a transaction that first checks the writer's ephemeral
election node: once that master's session is gone, so is the node, and the
write fails, so a deposed leader can never overwrite its successor's state.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from kazoo.exceptions import NoNodeError
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from mesostw.master.registry import (
    AddFramework,
    AdmitAgent,
    IRegistry,
    MarkUnreachable,
    Mutation,
    RegistryError,
    RegistryState,
    RemoveAgent,
    RemoveFramework,
    SetWeights,
)
from mesostw.zk.client import ZooKeeper

log = Logger()

SECTIONS = ("agents", "unreachable", "frameworks", "removed")


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@implementer(IRegistry)
class ZooKeeperRegistry:
    def __init__(self, zk: ZooKeeper, path: str, fence: Callable[[], str | None]):
        self.zk = zk
        self.root = f"{path.rstrip('/')}/registry"
        self.fence = fence
        self.state = RegistryState()

    def _path(self, *parts: str) -> str:
        return "/".join((self.root, *parts))

    @defer.inlineCallbacks
    def recover(self) -> Any:
        state = RegistryState()
        for section in SECTIONS:
            yield self.zk.ensure_path(self._path(section))
        for section in SECTIONS:
            children = yield self.zk.get_children(self._path(section))
            reads = [self.zk.get(self._path(section, child)) for child in children]
            results = yield defer.DeferredList(reads, consumeErrors=True)
            for child, (ok, result) in zip(children, results):
                if not ok:
                    continue
                value = json.loads(result[0] or b"null")
                if section == "agents":
                    state.agents[child] = value
                elif section == "unreachable":
                    state.unreachable[child] = float(value)
                elif section == "frameworks":
                    state.frameworks[child] = value
                else:
                    state.removed_frameworks[child] = float(value)
        try:
            data, _ = yield self.zk.get(self._path("weights"))
            state.weights = json.loads(data or b"{}")
        except NoNodeError:
            pass
        self.state = state
        return state

    def apply(self, mutation: Mutation) -> defer.Deferred:
        fence = self.fence()
        if fence is None:
            return defer.fail(RegistryError("this master is not contending for leadership"))
        before = RegistryState.from_json(json.loads(_dump(self.state.to_json())))
        mutation(self.state)
        tx = self.zk.transaction()
        tx.check(fence, 0)
        self._operations(tx, mutation, before)
        d = self.zk.commit(tx)

        def failed(failure: Any) -> None:
            self.state = before
            raise RegistryError(f"registry write refused by ZooKeeper ({failure.getErrorMessage() or failure.type}); "
                                "this master may no longer lead")

        return d.addCallbacks(lambda _: None, failed)

    def _operations(self, tx: Any, mutation: Mutation, before: RegistryState) -> None:
        def put(section: str, key: str, value: Any, existed: bool) -> None:
            path = self._path(section, key)
            if existed:
                tx.set_data(path, _dump(value))
            else:
                tx.create(path, _dump(value))

        def drop(section: str, key: str, existed: bool) -> None:
            if existed:
                tx.delete(self._path(section, key))

        if isinstance(mutation, AdmitAgent):
            put("agents", mutation.agent_id, mutation.info, mutation.agent_id in before.agents)
            drop("unreachable", mutation.agent_id, mutation.agent_id in before.unreachable)
        elif isinstance(mutation, MarkUnreachable):
            drop("agents", mutation.agent_id, mutation.agent_id in before.agents)
            put("unreachable", mutation.agent_id, mutation.time, mutation.agent_id in before.unreachable)
        elif isinstance(mutation, RemoveAgent):
            drop("agents", mutation.agent_id, mutation.agent_id in before.agents)
            drop("unreachable", mutation.agent_id, mutation.agent_id in before.unreachable)
        elif isinstance(mutation, AddFramework):
            put("frameworks", mutation.framework_id, mutation.info, mutation.framework_id in before.frameworks)
        elif isinstance(mutation, RemoveFramework):
            drop("frameworks", mutation.framework_id, mutation.framework_id in before.frameworks)
            put("removed", mutation.framework_id, mutation.time, mutation.framework_id in before.removed_frameworks)
            for old in set(before.removed_frameworks) - set(self.state.removed_frameworks) - {mutation.framework_id}:
                tx.delete(self._path("removed", old))
        elif isinstance(mutation, SetWeights):
            path = self._path("weights")
            if before.weights or self._weights_exist:
                tx.set_data(path, _dump(self.state.weights))
            else:
                tx.create(path, _dump(self.state.weights))
            self._weights_exist = True

    _weights_exist = False
