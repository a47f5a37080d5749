"""What the allocator keeps instead of recomputing (agents' free resources, the DRF orders, who refused
what where, resources' scalar totals) never goes stale: whatever changed an agent, it is offered exactly
what an allocator built afresh from the same state would offer."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis.stateful import invariant, rule, run_state_machine_as_test
from twisted.trial import unittest

from mesostw.allocator.hierarchical import HierarchicalAllocator, allocatable
from mesostw.allocator.quota import Quota
from mesostw.allocator.sorter import DRFSorter
from mesostw.model.info import Filters
from mesostw.model.reservation import DYNAMIC, Reservation, pushed
from mesostw.model.resources import EMPTY, Resources, from_millis
from tests.unit.test_allocator import AGENT, AllocatorCase, AllocatorMachine, R, dynamic


def fresh_copy(allocator: HierarchicalAllocator, frameworks: dict[str, str]) -> HierarchicalAllocator:
    """A new allocator with the same agents (totals), the same frameworks (``id -> role``) and what each
    holds where."""
    copy = HierarchicalAllocator(allocator._clock, allocator.weights(), randomize=False)
    for framework_id, role in frameworks.items():
        copy.addFramework(framework_id, role)
    for agent_id in sorted(allocator._agents):
        used = {f: allocator.framework_allocated(f).get(agent_id, EMPTY) for f in frameworks}
        copy.addAgent(agent_id, allocator.agent_total(agent_id), {f: r for f, r in used.items() if r})
    return copy


class FreshAllocatorTests(AllocatorCase):
    """After each kind of change, an agent's offer equals the one an allocator built afresh makes."""

    def assertFresh(self, agent_id: str, frameworks: dict[str, str]) -> Resources:
        """Allocate ``agent_id`` here and on a fresh copy: the same offers; returns what was offered."""
        fresh = fresh_copy(self.allocator, frameworks).allocate([agent_id])
        mine = self.allocator.allocate([agent_id])
        self.assertEqual(mine, fresh)
        return sum((r for _, _, r in mine), EMPTY)

    def test_recovered_resources(self) -> None:
        """Resources given back (part of an offer, then the rest) are offered again, exactly."""
        self.allocator.addFramework("f", "*")
        self.add_agents(1)
        ((_, _, offered),) = self.allocator.allocate()
        self.allocator.recoverResources("f", "a0", R("cpus:0.5;mem:100;ports:[31000-31009]"))
        self.assertEqual(self.assertFresh("a0", {"f": "*"}), R("cpus:0.5;mem:100;ports:[31000-31009]"))
        self.allocator.recoverResources("f", "a0", offered)
        self.assertEqual(self.assertFresh("a0", {"f": "*"}), offered)

    def test_removed_framework(self) -> None:
        """What a removed framework held is offered to the next one, exactly."""
        self.allocator.addFramework("f", "*")
        self.add_agents(1)
        self.allocator.allocate()
        self.allocator.addFramework("g", "*")
        self.allocator.removeFramework("f")
        self.assertEqual(self.assertFresh("a0", {"g": "*"}), R(AGENT))

    def test_operator_reservation(self) -> None:
        """An agent whose free resources an operator reserved offers the reservation to its role only."""
        self.allocator.addFramework("web", "web")
        self.allocator.addFramework("any", "*")
        self.add_agents(1)
        self.assertTrue(self.allocator.updateAvailable("a0", R("cpus:1;mem:512"), dynamic("cpus:1;mem:512", "web")))
        self.assertEqual(self.assertFresh("a0", {"web": "web", "any": "*"}),
                         R(AGENT) - R("cpus:1;mem:512") + dynamic("cpus:1;mem:512", "web"))
        self.assertEqual(self.allocator.framework_allocated("web")["a0"], dynamic("cpus:1;mem:512", "web"))

    def test_operator_unreservation_of_a_whole_reserved_agent(self) -> None:
        """An agent reserved whole, then unreserved, is offered to everyone again."""
        self.allocator.addFramework("any", "*")
        self.allocator.addAgent("a0", dynamic("cpus:1;mem:512", "web"))
        self.assertEqual(self.allocator.allocate(), [])
        self.assertTrue(self.allocator.updateAvailable("a0", dynamic("cpus:1;mem:512", "web"), R("cpus:1;mem:512")))
        self.assertEqual(self.assertFresh("a0", {"any": "*"}), R("cpus:1;mem:512"))

    def test_framework_operation(self) -> None:
        """A framework's RESERVE of what it holds changes the agent's free part as a fresh allocator sees it."""
        self.allocator.addFramework("web", "web")
        self.add_agents(1)
        ((_, _, offered),) = self.allocator.allocate()
        reserved = Resources({pushed(k, Reservation(DYNAMIC, "web", "fw")): v
                              for k, v in R("cpus:1;mem:512").entries()})
        self.allocator.updateAllocation("web", "a0", R("cpus:1;mem:512"), reserved)
        self.allocator.recoverResources("web", "a0", reserved)
        self.assertEqual(self.assertFresh("a0", {"web": "web"}), reserved)

    def assertRefinedRestGoesOn(self) -> None:
        """A framework without RESERVATION_REFINEMENT comes first and takes what it may have; the refined
        reservations left go to the next framework of the role, in the same allocation."""
        self.allocator.addFramework("a-reads", "eng/web")
        self.allocator.addFramework("b-plain", "eng/web", refinement=False)
        self.allocator.addAgent("a0", R("cpus(eng):1;mem(eng):256;cpus:1;mem:256"))
        ((_, _, held),) = self.allocator.allocate()
        refined = Resources({pushed(k, Reservation(DYNAMIC, "eng/web", "fw")): v for k, v in held.entries()})
        self.allocator.updateAllocation("a-reads", "a0", held, refined)
        self.allocator.recoverResources("a-reads", "a0", refined)
        plain = refined.without_refined()
        self.assertTrue(plain)
        self.assertEqual(self.allocator.allocate(), [("b-plain", "a0", plain), ("a-reads", "a0", refined - plain)])

    def test_refined_rest_goes_to_a_framework_that_reads_it(self) -> None:
        """When a framework without RESERVATION_REFINEMENT comes first and takes what it may have, the
        refined reservations left go to the next framework of the role, in the same allocation."""
        self.assertRefinedRestGoesOn()

    def test_refined_rest_goes_to_a_framework_that_reads_it_under_quota(self) -> None:
        """With quota in force (the limits stage), the refined reservations a framework without
        RESERVATION_REFINEMENT leaves go to the role's next framework in the same allocation too."""
        self.allocator.updateQuota("other", Quota.of(limits={"cpus": 100}))
        self.assertRefinedRestGoesOn()

    def test_whole_offer_taken_then_all_given_back(self) -> None:
        """An agent offered whole has nothing left; given back, it is offered whole again."""
        self.allocator.addFramework("f", "*")
        self.add_agents(1)
        ((_, _, offered),) = self.allocator.allocate()
        self.assertEqual(offered, R(AGENT))
        self.assertEqual(self.allocator.allocate(), [])
        self.allocator.recoverResources("f", "a0", offered)
        self.assertEqual(self.assertFresh("a0", {"f": "*"}), R(AGENT))

    def test_refusals_forgotten_on_revive_and_removal(self) -> None:
        """A revived framework is offered what it refused; a framework re-added under the same ID has no
        refusals of the old one."""
        self.allocator.addFramework("f", "*")
        self.add_agents(1)
        ((_, _, offered),) = self.allocator.allocate()
        self.allocator.recoverResources("f", "a0", offered, Filters(refuse_seconds=100))
        self.assertEqual(self.allocator.allocate(), [])
        self.allocator.reviveOffers("f")
        self.assertEqual(self.allocator.allocate(), [("f", "a0", R(AGENT))])
        self.allocator.recoverResources("f", "a0", offered, Filters(refuse_seconds=100))
        self.allocator.removeFramework("f")
        self.allocator.addFramework("f", "*")
        self.assertEqual(self.allocator.allocate(), [("f", "a0", R(AGENT))])

    def test_total_change_reorders_frameworks(self) -> None:
        """An agent added after charges (every share changes) is offered by the order a fresh sort gives."""
        self.allocator.addFramework("cpu-heavy", "*")
        self.allocator.addFramework("mem-heavy", "*")
        self.allocator.addAgent("a0", R("cpus:4;mem:100"))
        self.allocator.addAgent("a1", R("cpus:1;mem:4000"))
        self.assertEqual(self.allocator.allocate(), [("cpu-heavy", "a0", R("cpus:4;mem:100")),
                                                     ("mem-heavy", "a1", R("cpus:1;mem:4000"))])
        # cpu-heavy holds 80% of the cpus, mem-heavy 97.6% of the memory; with 100 more cpus, cpu-heavy's
        # share drops to 3.8% and mem-heavy's stays: cpu-heavy goes first now, as a fresh sort says.
        self.allocator.addAgent("a2", R("cpus:100;mem:1"))
        fresh = fresh_copy(self.allocator, {"cpu-heavy": "*", "mem-heavy": "*"})
        self.assertEqual(self.allocator.allocate(["a2"]), fresh.allocate(["a2"]))
        self.assertEqual(self.allocator.framework_allocated("cpu-heavy")["a2"], R("cpus:100;mem:1"))


class ScalarCacheTests(unittest.TestCase):
    def test_scalars_are_copies(self) -> None:
        """scalars() hands out a new dict each time: changing it changes neither the value nor its cache."""
        resources = R("cpus:2;mem:1024;ports:[1-2]")
        scalars = resources.scalars()
        scalars["cpus"] = 99.0
        self.assertEqual(resources.scalars(), {"cpus": 2.0, "mem": 1024.0})
        self.assertEqual(dict(resources.scalars_view()), {"cpus": 2.0, "mem": 1024.0})
        self.assertEqual(dict(resources.scalar_sums()), {"cpus": 2000, "mem": 1024000})

    def test_arithmetic_results_have_their_own_totals(self) -> None:
        """Sums and differences of resources whose totals were read have totals of their own."""
        a, b = R("cpus:2;mem:1024"), R("cpus(web):1;mem:24")
        self.assertEqual(a.scalar_sums()["cpus"], 2000)
        self.assertEqual(dict((a + b).scalar_sums()), {"cpus": 3000, "mem": 1048000})
        self.assertEqual(dict((a - R("cpus:2")).scalar_sums()), {"mem": 1024000})
        self.assertFalse(allocatable(a - R("cpus:1.995;mem:1000")))


class SorterLaziness(unittest.TestCase):
    def test_walked_order_is_unchanged_by_charges(self) -> None:
        """Charging clients while walking ordered() leaves the walk as it began; the next read re-sorts."""
        sorter = DRFSorter()
        sorter.set_total({"cpus": 10.0})
        for name in "abc":
            sorter.add(name)
        seen = []
        for key in sorter.ordered():
            seen.append(key[2])
            sorter.allocated(key[2], {"cpus": {"a": 3.0, "b": 1.0, "c": 2.0}[key[2]]})
        self.assertEqual(seen, ["a", "b", "c"])
        self.assertEqual(list(sorter.sorted()), ["b", "c", "a"])

    def test_lone_client_is_placed_when_another_joins(self) -> None:
        """A lone client charged many times is ordered by its real share once another one joins."""
        sorter = DRFSorter()
        sorter.set_total({"cpus": 10.0})
        sorter.add("a")
        self.assertEqual(sorter.first(), "a")
        for _ in range(3):
            sorter.allocated("a", {"cpus": 1.0})
            self.assertEqual(sorter.first(), "a")
        sorter.add("b")
        self.assertEqual(list(sorter.sorted()), ["b", "a"])
        sorter.unallocated("a", {"cpus": 3.0})
        self.assertEqual(list(sorter.sorted()), ["b", "a"])  # equal shares: the fewer allocations first
        self.assertEqual(sorter.share("a"), 0.0)

    def test_charges_while_inactive(self) -> None:
        """A client charged while inactive comes back in its place."""
        sorter = DRFSorter()
        sorter.set_total({"cpus": 10.0})
        sorter.add("a")
        sorter.add("b")
        sorter.first()
        sorter.deactivate("a")
        sorter.allocated("a", {"cpus": 5.0})
        self.assertEqual(list(sorter.sorted()), ["b"])
        sorter.activate("a")
        self.assertEqual(list(sorter.sorted()), ["b", "a"])


class CachingAllocatorMachine(AllocatorMachine):
    """The allocator state machine, also checking every kept value against its recomputation."""

    @invariant()
    def agents_match_their_state(self) -> None:
        """Each agent's free part, its flags and its refusers are what its state makes them."""
        allocator = self.allocator
        for agent_id, agent in allocator._agents.items():
            available = agent.total - agent.allocated
            assert agent.available == available, (agent_id, agent.available, available)
            assert agent.offerable == allocatable(available), agent_id
            assert agent.reserved == any(role != "*" for role in agent.total.roles()), agent_id
            assert agent.refined == agent.total.has_refined(), agent_id
            refusers = {f.id: f.refused for f in allocator._frameworks.values() if f.refused.holds(agent_id)}
            assert agent.refusers == refusers, (agent_id, agent.refusers, refusers)

    @invariant()
    def scalar_totals_match_the_entries(self) -> None:
        """The kept scalar totals of every agent's resources are the sums of their entries."""
        for agent in self.allocator._agents.values():
            for resources in (agent.total, agent.allocated, agent.available):
                sums: dict[str, int] = {}
                for key, value in resources.entries():
                    if isinstance(value, int):
                        sums[key[0]] = sums.get(key[0], 0) + value
                assert dict(resources.scalar_sums()) == sums
                assert dict(resources.scalars_view()) == {n: from_millis(v) for n, v in sums.items()}

    @rule()
    def orders_match_a_full_sort(self) -> None:
        """Read every DRF order (settling what changed since the last read): it is a sort from scratch."""
        allocator = self.allocator
        for sorter in [allocator._roles, *allocator._by_role.values()]:
            clients = sorter._clients
            expected = sorted((c for c in clients.values() if c.active),
                              key=lambda c: (sorter.share(c.name), c.count, c.name))
            assert [key[2] for key in sorter.ordered()] == [c.name for c in expected]


class CachingStateMachineTests(unittest.TestCase):
    def test_caches_never_stale(self) -> None:
        """Under random operation sequences every kept value equals its recomputation."""
        run_state_machine_as_test(
            CachingAllocatorMachine,
            settings=settings(max_examples=60, stateful_step_count=30, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow]),
        )
