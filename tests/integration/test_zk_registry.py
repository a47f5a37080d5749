"""The registry and the election against a real single ZooKeeper server (one per test class).

The registry over the ZooKeeper store keeps every mutation in znodes (the
layout earlier versions wrote) and recovers them; its writes are fenced on the
writer's election node; contenders and the detector elect and follow the
lowest member.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest

from mesostw.detector import ZooKeeperMasterDetector, encode_master_info
from mesostw.master import registry as registry_module
from mesostw.master.registry import (
    AddFramework,
    AdmitAgent,
    MarkUnreachable,
    Registry,
    RegistryError,
    RegistryState,
    RemoveAgent,
    RemoveFramework,
    SetWeights,
)
from mesostw.model.info import MasterInfo
from mesostw.store.zookeeper import ZooKeeperStateStore
from mesostw.zk.client import ZooKeeper
from mesostw.zk.election import Contender
from mesostw.zk.url import parse_zk_url
from tests.helpers.processes import wait_for
from tests.helpers.registry_behaviour import RegistryBehaviour
from tests.helpers.zookeeper import AVAILABLE, ZooKeeperEnsemble

_paths = itertools.count()

if not AVAILABLE:
    raise RuntimeError("ZooKeeper is not installed: `make test` installs Debian's zookeeper package")


def master_info(name: str, port: int) -> MasterInfo:
    return MasterInfo(id=f"id-{name}", ip="127.0.0.1", port=port, hostname=name)


def agent(name: str) -> dict[str, Any]:
    """An agent's registry entry as the registry holds it in memory: without its ID, which is its key."""
    return {"hostname": name, "port": 5051}


def framework(name: str) -> dict[str, Any]:
    return {"user": "nobody", "name": name, "id": {"value": name}, "failover_timeout": 60.0}


def zk_registry(zk: ZooKeeper, path: str, fence: Any) -> Registry:
    """The master's registry as ``MasterService`` builds it with ``--zk``: under ``<path>/registry``."""
    return Registry(ZooKeeperStateStore(zk, f"{path}/registry", fence))


class ZooKeeperTestCase(unittest.TestCase):
    """One standalone ZooKeeper server per class, a group path of its own per test, and clients that
    the test's cleanup closes."""

    timeout = 60
    ensemble: ZooKeeperEnsemble

    @classmethod
    def setUpClass(cls) -> None:
        cls.ensemble = ZooKeeperEnsemble(1)
        cls.ensemble.start_blocking()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.ensemble.stop()

    def setUp(self) -> None:
        self.path = f"/mesos{next(_paths)}"
        self.url = parse_zk_url(self.ensemble.url(self.path))

    @defer.inlineCallbacks
    def client(self) -> Any:
        zk = ZooKeeper(reactor, self.url, session_timeout=4.0)
        self.addCleanup(zk.stop)
        yield zk.start()
        return zk

    @defer.inlineCallbacks
    def contender(self, zk: ZooKeeper, name: str = "m1", port: int = 5050) -> Any:
        contender = Contender(zk, self.path)
        yield contender.contend(encode_master_info(master_info(name, port)))
        return contender


class RegistryTests(ZooKeeperTestCase):
    @defer.inlineCallbacks
    def leader_registry(self) -> Any:
        """A client, its election node, and a registry fenced on that node (recovered, as on election)."""
        self.zk = yield self.client()
        self.elected = yield self.contender(self.zk)
        registry = zk_registry(self.zk, self.path, lambda: self.elected.node_path)
        yield registry.recover()
        return registry

    @defer.inlineCallbacks
    def recovered(self) -> Any:
        """The registry as a new leader on another session reads it."""
        if getattr(self, "reader", None) is None:
            self.reader = yield self.client()
        state = yield zk_registry(self.reader, self.path, None).recover()
        return state

    @defer.inlineCallbacks
    def test_round_trip_of_every_mutation(self) -> Any:
        """Each kind of mutation is written and read back by a fresh registry on another session."""
        registry = yield self.leader_registry()
        expected = RegistryState()
        mutations: list[Any] = [
            AdmitAgent("S1", agent("S1")), AdmitAgent("S2", agent("S2")), AdmitAgent("S3", agent("S3")),
            AdmitAgent("S1", {**agent("S1"), "port": 6051}),
            MarkUnreachable("S2", 10.5), MarkUnreachable("S3", 11.0), AdmitAgent("S3", agent("S3")),
            MarkUnreachable("S4", 12.0), RemoveAgent("S4"), AdmitAgent("S5", agent("S5")), RemoveAgent("S5"),
            AddFramework("F1", framework("F1")), AddFramework("F2", framework("F2")),
            AddFramework("F1", {**framework("F1"), "name": "renamed"}),
            RemoveFramework("F2", 20.0), RemoveFramework("F0", 19.0), RemoveFramework("F2", 21.0),
            SetWeights({"ops": 2.0}), SetWeights({"dev": 0.5, "ops": 3.0}),
        ]
        for mutation in mutations:
            yield registry.apply(mutation)
            mutation(expected)
            state = yield self.recovered()
            self.assertEqual(state.to_json(), expected.to_json(), mutation)
        self.assertEqual(registry.state, expected)
        self.assertEqual(expected.agents, {"S1": {**agent("S1"), "port": 6051}, "S3": agent("S3")})
        self.assertEqual(expected.unreachable, {"S2": 10.5})
        children = yield self.zk.get_children(self.path)
        self.assertEqual(sorted(children), sorted([self.elected.node, "registry"]))
        data, _ = yield self.zk.get(f"{self.path}/registry/agents/S3")
        self.assertEqual(json.loads(data), {**agent("S3"), "id": {"value": "S3"}})  # the znode holds its ID

    @defer.inlineCallbacks
    def test_new_leader_continues_the_registry(self) -> Any:
        """A new leader's registry, recovered, keeps writing on what it found (weights, removed IDs, agents)."""
        registry = yield self.leader_registry()
        # An empty weights node exists: the successor must update it, not try to create it.
        for mutation in (AdmitAgent("S1", agent("S1")), SetWeights({}), RemoveFramework("F1", 1.0),
                         AddFramework("F2", framework("F2"))):
            yield registry.apply(mutation)
        yield self.elected.withdraw()
        successor_zk = yield self.client()
        successor = yield self.contender(successor_zk, "m2", 5060)
        second = zk_registry(successor_zk, self.path, lambda: successor.node_path)
        state = yield second.recover()
        self.assertEqual(state, registry.state)
        for later in (SetWeights({"dev": 1.0}), AdmitAgent("S1", agent("S1")), MarkUnreachable("S1", 5.0),
                      RemoveFramework("F1", 2.0), RemoveFramework("F2", 3.0)):
            yield second.apply(later)
        state = yield self.recovered()
        self.assertEqual(state.weights, {"dev": 1.0})
        self.assertEqual(state.unreachable, {"S1": 5.0})
        self.assertEqual(state.agents, {})
        self.assertEqual(state.frameworks, {})
        self.assertEqual(dict(state.removed_frameworks), {"F1": 2.0, "F2": 3.0})

    @defer.inlineCallbacks
    def test_removed_frameworks_bounded(self) -> Any:
        """Removed IDs beyond the bound are deleted from ZooKeeper too; recovery lists them oldest first."""
        self.patch(registry_module, "MAX_REMOVED_FRAMEWORKS", 3)
        registry = yield self.leader_registry()
        for index in range(5):
            yield registry.apply(RemoveFramework(f"F{index}", 100.0 - index))  # the newest has the lowest time
        children = yield self.zk.get_children(f"{self.path}/registry/removed")
        self.assertEqual(sorted(children), ["F2", "F3", "F4"])
        state = yield self.recovered()
        self.assertEqual(list(state.removed_frameworks), ["F4", "F3", "F2"])

    @defer.inlineCallbacks
    def test_concurrent_applies(self) -> Any:
        """Many applies issued at once all succeed and are all recovered."""
        registry = yield self.leader_registry()
        applied = []
        expected = RegistryState()
        for index in range(100):
            mutation = (AdmitAgent(f"S{index}", agent(f"S{index}")) if index % 3 else
                        MarkUnreachable(f"S{index - 3}", float(index)))
            applied.append(registry.apply(mutation))
            mutation(expected)
        yield defer.gatherResults(applied, consumeErrors=True)
        state = yield self.recovered()
        self.assertEqual(state.to_json(), expected.to_json())

    @defer.inlineCallbacks
    def test_fenced_after_election_node_deleted(self) -> Any:
        """Once the writer's election node is gone, writes fail with RegistryError and change nothing."""
        registry = yield self.leader_registry()
        yield registry.apply(AdmitAgent("S1", agent("S1")))
        before = registry.state.copy()
        other = yield self.client()
        yield other.delete(self.elected.node_path)
        error = yield self.assertFailure(registry.apply(AdmitAgent("S2", agent("S2"))), RegistryError)
        self.assertIn("NoNodeError", str(error))
        self.assertIn("may no longer lead", str(error))
        self.assertEqual(registry.state, before)
        state = yield self.recovered()
        self.assertEqual(state.agents, {"S1": agent("S1")})

    @defer.inlineCallbacks
    def test_fenced_after_session_lost(self) -> Any:
        """When the elected session ends, its node goes and writes through any other session are refused."""
        elected_zk = yield self.client()
        elected = yield self.contender(elected_zk)
        self.zk = yield self.client()
        registry = zk_registry(self.zk, self.path, lambda: elected.node_path)
        yield registry.recover()
        yield registry.apply(SetWeights({"ops": 2.0}))
        yield elected_zk.stop()
        yield self.assertFailure(registry.apply(SetWeights({"ops": 5.0})), RegistryError)
        yield self.assertFailure(registry.apply(AdmitAgent("S1", agent("S1"))), RegistryError)
        self.assertEqual(registry.state, RegistryState(weights={"ops": 2.0}))
        state = yield self.recovered()
        self.assertEqual(state, RegistryState(weights={"ops": 2.0}))

    @defer.inlineCallbacks
    def test_fenced_with_several_writes_queued(self) -> Any:
        """Writes queued together after the fence went all fail, and the state is the last committed one."""
        registry = yield self.leader_registry()
        yield registry.apply(AdmitAgent("S1", agent("S1")))
        other = yield self.client()
        yield other.delete(self.elected.node_path)
        attempts = [registry.apply(AdmitAgent("S2", agent("S2"))), registry.apply(MarkUnreachable("S1", 3.0)),
                    registry.apply(AddFramework("F1", framework("F1")))]
        for attempt in attempts:
            yield self.assertFailure(attempt, RegistryError)
        self.assertEqual(registry.state, RegistryState(agents={"S1": agent("S1")}))

    @defer.inlineCallbacks
    def test_refused_write_is_undone_and_later_writes_proceed(self) -> Any:
        """A transaction ZooKeeper refuses (a conflicting node) is undone exactly; the next one commits."""
        registry = yield self.leader_registry()
        other = yield self.client()
        yield other.create(f"{self.path}/registry/agents/S9", b"{}", makepath=True)
        conflicting = registry.apply(AdmitAgent("S9", agent("S9")))
        behind = registry.apply(AdmitAgent("S1", agent("S1")))
        error = yield self.assertFailure(conflicting, RegistryError)
        self.assertIn("NodeExistsError", str(error))
        yield behind
        self.assertEqual(registry.state.agents, {"S1": agent("S1")})
        state = yield self.recovered()
        self.assertEqual(state.agents, {"S1": agent("S1"), "S9": {}})

    @defer.inlineCallbacks
    def test_not_contending(self) -> Any:
        """A registry whose master has no election node refuses writes at once, writing nothing."""
        zk = yield self.client()
        registry = zk_registry(zk, self.path, lambda: None)
        yield registry.recover()
        yield self.assertFailure(registry.apply(AdmitAgent("S1", agent("S1"))), RegistryError)
        self.assertEqual(registry.state, RegistryState())
        children = yield zk.get_children(f"{self.path}/registry")
        self.assertEqual(children, [])


    @defer.inlineCallbacks
    def test_recovers_the_layout_of_earlier_versions(self) -> Any:
        """A registry written by an earlier version (every section present, empty ones too) is recovered
        and carried on in place, so a running cluster upgrades one master at a time."""
        other = yield self.client()
        root = f"{self.path}/registry"
        for section in ("agents", "unreachable", "frameworks", "removed"):
            yield other.ensure_path(f"{root}/{section}")
        yield other.create(f"{root}/agents/S1", json.dumps(agent("S1")).encode())
        yield other.create(f"{root}/removed/F1", b"3.0")
        yield other.create(f"{root}/weights", b'{"ops":2.0}')
        registry = yield self.leader_registry()
        self.assertEqual(registry.state, RegistryState(agents={"S1": agent("S1")}, weights={"ops": 2.0},
                                                       removed_frameworks={"F1": 3.0}))  # type: ignore[arg-type]
        for mutation in (MarkUnreachable("S1", 5.0), AddFramework("F2", framework("F2")), SetWeights({"dev": 1.0})):
            yield registry.apply(mutation)
        state = yield self.recovered()
        self.assertEqual(state, registry.state)
        # The emptied agents section went with its last agent (an earlier version's recovery makes it again).
        self.assertEqual(sorted((yield other.get_children(root))), ["frameworks", "removed", "unreachable", "weights"])
        data, _ = yield other.get(f"{root}/unreachable/S1")
        self.assertEqual(json.loads(data), 5.0)


class ZooKeeperRegistryBehaviourTests(RegistryBehaviour, ZooKeeperTestCase):
    @defer.inlineCallbacks
    def make_registry(self) -> Any:
        self.zk = yield self.client()
        self.elected = yield self.contender(self.zk)
        registry = zk_registry(self.zk, self.path, lambda: self.elected.node_path)
        yield registry.recover()
        return registry

    @defer.inlineCallbacks
    def recovered(self) -> Any:
        reader = getattr(self, "reader", None) or (yield self.client())
        self.reader = reader
        state = yield zk_registry(reader, self.path, None).recover()
        return state

    def depose(self) -> defer.Deferred:
        return self.elected.withdraw()


class ElectionTests(ZooKeeperTestCase):
    @defer.inlineCallbacks
    def test_lowest_leads_and_successor_takes_over(self) -> Any:
        """Of two contenders the first leads; withdrawing it elects the other; listeners see each change."""
        zk1 = yield self.client()
        zk2 = yield self.client()
        watcher = yield self.client()
        # The registry and Mesos's log_replicas live beside the members and never lead.
        yield watcher.ensure_path(f"{self.path}/registry")
        yield watcher.ensure_path(f"{self.path}/log_replicas")
        detector = ZooKeeperMasterDetector(watcher, self.path)
        seen: list[tuple[str | None, str | None]] = []
        detector.listeners.append(lambda info, node: seen.append((info.hostname if info else None, node)))
        yield detector.start()
        yield wait_for(lambda: seen == [(None, None)], 10, what="the empty group")

        first = yield self.contender(zk1, "m1", 5050)
        second = yield self.contender(zk2, "m2", 5060)
        first_node, second_node = first.node, second.node
        self.assertLess(first_node, second_node)
        leader = yield detector.detect(None)
        self.assertEqual(leader, master_info("m1", 5050))
        yield wait_for(lambda: detector.leader_node == first.node, 10, what="m1 to lead")

        following = detector.detect(leader)
        yield first.withdraw()
        successor = yield following
        self.assertEqual(successor, master_info("m2", 5060))
        self.assertEqual(detector.leader_node, second_node)

        gone = detector.detect(successor)
        yield zk2.stop()  # the session ends and takes its ephemeral node along
        self.assertIsNone((yield gone))
        self.assertEqual(seen, [(None, None), ("m1", first_node), ("m2", second_node), (None, None)])

    @defer.inlineCallbacks
    def test_late_detector_sees_current_leader(self) -> Any:
        """A detector started after the election reports the leader at once."""
        zk = yield self.client()
        first = yield self.contender(zk, "m1", 5050)
        yield self.contender(zk, "m2", 5060)
        detector = ZooKeeperMasterDetector(zk, self.path)
        yield detector.start()
        leader = yield detector.detect()
        self.assertEqual((leader, detector.leader_node), (master_info("m1", 5050), first.node))
        address = yield detector.leader_address()
        self.assertEqual(address, ("127.0.0.1", 5050))
