"""Tests for the DRF sorter and the hierarchical allocator, driven by a fake clock."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mesostw.allocator.filters import RefusedResources
from mesostw.allocator.hierarchical import HierarchicalAllocator, allocatable
from mesostw.allocator.sorter import DRFSorter
from mesostw.interfaces import IAllocator
from mesostw.model.info import Filters
from mesostw.model.reservation import DYNAMIC, Reservation, is_allocatable_to, is_dynamic, popped, pushed
from mesostw.model.resources import EMPTY, Resources
from tests.helpers.clocktest import ClockTestCase

AGENT = "cpus:2;mem:1024;disk:4096;ports:[31000-32000]"


def R(text: str) -> Resources:
    """Shorthand for :meth:`Resources.parse`."""
    return Resources.parse(text)


class AllocatorCase(ClockTestCase):
    """A deterministic allocator on a fake clock; checks no delayed calls are left behind."""

    def setUp(self) -> None:
        self.clock = self.makeClock()
        self.allocator = HierarchicalAllocator(self.clock, randomize=False)

    def offers(self, agent_ids: list[str] | None = None) -> dict[tuple[str, str], Resources]:
        """Run one allocation and key its offers by (framework, agent)."""
        out: dict[tuple[str, str], Resources] = {}
        for framework_id, agent_id, resources in self.allocator.allocate(agent_ids):
            self.assertNotIn((framework_id, agent_id), out)
            out[(framework_id, agent_id)] = resources
        return out

    def add_agents(self, count: int, resources: str = AGENT) -> list[str]:
        """Add ``count`` agents a0, a1, ... of ``resources``."""
        ids = [f"a{i}" for i in range(count)]
        for agent_id in ids:
            self.allocator.addAgent(agent_id, R(resources))
        return ids


class DRFSorterTests(unittest.TestCase):
    """Ordering of clients by weighted dominant share."""

    def sorter(self, *names: str) -> DRFSorter:
        """A sorter over cpus:10;mem:100 with the given clients."""
        sorter = DRFSorter()
        sorter.set_total({"cpus": 10.0, "mem": 100.0})
        for name in names:
            sorter.add(name)
        return sorter

    def test_orders_by_dominant_share(self) -> None:
        """The client with the smaller largest fraction of any resource comes first."""
        sorter = self.sorter("a", "b", "c")
        sorter.allocated("a", {"cpus": 5.0, "mem": 10.0})  # dominant: cpus 0.5
        sorter.allocated("b", {"cpus": 1.0, "mem": 30.0})  # dominant: mem 0.3
        sorter.allocated("c", {"cpus": 4.0})  # dominant: cpus 0.4
        self.assertEqual(list(sorter.sorted()), ["b", "c", "a"])
        self.assertAlmostEqual(sorter.share("a"), 0.5)
        self.assertAlmostEqual(sorter.share("b"), 0.3)
        self.assertEqual(sorter.first(), "b")
        self.assertEqual(sorter.first(2), "a")
        self.assertIsNone(sorter.first(3))

    def test_weights_divide_shares(self) -> None:
        """A client with weight 2 may hold twice as much before it sorts later."""
        sorter = DRFSorter()
        sorter.set_total({"cpus": 10.0})
        sorter.add("heavy", weight=2.0)
        sorter.add("light")
        sorter.allocated("heavy", {"cpus": 5.0})
        sorter.allocated("light", {"cpus": 3.0})
        self.assertAlmostEqual(sorter.share("heavy"), 0.25)
        self.assertEqual(list(sorter.sorted()), ["heavy", "light"])
        sorter.set_weight("heavy", 1.0)
        self.assertEqual(list(sorter.sorted()), ["light", "heavy"])

    def test_tie_breaks_by_allocation_count_then_name(self) -> None:
        """Equal shares sort by how often a client was allocated to, then by name."""
        sorter = self.sorter("b", "a", "c")
        self.assertEqual(list(sorter.sorted()), ["a", "b", "c"])
        sorter.allocated("a", {"cpus": 1.0})
        sorter.unallocated("a", {"cpus": 1.0})  # share back to 0, but allocated once
        self.assertEqual(sorter.share("a"), 0.0)
        self.assertEqual(list(sorter.sorted()), ["b", "c", "a"])

    def test_unallocated_lowers_share(self) -> None:
        """Returning resources moves a client forward again."""
        sorter = self.sorter("a", "b")
        sorter.allocated("a", {"cpus": 2.0})
        sorter.allocated("b", {"cpus": 1.0})
        sorter.unallocated("a", {"cpus": 1.5})
        self.assertEqual(list(sorter.sorted()), ["a", "b"])
        self.assertEqual(sorter.allocation("a"), {"cpus": 0.5})
        sorter.unallocated("a", {"cpus": 0.5})
        self.assertEqual(sorter.allocation("a"), {})
        sorter.unallocated("gone", {"cpus": 1.0})  # unknown clients are ignored

    def test_total_change_reorders(self) -> None:
        """A new cluster total changes which resource is dominant, and the order with it."""
        sorter = self.sorter("a", "b")
        sorter.allocated("a", {"cpus": 2.0})  # 0.2
        sorter.allocated("b", {"mem": 30.0})  # 0.3
        self.assertEqual(list(sorter.sorted()), ["a", "b"])
        sorter.set_total({"cpus": 4.0, "mem": 100.0})  # a: 0.5
        self.assertEqual(list(sorter.sorted()), ["b", "a"])
        sorter.add("c")  # added while the order is stale
        sorter.allocated("b", {"mem": 1.0})
        self.assertEqual(list(sorter.sorted()), ["c", "b", "a"])

    def test_deactivate_activate_remove(self) -> None:
        """Inactive clients keep their allocation but leave the order; removed ones are gone."""
        sorter = self.sorter("a", "b")
        sorter.allocated("a", {"cpus": 1.0})
        sorter.deactivate("b")
        self.assertEqual(list(sorter.sorted()), ["a"])
        sorter.allocated("b", {"cpus": 5.0})
        sorter.activate("b")
        self.assertEqual(list(sorter.sorted()), ["a", "b"])
        sorter.remove("a")
        self.assertNotIn("a", sorter)
        self.assertEqual(len(sorter), 1)
        self.assertEqual(list(sorter.sorted()), ["b"])

    def test_deactivate_while_stale(self) -> None:
        """Deactivating after a total change still drops the client from the rebuilt order."""
        sorter = self.sorter("a", "b")
        sorter.set_total({"cpus": 20.0})
        sorter.deactivate("a")
        sorter.remove("b")
        self.assertEqual(list(sorter.sorted()), [])
        sorter.activate("a")
        self.assertEqual(list(sorter.sorted()), ["a"])


_names = st.sampled_from("abcd")
_amounts = st.one_of(
    st.tuples(st.sampled_from(["cpus", "mem", "disk"]), st.integers(1, 4)).map(lambda t: {t[0]: float(t[1])}),
    st.dictionaries(st.sampled_from(["cpus", "mem", "disk"]), st.integers(1, 4).map(float), max_size=3),
)
_totals = st.dictionaries(st.sampled_from(["cpus", "mem"]), st.sampled_from([1.0, 4.0, 16.0, 64.0]), min_size=1)
_allocated = st.tuples(st.just("allocated"), _names, _amounts)
_set_total = st.tuples(st.just("set_total"), _totals)
sorter_ops = st.lists(st.one_of(
    _allocated,
    _allocated,  # listed twice: allocations and total changes are what reorder clients
    _set_total,
    _set_total,
    st.tuples(st.just("unallocated"), _names, _amounts),
    st.tuples(st.just("add"), _names, st.sampled_from([0.5, 1.0, 2.0])),
    st.tuples(st.just("remove"), _names),
    st.tuples(st.just("activate"), _names),
    st.tuples(st.just("deactivate"), _names),
    st.tuples(st.just("set_weight"), _names, st.sampled_from([0.5, 1.0, 3.0])),
), min_size=4, max_size=40)


def model_share(client: dict, total: dict[str, float]) -> float:
    """The weighted dominant share of a model client, computed from scratch."""
    fractions = [amount / total[r] for r, amount in client["alloc"].items() if total.get(r)]
    return max(fractions, default=0.0) / client["weight"]


class DRFSorterPropertyTests(unittest.TestCase):
    """The incrementally kept order always equals a from-scratch sort."""

    @settings(max_examples=150, deadline=None)
    @given(sorter_ops)
    def test_incremental_order_matches_full_sort(self, ops: list[tuple]) -> None:
        """After any sequence of changes sorted() is the active clients by (share, count, name)."""
        sorter = DRFSorter()
        total = {"cpus": 8.0, "mem": 16.0}
        sorter.set_total(total)
        model: dict[str, dict] = {}
        for name, start in [("a", {"cpus": 2.0}), ("b", {"mem": 4.0}), ("c", {})]:
            sorter.add(name)
            model[name] = {"alloc": dict(start), "weight": 1.0, "count": 0, "active": True}
            if start:
                sorter.allocated(name, start)
                model[name]["count"] = 1
        for op, *args in ops:
            name = args[0]
            if op == "set_total":
                total = dict(args[0])
                sorter.set_total(args[0])
            elif op == "add":
                sorter.add(name, args[1])
                model.setdefault(name, {"alloc": {}, "weight": args[1], "count": 0, "active": True})
            elif name not in model:
                continue
            elif op == "remove":
                sorter.remove(name)
                del model[name]
            elif op in ("activate", "deactivate"):
                getattr(sorter, op)(name)
                model[name]["active"] = op == "activate"
            elif op == "set_weight":
                sorter.set_weight(name, args[1])
                model[name]["weight"] = args[1]
            elif op == "allocated":
                sorter.allocated(name, args[1])
                alloc = model[name]["alloc"]
                for resource, amount in args[1].items():
                    alloc[resource] = alloc.get(resource, 0.0) + amount
                model[name]["count"] += 1
            else:
                sorter.unallocated(name, args[1])
                alloc = model[name]["alloc"]
                for resource, amount in args[1].items():
                    alloc[resource] = max(alloc.get(resource, 0.0) - amount, 0.0)

            expected = sorted((n for n, c in model.items() if c["active"]),
                              key=lambda n: (model_share(model[n], total), model[n]["count"], n))
            self.assertEqual(list(sorter.sorted()), expected, ops)
            for n, client in model.items():
                self.assertAlmostEqual(sorter.share(n), model_share(client, total))


class AllocationOrderTests(AllocatorCase):
    """Who is offered what, in which order."""

    def test_provides_interface(self) -> None:
        """HierarchicalAllocator provides IAllocator."""
        self.assertTrue(verifyObject(IAllocator, self.allocator))

    def test_whole_agent_is_offered(self) -> None:
        """A lone framework is offered each agent's free resources whole."""
        self.allocator.addFramework("f1", "*")
        self.add_agents(2)
        self.assertEqual(self.offers(), {("f1", "a0"): R(AGENT), ("f1", "a1"): R(AGENT)})
        self.assertEqual(self.allocator.agent_allocated("a0"), R(AGENT))
        self.assertEqual(self.offers(), {})

    def test_drf_spreads_agents(self) -> None:
        """Frameworks in one role take turns by dominant share."""
        for name in ("f1", "f2", "f3"):
            self.allocator.addFramework(name, "*")
        self.add_agents(6)
        counts = Counter(framework_id for framework_id, _ in self.offers())
        self.assertEqual(counts, {"f1": 2, "f2": 2, "f3": 2})

    def test_lowest_share_goes_first(self) -> None:
        """A framework already holding resources waits behind one that holds none."""
        self.allocator.addFramework("big", "*")
        self.allocator.addAgent("used", R(AGENT), used={"big": R("cpus:1;mem:512")})
        self.allocator.addFramework("small", "*")
        self.add_agents(1)
        self.assertEqual(set(self.offers(["a0"])), {("small", "a0")})

    def test_roles_first_then_frameworks(self) -> None:
        """Shares are balanced between roles before frameworks within a role."""
        self.allocator.addFramework("a1", "alpha")
        self.allocator.addFramework("a2", "alpha")
        self.allocator.addFramework("a3", "alpha")
        self.allocator.addFramework("b1", "beta")
        self.add_agents(4)
        counts = Counter(framework_id for framework_id, _ in self.offers())
        self.assertEqual(counts, {"b1": 2, "a1": 1, "a2": 1})
        self.assertAlmostEqual(self.allocator.role_share("alpha"), 0.5)
        self.assertAlmostEqual(self.allocator.role_share("beta"), 0.5)
        self.assertEqual(self.allocator.role_share("nobody"), 0.0)

    def test_role_weights(self) -> None:
        """A role of weight 2 gets twice the agents of a role of weight 1."""
        self.allocator = HierarchicalAllocator(self.clock, weights={"alpha": 2.0}, randomize=False)
        self.allocator.addFramework("a", "alpha")
        self.allocator.addFramework("b", "beta")
        self.add_agents(6)
        self.assertEqual(Counter(f for f, _ in self.offers()), {"a": 4, "b": 2})
        self.assertEqual(self.allocator.weights(), {"alpha": 2.0})

    def test_update_weights(self) -> None:
        """updateWeights applies to existing roles and to roles added later."""
        self.allocator.addFramework("a", "alpha")
        self.allocator.updateWeights({"alpha": 2.0, "beta": 3.0})
        self.allocator.addFramework("b", "beta")
        self.add_agents(10)
        self.assertEqual(Counter(f for f, _ in self.offers()), {"a": 4, "b": 6})

    def test_allocate_only_given_agents(self) -> None:
        """allocate(agent_ids) looks only at those agents and ignores unknown IDs."""
        self.allocator.addFramework("f1", "*")
        self.add_agents(3)
        self.assertEqual(set(self.offers(["a1", "nope"])), {("f1", "a1")})
        self.assertEqual(set(self.offers()), {("f1", "a0"), ("f1", "a2")})

    def test_randomized_order_offers_everything(self) -> None:
        """With randomized agent order every agent is still offered exactly once."""
        allocator = HierarchicalAllocator(self.clock)
        allocator.addFramework("f1", "*")
        allocator.addFramework("f2", "*")
        for i in range(10):
            allocator.addAgent(f"a{i}", R(AGENT))
        offers = allocator.allocate()
        self.assertEqual(sorted(agent for _, agent, _ in offers), sorted(f"a{i}" for i in range(10)))
        self.assertEqual(Counter(f for f, _, _ in offers), {"f1": 5, "f2": 5})


class ReservationTests(AllocatorCase):
    """Static reservations are offered only to their role."""

    def test_reserved_only_to_role(self) -> None:
        """cpus(ads):2 is never offered to a framework of another role."""
        self.allocator.addFramework("web1", "web")
        self.allocator.addAgent("a0", R("cpus(ads):2;cpus:1;mem:1024"))
        self.assertEqual(self.offers(), {("web1", "a0"): R("cpus:1;mem:1024")})
        self.assertEqual(self.allocator.agent_allocated("a0"), R("cpus:1;mem:1024"))
        self.allocator.addFramework("ads1", "ads")
        self.assertEqual(self.offers(), {("ads1", "a0"): R("cpus(ads):2")})

    def test_role_gets_reserved_and_unreserved(self) -> None:
        """A framework of the reservation's role is offered reserved and unreserved resources together."""
        self.allocator.addFramework("ads1", "ads")
        self.allocator.addFramework("web1", "web")
        self.allocator.addAgent("a0", R("cpus(ads):2;cpus:1;mem:1024;mem(web):64"))
        self.assertEqual(self.offers(), {("ads1", "a0"): R("cpus(ads):2;cpus:1;mem:1024"),
                                         ("web1", "a0"): R("mem(web):64")})

    def test_reserved_only_agent_not_offered_elsewhere(self) -> None:
        """An agent whose resources are all reserved for another role makes no offer."""
        self.allocator.addFramework("web1", "web")
        self.allocator.addFramework("any", "*")
        self.allocator.addAgent("a0", R("cpus(ads):2;mem(ads):512"))
        self.assertEqual(self.offers(), {})


class RefusalFilterTests(AllocatorCase):
    """recoverResources(..., Filters(refuse_seconds)) keeps declined resources away for a while."""

    def setUp(self) -> None:
        super().setUp()
        self.allocator.addFramework("f1", "*")
        self.allocator.addAgent("a0", R(AGENT))
        self.offered = self.offers()[("f1", "a0")]

    def test_declined_resources_hidden_until_expiry(self) -> None:
        """Declined resources come back only after refuse_seconds have passed."""
        self.allocator.recoverResources("f1", "a0", self.offered, Filters(refuse_seconds=5))
        self.assertEqual(self.allocator.agent_allocated("a0"), EMPTY)
        self.assertEqual(self.offers(), {})
        self.clock.advance(4.9)
        self.assertEqual(self.offers(), {})
        self.clock.advance(0.1)
        self.assertEqual(self.offers(), {("f1", "a0"): R(AGENT)})

    def test_subset_of_refused_is_hidden(self) -> None:
        """Part of what was declined is hidden too."""
        self.allocator.recoverResources("f1", "a0", self.offered, Filters(refuse_seconds=5))
        self.allocator.addFramework("f2", "*")
        self.assertEqual(self.offers(), {("f2", "a0"): R(AGENT)})
        self.allocator.suppressOffers("f2")
        self.allocator.recoverResources("f2", "a0", R("cpus:1;mem:512"))
        self.assertEqual(self.offers(), {})  # a part of what f1 declined
        self.clock.advance(5)
        self.assertEqual(self.offers(), {("f1", "a0"): R("cpus:1;mem:512")})

    def test_larger_offer_not_hidden(self) -> None:
        """When more becomes free than was declined, the framework sees it at once."""
        used = R("cpus:1;mem:512;ports:[31000-31000]")
        declined = self.offered - used
        self.allocator.recoverResources("f1", "a0", declined, Filters(refuse_seconds=5))
        self.assertEqual(self.offers(), {})
        self.allocator.recoverResources("f1", "a0", used)  # the task finished
        self.assertEqual(self.offers(), {("f1", "a0"): R(AGENT)})

    def test_other_frameworks_see_declined_resources(self) -> None:
        """A refusal filters only the framework that declined."""
        self.allocator.addFramework("f2", "*")
        self.allocator.recoverResources("f1", "a0", self.offered, Filters(refuse_seconds=5))
        self.assertEqual(self.offers(), {("f2", "a0"): R(AGENT)})

    def test_zero_seconds_and_no_filter(self) -> None:
        """refuse_seconds=0 and no filters at all leave the resources offerable at once."""
        self.allocator.recoverResources("f1", "a0", self.offered, Filters(refuse_seconds=0))
        self.assertEqual(set(self.offers()), {("f1", "a0")})
        self.allocator.recoverResources("f1", "a0", self.offered)
        self.assertEqual(set(self.offers()), {("f1", "a0")})

    def test_revive_clears_filters(self) -> None:
        """reviveOffers drops refusals before they expire."""
        self.allocator.recoverResources("f1", "a0", self.offered, Filters(refuse_seconds=1000))
        self.assertEqual(self.offers(), {})
        self.allocator.reviveOffers("f1")
        self.assertEqual(set(self.offers()), {("f1", "a0")})

    def test_filters_forgotten_with_agent(self) -> None:
        """A re-added agent is not filtered by refusals of its previous incarnation."""
        self.allocator.recoverResources("f1", "a0", self.offered, Filters(refuse_seconds=1000))
        self.allocator.removeAgent("a0")
        self.allocator.addAgent("a0", R(AGENT))
        self.assertEqual(set(self.offers()), {("f1", "a0")})

    def test_refused_resources_expire_lazily(self) -> None:
        """RefusedResources drops expired entries when it is consulted."""
        refused = RefusedResources()
        refused.add("a0", R("cpus:1"), until=5.0)
        self.assertTrue(refused.filtered("a0", R("cpus:0.5"), now=4.0))
        self.assertFalse(refused.filtered("a0", R("cpus:2"), now=4.0))
        self.assertFalse(refused.filtered("a1", R("cpus:0.5"), now=4.0))
        self.assertFalse(refused.filtered("a0", R("cpus:0.5"), now=5.0))
        self.assertFalse(refused)


class ActivationTests(AllocatorCase):
    """Suppress/revive and (de)activation of frameworks and agents."""

    def test_suppress_and_revive(self) -> None:
        """A suppressed framework gets nothing until it revives; others still do."""
        self.allocator.addFramework("f1", "*")
        self.allocator.addFramework("f2", "*")
        self.allocator.suppressOffers("f1")
        self.add_agents(2)
        self.assertEqual(set(self.offers()), {("f2", "a0"), ("f2", "a1")})
        self.allocator.reviveOffers("f1")
        self.allocator.addAgent("a2", R(AGENT))
        self.assertEqual(set(self.offers()), {("f1", "a2")})

    def test_deactivated_framework_keeps_allocation(self) -> None:
        """A deactivated framework is offered nothing but keeps what it holds."""
        self.allocator.addFramework("f1", "*")
        self.add_agents(1)
        self.offers()
        self.allocator.deactivateFramework("f1")
        self.allocator.addAgent("a1", R(AGENT))
        self.assertEqual(self.offers(), {})
        self.assertEqual(self.allocator.framework_allocated("f1"), {"a0": R(AGENT)})
        self.allocator.activateFramework("f1")
        self.assertEqual(set(self.offers()), {("f1", "a1")})

    def test_suppressed_stays_off_when_activated(self) -> None:
        """Activating a suppressed framework does not un-suppress it."""
        self.allocator.addFramework("f1", "*", active=False)
        self.allocator.suppressOffers("f1")
        self.allocator.activateFramework("f1")
        self.add_agents(1)
        self.assertEqual(self.offers(), {})
        self.allocator.reviveOffers("f1")
        self.assertEqual(set(self.offers()), {("f1", "a0")})

    def test_deactivated_agent(self) -> None:
        """A deactivated agent's resources are not offered until it is activated."""
        self.allocator.addFramework("f1", "*")
        self.add_agents(2)
        self.allocator.deactivateAgent("a0")
        self.assertEqual(set(self.offers()), {("f1", "a1")})
        self.allocator.activateAgent("a0")
        self.assertEqual(set(self.offers()), {("f1", "a0")})


class AccountingTests(AllocatorCase):
    """Adding, removing and recovering keep the books straight."""

    def test_min_allocatable(self) -> None:
        """Only free resources with cpus >= 0.01 or mem >= 32 are offered."""
        self.assertFalse(allocatable(R("cpus:0.009;mem:31.999;disk:1000")))
        self.assertTrue(allocatable(R("cpus:0.01")))
        self.assertTrue(allocatable(R("mem:32")))
        self.assertTrue(allocatable(R("cpus(ads):0.005;cpus:0.005")))
        self.allocator.addFramework("f1", "*")
        self.allocator.addAgent("tiny", R("cpus:0.005;mem:16;disk:100"))
        self.allocator.addAgent("cpu", R("cpus:0.01"))
        self.allocator.addAgent("mem", R("mem:32"))
        self.assertEqual(set(self.offers()), {("f1", "cpu"), ("f1", "mem")})

    def test_leftover_below_minimum_not_offered(self) -> None:
        """What is left on an agent after a launch is offered only if it is big enough."""
        self.allocator.addFramework("f1", "*")
        self.allocator.addAgent("a0", R("cpus:1;mem:64"))
        offered = self.offers()[("f1", "a0")]
        self.allocator.recoverResources("f1", "a0", offered - R("cpus:0.995;mem:40"))
        self.assertEqual(self.offers(), {})
        self.allocator.recoverResources("f1", "a0", R("cpus:0.005"))
        self.assertEqual(self.offers(), {("f1", "a0"): R("cpus:0.01;mem:24")})

    def test_remove_framework_frees_its_resources(self) -> None:
        """Removing a framework returns everything it held to the agents."""
        self.allocator.addFramework("f1", "*")
        self.add_agents(2)
        self.offers()
        self.allocator.removeFramework("f1")
        self.allocator.removeFramework("f1")  # twice is harmless
        self.assertEqual(self.allocator.agent_allocated("a0"), EMPTY)
        self.allocator.addFramework("f2", "*")
        self.assertEqual(set(self.offers()), {("f2", "a0"), ("f2", "a1")})

    def test_remove_agent_drops_allocations_and_total(self) -> None:
        """Removing an agent drops what frameworks held there and shrinks the total."""
        self.allocator.addFramework("f1", "*")
        self.add_agents(2)
        self.offers()
        self.allocator.removeAgent("a0")
        self.allocator.removeAgent("a0")
        self.assertEqual(self.allocator.framework_allocated("f1"), {"a1": R(AGENT)})
        self.assertEqual(self.allocator.total(), R(AGENT))
        self.assertAlmostEqual(self.allocator.role_share("*"), 1.0)

    def test_readd_agent_replaces_it(self) -> None:
        """Adding an agent that is known replaces it and its allocations."""
        self.allocator.addFramework("f1", "*")
        self.add_agents(1)
        self.offers()
        self.allocator.addAgent("a0", R("cpus:4;mem:2048"))
        self.assertEqual(self.allocator.total(), R("cpus:4;mem:2048"))
        self.assertEqual(self.allocator.framework_allocated("f1"), {})
        self.assertEqual(self.offers(), {("f1", "a0"): R("cpus:4;mem:2048")})

    def test_add_with_used_resources(self) -> None:
        """Resources in use when an agent or framework is (re)added are charged and not offered."""
        self.allocator.addFramework("f1", "*")
        self.allocator.addAgent("a0", R(AGENT), used={"f1": R("cpus:1;mem:512")})
        self.allocator.addAgent("a1", R(AGENT))
        self.allocator.addFramework("f2", "*", used={"a1": R("cpus:2"), "missing": R("cpus:1")})
        self.assertEqual(self.allocator.framework_allocated("f1"), {"a0": R("cpus:1;mem:512")})
        self.assertEqual(self.allocator.framework_allocated("f2"), {"a1": R("cpus:2")})
        # a1: f1 (now holding all of a0) and f2 both have share 0.5; f2 was allocated to fewer times
        self.assertEqual(self.offers(), {("f1", "a0"): R(AGENT) - R("cpus:1;mem:512"),
                                         ("f2", "a1"): R(AGENT) - R("cpus:2")})

    def test_recover_is_clipped(self) -> None:
        """Recovering more than a framework holds, or on an unknown agent, frees only what it holds."""
        self.allocator.addFramework("f1", "*")
        self.allocator.addFramework("f2", "*")
        self.add_agents(2)
        self.offers()
        self.allocator.recoverResources("f1", "a0", R("cpus:5;mem:9999;gpus:1"))
        self.allocator.recoverResources("f1", "nope", R("cpus:1"))
        self.allocator.recoverResources("f1", "a0", EMPTY)
        self.assertEqual(self.allocator.agent_allocated("a0"), R("disk:4096;ports:[31000-32000]"))
        self.assertEqual(self.allocator.agent_allocated("a1"), R(AGENT))
        self.assertEqual(self.allocator.framework_allocated("f2"), {"a1": R(AGENT)})

    def test_allocation_runs_counted(self) -> None:
        """Every allocate() call is counted."""
        self.allocator.allocate()
        self.allocator.allocate([])
        self.assertEqual(self.allocator.allocation_runs, 2)


# -- stateful model test ---------------------------------------------------------------

class ReservationAllocationTests(AllocatorCase):
    """Reserved resources go to their role and its sub-roles; offer operations convert them in place."""

    def test_reserved_for_a_role_go_to_it_and_its_sub_roles(self) -> None:
        """cpus reserved for eng are offered to an eng/web framework (with the unreserved ones), never to
        frameworks of ads, of * or of a role that merely starts with eng."""
        self.allocator.addAgent("a1", R("cpus:1;mem:256") + dynamic("cpus:2;mem:128", "eng"))
        for framework_id, role in (("star", "*"), ("ads", "ads"), ("engineering", "engineering"), ("web", "eng/web")):
            self.allocator.addFramework(framework_id, role)
        offers = self.offers()
        self.assertEqual(sum(offers.values(), EMPTY), R("cpus:1;mem:256") + dynamic("cpus:2;mem:128", "eng"))
        for (framework_id, _), offered in offers.items():
            self.assertEqual(offered.reserved() == dynamic("cpus:2;mem:128", "eng"), framework_id == "web", offers)

    def test_refined_reservations_need_the_capability(self) -> None:
        """Resources refined from eng to eng/web go to an eng/web framework with RESERVATION_REFINEMENT, not
        to one without it (which gets the rest), and never to eng."""
        refined = Resources({pushed(k, Reservation(DYNAMIC, "eng/web", "ops")): v
                             for k, v in dynamic("cpus:1;mem:64", "eng").entries()})
        self.allocator.addAgent("a1", R("cpus:1;mem:256") + refined)
        self.allocator.addFramework("plain", "eng/web", refinement=False)
        self.assertEqual(self.offers(), {("plain", "a1"): R("cpus:1;mem:256")})
        self.allocator.addFramework("eng", "eng")
        self.assertEqual(self.offers(), {})
        self.allocator.addFramework("refining", "eng/web")
        self.assertEqual(self.offers(), {("refining", "a1"): refined})

    def test_operator_operations_need_free_resources(self) -> None:
        """updateAvailable applies only to free resources: refused while they are offered, applied once
        declined; an unreservation returns them to everyone."""
        self.allocator.addAgent("a1", R("cpus:2;mem:512"))
        self.allocator.addFramework("star", "*")
        self.assertEqual(len(self.offers()), 1)
        reserved = dynamic("cpus:1;mem:128", "eng")
        self.assertFalse(self.allocator.updateAvailable("a1", R("cpus:1;mem:128"), reserved))
        self.assertEqual(self.allocator.agent_total("a1"), R("cpus:2;mem:512"))
        self.allocator.recoverResources("star", "a1", R("cpus:2;mem:512"), Filters(0))
        self.assertTrue(self.allocator.updateAvailable("a1", R("cpus:1;mem:128"), reserved))
        self.assertEqual(self.allocator.agent_total("a1"), R("cpus:1;mem:384") + reserved)
        self.assertEqual(self.offers(), {("star", "a1"): R("cpus:1;mem:384")})
        self.allocator.recoverResources("star", "a1", R("cpus:1;mem:384"), Filters(0))
        self.assertTrue(self.allocator.updateAvailable("a1", reserved, R("cpus:1;mem:128")))
        self.assertEqual(self.offers(), {("star", "a1"): R("cpus:2;mem:512")})
        self.assertFalse(self.allocator.updateAvailable("ghost", reserved, R("cpus:1;mem:128")))

    def test_framework_operations_convert_what_it_holds(self) -> None:
        """updateAllocation turns part of what a framework holds into reserved resources, which it gives
        back as such; the agent's total holds them from then on."""
        self.allocator.addAgent("a1", R("cpus:2;mem:512"))
        self.allocator.addFramework("eng", "eng")
        self.assertEqual(len(self.offers()), 1)
        reserved = dynamic("cpus:1", "eng")
        self.allocator.updateAllocation("eng", "a1", R("cpus:1"), reserved)
        self.assertEqual(self.allocator.framework_allocated("eng"), {"a1": R("cpus:1;mem:512") + reserved})
        self.allocator.recoverResources("eng", "a1", R("cpus:1;mem:512") + reserved, Filters(0))
        self.assertEqual(self.allocator.agent_total("a1"), R("cpus:1;mem:512") + reserved)
        self.allocator.addFramework("star", "*")
        self.assertEqual(self.offers(), {("star", "a1"): R("cpus:1;mem:512"), ("eng", "a1"): reserved})


def dynamic(text: str, role: str, principal: str | None = "ops") -> Resources:
    """``text`` with a dynamic reservation for ``role`` by ``principal`` pushed on."""
    base = R(text)
    return Resources({pushed(key, Reservation(DYNAMIC, role, principal)): value for key, value in base.entries()})


def shape_of(text: str) -> Resources:
    """An agent shape: ``--resources`` text, ``+`` resources dynamically reserved as ``role=text``."""
    static, *extra = text.split("+")
    total = R(static)
    for part in extra:
        role, _, resources = part.partition("=")
        total = total + dynamic(resources, role)
    return total


AGENT_SHAPES = [
    AGENT,
    "cpus:1;mem:256",
    "cpus:0.5;mem:64;ports:[1-10,20-30];bugs:{a,b,c}",
    "cpus(ads):2;cpus:1;mem:512;mem(web):128",
    "cpus(web):1;mem(web):64;disk(ads):100",
    "cpus:0.01;mem:16",
    "cpus(eng):1;mem(eng):256;cpus:1;mem:256",
    "cpus:1;mem:512+eng=cpus:1;mem:128+eng/web=cpus:0.5;mem:64",
    "cpus(eng):2;mem(eng):512+eng/web=cpus(eng):1;mem(eng):128",
]
FRAMEWORK_ROLES = ["*", "ads", "web", "eng", "eng/web", "eng/web/db"]
DYNAMIC_ROLES = ["ads", "eng", "eng/web", "eng/web/db"]


def part_of(resources: Resources, data: st.DataObject) -> Resources:
    """A random part of ``resources``: whole entries, halves of scalars, one range or one set item."""
    items = {}
    for key, value in resources.entries():
        how = data.draw(st.sampled_from(["all", "none", "some"]))
        if how == "all":
            items[key] = value
        elif how == "some":
            if isinstance(value, int):
                items[key] = max(value // 2, 1)
            elif isinstance(value, tuple):
                items[key] = value[:1]
            else:
                items[key] = frozenset([min(value)])
    return Resources(items)


def shared_items(a: Resources, b: Resources) -> Resources:
    """The range and set items that both ``a`` and ``b`` hold."""
    ab = a - (a - b)
    return Resources({k: v for k, v in ab.entries() if not isinstance(v, int)})


class AllocatorMachine(RuleBasedStateMachine):
    """Random add/remove/allocate/recover/(de)activate sequences against a model of held offers."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.allocator = HierarchicalAllocator(self.clock, weights={"ads": 2.0})
        self.agents: dict[str, Resources] = {}
        self.inactive_agents: set[str] = set()
        self.frameworks: dict[str, str] = {}
        #: frameworks without the RESERVATION_REFINEMENT capability
        self.unrefined: set[str] = set()
        self.inactive_frameworks: set[str] = set()
        self.suppressed: set[str] = set()
        self.held: dict[tuple[str, str], Resources] = {}
        self.refused: dict[tuple[str, str], list[tuple[float, Resources]]] = {}
        self.serial = 0

    def _new_id(self, prefix: str) -> str:
        """A fresh, never reused ID."""
        self.serial += 1
        return f"{prefix}{self.serial}"

    @initialize(randomize=st.booleans(),
                shapes=st.lists(st.sampled_from(AGENT_SHAPES), min_size=1, max_size=4),
                roles=st.lists(st.sampled_from(FRAMEWORK_ROLES), min_size=1, max_size=3))
    def start(self, randomize: bool, shapes: list[str], roles: list[str]) -> None:
        """Start with a few agents and frameworks, with or without shuffled agent order."""
        self.allocator = HierarchicalAllocator(self.clock, weights={"ads": 2.0}, randomize=randomize)
        for shape in shapes:
            self.add_agent(shape)
        for role in roles:
            self.add_framework(role, True)

    # -- agents ------------------------------------------------------------

    @rule(shape=st.sampled_from(AGENT_SHAPES))
    def add_agent(self, shape: str) -> None:
        """Add an agent of a random shape."""
        agent_id = self._new_id("a")
        self.allocator.addAgent(agent_id, shape_of(shape))
        self.agents[agent_id] = shape_of(shape)

    @precondition(lambda self: self.agents)
    @rule(data=st.data())
    def remove_agent(self, data: st.DataObject) -> None:
        """Remove an agent; what frameworks held there is gone."""
        agent_id = data.draw(st.sampled_from(sorted(self.agents)))
        self.allocator.removeAgent(agent_id)
        del self.agents[agent_id]
        self.inactive_agents.discard(agent_id)
        self.held = {k: v for k, v in self.held.items() if k[1] != agent_id}
        self.refused = {k: v for k, v in self.refused.items() if k[1] != agent_id}

    @precondition(lambda self: self.agents)
    @rule(data=st.data(), shape=st.sampled_from(AGENT_SHAPES))
    def readd_agent(self, data: st.DataObject, shape: str) -> None:
        """Re-add a known agent with a new shape; it replaces the old one."""
        agent_id = data.draw(st.sampled_from(sorted(self.agents)))
        self.allocator.addAgent(agent_id, shape_of(shape))
        self.agents[agent_id] = shape_of(shape)
        self.inactive_agents.discard(agent_id)
        self.held = {k: v for k, v in self.held.items() if k[1] != agent_id}
        self.refused = {k: v for k, v in self.refused.items() if k[1] != agent_id}

    @precondition(lambda self: self.agents)
    @rule(data=st.data())
    def toggle_agent(self, data: st.DataObject) -> None:
        """Deactivate an active agent or activate an inactive one."""
        agent_id = data.draw(st.sampled_from(sorted(self.agents)))
        if agent_id in self.inactive_agents:
            self.allocator.activateAgent(agent_id)
            self.inactive_agents.discard(agent_id)
        else:
            self.allocator.deactivateAgent(agent_id)
            self.inactive_agents.add(agent_id)

    # -- frameworks --------------------------------------------------------

    @rule(role=st.sampled_from(FRAMEWORK_ROLES), active=st.booleans(), refinement=st.booleans())
    def add_framework(self, role: str, active: bool, refinement: bool = True) -> None:
        """Add a framework in a random role, active or not, able to read refined reservations or not."""
        framework_id = self._new_id("f")
        self.allocator.addFramework(framework_id, role, active=active, refinement=refinement)
        self.frameworks[framework_id] = role
        if not refinement:
            self.unrefined.add(framework_id)
        if not active:
            self.inactive_frameworks.add(framework_id)

    @precondition(lambda self: self.frameworks)
    @rule(data=st.data())
    def remove_framework(self, data: st.DataObject) -> None:
        """Remove a framework; everything it held is freed."""
        framework_id = data.draw(st.sampled_from(sorted(self.frameworks)))
        self.allocator.removeFramework(framework_id)
        del self.frameworks[framework_id]
        self.inactive_frameworks.discard(framework_id)
        self.unrefined.discard(framework_id)
        self.suppressed.discard(framework_id)
        self.held = {k: v for k, v in self.held.items() if k[0] != framework_id}
        self.refused = {k: v for k, v in self.refused.items() if k[0] != framework_id}

    @precondition(lambda self: self.frameworks)
    @rule(data=st.data())
    def toggle_framework(self, data: st.DataObject) -> None:
        """Deactivate an active framework or activate an inactive one."""
        framework_id = data.draw(st.sampled_from(sorted(self.frameworks)))
        if framework_id in self.inactive_frameworks:
            self.allocator.activateFramework(framework_id)
            self.inactive_frameworks.discard(framework_id)
        else:
            self.allocator.deactivateFramework(framework_id)
            self.inactive_frameworks.add(framework_id)

    @precondition(lambda self: self.frameworks)
    @rule(data=st.data())
    def toggle_suppress(self, data: st.DataObject) -> None:
        """Suppress a framework, or revive a suppressed one (which clears its refusals)."""
        framework_id = data.draw(st.sampled_from(sorted(self.frameworks)))
        if framework_id in self.suppressed:
            self.allocator.reviveOffers(framework_id)
            self.suppressed.discard(framework_id)
            self.refused = {k: v for k, v in self.refused.items() if k[0] != framework_id}
        else:
            self.allocator.suppressOffers(framework_id)
            self.suppressed.add(framework_id)

    # -- offers --------------------------------------------------------------

    @rule(data=st.data())
    def allocate_some(self, data: st.DataObject) -> None:
        """Allocate a few named agents (some maybe unknown), or all of them."""
        subset = data.draw(st.none() | st.lists(st.sampled_from(sorted(self.agents) + ["ghost"]), max_size=4))
        self._allocate(subset)

    @rule()
    def allocate_all(self) -> None:
        """Allocate every agent; afterwards nothing offerable is left to an eligible framework."""
        self._allocate(None)
        eligible = [f for f in self.frameworks if f not in self.inactive_frameworks and f not in self.suppressed]
        for agent_id, total in self.agents.items():
            if agent_id in self.inactive_agents:
                continue
            free = total - sum((r for (_, a), r in self.held.items() if a == agent_id), EMPTY)
            for framework_id in eligible:
                candidate = free.allocatable_to(self.frameworks[framework_id])
                if framework_id in self.unrefined:
                    candidate = candidate.without_refined()
                assert not allocatable(candidate) or self._is_refused(framework_id, agent_id, candidate), (
                    f"{candidate} on {agent_id} left unoffered to {framework_id}")

    def _is_refused(self, framework_id: str, agent_id: str, resources: Resources) -> bool:
        """Whether the model says a live refusal of the framework covers ``resources`` on the agent."""
        now = self.clock.seconds()
        return any(until > now and refused.contains(resources)
                   for until, refused in self.refused.get((framework_id, agent_id), []))

    def _allocate(self, subset: list[str] | None) -> None:
        """Allocate and check every offer against the model before it is held."""
        free = dict(self.agents)
        for (_, agent_id), resources in self.held.items():
            free[agent_id] = free[agent_id] - resources
        for framework_id, agent_id, resources in self.allocator.allocate(subset):
            assert framework_id in self.frameworks, framework_id
            assert agent_id in self.agents, agent_id
            assert subset is None or agent_id in subset
            assert agent_id not in self.inactive_agents, f"offer from inactive agent {agent_id}"
            assert framework_id not in self.inactive_frameworks, f"offer to inactive {framework_id}"
            assert framework_id not in self.suppressed, f"offer to suppressed {framework_id}"
            role = self.frameworks[framework_id]
            assert all(is_allocatable_to(reserved_for, role) for reserved_for in resources.roles()), (role, resources)
            assert framework_id not in self.unrefined or not resources.has_refined(), (framework_id, resources)
            assert allocatable(resources), resources
            assert free[agent_id].contains(resources), f"{resources} offered but only {free[agent_id]} free"
            assert not self._is_refused(framework_id, agent_id, resources), f"{resources} offered though refused"
            free[agent_id] = free[agent_id] - resources
            key = (framework_id, agent_id)
            self.held[key] = self.held.get(key, EMPTY) + resources

    @precondition(lambda self: self.held)
    @rule(data=st.data(), refuse=st.sampled_from([0.0, 1.0, 5.0]))
    def decline(self, data: st.DataObject, refuse: float) -> None:
        """Decline everything a framework holds on an agent, with a refusal filter."""
        key = data.draw(st.sampled_from(sorted(self.held)))
        resources = self.held.pop(key)
        self.allocator.recoverResources(key[0], key[1], resources, Filters(refuse))
        self._refuse(key, resources, refuse)

    def _refuse(self, key: tuple[str, str], resources: Resources, refuse: float | None) -> None:
        """Record a refusal in the model."""
        if refuse:
            self.refused.setdefault(key, []).append((self.clock.seconds() + refuse, resources))

    @precondition(lambda self: self.held)
    @rule(data=st.data(), refuse=st.sampled_from([None, 0.0, 1.0, 5.0]))
    def recover(self, data: st.DataObject, refuse: float | None) -> None:
        """Give back a random part of what a framework holds on an agent (a launch, a task's end)."""
        key = data.draw(st.sampled_from(sorted(self.held)))
        part = part_of(self.held[key], data)
        self.allocator.recoverResources(key[0], key[1], part, None if refuse is None else Filters(refuse))
        self._refuse(key, part, refuse)
        left = self.held[key] - part
        if left:
            self.held[key] = left
        else:
            del self.held[key]

    @precondition(lambda self: self.frameworks and self.agents)
    @rule(data=st.data(), shape=st.sampled_from(AGENT_SHAPES))
    def recover_stale(self, data: st.DataObject, shape: str) -> None:
        """Recovering what a framework does not hold (a stale or doubled message) frees only what it holds."""
        framework_id = data.draw(st.sampled_from(sorted(self.frameworks)))
        agent_id = data.draw(st.sampled_from(sorted(self.agents)))
        extra = part_of(shape_of(shape), data)
        key = (framework_id, agent_id)
        self.allocator.recoverResources(framework_id, agent_id, extra)
        left = self.held.get(key, EMPTY) - extra
        if left:
            self.held[key] = left
        else:
            self.held.pop(key, None)

    # -- offer operations ------------------------------------------------------

    def _free(self, agent_id: str) -> Resources:
        return self.agents[agent_id] - sum((r for (_, a), r in self.held.items() if a == agent_id), EMPTY)

    @precondition(lambda self: self.agents)
    @rule(data=st.data(), role=st.sampled_from(DYNAMIC_ROLES), unreserve=st.booleans())
    def operator_operation(self, data: st.DataObject, role: str, unreserve: bool) -> None:
        """An operator reserves part of an agent's scalars for a role (pushing onto what is reserved for an
        ancestor of it, or onto unreserved ones), or unreserves part of a dynamic reservation: it applies
        exactly when all of it is free, and the agent's total changes by it."""
        agent_id = data.draw(st.sampled_from(sorted(self.agents)))
        total = self.agents[agent_id]
        if unreserve:
            source = total.filter(is_dynamic)
            consumed = Resources({k: v for k, v in part_of(source, data).entries() if isinstance(v, int)})
            converted = Resources({popped(k): v for k, v in consumed.entries()})
        else:
            source = total.filter(lambda k: k[1] == "*" or is_allocatable_to(k[1], role) and k[1] != role)
            consumed = Resources({k: v for k, v in part_of(source, data).entries() if isinstance(v, int)})
            converted = Resources({pushed(k, Reservation(DYNAMIC, role, "ops")): v for k, v in consumed.entries()})
        if not consumed:
            return
        free = self._free(agent_id)
        applied = self.allocator.updateAvailable(agent_id, consumed, converted)
        assert applied == free.contains(consumed), (consumed, free, applied)
        if applied:
            self.agents[agent_id] = total - consumed + converted

    @precondition(lambda self: self.held)
    @rule(data=st.data(), unreserve=st.booleans())
    def framework_operation(self, data: st.DataObject, unreserve: bool) -> None:
        """A framework reserves part of what it holds on an agent for its role (or unreserves a dynamic
        part of it): what it holds and the agent's total change alike."""
        framework_id, agent_id = key = data.draw(st.sampled_from(sorted(self.held)))
        role = self.frameworks[framework_id]
        held = self.held[key]
        if unreserve:
            consumed = Resources({k: v for k, v in part_of(held.filter(is_dynamic), data).entries()
                                  if isinstance(v, int)})
            converted = Resources({popped(k): v for k, v in consumed.entries()})
        elif role != "*":
            source = held.filter(lambda k: k[1] != role)
            consumed = Resources({k: v for k, v in part_of(source, data).entries() if isinstance(v, int)})
            converted = Resources({pushed(k, Reservation(DYNAMIC, role, "fw")): v for k, v in consumed.entries()})
        else:
            return
        if not consumed:
            return
        self.allocator.updateAllocation(framework_id, agent_id, consumed, converted)
        self.held[key] = held - consumed + converted
        self.agents[agent_id] = self.agents[agent_id] - consumed + converted

    @rule(seconds=st.sampled_from([0.5, 1.0, 5.0]))
    def advance(self, seconds: float) -> None:
        """Let time pass so refusals expire."""
        self.clock.advance(seconds)

    # -- invariants ----------------------------------------------------------

    @invariant()
    def books_balance(self) -> None:
        """Per agent: allocated <= total, held offers match the allocator and never overlap."""
        for agent_id, total in self.agents.items():
            allocated = self.allocator.agent_allocated(agent_id)
            assert self.allocator.agent_total(agent_id) == total
            assert allocated <= total, f"{agent_id}: {allocated} allocated of {total}"
            held_here = {f: r for (f, a), r in self.held.items() if a == agent_id}
            by_framework = EMPTY
            for framework_id in self.frameworks:
                mine = self.allocator.framework_allocated(framework_id).get(agent_id, EMPTY)
                assert mine == held_here.get(framework_id, EMPTY), (framework_id, agent_id, mine, held_here)
                by_framework = by_framework + mine
            assert by_framework == allocated, f"{agent_id}: frameworks hold {by_framework}, agent {allocated}"
            holders = sorted(held_here)
            for i, first in enumerate(holders):
                for second in holders[i + 1:]:
                    shared = shared_items(held_here[first], held_here[second])
                    assert not shared, f"{shared} on {agent_id} held by both {first} and {second}"
        assert self.allocator.total() == sum(self.agents.values(), EMPTY)
        for role in FRAMEWORK_ROLES:
            assert self.allocator.role_share(role) >= 0.0


class AllocatorStateMachineTests(unittest.TestCase):
    """Randomized operation sequences keep the allocator's books consistent."""

    def test_invariants_hold(self) -> None:
        """allocated <= total per agent, no double offers, framework sums match, offers come from free."""
        run_state_machine_as_test(
            AllocatorMachine,
            settings=settings(max_examples=100, stateful_step_count=30, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow]),
        )
