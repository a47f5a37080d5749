"""Quota in the hierarchical allocator: guarantees first, limits never exceeded, hierarchical roles, and
reservations (static, dynamic, refined) counting towards their roles' quotas."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
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

from mesostw.allocator.hierarchical import HierarchicalAllocator, allocatable
from mesostw.allocator.quota import Quota, QuotaTracker, ancestors, is_within
from mesostw.model.info import Filters
from mesostw.model.reservation import (
    DYNAMIC,
    Reservation,
    is_allocatable_to,
    is_dynamic,
    is_refined,
    is_strict_subrole,
    popped,
    pushed,
)
from mesostw.model.resources import EMPTY, Resources, to_millis
from tests.helpers.clocktest import ClockTestCase

AGENT = "cpus:2;mem:1024;disk:4096;ports:[31000-32000]"


def R(text: str) -> Resources:
    """Shorthand for :meth:`Resources.parse`."""
    return Resources.parse(text)


class QuotaCase(ClockTestCase):
    """A deterministic allocator on a fake clock."""

    def setUp(self) -> None:
        self.clock = self.makeClock()
        self.allocator = HierarchicalAllocator(self.clock, randomize=False)

    def add_agents(self, count: int, resources: str = AGENT) -> list[str]:
        ids = [f"a{i}" for i in range(count)]
        for agent_id in ids:
            self.allocator.addAgent(agent_id, R(resources))
        return ids

    def offered(self) -> dict[str, Resources]:
        """Run one allocation; what each framework was offered in all."""
        out: dict[str, Resources] = {}
        for framework_id, _agent_id, resources in self.allocator.allocate():
            out[framework_id] = out.get(framework_id, EMPTY) + resources
        return out

    def decline_all(self, offers: list[tuple[str, str, Resources]]) -> None:
        for framework_id, agent_id, resources in offers:
            self.allocator.recoverResources(framework_id, agent_id, resources, Filters(0))


class RoleTreeTests(unittest.TestCase):
    """Role paths."""

    def test_ancestors_nearest_first(self) -> None:
        """``a/b/c`` is below ``a/b`` and ``a``; a top-level role has no ancestors."""
        self.assertEqual(ancestors("a/b/c"), ["a/b", "a"])
        self.assertEqual(ancestors("a"), [])

    def test_within(self) -> None:
        """A role is within itself and its ancestors, never within a sibling sharing a prefix."""
        self.assertTrue(is_within("eng/web", "eng"))
        self.assertTrue(is_within("eng", "eng"))
        self.assertFalse(is_within("engineering", "eng"))
        self.assertFalse(is_within("eng", "eng/web"))


class GuaranteeTests(QuotaCase):
    """Roles below their guarantees are served first, and others leave them room."""

    def test_guaranteed_role_is_served_before_a_lower_share(self) -> None:
        """A role with an unmet guarantee gets offers first, even when DRF would pick another role."""
        self.add_agents(4)
        self.allocator.addFramework("busy", "prod")
        self.allocator.addFramework("idle", "dev")
        self.allocator.updateQuota("prod", Quota.of(guarantees={"cpus": 4}))
        offers = self.allocator.allocate()
        prod = sum((r for f, _, r in offers if f == "busy"), EMPTY)
        self.assertGreaterEqual(prod.scalar("cpus"), 4)

    def test_headroom_is_held_back_from_others(self) -> None:
        """While a guarantee is unmet because its framework is away, the resources it needs are not offered
        to other roles; once it is met (or removed) they are."""
        self.add_agents(4)
        self.allocator.addFramework("prod-1", "prod", active=False)
        self.allocator.addFramework("dev-1", "dev")
        self.allocator.updateQuota("prod", Quota.of(guarantees={"cpus": 3, "mem": 1024}))
        dev = self.offered()["dev-1"]
        self.assertEqual(dev.scalar("cpus"), 5)  # 8 in all, 3 held back
        self.assertEqual(dev.scalar("mem"), 3072)
        self.allocator.updateQuota("prod", Quota())
        self.assertEqual(self.offered()["dev-1"].scalar("cpus"), 3)

    def test_guarantee_burst_stays_within_limit(self) -> None:
        """Beyond its guarantee a role takes more only up to its limit."""
        self.add_agents(4)
        self.allocator.addFramework("prod-1", "prod")
        self.allocator.updateQuota("prod", Quota.of(guarantees={"cpus": 1}, limits={"cpus": 3}))
        self.assertEqual(self.offered()["prod-1"].scalar("cpus"), 3)
        self.assertEqual(self.allocator.quota_consumed("prod")["cpus"], 3)

    def test_nested_guarantee_is_kept_for_the_child(self) -> None:
        """Under ``eng``'s guarantee, what ``eng/web``'s guarantee still needs is not taken by ``eng``'s own
        frameworks."""
        self.add_agents(2)
        self.allocator.addFramework("web", "eng/web", active=False)
        self.allocator.addFramework("eng-1", "eng")
        self.allocator.addFramework("other", "ops")
        self.allocator.updateQuota("eng", Quota.of(guarantees={"cpus": 4}, limits={"cpus": 4}))
        self.allocator.updateQuota("eng/web", Quota.of(guarantees={"cpus": 1}))
        offered = self.offered()
        self.assertEqual(offered["eng-1"].scalar("cpus"), 3)
        self.assertNotIn("other", offered)  # all 4 cpus are eng's guarantee
        self.allocator.activateFramework("web")
        self.assertEqual(self.offered()["web"].scalar("cpus"), 1)


class LimitTests(QuotaCase):
    """Limits cap what a role and the roles below it are offered."""

    def test_offers_are_cut_to_the_limit(self) -> None:
        """A role limited to 3 cpus is offered 3 of 8, the rest of each agent staying free for others."""
        self.add_agents(4)
        self.allocator.addFramework("dev-1", "dev")
        self.allocator.updateQuota("dev", Quota.of(limits={"cpus": 3}))
        offers = self.allocator.allocate()
        self.assertEqual(sum((r.scalar("cpus") for _, _, r in offers), 0.0), 3)
        self.assertTrue(all(allocatable(r) for _, _, r in offers))
        self.allocator.addFramework("ops-1", "ops")
        self.assertEqual(self.offered()["ops-1"].scalar("cpus"), 5)

    def test_parent_limit_covers_children(self) -> None:
        """``eng``'s limit bounds what ``eng/web`` and ``eng/api`` hold together."""
        self.add_agents(4)
        self.allocator.addFramework("web", "eng/web")
        self.allocator.addFramework("api", "eng/api")
        self.allocator.updateQuota("eng", Quota.of(limits={"cpus": 3, "mem": 2048}))
        offered = self.offered()
        together = offered.get("web", EMPTY) + offered.get("api", EMPTY)
        self.assertEqual(together.scalar("cpus"), 3)
        self.assertLessEqual(together.scalar("mem"), 2048)
        self.assertEqual(self.allocator.quota_consumed("eng")["cpus"], 3)

    def test_zero_limit_offers_nothing_of_it(self) -> None:
        """A zero cpus limit leaves offers of memory only (still allocatable)."""
        self.add_agents(1)
        self.allocator.addFramework("dev-1", "dev")
        self.allocator.updateQuota("dev", Quota.of(limits={"cpus": 0}))
        offered = self.offered()["dev-1"]
        self.assertEqual(offered.scalar("cpus"), 0)
        self.assertEqual(offered.scalar("mem"), 1024)

    def test_recovered_resources_free_the_limit(self) -> None:
        """Declined offers no longer count against the limit; they are offered again within it."""
        self.add_agents(2)
        self.allocator.addFramework("dev-1", "dev")
        self.allocator.updateQuota("dev", Quota.of(limits={"cpus": 1}))
        offers = self.allocator.allocate()
        self.assertEqual(self.allocator.quota_consumed("dev").get("cpus"), 1)
        self.decline_all(offers)
        self.assertNotIn("cpus", self.allocator.quota_consumed("dev"))
        self.assertEqual(self.offered()["dev-1"].scalar("cpus"), 1)

    def test_reservations_count_against_the_limit(self) -> None:
        """Reserved resources consume their role's quota whether allocated or not."""
        self.allocator.addAgent("a0", R("cpus(dev):2;cpus:2;mem:1024"))
        self.allocator.addFramework("dev-1", "dev")
        self.allocator.updateQuota("dev", Quota.of(limits={"cpus": 3}))
        self.assertEqual(self.allocator.quota_consumed("dev")["cpus"], 2)
        offered = self.offered()["dev-1"]
        self.assertEqual(offered.scalar("cpus"), 3)  # its 2 reserved and 1 unreserved
        self.allocator.removeAgent("a0")
        self.assertEqual(self.allocator.quota_consumed("dev"), {})

    def test_quota_set_later_counts_what_is_held(self) -> None:
        """A quota set while the role holds resources starts from what it holds, and a role above its new
        limit gets no more of that resource."""
        self.add_agents(2)
        self.allocator.addFramework("dev-1", "dev")
        self.allocator.allocate()
        self.allocator.updateQuota("dev", Quota.of(limits={"cpus": 1}))
        self.assertEqual(self.allocator.quota_consumed("dev")["cpus"], 4)
        self.allocator.addAgent("a9", R(AGENT))
        self.assertEqual(self.offered()["dev-1"], R("mem:1024;disk:4096;ports:[31000-32000]"))

    def test_no_quota_costs_no_tracking(self) -> None:
        """Without any quota, nothing is tracked; removing the last quota stops tracking."""
        self.add_agents(1)
        self.allocator.addFramework("dev-1", "dev")
        self.allocator.allocate()
        self.assertEqual(self.allocator.quota_consumed("dev"), {})
        self.allocator.updateQuota("dev", Quota.of(limits={"cpus": 10}))
        self.assertEqual(self.allocator.quota_consumed("dev")["cpus"], 2)
        self.allocator.updateQuota("dev", Quota())
        self.assertEqual(self.allocator.quota("dev"), Quota())
        self.assertEqual(self.allocator.quota_consumed("dev"), {})


class TrackerTests(unittest.TestCase):
    """The quota tracker's answers on its own."""

    def test_need_is_the_larger_of_own_and_children(self) -> None:
        """A parent needs the larger of its own shortfall and the sum of its guaranteed children's."""
        tracker = QuotaTracker()
        tracker.add_total(R("cpus:10;mem:1000"))
        tracker.set("eng", Quota.of(guarantees={"cpus": 4}), [])
        tracker.set("eng/web", Quota.of(guarantees={"cpus": 1, "mem": 100}), [])
        tracker.set("eng/api", Quota.of(guarantees={"cpus": 2}), [])
        self.assertEqual(tracker.need("eng"), {"cpus": 4000, "mem": 100_000})
        self.assertEqual(tracker.unsatisfied("eng"), {"cpus": 1000})
        tracker.charge("eng/api", R("cpus:3"))
        self.assertEqual(tracker.need("eng"), {"cpus": 1000, "mem": 100_000})
        self.assertEqual(tracker.required_headroom(), {"cpus": 1000, "mem": 100_000})
        self.assertEqual(tracker.surplus(), {"cpus": 6000, "mem": 900_000})

    def test_caps_leave_room_for_guaranteed_siblings(self) -> None:
        """Under a limit, a role leaves what its guaranteed siblings still need."""
        tracker = QuotaTracker()
        tracker.set("eng", Quota.of(limits={"cpus": 5}), [])
        tracker.set("eng/web", Quota.of(guarantees={"cpus": 2}), [])
        self.assertEqual(tracker.caps("eng/api"), {"cpus": 3000})
        self.assertEqual(tracker.caps("eng/web"), {"cpus": 5000})
        self.assertIsNone(tracker.caps("ops"))


# -- the state machine -------------------------------------------------------------------------

AGENT_SHAPES = ["cpus:4;mem:1024", "cpus:2;mem:512;disk:100", "cpus:1;mem:256;cpus(eng):1;mem(eng):256",
                "cpus:2;mem:512;cpus(ops):1"]
ROLES = ["eng", "eng/web", "eng/api", "ops", "dev"]
QUOTA_ROLES = ["eng", "eng/web", "ops"]
NAMES = ("cpus", "mem")
UNIT = {"cpus": 1000, "mem": 64_000}  # whole cpus, 64 MB of memory: every amount stays allocatable


def amounts(draw: st.DrawFn, ceiling: dict[str, int] | None = None) -> dict[str, int]:
    """Quantities in whole units, each at most ``ceiling`` where given."""
    out = {}
    for name in NAMES:
        top = 8 if ceiling is None or name not in ceiling else ceiling[name] // UNIT[name]
        if top < 0 or not draw(st.booleans()):
            continue
        out[name] = draw(st.integers(0, top)) * UNIT[name]
    return out


@st.composite
def quota_plans(draw: st.DrawFn) -> dict[str, Quota]:
    """Quotas for eng, eng/web and ops that nest: eng/web's guarantee within eng's, every guarantee within
    its own and its ancestors' limits."""
    eng_limits = amounts(draw)
    eng_guarantees = amounts(draw, eng_limits)
    web_ceiling = dict(eng_limits)
    for name, amount in eng_guarantees.items():
        web_ceiling[name] = min(web_ceiling.get(name, amount), amount)
    web_guarantees = {n: v for n, v in amounts(draw, web_ceiling).items() if n in eng_guarantees}
    web_limits = {n: v for n, v in amounts(draw).items() if v >= web_guarantees.get(n, 0)}
    ops_limits = amounts(draw)
    ops_guarantees = amounts(draw, ops_limits)
    plan = {"eng": Quota(eng_guarantees, eng_limits), "eng/web": Quota(web_guarantees, web_limits),
            "ops": Quota(ops_guarantees, ops_limits)}
    return {role: plan[role] for role in QUOTA_ROLES if draw(st.booleans())}


def scalars(resources: Resources) -> dict[str, int]:
    return {n: round(v * 1000) for n, v in resources.unreserved().scalars().items()}


class QuotaMachine(RuleBasedStateMachine):
    """Random agents, frameworks in hierarchical roles, quotas, allocations and declines, against a model
    that computes consumption, needs and limits naively."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.allocator = HierarchicalAllocator(self.clock, randomize=False)
        self.agents: dict[str, Resources] = {}
        self.inactive_agents: set[str] = set()
        self.frameworks: dict[str, str] = {}
        #: frameworks without the RESERVATION_REFINEMENT capability
        self.unrefined: set[str] = set()
        self.inactive: set[str] = set()
        self.held: dict[tuple[str, str], Resources] = {}
        self.quotas: dict[str, Quota] = {}
        self.serial = 0

    def _new_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    @initialize(shapes=st.lists(st.sampled_from(AGENT_SHAPES), min_size=1, max_size=4),
                roles=st.lists(st.sampled_from(ROLES), min_size=1, max_size=4), plan=quota_plans())
    def start(self, shapes: list[str], roles: list[str], plan: dict[str, Quota]) -> None:
        """A few agents and frameworks, and quotas."""
        for shape in shapes:
            self.add_agent(shape)
        for role in roles:
            self.add_framework(role, True, True)
        self.set_quotas(plan)

    # -- the model ------------------------------------------------------------------------

    def consumed(self, role: str) -> dict[str, int]:
        """Reservations for the role and those below it, plus the unreserved resources they hold."""
        out: dict[str, int] = {}
        for total in self.agents.values():
            reserved = total.reserved()
            for reserved_role in reserved.roles():
                if is_within(reserved_role, role):
                    for name, amount in reserved.reserved(reserved_role).scalars().items():
                        out[name] = out.get(name, 0) + round(amount * 1000)
        for (framework_id, _), resources in self.held.items():
            if is_within(self.frameworks[framework_id], role):
                for name, amount in scalars(resources).items():
                    out[name] = out.get(name, 0) + amount
        return {n: v for n, v in out.items() if v}

    def guaranteed_below(self, role: str) -> list[str]:
        below = [r for r, q in self.quotas.items() if q.guarantees and r != role and (not role or is_within(r, role))]
        return [r for r in below if not any(a in below for a in ancestors(r))]

    def need(self, role: str) -> dict[str, int]:
        own = {}
        if role in self.quotas:
            consumed = self.consumed(role)
            own = {n: g - consumed.get(n, 0) for n, g in self.quotas[role].guarantees.items()}
        children: dict[str, int] = {}
        for child in self.guaranteed_below(role):
            for n, v in self.need(child).items():
                children[n] = children.get(n, 0) + v
        return {n: v for n in own.keys() | children.keys() if (v := max(own.get(n, 0), children.get(n, 0))) > 0}

    def required(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for top in self.guaranteed_below(""):
            for n, v in self.need(top).items():
                out[n] = out.get(n, 0) + v
        return out

    def free_unreserved(self) -> dict[str, int]:
        """Unreserved scalars not held, over every agent (active or not)."""
        out: dict[str, int] = {}
        for total in self.agents.values():
            for n, v in scalars(total).items():
                out[n] = out.get(n, 0) + v
        for resources in self.held.values():
            for n, v in scalars(resources).items():
                out[n] -= v
        return out

    # -- rules --------------------------------------------------------------------------------

    @rule(shape=st.sampled_from(AGENT_SHAPES))
    def add_agent(self, shape: str) -> None:
        """Add an agent."""
        agent_id = self._new_id("a")
        self.allocator.addAgent(agent_id, R(shape))
        self.agents[agent_id] = R(shape)

    @precondition(lambda self: self.agents)
    @rule(data=st.data())
    def remove_agent(self, data: st.DataObject) -> None:
        """Remove an agent and everything held on it."""
        agent_id = data.draw(st.sampled_from(sorted(self.agents)))
        self.allocator.removeAgent(agent_id)
        del self.agents[agent_id]
        self.inactive_agents.discard(agent_id)
        self.held = {k: v for k, v in self.held.items() if k[1] != agent_id}

    @precondition(lambda self: self.agents)
    @rule(data=st.data())
    def toggle_agent(self, data: st.DataObject) -> None:
        """Deactivate or reactivate an agent."""
        agent_id = data.draw(st.sampled_from(sorted(self.agents)))
        if agent_id in self.inactive_agents:
            self.allocator.activateAgent(agent_id)
            self.inactive_agents.discard(agent_id)
        else:
            self.allocator.deactivateAgent(agent_id)
            self.inactive_agents.add(agent_id)

    @rule(role=st.sampled_from(ROLES), active=st.booleans(), refinement=st.booleans())
    def add_framework(self, role: str, active: bool, refinement: bool) -> None:
        """Add a framework in one of the roles, able to read refined reservations or not."""
        framework_id = self._new_id("f")
        self.allocator.addFramework(framework_id, role, active=active, refinement=refinement)
        self.frameworks[framework_id] = role
        if not refinement:
            self.unrefined.add(framework_id)
        if not active:
            self.inactive.add(framework_id)

    @precondition(lambda self: self.frameworks)
    @rule(data=st.data())
    def toggle_framework(self, data: st.DataObject) -> None:
        """Deactivate or reactivate a framework."""
        framework_id = data.draw(st.sampled_from(sorted(self.frameworks)))
        if framework_id in self.inactive:
            self.allocator.activateFramework(framework_id)
            self.inactive.discard(framework_id)
        else:
            self.allocator.deactivateFramework(framework_id)
            self.inactive.add(framework_id)

    @precondition(lambda self: self.frameworks)
    @rule(data=st.data())
    def remove_framework(self, data: st.DataObject) -> None:
        """Remove a framework and what it holds."""
        framework_id = data.draw(st.sampled_from(sorted(self.frameworks)))
        self.allocator.removeFramework(framework_id)
        del self.frameworks[framework_id]
        self.inactive.discard(framework_id)
        self.unrefined.discard(framework_id)
        self.held = {k: v for k, v in self.held.items() if k[0] != framework_id}

    @rule(plan=quota_plans())
    def set_quotas(self, plan: dict[str, Quota]) -> None:
        """Replace the quotas (the roles the plan leaves out have none)."""
        for role in QUOTA_ROLES:
            self.allocator.updateQuota(role, plan.get(role, Quota()))
        self.quotas = {role: quota for role, quota in plan.items() if quota}

    @rule()
    def allocate(self) -> None:
        """Allocate every agent: no role passes a limit it was within; a guaranteed role with an active
        framework is left short only where its limits or nothing free stop it; others never take the
        headroom those guarantees need."""
        before = {role: self.consumed(role) for role in self.quotas}
        surplus_before = {n: self.free_unreserved().get(n, 0) - v for n, v in self.required().items()}
        free = {a: t for a, t in self.agents.items()}
        for (_, agent_id), resources in self.held.items():
            free[agent_id] = free[agent_id] - resources
        for framework_id, agent_id, resources in self.allocator.allocate():
            assert agent_id not in self.inactive_agents and framework_id not in self.inactive
            assert free[agent_id].contains(resources), (resources, free[agent_id])
            assert allocatable(resources), resources
            for key in resources.keys():
                assert is_allocatable_to(key[1], self.frameworks[framework_id]), (
                    f"{resources} offered to a framework of {self.frameworks[framework_id]}")
                assert framework_id not in self.unrefined or not is_refined(key), (
                    f"refined {resources} offered to a framework without RESERVATION_REFINEMENT")
            free[agent_id] = free[agent_id] - resources
            key = (framework_id, agent_id)
            self.held[key] = self.held.get(key, EMPTY) + resources
        for role, quota in self.quotas.items():
            after = self.consumed(role)
            for name, limit in quota.limits.items():
                assert after.get(name, 0) <= max(limit, before[role].get(name, 0)), (
                    f"{role} consumes {after} beyond its limits {quota.limits} (was {before[role]})")
        free_after = self.free_unreserved()
        for name, required in self.required().items():
            if surplus_before.get(name, 0) >= 0:
                assert free_after.get(name, 0) >= required, (
                    f"{free_after.get(name, 0)} {name} left free, but guarantees need {required}")
        self._check_guarantees(free)

    def _check_guarantees(self, free: dict[str, Resources]) -> None:
        for role, quota in self.quotas.items():
            if not quota.guarantees or not any(r == role and f not in self.inactive
                                               for f, r in self.frameworks.items()):
                continue
            consumed = self.consumed(role)
            below: dict[str, int] = {}
            for child in self.guaranteed_below(role):
                for n, v in self.need(child).items():
                    below[n] = below.get(n, 0) + v
            for name, guarantee in quota.guarantees.items():
                short = guarantee - consumed.get(name, 0) - below.get(name, 0)
                if short <= 0 or self._capped(role, name):
                    continue
                for agent_id, left in free.items():
                    if agent_id in self.inactive_agents:
                        continue
                    assert scalars(left.allocatable_to(role)).get(name, 0) == 0, (
                        f"{role} is {short} {name} short of its guarantee while agent {agent_id} has {left} free")

    def _capped(self, role: str, name: str) -> bool:
        """Whether a limit of the role or an ancestor (net of what guaranteed roles beside it need) is reached."""
        for watcher in (role, *ancestors(role)):
            quota = self.quotas.get(watcher)
            if quota is None or name not in quota.limits:
                continue
            beside = 0
            for child in self.guaranteed_below(watcher):
                if not is_within(role, child):
                    beside += self.need(child).get(name, 0)
            if self.consumed(watcher).get(name, 0) + beside >= quota.limits[name]:
                return True
        return False

    def free_on(self, agent_id: str) -> Resources:
        free = self.agents[agent_id]
        for (_, held_on), resources in self.held.items():
            if held_on == agent_id:
                free = free - resources
        return free

    @precondition(lambda self: self.agents)
    @rule(data=st.data(), role=st.sampled_from(ROLES), cpus=st.booleans())
    def operator_reserve(self, data: st.DataObject, role: str, cpus: bool) -> None:
        """An operator reserves free resources of an agent for a role: unreserved ones, or ones reserved
        for a role above it (a refinement); the reservation counts towards the role's quota at once."""
        agent_id = data.draw(st.sampled_from(sorted(self.agents)))
        name = "cpus" if cpus else "mem"
        free = dict(self.free_on(agent_id).entries())
        sources = sorted((key for key in free if key[0] == name and (key[1] == "*" or is_strict_subrole(role, key[1]))),
                         key=repr)
        if not sources:
            return
        key = data.draw(st.sampled_from(sources))
        amount = min(free[key], to_millis(1 if cpus else 128))
        consumed = Resources({key: amount})
        converted = Resources({pushed(key, Reservation(DYNAMIC, role, "ops")): amount})
        assert self.allocator.updateAvailable(agent_id, consumed, converted)
        self.agents[agent_id] = self.agents[agent_id] - consumed + converted

    @precondition(lambda self: self.agents)
    @rule(data=st.data())
    def operator_unreserve(self, data: st.DataObject) -> None:
        """An operator undoes a free dynamic reservation (its top one: a refinement goes back to the role
        above)."""
        agent_id = data.draw(st.sampled_from(sorted(self.agents)))
        free = dict(self.free_on(agent_id).entries())
        dynamic = sorted((key for key in free if is_dynamic(key)), key=repr)
        if not dynamic:
            return
        key = data.draw(st.sampled_from(dynamic))
        consumed, converted = Resources({key: free[key]}), Resources({popped(key): free[key]})
        assert self.allocator.updateAvailable(agent_id, consumed, converted)
        self.agents[agent_id] = self.agents[agent_id] - consumed + converted

    @precondition(lambda self: self.held)
    @rule(data=st.data(), unreserve=st.booleans())
    def framework_operation(self, data: st.DataObject, unreserve: bool) -> None:
        """A framework RESERVEs for its role part of what it was offered (unreserved, or reserved for a role
        above its own), or UNRESERVEs a dynamic reservation for its role it was offered."""
        framework_id, agent_id = held_key = data.draw(st.sampled_from(sorted(self.held)))
        role = self.frameworks[framework_id]
        held = dict(self.held[held_key].entries())
        if unreserve:
            keys = [k for k in held if is_dynamic(k) and k[1] == role]
        else:
            keys = [k for k in held if k[0] in ("cpus", "mem") and isinstance(held[k], int)
                    and (k[1] == "*" or is_strict_subrole(role, k[1]))]
        if not keys:
            return
        key = data.draw(st.sampled_from(sorted(keys, key=repr)))
        amount = held[key] if unreserve else min(held[key], to_millis(1 if key[0] == "cpus" else 128))
        consumed = Resources({key: amount})
        converted = Resources({popped(key) if unreserve else pushed(key, Reservation(DYNAMIC, role, "fw")): amount})
        self.allocator.updateAllocation(framework_id, agent_id, consumed, converted)
        self.held[held_key] = self.held[held_key] - consumed + converted
        self.agents[agent_id] = self.agents[agent_id] - consumed + converted

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def decline(self, data: st.DataObject) -> None:
        """A framework gives back everything it holds on an agent, without a refusal filter."""
        key = data.draw(st.sampled_from(sorted(self.held)))
        self.allocator.recoverResources(key[0], key[1], self.held.pop(key), Filters(0))

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def consumption_matches_the_model(self) -> None:
        """The allocator's consumption of every role with quota is the model's."""
        for role in self.quotas:
            expected = {n: v / 1000 for n, v in sorted(self.consumed(role).items())}
            assert self.allocator.quota_consumed(role) == expected, (role, self.allocator.quota_consumed(role),
                                                                     expected)


class QuotaStateMachineTests(unittest.TestCase):
    """Randomized sequences with quotas keep guarantees and limits."""

    def test_guarantees_and_limits_hold(self) -> None:
        """Limits are never exceeded (also across hierarchical roles), satisfiable guarantees are met, and
        the headroom for unmet guarantees is never offered to others."""
        run_state_machine_as_test(
            QuotaMachine,
            settings=settings(max_examples=150, stateful_step_count=30, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow]),
        )
