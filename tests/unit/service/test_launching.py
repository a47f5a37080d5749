"""Launch-side cores: backoff and the queue's offer summary, offer matching, TaskInfos, health states."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from frameworks.service.appdef import App, HealthCheck
from frameworks.service.errors import Problems
from frameworks.service.health import HealthState, ReadinessState, Result, healthy
from frameworks.service.matching import Candidate, match_offer
from frameworks.service.queue import Backoff, LaunchQueue, OfferResult
from frameworks.service.taskinfo import environment, task_info
from frameworks.service.validation import normalize
from mesostw.model.resources import Resources
from mesostw.model.task import Offer


def app(**fields: Any) -> App:
    data = {"id": "web", "cmd": "serve", "cpus": 0.5, "mem": 64, **fields}
    problems = Problems()
    spec = normalize(data, problems)
    assert not problems, problems.details()
    if spec["portDefinitions"] and spec["portDefinitions"][0]["port"] == 0:
        spec["portDefinitions"] = [dict(p, port=10000 + i) for i, p in enumerate(spec["portDefinitions"])]
    return App.build(spec, "2020-01-01T00:00:00.000Z")


def offer(resources: str = "cpus:2;mem:256;disk:100;ports:[31000-31009]", hostname: str = "h1",
          attributes: dict[str, Any] | None = None) -> Offer:
    return Offer(id="O1", framework_id="F", agent_id="A1", hostname=hostname, resources=Resources.parse(resources),
                 attributes=attributes or {})


class BackoffTests(unittest.TestCase):
    def test_delays_grow_and_cap(self) -> None:
        """backoffSeconds, then times backoffFactor each failure, capped at maxLaunchDelaySeconds."""
        backoff = Backoff()
        delays = []
        for now in range(5):
            backoff.failed(float(now), 1, 2.0, 5)
            delays.append(backoff.delay)
        self.assertEqual(delays, [1.0, 2.0, 4.0, 5.0, 5.0])

    def test_quiet_period_resets(self) -> None:
        """After the delay plus maxLaunchDelaySeconds without failures, the delay starts over."""
        backoff = Backoff()
        backoff.failed(0, 1, 2.0, 10)
        backoff.failed(1, 1, 2.0, 10)
        backoff.failed(100, 1, 2.0, 10)
        self.assertEqual(backoff.delay, 1.0)

    @settings(max_examples=100, deadline=None, database=None)
    @given(st.lists(st.floats(0, 1000), max_size=30), st.integers(0, 10), st.floats(1, 3), st.integers(0, 60))
    def test_delay_never_exceeds_the_cap(self, gaps: list[float], seconds: int, factor: float, cap: int) -> None:
        """Whatever the failure pattern, the delay stays within [0, maxLaunchDelaySeconds]."""
        backoff, now = Backoff(), 0.0
        for gap in gaps:
            now += gap
            backoff.failed(now, seconds, factor, cap)
            self.assertLessEqual(backoff.delay, cap)
            self.assertGreaterEqual(backoff.delay, 0)

    def test_queue_gates_launches_on_the_delay(self) -> None:
        """A delayed app has nothing launchable until its delay is over; reset clears it."""
        queue = LaunchQueue()
        queue.set_pending("/a", 2, now=0)
        self.assertEqual(queue.launchable("/a", 0), 2)
        queue.failed("/a", 0, 10, 1.15, 300)
        self.assertEqual(queue.launchable("/a", 5), 0)
        self.assertEqual(queue.next_wakeup(5), 10)
        self.assertEqual(queue.launchable("/a", 10), 2)
        queue.failed("/a", 10, 10, 1.15, 300)
        queue.reset_delay("/a")
        self.assertEqual(queue.launchable("/a", 10), 2)

    def test_offer_summary_and_why(self) -> None:
        """Refused offers are counted per reason, and explained in one line."""
        queue = LaunchQueue()
        queue.set_pending("/a", 1, now=0)
        entry = queue.entry("/a")
        for index in range(3):
            entry.record(OfferResult(f"O{index}", "A", "h", 1.0, False, ("UnfulfilledConstraint",),
                                     "constraint hostname:UNIQUE not met on h"))
        summary = entry.summary()
        self.assertEqual(summary["processedOffersCount"], 3)
        by_reason = {r["reason"]: r for r in summary["rejectSummaryLastOffers"]}
        self.assertEqual(by_reason["UnfulfilledConstraint"]["declined"], 3)
        self.assertEqual(by_reason["UnfulfilledRole"]["processed"], 3)
        self.assertEqual(by_reason["InsufficientCpus"]["processed"], 0)
        self.assertIn("UnfulfilledConstraint x3", entry.why() or "")
        self.assertIn("hostname:UNIQUE", entry.why() or "")


class MatchingTests(unittest.TestCase):
    def test_places_as_many_as_fit(self) -> None:
        """Instances are placed while resources last, each with its own host port."""
        match = match_offer(offer(), [Candidate(app(), 10)], "*", 100, now=0)
        self.assertEqual(len(match.launches), 4, "mem 256 / 64")
        self.assertEqual([launch.host_ports for launch in match.launches], [(31000,), (31001,), (31002,), (31003,)])
        self.assertTrue(match.results[0][1].used)

    def test_the_per_offer_limit(self) -> None:
        """No more than ``limit`` instances go on one offer."""
        self.assertEqual(len(match_offer(offer(), [Candidate(app(), 10)], "*", 2, now=0).launches), 2)

    def test_reasons(self) -> None:
        """Too little memory, missing ports, a constraint, a role: each is reported."""
        cases = [
            (app(mem=1024), offer(), "InsufficientMemory"),
            (app(portDefinitions=[{"port": 0}] * 3), offer("cpus:1;mem:256;ports:[31000-31001]"),
             "InsufficientPorts"),
            (app(requirePorts=True, portDefinitions=[{"port": 8080}]), offer(), "InsufficientPorts"),
            (app(constraints=[["rack", "LIKE", "r1"]]), offer(attributes={"rack": "r2"}), "UnfulfilledConstraint"),
            (app(acceptedResourceRoles=["prod"]), offer(), "UnfulfilledRole"),
        ]
        for candidate, given_offer, reason in cases:
            match = match_offer(given_offer, [Candidate(candidate, 1)], "*", 10, now=0)
            self.assertEqual(match.launches, ())
            self.assertEqual(match.results[0][1].reasons, (reason,))

    def test_required_ports_and_roles(self) -> None:
        """requirePorts takes the declared port; reserved resources of the role come first."""
        required = app(requirePorts=True, portDefinitions=[{"port": 31005}])
        match = match_offer(offer(), [Candidate(required, 1)], "*", 10, now=0)
        self.assertEqual(match.launches[0].host_ports, (31005,))
        reserved = offer("cpus(prod):1;cpus:1;mem:256;ports:[31000-31009]")
        launch = match_offer(reserved, [Candidate(app(), 1)], "prod", 10, now=0).launches[0]
        self.assertEqual(launch.resources.get("cpus", "prod"), 500)

    def test_unique_within_one_offer(self) -> None:
        """Instances placed on this offer count for UNIQUE right away."""
        unique = app(constraints=[["hostname", "UNIQUE"]])
        self.assertEqual(len(match_offer(offer(), [Candidate(unique, 3)], "*", 10, now=0).launches), 1)


class TaskInfoTests(unittest.TestCase):
    def test_environment(self) -> None:
        """PORTn, PORT, PORTS, HOST, named ports and labels; the app's env cannot override ports."""
        web = app(env={"FOO": "bar", "PORT0": "1"}, labels={"team": "core"},
                  portDefinitions=[{"port": 0, "name": "http"}, {"port": 0}])
        env = environment(web, "web.1", "h1", [31000, 31001])
        self.assertEqual((env["PORT0"], env["PORT1"], env["PORT"], env["PORTS"]), ("31000", "31001", "31000",
                                                                               "31000,31001"))
        self.assertEqual((env["HOST"], env["FOO"], env["PORT_HTTP"], env["PORT_10000"]), ("h1", "bar", "31000",
                                                                                          "31000"))
        self.assertEqual(env["MARATHON_APP_ID"], "/web")
        self.assertEqual(env["MARATHON_APP_LABEL_TEAM"], "core")

    def test_task_info(self) -> None:
        """cmd runs in a shell, args without one; labels, fetch, user and the kill grace period carry over."""
        info = task_info(app(user="nobody", labels={"a": "b"}, uris=["http://h/x.tgz"],
                             taskKillGracePeriodSeconds=3), "web.1", "A1", "h1", Resources.parse("cpus:1"), [31000])
        self.assertEqual(info["command"]["value"], "serve")
        self.assertTrue(info["command"]["shell"])
        self.assertEqual(info["command"]["user"], "nobody")
        self.assertEqual(info["command"]["uris"][0]["value"], "http://h/x.tgz")
        self.assertEqual(info["labels"], {"labels": [{"key": "a", "value": "b"}]})
        self.assertEqual(info["kill_policy"]["grace_period"]["nanoseconds"], 3_000_000_000)
        argv = task_info(app(cmd=None, args=["/bin/echo", "hi"]), "w.2", "A1", "h", Resources(), [])
        self.assertEqual((argv["command"]["shell"], argv["command"]["arguments"]), (False, ["/bin/echo", "hi"]))


class HealthTests(unittest.TestCase):
    check = HealthCheck(index=0, protocol="HTTP", grace_period=10, interval=1, timeout=1, max_consecutive_failures=3)

    def test_grace_period_ignores_early_failures(self) -> None:
        """Failures before the first success count only once the grace period is over."""
        state = HealthState()
        self.assertFalse(state.record(Result(False, "refused"), 5, self.check, started_at=0))
        self.assertIsNone(state.alive)
        self.assertTrue(state.record(Result(False, "refused"), 11, self.check, started_at=0))
        self.assertEqual(state.consecutive_failures, 1)

    def test_kill_after_consecutive_failures(self) -> None:
        """After a success, maxConsecutiveFailures failures in a row mean kill; a success resets."""
        state = HealthState()
        state.record(Result(True), 1, self.check, started_at=0)
        for now in (2, 3):
            state.record(Result(False, "500"), now, self.check, started_at=0)
        self.assertFalse(state.should_kill(self.check))
        state.record(Result(True), 4, self.check, started_at=0)
        for now in (5, 6, 7):
            state.record(Result(False, "500"), now, self.check, started_at=0)
        self.assertTrue(state.should_kill(self.check))
        self.assertEqual(state.to_json("t")["lastFailureCause"], "500")

    def test_overall_health(self) -> None:
        """Healthy when every check is alive, unhealthy if one fails, unknown otherwise."""
        alive, dead = HealthState(alive=True), HealthState(alive=False)
        self.assertTrue(healthy([alive, alive], 2))
        self.assertFalse(healthy([alive, dead], 2))
        self.assertIsNone(healthy([alive], 2))
        self.assertIsNone(healthy([], 0))

    def test_readiness(self) -> None:
        """Ready on a listed status code, and then stays ready."""
        state = ReadinessState("r")
        self.assertFalse(state.record(Result(False, status=503), (200,), False))
        self.assertTrue(state.record(Result(True, status=200, body="ok"), (200,), True))
        self.assertEqual(state.last_response["body"], "ok")
