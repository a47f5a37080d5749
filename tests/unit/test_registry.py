"""The master's registry: mutations of RegistryState, and the registry over the memory and file stores."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from twisted.internet import defer, reactor
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from mesostw.master.registry import (
    MAX_REMOVED_FRAMEWORKS,
    AddFramework,
    AdmitAgent,
    InMemoryRegistry,
    MarkUnreachable,
    Registry,
    RegistryError,
    RegistryState,
    RemoveAgent,
    RemoveFramework,
    SetWeights,
)
from mesostw.store import StoreError
from mesostw.store.files import FileStateStore
from mesostw.store.memory import MemoryStateStore
from tests.helpers.registry_behaviour import RegistryBehaviour


@contextmanager
def collect_log(text: str) -> Iterator[list[str]]:
    """The messages logged while the block runs (and Deferreds it waits for fire) that contain ``text``."""
    found: list[str] = []

    def observer(event: dict[str, Any]) -> None:
        message = formatEvent(event)
        if text in message:
            found.append(message)

    globalLogPublisher.addObserver(observer)
    try:
        yield found
    finally:
        globalLogPublisher.removeObserver(observer)

AGENT = {"hostname": "a1", "port": 5051, "id": {"value": "S1"}}
#: AGENT as the registry holds it: without its ID, which is its key
ENTRY = {"hostname": "a1", "port": 5051}
FRAMEWORK = {"user": "u", "name": "f", "id": {"value": "F1"}, "failover_timeout": 60.0}


def populated() -> RegistryState:
    state = RegistryState()
    for mutation in (AdmitAgent("S1", AGENT), AdmitAgent("S2", {"hostname": "a2"}), MarkUnreachable("S2", 12.5),
                     AddFramework("F1", FRAMEWORK), AddFramework("F2", {"user": "u", "name": "g"}),
                     RemoveFramework("F2", 20.0), RemoveFramework("F0", 10.0), SetWeights({"ops": 2.0})):
        mutation(state)
    return state


class MutationTests(unittest.TestCase):
    def test_admit_agent(self) -> None:
        """AdmitAgent records the agent's info without its ID, which is the entry's key (replacing an older one)."""
        state = RegistryState()
        AdmitAgent("S1", AGENT)(state)
        AdmitAgent("S1", {**AGENT, "port": 6061})(state)
        self.assertEqual(state.agents, {"S1": {**ENTRY, "port": 6061}})
        self.assertEqual(AdmitAgent("S1", AGENT), AdmitAgent("S1", ENTRY))

    def test_admit_agent_clears_unreachable(self) -> None:
        """An unreachable agent that is admitted again is no longer unreachable."""
        state = RegistryState(unreachable={"S1": 3.0, "S2": 4.0})
        AdmitAgent("S1", AGENT)(state)
        self.assertEqual(state.agents, {"S1": ENTRY})
        self.assertEqual(state.unreachable, {"S2": 4.0})

    def test_mark_unreachable_moves_agent(self) -> None:
        """MarkUnreachable moves an admitted agent to the unreachable list with the time."""
        state = RegistryState(agents={"S1": ENTRY, "S2": {}})
        MarkUnreachable("S1", 42.0)(state)
        self.assertEqual(state.agents, {"S2": {}})
        self.assertEqual(state.unreachable, {"S1": 42.0})

    def test_mark_unreachable_of_unknown_agent(self) -> None:
        """MarkUnreachable of an agent not admitted still records it as unreachable."""
        state = RegistryState()
        MarkUnreachable("S9", 1.0)(state)
        self.assertEqual((state.agents, state.unreachable), ({}, {"S9": 1.0}))

    def test_remove_agent(self) -> None:
        """RemoveAgent forgets an agent, admitted or unreachable; an unknown one is no error."""
        state = RegistryState(agents={"S1": ENTRY}, unreachable={"S2": 1.0})
        RemoveAgent("S1")(state)
        RemoveAgent("S2")(state)
        RemoveAgent("S3")(state)
        self.assertEqual((state.agents, state.unreachable), ({}, {}))

    def test_add_framework(self) -> None:
        """AddFramework records (or updates) a framework's info."""
        state = RegistryState()
        AddFramework("F1", FRAMEWORK)(state)
        AddFramework("F1", {**FRAMEWORK, "name": "renamed"})(state)
        self.assertEqual(state.frameworks, {"F1": {**FRAMEWORK, "name": "renamed"}})

    def test_remove_framework(self) -> None:
        """RemoveFramework forgets the framework and remembers its ID as removed, with the time."""
        state = RegistryState(frameworks={"F1": FRAMEWORK})
        RemoveFramework("F1", 7.0)(state)
        self.assertEqual(state.frameworks, {})
        self.assertEqual(state.removed_frameworks, OrderedDict([("F1", 7.0)]))

    def test_removed_frameworks_are_bounded(self) -> None:
        """Only the newest MAX_REMOVED_FRAMEWORKS removed IDs are kept; the oldest go first."""
        state = RegistryState()
        for index in range(MAX_REMOVED_FRAMEWORKS + 5):
            RemoveFramework(f"F{index}", float(index))(state)
        self.assertEqual(len(state.removed_frameworks), MAX_REMOVED_FRAMEWORKS)
        self.assertEqual(next(iter(state.removed_frameworks)), "F5")
        self.assertEqual(list(state.removed_frameworks)[-1], f"F{MAX_REMOVED_FRAMEWORKS + 4}")
        self.assertNotIn("F4", state.removed_frameworks)

    def test_set_weights_merges(self) -> None:
        """SetWeights changes the named roles' weights and keeps the others."""
        state = RegistryState(weights={"ops": 2.0, "dev": 0.5})
        SetWeights({"dev": 1.5, "qa": 3.0})(state)
        self.assertEqual(state.weights, {"ops": 2.0, "dev": 1.5, "qa": 3.0})

    def test_json_round_trip(self) -> None:
        """A state survives JSON encoding, removed IDs in their order."""
        state = populated()
        again = RegistryState.from_json(json.loads(json.dumps(state.to_json())))
        self.assertEqual(again, state)
        self.assertEqual(list(again.removed_frameworks), ["F2", "F0"])
        self.assertIsInstance(again.removed_frameworks, OrderedDict)

    def test_from_json_of_empty_object(self) -> None:
        """An empty object is an empty state (older files may lack sections)."""
        self.assertEqual(RegistryState.from_json({}), RegistryState())

    def test_from_json_refuses_non_objects(self) -> None:
        """JSON that is not an object is refused with ValueError."""
        data: Any
        for data in ([], None, "x", 3):
            self.assertRaises(ValueError, RegistryState.from_json, data)

    def test_copy_is_independent(self) -> None:
        """Mutating a copy leaves the original as it was."""
        state = populated()
        before = json.dumps(state.to_json())
        copy = state.copy()
        for mutation in (AdmitAgent("S3", {}), MarkUnreachable("S1", 1.0), RemoveFramework("F1", 30.0),
                         SetWeights({"ops": 9.0})):
            mutation(copy)
        self.assertEqual(json.dumps(state.to_json()), before)


class MemoryRegistryTests(RegistryBehaviour, unittest.TestCase):
    def make_registry(self) -> defer.Deferred:
        self.claimed = True
        self.store = MemoryStateStore(fence=lambda: self.claimed)
        registry = Registry(self.store)
        return registry.recover().addCallback(lambda _: registry)

    def recovered(self) -> defer.Deferred:
        return Registry(self.store).recover()

    def depose(self) -> defer.Deferred:
        self.claimed = False
        return defer.succeed(None)

    def test_in_memory_registry_fires_at_once(self) -> None:
        """InMemoryRegistry applies and recovers synchronously (cores driven by a Clock rely on it)."""
        registry = InMemoryRegistry()
        self.assertIsNone(self.successResultOf(registry.apply(AdmitAgent("S1", AGENT))))
        self.assertEqual(self.successResultOf(registry.recover()).agents, {"S1": ENTRY})


class FileRegistryTestCase(unittest.TestCase):
    def setUp(self) -> None:
        base = tempfile.mkdtemp(prefix="mesostw-registry-")
        self.addCleanup(shutil.rmtree, base, True)
        self.work_dir = os.path.join(base, "work")
        self.directory = os.path.join(self.work_dir, "registry")
        self.legacy = os.path.join(self.work_dir, "registry.json")
        self.stores: list[FileStateStore] = []

    def store(self) -> FileStateStore:
        store = FileStateStore(self.directory, reactor)
        self.stores.append(store)
        self.addCleanup(store.close)
        return store

    @defer.inlineCallbacks
    def restarted(self) -> Any:
        """A registry as the master's next start has it (the previous one's store closed first)."""
        for store in self.stores:
            yield store.close()
        registry = Registry(self.store(), legacy_file=self.legacy)
        yield registry.recover()
        return registry


class FileRegistryBehaviourTests(RegistryBehaviour, FileRegistryTestCase):
    @defer.inlineCallbacks
    def make_registry(self) -> Any:
        self.registry = Registry(self.store(), legacy_file=self.legacy)
        yield self.registry.recover()
        return self.registry

    @defer.inlineCallbacks
    def recovered(self) -> Any:
        yield self.registry.store.close()
        self.registry.store = self.store()  # the same registry carries on, as a restarted master would
        state = yield Registry(self.registry.store).recover()
        return state

    def depose(self) -> defer.Deferred:
        return self.registry.store.close()


class FileRegistryTests(FileRegistryTestCase):
    @defer.inlineCallbacks
    def test_first_start(self) -> Any:
        """Without a registry (a first start) the state is empty and nothing is imported."""
        registry = Registry(self.store(), legacy_file=self.legacy)
        state = yield registry.recover()
        self.assertEqual(state, RegistryState())
        self.assertEqual(sorted(os.listdir(self.work_dir)), ["registry"])

    @defer.inlineCallbacks
    def test_group_commit(self) -> Any:
        """Applies made while a write is in flight share the next write; each fires once its data is on disk."""
        registry = Registry(self.store())
        yield registry.recover()
        store = registry.store
        gate = threading.Event()
        writes: list[int] = []
        real = store.disk.append

        def slow(payload: bytes) -> int:
            writes.append(len(payload))
            if len(writes) == 1:
                gate.wait(10)
            return real(payload)

        self.patch(store.disk, "append", slow)
        durable: dict[str, list[str]] = {}

        def check(_: Any, agent_id: str) -> None:
            durable[agent_id] = store.tree.children("agents")

        applied = [registry.apply(AdmitAgent(f"S{i}", {"hostname": f"S{i}"})).addCallback(check, f"S{i}")
                   for i in range(5)]
        reactor.callLater(0, gate.set)
        yield defer.gatherResults(applied)
        self.assertEqual(len(writes), 2)
        for index in range(5):
            self.assertIn(f"S{index}", durable[f"S{index}"])
        self.assertEqual(durable["S0"], ["S0"])

    @defer.inlineCallbacks
    def test_apply_from_a_callback_never_overlaps_writes(self) -> Any:
        """Applies made by a waiter's callback never start a second write while one is in flight."""
        registry = Registry(self.store())
        yield registry.recover()
        in_flight: list[int] = []
        overlaps: list[int] = []
        real = registry.store.commit

        def commit(ops: Any) -> defer.Deferred:
            if in_flight:
                overlaps.append(len(ops))
            in_flight.append(1)
            return real(ops).addBoth(lambda result: (in_flight.pop(), result)[1])

        self.patch(registry.store, "commit", commit)
        chained: list[defer.Deferred] = []

        def more(_: Any) -> None:
            chained.append(registry.apply(AdmitAgent("S2", {})))
            chained.append(registry.apply(AdmitAgent("S3", {})))

        first = registry.apply(AdmitAgent("S0", {})).addCallback(more)
        second = registry.apply(AdmitAgent("S1", {}))
        yield defer.gatherResults([first, second])
        yield defer.gatherResults(chained)
        self.assertEqual(overlaps, [])
        again = yield self.restarted()
        self.assertEqual(set(again.state.agents), {"S0", "S1", "S2", "S3"})

    @defer.inlineCallbacks
    def test_write_failure(self) -> Any:
        """A failed write fails its applies with RegistryError and is forgotten; later ones still work."""
        registry = Registry(self.store())
        yield registry.recover()
        yield registry.apply(AdmitAgent("S0", {}))
        disk = registry.store.disk
        real = disk.write
        self.patch(disk, "write", lambda fd, data: (_ for _ in ()).throw(OSError(28, "No space left on device")))
        error = yield self.assertFailure(registry.apply(AdmitAgent("S1", {})), RegistryError)
        self.assertIn("No space left on device", str(error))
        self.assertEqual(set(registry.state.agents), {"S0"})
        self.patch(disk, "write", real)
        yield registry.apply(AdmitAgent("S2", {}))
        again = yield self.restarted()
        self.assertEqual(set(again.state.agents), {"S0", "S2"})

    @defer.inlineCallbacks
    def test_failed_batch_keeps_what_is_queued_behind_it(self) -> Any:
        """When a write fails, applies queued behind it are still written, without the failed ones."""
        registry = Registry(self.store())
        yield registry.recover()
        disk = registry.store.disk
        gate = threading.Event()
        calls: list[int] = []
        real = disk.append

        def append(payload: bytes) -> int:
            calls.append(1)
            if len(calls) == 1:
                gate.wait(10)
                raise StoreError("cannot write: [Errno 5] Input/output error")
            return real(payload)

        self.patch(disk, "append", append)
        failed = registry.apply(AdmitAgent("S0", {}))
        queued = registry.apply(AdmitAgent("S1", {}))
        reactor.callLater(0, gate.set)
        yield self.assertFailure(failed, RegistryError)
        yield queued
        self.assertEqual(set(registry.state.agents), {"S1"})
        again = yield self.restarted()
        self.assertEqual(set(again.state.agents), {"S1"})

    @defer.inlineCallbacks
    def test_registry_json_is_imported_once(self) -> Any:
        """An earlier version's registry.json is imported into the store, kept as .imported, and not again."""
        old = {"agents": {"S1": AGENT, "S2": {"hostname": "a2"}}, "unreachable": {"S3": 12.5},
               "frameworks": {"F1": FRAMEWORK}, "removed_frameworks": {"F0": 10.0, "F2": 20.0},
               "weights": {"ops": 2.0}}
        os.makedirs(self.work_dir)
        with open(self.legacy, "w") as f:
            json.dump(old, f)
        registry = Registry(self.store(), legacy_file=self.legacy)
        with collect_log("Imported the registry") as logged:
            state = yield registry.recover()
        self.assertEqual(len(logged), 1)
        self.assertEqual(state, RegistryState.from_json(old))
        self.assertEqual(state.agents["S1"], ENTRY)
        self.assertFalse(os.path.exists(self.legacy))
        self.assertTrue(os.path.exists(self.legacy + ".imported"))
        yield registry.apply(RemoveAgent("S2"))
        again = yield self.restarted()
        self.assertEqual(set(again.state.agents), {"S1"})
        self.assertEqual(again.state.weights, {"ops": 2.0})
        self.assertEqual(list(again.state.removed_frameworks), ["F0", "F2"])

    @defer.inlineCallbacks
    def test_corrupt_registry_json(self) -> Any:
        """A registry.json that is not a registry fails recovery with RegistryError naming it; nothing is lost."""
        os.makedirs(self.work_dir)
        for content in ("{not json", "", "[]", '{"agents": [1, 2]}', '{"agents": {"S1": 3}}'):
            with open(self.legacy, "w") as f:
                f.write(content)
            registry = Registry(self.store(), legacy_file=self.legacy)
            error = yield self.assertFailure(registry.recover(), RegistryError)
            self.assertIn(self.legacy, str(error))
            self.assertTrue(os.path.exists(self.legacy))
            yield registry.store.close()

    @defer.inlineCallbacks
    def test_unreadable_value(self) -> Any:
        """A value in the store that is not what the registry wrote fails recovery with RegistryError naming it."""
        store = self.store()
        yield store.put("unreachable/S1", b"not a time")
        error = yield self.assertFailure(Registry(store).recover(), RegistryError)
        self.assertIn("unreachable/S1", str(error))

    @defer.inlineCallbacks
    def test_store_held_by_another_process(self) -> Any:
        """A registry whose store another master holds fails recovery with RegistryError naming its pid."""
        yield Registry(self.store()).recover()
        error = yield self.assertFailure(Registry(FileStateStore(self.directory, reactor)).recover(), RegistryError)
        self.assertIn(f"pid {os.getpid()}", str(error))
