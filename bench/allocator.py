"""Allocation cost when every framework declines everything (Mesos's DeclineOffers benchmark).

Modelled on ``HierarchicalAllocator_BENCHMARK_Test.DeclineOffers``: A agents of
``cpus:2;mem:1024;disk:4096;ports:[31000-32000]`` and F frameworks (in one role,
or spread round-robin over ``--roles`` roles). Each round calls ``allocate()``
once, then every framework declines every offer it got with a refusal filter of
``--refuse-seconds``, and a fake clock moves on by one second. Only the
``allocate()`` call is timed.

In the same process the same rounds run on a naive reference allocator that
re-sorts all roles and all frameworks of a role for every agent (the same DRF
share formula, tie-breaks, resource arithmetic and refusal filters as
``DRFSorter``/``HierarchicalAllocator``, but plain ``sorted()`` per agent instead
of an incrementally kept order), so the last line's ratio compares the two on
this machine. Both run with a fixed agent order and make identical offers,
which the script checks. Then what one event costs the master's allocator is
timed: an agent joins, or an offer comes back, and ``allocate([agent])`` runs
for that agent alone (as the master does on such events). Figures are printed,
never asserted.

    python bench/allocator.py --agents 10000 --frameworks 500 --rounds 5

With ``--quota-roles Q`` the first Q roles get a quota (a guarantee of
``--guarantee`` of their fair share and a limit of ``--limit`` times it, in cpus
and mem); the same rounds then run on our allocator with and without those
quotas (no naive baseline; with ``--reserved`` too, the reservations counting
towards the quotas), and the last line reads
``allocation_ms=<without> quota_ms=<with> quota_ratio=<with/without>``.

    python bench/allocator.py --agents 10000 --frameworks 500 --roles 50 --quota-roles 10
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Iterable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet.task import Clock  # noqa: E402

from mesostw.allocator.filters import RefusedResources  # noqa: E402
from mesostw.allocator.hierarchical import HierarchicalAllocator, allocatable  # noqa: E402
from mesostw.allocator.quota import Quota  # noqa: E402
from mesostw.model.info import Filters  # noqa: E402
from mesostw.model.reservation import DYNAMIC, Reservation, pushed  # noqa: E402
from mesostw.model.resources import EMPTY, Resources  # noqa: E402

AGENT = "cpus:2;mem:1024;disk:4096;ports:[31000-32000]"
#: the part of each agent that --reserved reserves dynamically
RESERVED = "cpus:1;mem:512;disk:2048"

Offer = tuple[str, str, Resources]


def share(allocated: dict[str, float], total: dict[str, float], weight: float) -> float:
    """Weighted dominant share, exactly as ``DRFSorter._share`` computes it."""
    dominant = 0.0
    for resource, amount in allocated.items():
        whole = total.get(resource)
        if whole:
            fraction = amount / whole
            if fraction > dominant:
                dominant = fraction
    return dominant / weight if weight > 0 else dominant


class _Client:
    """One role or framework of the naive allocator: what it holds and how often it was picked."""

    __slots__ = ("name", "allocated", "count", "weight")

    def __init__(self, name: str, weight: float = 1.0):
        self.name = name
        self.allocated: dict[str, float] = {}
        self.count = 0
        self.weight = weight

    def charge(self, scalars: dict[str, float]) -> None:
        for resource, amount in scalars.items():
            self.allocated[resource] = self.allocated.get(resource, 0.0) + amount
        self.count += 1

    def credit(self, scalars: dict[str, float]) -> None:
        for resource, amount in scalars.items():
            left = self.allocated.get(resource, 0.0) - amount
            if left > 1e-9:
                self.allocated[resource] = left
            else:
                self.allocated.pop(resource, None)


class NaiveAllocator:
    """Hierarchical DRF that sorts roles and frameworks from scratch for every agent."""

    def __init__(self, clock: Clock):
        self._clock = clock
        self._agents: dict[str, list[Resources]] = {}  # id -> [total, allocated]
        self._roles: dict[str, _Client] = {}
        self._members: dict[str, list[_Client]] = {}
        self._frameworks: dict[str, tuple[_Client, str, RefusedResources]] = {}
        self._held: dict[tuple[str, str], Resources] = {}
        self._total: dict[str, float] = {}

    def addFramework(self, framework_id: str, role: str) -> None:
        client = _Client(framework_id)
        self._frameworks[framework_id] = (client, role, RefusedResources())
        self._roles.setdefault(role, _Client(role))
        self._members.setdefault(role, []).append(client)

    def addAgent(self, agent_id: str, total: Resources) -> None:
        self._agents[agent_id] = [total, EMPTY]
        for resource, amount in total.scalars().items():
            self._total[resource] = self._total.get(resource, 0.0) + amount

    def recoverResources(self, framework_id: str, agent_id: str, resources: Resources,
                         filters: Filters | None = None) -> None:
        client, role, refused = self._frameworks[framework_id]
        key = (framework_id, agent_id)
        self._held[key] = self._held[key] - resources
        scalars = resources.scalars()
        client.credit(scalars)
        self._roles[role].credit(scalars)
        self._agents[agent_id][1] = self._agents[agent_id][1] - resources
        if filters is not None and filters.refuse_seconds > 0:
            refused.add(agent_id, resources, self._clock.seconds() + filters.refuse_seconds)

    def allocate(self) -> list[Offer]:
        now = self._clock.seconds()
        total = self._total
        offers = []

        def order(clients: Iterable[_Client]) -> list[_Client]:
            return sorted(clients, key=lambda c: (share(c.allocated, total, c.weight), c.count, c.name))

        for agent_id, state in self._agents.items():
            available = state[0] - state[1]
            if not allocatable(available):
                continue
            for role_client in order(self._roles.values()):
                role = role_client.name
                candidate = available.allocatable_to(role)
                if not allocatable(candidate):
                    continue
                for client in order(self._members[role]):
                    refused = self._frameworks[client.name][2]
                    if refused and refused.filtered(agent_id, candidate, now):
                        continue
                    offers.append((client.name, agent_id, candidate))
                    scalars = candidate.scalars()
                    client.charge(scalars)
                    role_client.charge(scalars)
                    key = (client.name, agent_id)
                    self._held[key] = self._held.get(key, EMPTY) + candidate
                    state[1] = state[1] + candidate
                    available = available - candidate
                    break
                if not allocatable(available):
                    break
        return offers


def build(allocator: HierarchicalAllocator | NaiveAllocator, agents: int, frameworks: int, roles: int,
          reserved: bool = False) -> None:
    """Register the frameworks (round-robin over roles) and the agents (with half of each dynamically
    reserved, round-robin over the roles, when ``reserved``)."""
    for i in range(frameworks):
        allocator.addFramework(f"framework-{i:05d}", f"role-{i % roles}")
    totals = [Resources.parse(AGENT)]
    if reserved:
        half = Resources.parse(RESERVED)
        totals = [Resources.parse(AGENT) - half + Resources({
            pushed(key, Reservation(DYNAMIC, f"role-{r}", "bench")): value for key, value in half.entries()})
            for r in range(roles)]
    for i in range(agents):
        allocator.addAgent(f"agent-{i:06d}", totals[i % len(totals)])


def run(name: str, allocator: HierarchicalAllocator | NaiveAllocator, clock: Clock, rounds: int,
        refuse: Filters) -> tuple[list[float], list[list[Offer]]]:
    """Allocate, time it, decline everything with ``refuse``; advance the clock 1 s; ``rounds`` times."""
    timings, made = [], []
    for round_number in range(1, rounds + 1):
        gc.collect()
        start = time.perf_counter()
        offers = allocator.allocate()
        elapsed = (time.perf_counter() - start) * 1000
        print(f"[{name}] round {round_number}: allocate() took {elapsed:.1f} ms to make {len(offers)} offers",
              flush=True)
        for framework_id, agent_id, resources in offers:
            allocator.recoverResources(framework_id, agent_id, resources, refuse)
        clock.advance(1)
        timings.append(elapsed)
        made.append(offers)
    return timings, made


def events(allocator: HierarchicalAllocator, count: int = 200) -> tuple[float, float]:
    """Mean ms of (addAgent + allocate([it])) and of (recoverResources of a whole offer + allocate([its
    agent])), ``count`` of each, on an allocator whose every agent is offered to someone."""
    held = {agent_id: (framework_id, resources) for framework_id, agent_id, resources in allocator.allocate()}
    shape = Resources.parse(AGENT)
    joined = returned = 0.0
    for i, agent_id in zip(range(count), sorted(held), strict=False):
        start = time.perf_counter()
        allocator.addAgent(f"joined-{i:06d}", shape)
        allocator.allocate([f"joined-{i:06d}"])
        joined += time.perf_counter() - start
        framework_id, resources = held[agent_id]
        start = time.perf_counter()
        allocator.recoverResources(framework_id, agent_id, resources)
        allocator.allocate([agent_id])
        returned += time.perf_counter() - start
    return joined * 1000 / count, returned * 1000 / count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="The last line is 'allocation_ms=<ours, mean per round> naive_ms=<naive, mean per round> "
               "ratio=<naive/ours>'. Figures are printed only; nothing is asserted.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--agents", type=int, default=1000, help="agents, each " + AGENT)
    parser.add_argument("--frameworks", type=int, default=50, help="frameworks, all declining every offer")
    parser.add_argument("--roles", type=int, default=1, help="roles to spread the frameworks over, round-robin")
    parser.add_argument("--rounds", type=int, default=5, help="allocation rounds; the fake clock moves 1 s per round")
    parser.add_argument("--refuse-seconds", type=float, default=5.0,
                        help="refusal filter every decline carries (0 declines with no filter)")
    parser.add_argument("--quota-roles", type=int, default=0,
                        help="roles given a quota (compares our allocator with and without them)")
    parser.add_argument("--guarantee", type=float, default=0.5,
                        help="each quota's guarantee, as a fraction of its role's fair share of cpus and mem")
    parser.add_argument("--limit", type=float, default=1.5,
                        help="each quota's limit, as a multiple of its role's fair share of cpus and mem")
    parser.add_argument("--reserved", action="store_true",
                        help=f"reserve {RESERVED} of each agent dynamically for one of the roles (round-robin)")
    parser.add_argument("--naive-rounds", type=int, default=None,
                        help="rounds for the naive baseline, 0 to skip it (default: as many as --rounds)")
    args = parser.parse_args(argv)
    if min(args.agents, args.frameworks, args.roles, args.rounds) < 1:
        parser.error("--agents, --frameworks, --roles and --rounds must be at least 1")
    if args.quota_roles > args.roles:
        parser.error("--quota-roles cannot exceed --roles")
    naive_rounds = args.rounds if args.naive_rounds is None else args.naive_rounds
    refuse = Filters(refuse_seconds=args.refuse_seconds)
    print(f"{args.agents} agents x {args.frameworks} frameworks in {args.roles} role(s), "
          f"refuse_seconds={args.refuse_seconds:g}, {args.rounds} rounds"
          + (f", {RESERVED} of each agent reserved" if args.reserved else ""), flush=True)
    if args.quota_roles:
        compare_quota(args, refuse)
        return

    clock = Clock()
    ours = HierarchicalAllocator(clock, randomize=False)
    start = time.perf_counter()
    build(ours, args.agents, args.frameworks, args.roles, args.reserved)
    print(f"[hierarchical] added agents and frameworks in {(time.perf_counter() - start) * 1000:.0f} ms")
    timings, made = run("hierarchical", ours, clock, args.rounds, refuse)
    allocation_ms = sum(timings) / len(timings)
    joined_ms, returned_ms = events(ours)
    print(f"[hierarchical] one event, then allocate() for its agent alone: a new agent {joined_ms:.2f} ms, "
          f"a returned offer {returned_ms:.2f} ms", flush=True)

    if naive_rounds <= 0:
        print(f"allocation_ms={allocation_ms:.1f} naive_ms=nan ratio=nan")
        return
    naive_clock = Clock()
    naive = NaiveAllocator(naive_clock)
    build(naive, args.agents, args.frameworks, args.roles, args.reserved)
    naive_timings, naive_made = run("naive", naive, naive_clock, naive_rounds, refuse)
    naive_ms = sum(naive_timings) / len(naive_timings)
    same = all(a == b for a, b in zip(made, naive_made, strict=False))
    print(f"offers identical in the {min(len(made), len(naive_made))} rounds both ran: {'yes' if same else 'NO'}")
    print(f"allocation_ms={allocation_ms:.1f} naive_ms={naive_ms:.1f} ratio={naive_ms / allocation_ms:.1f}")


def compare_quota(args: argparse.Namespace, refuse: Filters) -> None:
    """The same rounds on our allocator without and with quotas on the first ``--quota-roles`` roles."""
    timings = {}
    for label in ("no-quota", "quota"):
        clock = Clock()
        allocator = HierarchicalAllocator(clock, randomize=False)
        build(allocator, args.agents, args.frameworks, args.roles, args.reserved)
        if label == "quota":
            total = Resources.parse(AGENT).scalars()
            fair = {name: total[name] * args.agents / args.roles for name in ("cpus", "mem")}
            quota = Quota.of(guarantees={n: v * args.guarantee for n, v in fair.items()},
                             limits={n: v * args.limit for n, v in fair.items()})
            for i in range(args.quota_roles):
                allocator.updateQuota(f"role-{i}", quota)
            print(f"[quota] {args.quota_roles} roles with guarantees {quota.guarantee_scalars()} "
                  f"and limits {quota.limit_scalars()}", flush=True)
        times, _ = run(label, allocator, clock, args.rounds, refuse)
        timings[label] = sum(times) / len(times)
    print(f"allocation_ms={timings['no-quota']:.1f} quota_ms={timings['quota']:.1f} "
          f"quota_ratio={timings['quota'] / timings['no-quota']:.2f}")


if __name__ == "__main__":
    main()
