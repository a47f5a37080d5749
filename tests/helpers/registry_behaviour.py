"""What the master's registry does over any store, as a mixin run against memory, files and ZooKeeper.

A test case mixing it in provides ``make_registry()`` (a Deferred firing with a recovered Registry
whose store is new and empty), ``recovered()`` (a Deferred firing with the RegistryState a new
leader would recover from the same store) and ``depose()`` (the registry's writer loses its claim).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer
from zope.interface.verify import verifyObject

from mesostw.interfaces import IRegistry
from mesostw.master import registry as registry_module
from mesostw.master.registry import (
    AddFramework,
    AdmitAgent,
    CheckpointResources,
    MarkUnreachable,
    RegistryError,
    RegistryState,
    RemoveAgent,
    RemoveFramework,
    SetAgentState,
    SetQuotas,
    SetWeights,
    UpdateMaintenance,
)


def agent(name: str) -> dict[str, Any]:
    """An agent's registry entry as the registry holds it in memory: without its ID, which is its key."""
    return {"hostname": name, "port": 5051}


def framework(name: str) -> dict[str, Any]:
    return {"user": "nobody", "name": name, "id": {"value": name}, "failover_timeout": 60.0}


def reserved_cpus(cpus: float, volume: str | None = None) -> list[dict[str, Any]]:
    """Checkpointed resources (v1 JSON): ``cpus`` reserved for eng by ops, and disk holding ``volume``."""
    reservation = {"type": "DYNAMIC", "role": "eng", "principal": "ops",
                   "labels": {"labels": [{"key": "team", "value": "web"}]}}
    out: list[dict[str, Any]] = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus},
                                  "reservations": [reservation]}]
    if volume is not None:
        out.append({"name": "disk", "type": "SCALAR", "scalar": {"value": 64.0}, "reservations": [reservation],
                    "disk": {"persistence": {"id": volume, "principal": "ops"},
                             "volume": {"container_path": "data", "mode": "RW"}}})
    return out


EVERY_MUTATION: list[Any] = [
    AdmitAgent("S1", agent("S1")), AdmitAgent("S2", agent("S2")), AdmitAgent("S3", agent("S3")),
    AdmitAgent("S1", {**agent("S1"), "port": 6051}),
    MarkUnreachable("S2", 10.5), MarkUnreachable("S3", 11.0), AdmitAgent("S3", agent("S3")),
    CheckpointResources("S1", reserved_cpus(1.0)), CheckpointResources("S1", reserved_cpus(2.0, "vol1")),
    CheckpointResources("S3", reserved_cpus(0.5)), MarkUnreachable("S3", 11.5), AdmitAgent("S3", agent("S3")),
    MarkUnreachable("S4", 12.0), RemoveAgent("S4"), AdmitAgent("S5", agent("S5")),
    CheckpointResources("S5", reserved_cpus(1.0)), RemoveAgent("S5"),
    AddFramework("F1", framework("F1")), AddFramework("F2", framework("F2")),
    AddFramework("F1", {**framework("F1"), "name": "renamed"}),
    RemoveFramework("F0", 19.0), RemoveFramework("F2", 20.0), RemoveFramework("F2", 21.0),
    SetWeights({"ops": 2.0}), SetWeights({"dev": 0.5, "ops": 3.0}),
    AdmitAgent("odd/id", agent("odd")), AdmitAgent("..", agent("dots")), AddFramework("", framework("empty")),
    SetQuotas({"eng": {"role": "eng", "limits": {"cpus": {"value": 4.0}}},
               "eng/web": {"role": "eng/web", "guarantees": {"mem": {"value": 64.0}}}}),
    SetQuotas({"eng": None, "ops": {"role": "ops", "guarantees": {"cpus": {"value": 1.0}}}}),
    UpdateMaintenance({"windows": [{"machine_ids": [{"hostname": "h1"}, {"ip": "10.0.0.2"}],
                                    "unavailability": {"start": {"nanoseconds": 5}}}]}),
    UpdateMaintenance(down={"h1|": {"hostname": "h1"}, "|10.0.0.2": {"ip": "10.0.0.2"}}),
    UpdateMaintenance({"windows": []}, {"h1|": None}),
    SetAgentState("S1", {"deactivated": True}), SetAgentState("S3", {"deactivated": True, "drain_info": {}}),
    SetAgentState("S1", None),
]


class RegistryBehaviour:
    """The behaviour suite; mix into a ``twisted.trial.unittest.TestCase``."""

    def make_registry(self) -> defer.Deferred:
        raise NotImplementedError

    def recovered(self) -> defer.Deferred:
        raise NotImplementedError

    def depose(self) -> defer.Deferred:
        raise NotImplementedError

    @defer.inlineCallbacks
    def test_provides_interface(self) -> Any:
        """The registry provides IRegistry."""
        registry = yield self.make_registry()
        self.assertTrue(verifyObject(IRegistry, registry))  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_round_trip_of_every_mutation(self) -> Any:
        """Each kind of mutation (IDs that are no plain path segment too, agents' checkpointed resources) is
        what a new leader recovers."""
        registry = yield self.make_registry()
        expected = RegistryState()
        for mutation in EVERY_MUTATION:
            yield registry.apply(mutation)
            mutation(expected)
            state = yield self.recovered()
            self.assertEqual(state.to_json(), expected.to_json(), mutation)  # type: ignore[attr-defined]
        self.assertEqual(registry.state, expected)  # type: ignore[attr-defined]
        self.assertEqual(list(expected.removed_frameworks), ["F0", "F2"])  # type: ignore[attr-defined]
        self.assertEqual(set(expected.agents), {"S1", "S3", "odd/id", ".."})  # type: ignore[attr-defined]
        # Reservations and volumes outlive unreachability (S3), not removal (S5).
        self.assertEqual(expected.resources, {"S1": reserved_cpus(2.0, "vol1"),  # type: ignore[attr-defined]
                                              "S3": reserved_cpus(0.5)})

    @defer.inlineCallbacks
    def test_agent_entries_are_stored_with_their_ids(self) -> Any:
        """An agent's entry is held in memory without its ID (its key says it; an ID given is left out) and
        stored with it, as Mesos's registry holds AgentInfo; a new leader reads it without the ID again."""
        registry = yield self.make_registry()
        yield registry.apply(AdmitAgent("S1", {**agent("S1"), "id": {"value": "S1"}}))
        yield registry.apply(AdmitAgent("odd/id", agent("odd")))
        self.assertEqual(registry.state.agents, {"S1": agent("S1"), "odd/id": agent("odd")})  # type: ignore[attr-defined]
        stored = yield registry.store.get("agents/S1")
        self.assertEqual(json.loads(stored), {**agent("S1"), "id": {"value": "S1"}})  # type: ignore[attr-defined]
        stored = yield registry.store.get(f"agents/{registry_module.key('odd/id')}")
        self.assertEqual(json.loads(stored), {**agent("odd"), "id": {"value": "odd/id"}})  # type: ignore[attr-defined]
        state = yield self.recovered()
        self.assertEqual(state.agents, {"S1": agent("S1"), "odd/id": agent("odd")})  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_removed_frameworks_bounded(self) -> Any:
        """Removed IDs beyond the bound are forgotten in the store too; recovery lists them oldest first."""
        self.patch(registry_module, "MAX_REMOVED_FRAMEWORKS", 3)  # type: ignore[attr-defined]
        registry = yield self.make_registry()
        for index in range(5):
            yield registry.apply(RemoveFramework(f"F{index}", 100.0 + index))
        state = yield self.recovered()
        self.assertEqual(list(state.removed_frameworks), ["F2", "F3", "F4"])  # type: ignore[attr-defined]
        yield registry.apply(RemoveFramework("F9", 200.0))
        state = yield self.recovered()
        self.assertEqual(list(state.removed_frameworks), ["F3", "F4", "F9"])  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_concurrent_applies(self) -> Any:
        """Many applies issued at once all succeed, in order, and are all recovered."""
        registry = yield self.make_registry()
        applied = []
        fired: list[int] = []
        expected = RegistryState()
        for index in range(150):
            mutation = (AdmitAgent(f"S{index}", agent(f"S{index}")) if index % 3 else
                        MarkUnreachable(f"S{index - 3}", float(index)))
            applied.append(registry.apply(mutation).addCallback(lambda _, i=index: fired.append(i)))
            mutation(expected)
        yield defer.gatherResults(applied)
        self.assertEqual(fired, list(range(150)))  # type: ignore[attr-defined]
        state = yield self.recovered()
        self.assertEqual(state.to_json(), expected.to_json())  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_deposed_writer(self) -> Any:
        """Once the writer lost its claim, applies fail with RegistryError and the state is the last durable one."""
        registry = yield self.make_registry()
        yield registry.apply(AdmitAgent("S1", agent("S1")))
        yield self.depose()
        attempts = [registry.apply(AdmitAgent("S2", agent("S2"))), registry.apply(MarkUnreachable("S1", 3.0)),
                    registry.apply(SetWeights({"ops": 2.0}))]
        for attempt in attempts:
            error = yield self.assertFailure(attempt, RegistryError)  # type: ignore[attr-defined]
            self.assertIn("may no longer lead", str(error))  # type: ignore[attr-defined]
        self.assertEqual(registry.state, RegistryState(agents={"S1": agent("S1")}))  # type: ignore[attr-defined]
        state = yield self.recovered()
        self.assertEqual(state, RegistryState(agents={"S1": agent("S1")}))  # type: ignore[attr-defined]
