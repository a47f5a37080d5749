"""The master's registry in ZooKeeper, fenced on the leader's own election node.

Layout under ``<path>/registry``: ``agents/<id>`` (AgentInfo JSON),
``unreachable/<id>`` (time), ``frameworks/<id>`` (FrameworkInfo JSON),
``removed/<id>`` (time) and ``weights`` (JSON). One znode per item keeps each
write small and far below ZooKeeper's 1 MB node limit, whatever the cluster's
size. Every write is a transaction that first checks the writer's ephemeral
election node: once that master's session is gone, so is the node, and the
write fails, so a deposed leader can never overwrite its successor's state.
Transactions go one at a time; mutations that arrive meanwhile are committed
together by the next one (group commit), and a refused transaction is undone
from :attr:`ZooKeeperRegistry.state` exactly.
"""

from __future__ import annotations

import json
from collections import OrderedDict
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

#: Mutations committed together at most (a transaction must stay far below ZooKeeper's 1 MB limit).
MAX_BATCH = 64


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@implementer(IRegistry)
class ZooKeeperRegistry:
    def __init__(self, zk: ZooKeeper, path: str, fence: Callable[[], str | None]):
        self.zk = zk
        self.root = f"{path.rstrip('/')}/registry"
        self.fence = fence
        self.state = RegistryState()
        self._queue: list[tuple[Mutation, defer.Deferred]] = []
        self._writing = False
        self._weights_exist = False

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
            for child, (ok, result) in zip(children, results, strict=True):
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
            weights_exist = True
        except NoNodeError:
            weights_exist = False
        # Oldest first, as they were removed: that is the order in which the bound forgets them.
        state.removed_frameworks = OrderedDict(sorted(state.removed_frameworks.items(), key=lambda kv: (kv[1], kv[0])))
        self.state, self._weights_exist = state, weights_exist
        return state

    def apply(self, mutation: Mutation) -> defer.Deferred:
        if self.fence() is None:
            return defer.fail(RegistryError("this master is not contending for leadership"))
        d: defer.Deferred = defer.Deferred()
        self._queue.append((mutation, d))
        if not self._writing:
            self._write()
        return d

    def _write(self) -> None:
        """Commit what is queued as one transaction, one transaction at a time: each is built on the
        state the previous ones committed, and a refused one is undone exactly."""
        batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        fence = self.fence()
        if fence is None:
            self._finish(batch, RegistryError("this master is not contending for leadership"))
            return
        before, weights_existed = self.state.copy(), self._weights_exist
        tx = self.zk.transaction()
        tx.check(fence, 0)
        for mutation, _ in batch:
            self._operations(tx, mutation)
            mutation(self.state)
        self._writing = True

        def failed(failure: Any) -> RegistryError:
            self.state, self._weights_exist = before, weights_existed
            return RegistryError(f"registry write refused by ZooKeeper "
                                 f"({failure.getErrorMessage() or failure.type.__name__}); "
                                 "this master may no longer lead")

        d = defer.maybeDeferred(self.zk.commit, tx)
        d.addCallbacks(lambda _: None, failed)
        d.addCallback(lambda error: self._finish(batch, error))

    def _finish(self, batch: list[tuple[Mutation, defer.Deferred]], error: RegistryError | None) -> None:
        self._writing = False
        for _, d in batch:
            if error is None:
                d.callback(None)
            else:
                d.errback(RegistryError(str(error)))
        if self._queue and not self._writing:
            self._write()

    def _operations(self, tx: Any, mutation: Mutation) -> None:
        """Add the writes for ``mutation`` to ``tx``; called before it changes :attr:`state`."""
        state = self.state

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
            put("agents", mutation.agent_id, mutation.info, mutation.agent_id in state.agents)
            drop("unreachable", mutation.agent_id, mutation.agent_id in state.unreachable)
        elif isinstance(mutation, MarkUnreachable):
            drop("agents", mutation.agent_id, mutation.agent_id in state.agents)
            put("unreachable", mutation.agent_id, mutation.time, mutation.agent_id in state.unreachable)
        elif isinstance(mutation, RemoveAgent):
            drop("agents", mutation.agent_id, mutation.agent_id in state.agents)
            drop("unreachable", mutation.agent_id, mutation.agent_id in state.unreachable)
        elif isinstance(mutation, AddFramework):
            put("frameworks", mutation.framework_id, mutation.info, mutation.framework_id in state.frameworks)
        elif isinstance(mutation, RemoveFramework):
            drop("frameworks", mutation.framework_id, mutation.framework_id in state.frameworks)
            # The oldest removed IDs beyond the bound are forgotten: do it to a copy of that list, and mirror it.
            probe = RegistryState(removed_frameworks=OrderedDict(state.removed_frameworks))
            mutation(probe)
            existed = mutation.framework_id in state.removed_frameworks
            if mutation.framework_id in probe.removed_frameworks:
                put("removed", mutation.framework_id, mutation.time, existed)
            for old in state.removed_frameworks.keys() - probe.removed_frameworks.keys():
                drop("removed", old, True)
        elif isinstance(mutation, SetWeights):
            weights = {**state.weights, **mutation.weights}
            if self._weights_exist:
                tx.set_data(self._path("weights"), _dump(weights))
            else:
                tx.create(self._path("weights"), _dump(weights))
            self._weights_exist = True

