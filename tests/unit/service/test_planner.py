"""The deployment planner: plan steps in dependency order, and converge's capacity bounds at every step
of simulated rolling restarts and scalings (hypothesis drives the cluster's events)."""

from __future__ import annotations

import itertools
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from frameworks.service import planner as P
from frameworks.service.planner import InstanceView, bounds, converge

SETTINGS = settings(max_examples=200, deadline=None, database=None)


@attrs.frozen
class FakeApp:
    instances: int
    last_config_change_at: str = "v1"


class PlanStepsTests(unittest.TestCase):
    def test_new_app_starts_then_scales(self) -> None:
        """A new app is started in one step and scaled to its instances in the next."""
        steps = P.plan_steps({}, {"/a": FakeApp(3)}, {}, {"/a": 0})
        self.assertEqual(steps, [[P.Action(P.START, "/a")], [P.Action(P.SCALE, "/a")]])

    def test_changes_map_to_actions(self) -> None:
        """Instances only: scale; config version: restart; removed: stop; unchanged: nothing."""
        original = {"/s": FakeApp(1), "/r": FakeApp(1), "/gone": FakeApp(1), "/same": FakeApp(2)}
        target = {"/s": FakeApp(5), "/r": FakeApp(1, "v2"), "/same": FakeApp(2)}
        steps = P.plan_steps(original, target, {}, {})
        self.assertEqual(steps, [[P.Action(P.STOP, "/gone")],
                                 [P.Action(P.RESTART, "/r"), P.Action(P.SCALE, "/s")]])

    def test_dependencies_order_the_steps(self) -> None:
        """Apps start dependency-first; a group dependency covers every app in the group."""
        apps = {"/db/main": FakeApp(1), "/api": FakeApp(1), "/web": FakeApp(1)}
        deps = {"/api": ["/db"], "/web": ["/api"], "/db/main": []}
        graph = P.dependency_graph(apps, lambda a: deps[a], {})
        order = P.longest_paths(graph)
        self.assertEqual(order, {"/db/main": 0, "/api": 1, "/web": 2})
        steps = P.plan_steps({}, apps, {}, order)
        self.assertEqual([[a.app for a in s] for s in steps[1:]], [["/db/main"], ["/api"], ["/web"]])

    def test_stops_go_in_reverse_order(self) -> None:
        """Removed apps stop dependents first."""
        order = {"/db": 0, "/api": 1}
        steps = P.plan_steps({"/db": FakeApp(1), "/api": FakeApp(1)}, {}, order, {})
        self.assertEqual(steps, [[P.Action(P.STOP, "/api")], [P.Action(P.STOP, "/db")]])

    def test_group_dependencies_apply_to_members(self) -> None:
        """A group's dependencies apply to every app under it."""
        graph = P.dependency_graph(["/front/web", "/back/db"], lambda a: [], {"/front": ["/back"]})
        self.assertEqual(graph["/front/web"], {"/back/db"})

    def test_cycles_are_refused(self) -> None:
        """A dependency cycle is named in the error."""
        with self.assertRaises(P.CyclicDependencies) as caught:
            P.longest_paths({"/a": {"/b"}, "/b": {"/a"}})
        self.assertIn("/a -> /b -> /a", str(caught.exception))


class BoundsTests(unittest.TestCase):
    def test_marathon_examples(self) -> None:
        """ceil/floor as Marathon, with the extra instance when the bounds meet."""
        self.assertEqual(bounds(10, 0.9, 0.1), (9, 11))
        self.assertEqual(bounds(3, 1.0, 0.0), (3, 4))
        self.assertEqual(bounds(100, 0.9, 0.1), (90, 110))
        self.assertEqual(bounds(3, 0.0, 0.0), (0, 3))
        self.assertEqual(bounds(3, 1.0, 1.0), (3, 6))


class Sim:
    """A pretend cluster: instances move staging -> running -> healthy; kills complete later."""

    def __init__(self, old: int, health: bool = True):
        self.ids = itertools.count()
        self.instances: dict[str, dict[str, Any]] = {}
        self.time = 0.0
        for _ in range(old):
            self.add(current=False, state="healthy")

    def add(self, current: bool, state: str = "staging") -> None:
        key = f"i{next(self.ids)}"
        self.time += 1
        self.instances[key] = {"current": current, "state": state, "goal": True, "killing": False,
                               "since": self.time}

    def views(self) -> list[InstanceView]:
        return [InstanceView(k, v["current"], v["goal"], v["killing"], v["state"] != "staging",
                             v["state"] == "healthy" and not v["killing"], False, False, v["since"])
                for k, v in self.instances.items()]

    def available(self) -> int:
        return sum(1 for v in self.views() if v.available)

    def apply(self, decision: P.Decision) -> None:
        for key in decision.kill:
            self.instances[key]["goal"] = False
            self.instances[key]["killing"] = True
        for _ in range(decision.launch):
            self.add(current=True)

    def event(self, kind: str, pick: int) -> None:
        pools = {
            "start": [k for k, v in self.instances.items() if v["state"] == "staging"],
            "healthy": [k for k, v in self.instances.items() if v["state"] == "running"],
            "killed": [k for k, v in self.instances.items() if v["killing"]],
            "fail": [k for k, v in self.instances.items() if v["current"] and not v["killing"]],
        }
        pool = pools[kind]
        if not pool:
            return
        key = pool[pick % len(pool)]
        if kind == "start":
            self.instances[key]["state"] = "running"
        elif kind == "healthy":
            self.instances[key]["state"] = "healthy"
        else:
            del self.instances[key]


EVENTS = st.lists(st.tuples(st.sampled_from(["start", "healthy", "killed", "killed", "fail"]), st.integers(0, 50)),
                  max_size=80)


class ConvergeProperties(unittest.TestCase):
    def drive(self, sim: Sim, mode: str, n: int, mhc: float, moc: float, events: list[tuple[str, int]],
              selection: str = "YOUNGEST_FIRST") -> None:
        min_healthy, max_capacity = bounds(n, mhc, moc)
        start = len(sim.instances)

        def step() -> P.Decision:
            before = sim.available()
            decision = converge(mode, n, sim.views(), mhc, moc, selection)
            killed_available = sum(1 for v in sim.views() if v.id in decision.kill and v.available)
            if mode == P.RESTART:
                self.assertGreaterEqual(before - killed_available, min(min_healthy, before),
                                        "a kill took availability below minimumHealthCapacity")
            sim.apply(decision)
            if mode == P.RESTART:
                self.assertLessEqual(len(sim.instances), max(max_capacity, start),
                                     "more instances alive than maximumOverCapacity allows")
            return decision

        for kind, pick in events:
            step()
            sim.event(kind, pick)
        for _ in range(4 * (n + start) + 10):  # then let everything progress until done
            decision = step()
            if decision.done:
                break
            for kind in ("killed", "start", "healthy"):
                for _ in range(len(sim.instances)):
                    sim.event(kind, 0)
        self.assertTrue(converge(mode, n, sim.views(), mhc, moc, selection).done, sim.instances)
        self.assertEqual(len(sim.instances), n)
        self.assertTrue(all(v["current"] for v in sim.instances.values()) or mode != P.RESTART)

    @SETTINGS
    @given(st.integers(0, 12), st.integers(0, 12), st.sampled_from([0.0, 0.5, 0.9, 1.0]),
           st.sampled_from([0.0, 0.1, 0.5, 1.0]), EVENTS)
    def test_restart_respects_capacity_and_completes(self, old: int, n: int, mhc: float, moc: float,
                                                     events: list[tuple[str, int]]) -> None:
        """A rolling restart never kills below minimumHealthCapacity nor exceeds maximumOverCapacity,
        and ends with exactly the new instances, all available."""
        self.drive(Sim(old), P.RESTART, n, mhc, moc, events)

    @SETTINGS
    @given(st.integers(0, 10), st.integers(0, 10), EVENTS, st.sampled_from(["YOUNGEST_FIRST", "OLDEST_FIRST"]))
    def test_scale_reaches_the_target(self, old: int, n: int, events: list[tuple[str, int]], selection: str) -> None:
        """Scaling up or down ends with exactly the wanted instances, all available."""
        sim = Sim(0)
        for _ in range(old):
            sim.add(current=True, state="healthy")
        self.drive(sim, P.SCALE, n, 1.0, 1.0, events, selection)


class ConvergeExamples(unittest.TestCase):
    def test_kill_selection(self) -> None:
        """Scale-down kills the youngest (or oldest) first, but instances not running before either."""
        views = [InstanceView("old", running=True, available=True, since=1),
                 InstanceView("young", running=True, available=True, since=5),
                 InstanceView("staging", running=False, since=3)]
        self.assertEqual(converge(P.SCALE, 2, views).kill, ("staging",))
        self.assertEqual(converge(P.SCALE, 1, views).kill, ("staging", "young"))
        self.assertEqual(converge(P.SCALE, 1, views, kill_selection="OLDEST_FIRST").kill, ("staging", "old"))

    def test_restart_first_moves(self) -> None:
        """10 old at 0.9/0.1: kill one old at once, launch one new (Marathon's example)."""
        views = [InstanceView(f"o{i}", current=False, running=True, available=True) for i in range(10)]
        decision = converge(P.RESTART, 10, views, 0.9, 0.1)
        self.assertEqual(len(decision.kill), 1)
        self.assertEqual(decision.launch, 1)

    def test_stuck_restart_says_why(self) -> None:
        """A restart waiting on health says so."""
        views = [InstanceView("o", current=False, running=True, available=True),
                 InstanceView("n", running=True, unhealthy=True)]
        decision = converge(P.RESTART, 1, views, 1.0, 0.0)
        self.assertFalse(decision.done)
        self.assertIn("minimumHealthCapacity", decision.waiting or "")

    def test_stop_kills_everything(self) -> None:
        """Stopping kills every instance not already being killed and ends when none is left."""
        views = [InstanceView("a"), InstanceView("b", goal_running=False, killing=True)]
        self.assertEqual(converge(P.STOP, 0, views).kill, ("a",))
        self.assertTrue(converge(P.STOP, 0, []).done)
