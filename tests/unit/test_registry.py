"""The master's registry: mutations of RegistryState, and the in-memory and file providers."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mesostw.master import registry as registry_module
from mesostw.master.registry import (
    MAX_REMOVED_FRAMEWORKS,
    AddFramework,
    AdmitAgent,
    FileRegistry,
    InMemoryRegistry,
    IRegistry,
    MarkUnreachable,
    RegistryError,
    RegistryState,
    RemoveAgent,
    RemoveFramework,
    SetWeights,
    write_atomically,
)

AGENT = {"hostname": "a1", "port": 5051, "id": {"value": "S1"}}
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
        """AdmitAgent records the agent's info (replacing an older one)."""
        state = RegistryState()
        AdmitAgent("S1", AGENT)(state)
        AdmitAgent("S1", {**AGENT, "port": 6061})(state)
        self.assertEqual(state.agents, {"S1": {**AGENT, "port": 6061}})

    def test_admit_agent_clears_unreachable(self) -> None:
        """An unreachable agent that is admitted again is no longer unreachable."""
        state = RegistryState(unreachable={"S1": 3.0, "S2": 4.0})
        AdmitAgent("S1", AGENT)(state)
        self.assertEqual(state.agents, {"S1": AGENT})
        self.assertEqual(state.unreachable, {"S2": 4.0})

    def test_mark_unreachable_moves_agent(self) -> None:
        """MarkUnreachable moves an admitted agent to the unreachable list with the time."""
        state = RegistryState(agents={"S1": AGENT, "S2": {}})
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
        state = RegistryState(agents={"S1": AGENT}, unreachable={"S2": 1.0})
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


class InMemoryRegistryTests(unittest.TestCase):
    def test_apply_and_recover(self) -> None:
        """The in-memory registry applies at once and recovers what it holds."""
        registry = InMemoryRegistry()
        self.assertTrue(verifyObject(IRegistry, registry))
        self.assertIsNone(self.successResultOf(registry.apply(AdmitAgent("S1", AGENT))))
        self.assertEqual(self.successResultOf(registry.recover()).agents, {"S1": AGENT})


class FileRegistryTests(unittest.TestCase):
    def setUp(self) -> None:
        base = tempfile.mkdtemp(prefix="mesostw-registry-")
        self.addCleanup(shutil.rmtree, base, True)
        self.directory = os.path.join(base, "work")
        self.path = os.path.join(self.directory, "registry.json")

    def registry(self) -> FileRegistry:
        return FileRegistry(reactor, self.path)

    def on_disk(self) -> dict[str, Any]:
        with open(self.path) as f:
            return json.load(f)

    def leftovers(self) -> list[str]:
        return [name for name in os.listdir(self.directory) if name != "registry.json"]

    def test_provides_interface(self) -> None:
        """FileRegistry provides IRegistry."""
        self.assertTrue(verifyObject(IRegistry, self.registry()))

    @defer.inlineCallbacks
    def test_recover_missing_file(self) -> Any:
        """Without a file (a first start) the state is empty and nothing is created."""
        state = yield self.registry().recover()
        self.assertEqual(state, RegistryState())
        self.assertFalse(os.path.exists(self.directory))

    @defer.inlineCallbacks
    def test_apply_then_recover(self) -> Any:
        """What was applied is what a fresh registry on the same file recovers, in every section."""
        registry = self.registry()
        yield registry.recover()
        for mutation in (AdmitAgent("S1", AGENT), AdmitAgent("S2", {"hostname": "a2"}), MarkUnreachable("S2", 12.5),
                         AddFramework("F1", FRAMEWORK), AddFramework("F2", {"user": "u", "name": "g"}),
                         RemoveFramework("F2", 20.0), RemoveFramework("F0", 10.0), SetWeights({"ops": 2.0})):
            yield registry.apply(mutation)
        recovered = yield self.registry().recover()
        self.assertEqual(recovered, populated())
        self.assertEqual(list(recovered.removed_frameworks), ["F2", "F0"])
        self.assertEqual(self.leftovers(), [])

    @defer.inlineCallbacks
    def test_group_commit(self) -> Any:
        """Applies made while a write is in flight share the next write; each fires once its data is on disk."""
        writes: list[dict[str, Any]] = []
        gate = threading.Event()
        real = registry_module.write_atomically

        def slow_write(path: str, payload: bytes) -> None:
            writes.append(json.loads(payload))
            if len(writes) == 1:
                gate.wait(10)
            real(path, payload)

        self.patch(registry_module, "write_atomically", slow_write)
        registry = self.registry()
        seen_on_disk: dict[str, set[str]] = {}

        def check(_: Any, agent_id: str) -> None:
            seen_on_disk[agent_id] = set(self.on_disk()["agents"])

        applied = []
        for index in range(5):
            agent_id = f"S{index}"
            applied.append(registry.apply(AdmitAgent(agent_id, {"hostname": agent_id})).addCallback(check, agent_id))
        gate.set()
        yield defer.gatherResults(applied)
        self.assertEqual(len(writes), 2)
        self.assertEqual(set(writes[0]["agents"]), {"S0"})
        self.assertEqual(set(writes[1]["agents"]), {f"S{i}" for i in range(5)})
        for index in range(5):
            self.assertIn(f"S{index}", seen_on_disk[f"S{index}"])
        self.assertEqual(self.leftovers(), [])

    @defer.inlineCallbacks
    def test_apply_from_a_callback_never_overlaps_writes(self) -> Any:
        """Applies made by a waiter's callback never start a second write while one is in flight."""
        active: list[int] = []
        overlaps: list[bytes] = []
        lock = threading.Lock()

        slow_disk = threading.Event()  # never set: every write takes its full simulated latency

        def write(path: str, payload: bytes) -> None:
            with lock:
                active.append(1)
                if len(active) > 1:
                    overlaps.append(payload)
            try:
                slow_disk.wait(0.05)
                write_atomically(path, payload)
            finally:
                with lock:
                    active.pop()

        self.patch(registry_module, "write_atomically", write)
        registry = self.registry()
        chained: list[defer.Deferred] = []

        def more(_: Any) -> None:
            chained.append(registry.apply(AdmitAgent("S2", {})))
            chained.append(registry.apply(AdmitAgent("S3", {})))

        first = registry.apply(AdmitAgent("S0", {})).addCallback(more)
        second = registry.apply(AdmitAgent("S1", {}))
        yield defer.gatherResults([first, second])
        yield defer.gatherResults(chained)
        self.assertEqual(overlaps, [])
        self.assertEqual(set(self.on_disk()["agents"]), {"S0", "S1", "S2", "S3"})

    @defer.inlineCallbacks
    def test_write_failure(self) -> Any:
        """A failed write fails its applies with RegistryError and is forgotten; later ones still work."""
        registry = self.registry()
        yield registry.apply(AdmitAgent("S0", {}))
        self.patch(registry_module, "write_atomically", lambda path, payload: (_ for _ in ()).throw(
            OSError(28, "No space left on device")))
        error = yield self.assertFailure(registry.apply(AdmitAgent("S1", {})), RegistryError)
        self.assertIn("No space left on device", str(error))
        self.assertEqual(set(registry.state.agents), {"S0"})
        self.patch(registry_module, "write_atomically", write_atomically)
        yield registry.apply(AdmitAgent("S2", {}))
        self.assertEqual(set(self.on_disk()["agents"]), {"S0", "S2"})

    @defer.inlineCallbacks
    def test_failed_batch_keeps_what_is_queued_behind_it(self) -> Any:
        """When a write fails, applies queued behind it are still written, without the failed ones."""
        gate = threading.Event()
        calls: list[int] = []

        def write(path: str, payload: bytes) -> None:
            calls.append(1)
            if len(calls) == 1:
                gate.wait(10)
                raise OSError(5, "Input/output error")
            write_atomically(path, payload)

        self.patch(registry_module, "write_atomically", write)
        registry = self.registry()
        failed = registry.apply(AdmitAgent("S0", {}))
        queued = registry.apply(AdmitAgent("S1", {}))
        gate.set()
        yield self.assertFailure(failed, RegistryError)
        yield queued
        self.assertEqual(set(self.on_disk()["agents"]), {"S1"})
        self.assertEqual(set(registry.state.agents), {"S1"})

    @defer.inlineCallbacks
    def test_corrupt_file(self) -> Any:
        """A file that is not a registry fails recovery with RegistryError naming the file."""
        os.makedirs(self.directory)
        for content in ("{not json", "", "[]", '{"agents": [1, 2]}'):
            with open(self.path, "w") as f:
                f.write(content)
            error = yield self.assertFailure(self.registry().recover(), RegistryError)
            self.assertIn(self.path, str(error))

    def test_write_atomically_leaves_no_temporary_file(self) -> None:
        """A completed write leaves only the file; a failed one leaves the old file and no temporary."""
        write_atomically(self.path, b'{"agents": {}}')
        self.assertEqual(os.listdir(self.directory), ["registry.json"])
        self.assertRaises(TypeError, write_atomically, self.path, "not bytes")
        self.assertEqual(os.listdir(self.directory), ["registry.json"])
        self.assertEqual(self.on_disk(), {"agents": {}})

