"""App definitions: ids, timestamps, defaults, validation with Marathon's error shapes, updates."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import task
from twisted.trial import unittest

from frameworks.service import pathid
from frameworks.service.appdef import App, merge
from frameworks.service.errors import Problems
from frameworks.service.timestamps import VersionClock, format_ts, normalize_version, parse_ts
from frameworks.service.validation import normalize


def spec_of(data: dict[str, Any], base: str = "/") -> dict[str, Any]:
    problems = Problems()
    spec = normalize(data, problems, base)
    if problems:
        raise AssertionError(problems.details())
    return spec


def problems_of(data: Any) -> dict[str, list[str]]:
    problems = Problems()
    normalize(data, problems)
    return {d["path"]: d["errors"] for d in problems.details()}


class PathIdTests(unittest.TestCase):
    def test_canonical_forms(self) -> None:
        """Relative ids, double slashes, dots and trailing slashes all become one absolute id."""
        self.assertEqual(pathid.canonical("foo"), "/foo")
        self.assertEqual(pathid.canonical("//foo"), "/foo")
        self.assertEqual(pathid.canonical("/a//b/"), "/a/b")
        self.assertEqual(pathid.canonical("../c", "/a/b"), "/a/c")
        self.assertEqual(pathid.canonical("./c", "/a"), "/a/c")

    def test_invalid_ids(self) -> None:
        """Uppercase, underscores and climbing above the root are refused."""
        for bad in ("Foo", "a_b", "-a", "../x"):
            self.assertRaises(pathid.InvalidPath, pathid.canonical, bad)

    def test_names(self) -> None:
        """Task-id and hostname forms of an id; groups and ancestors."""
        self.assertEqual(pathid.safe("/prod/web"), "prod_web")
        self.assertEqual(pathid.unsafe("prod_web"), "/prod/web")
        self.assertEqual(pathid.hostname("/prod/web"), "web.prod")
        self.assertEqual(pathid.parent("/prod/web"), "/prod")
        self.assertEqual(pathid.ancestors("/a/b/c"), ["/", "/a", "/a/b"])
        self.assertTrue(pathid.is_under("/a/b", "/a"))
        self.assertFalse(pathid.is_under("/ab", "/a"))

    @settings(max_examples=100, deadline=None, database=None)
    @given(st.lists(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True), min_size=1, max_size=4))
    def test_canonical_is_idempotent(self, segments: list[str]) -> None:
        """A canonical id is its own canonical form and survives safe/unsafe."""
        path = pathid.canonical("/".join(segments))
        self.assertEqual(pathid.canonical(path), path)
        self.assertEqual(pathid.unsafe(pathid.safe(path)), path)


class TimestampTests(unittest.TestCase):
    def test_format_is_marathons(self) -> None:
        """UTC with milliseconds and a Z, as marathon-python parses."""
        self.assertEqual(format_ts(0), "1970-01-01T00:00:00.000Z")
        self.assertEqual(format_ts(1.5), "1970-01-01T00:00:01.500Z")
        self.assertEqual(parse_ts("1970-01-01T00:00:01.500Z"), 1.5)
        self.assertEqual(normalize_version("1970-01-01T01:00:00+01:00"), "1970-01-01T00:00:00.000Z")
        self.assertIsNone(normalize_version("yesterday"))

    def test_versions_strictly_increase(self) -> None:
        """Two versions in the same millisecond still differ and sort in order."""
        clock = task.Clock()
        versions = VersionClock(clock)
        first, second = versions.next(), versions.next()
        self.assertLess(first, second)
        versions.observe("2030-01-01T00:00:00.000Z")
        self.assertGreater(versions.next(), "2030-01-01T00:00:00.000Z")


class NormalizeTests(unittest.TestCase):
    def test_defaults(self) -> None:
        """A minimal app gets Marathon's defaults, including one random port."""
        spec = spec_of({"id": "web", "cmd": "serve"})
        self.assertEqual(spec["id"], "/web")
        self.assertEqual((spec["instances"], spec["cpus"], spec["mem"], spec["disk"]), (1, 1.0, 128.0, 0.0))
        self.assertEqual(spec["upgradeStrategy"], {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0})
        self.assertEqual((spec["backoffSeconds"], spec["backoffFactor"], spec["maxLaunchDelaySeconds"]),
                         (1, 1.15, 300))
        self.assertEqual(spec["portDefinitions"], [{"port": 0, "protocol": "tcp"}])
        self.assertEqual(spec["killSelection"], "YOUNGEST_FIRST")

    def test_relative_ids_and_dependencies(self) -> None:
        """The id resolves under the base group and dependencies under the app's group."""
        spec = spec_of({"id": "api", "cmd": "x", "dependencies": ["../db", "cache"]}, base="/prod")
        self.assertEqual(spec["id"], "/prod/api")
        self.assertEqual(spec["dependencies"], ["/db", "/prod/cache"])

    def test_every_problem_is_reported_at_once(self) -> None:
        """Several mistakes give one 422 with each path and message."""
        found = problems_of({"id": "Bad", "cpus": 0, "instances": -1, "mem": "lots",
                             "upgradeStrategy": {"minimumHealthCapacity": 1.5},
                             "constraints": [["hostname", "NEVER"]], "killSelection": "RANDOM"})
        self.assertIn("/id", found)
        self.assertEqual(found["/cpus"], ["got 0, expected 0.001 or more"])
        self.assertIn("/instances", found)
        self.assertEqual(found["/mem"], ["error.expected.jsnumber"])
        self.assertEqual(found["/upgradeStrategy/minimumHealthCapacity"], ["is greater than 1"])
        self.assertIn("/constraints(0)", found)
        self.assertIn("/killSelection", found)
        self.assertIn("/", found, "neither cmd nor args")

    def test_health_and_readiness_checks(self) -> None:
        """Checks get their defaults; a port index beyond the ports, a missing command and a second
        check run by the agent (Mesos runs one per task) are refused."""
        spec = spec_of({"id": "w", "cmd": "x", "portDefinitions": [{"port": 0, "name": "http-api"}],
                        "healthChecks": [{"path": "health"}, {"protocol": "COMMAND", "command": "true"}],
                        "readinessChecks": [{}]})
        http, command = spec["healthChecks"]
        self.assertEqual((http["protocol"], http["path"], http["portIndex"], http["gracePeriodSeconds"]),
                         ("HTTP", "/health", 0, 300))
        self.assertEqual(command["command"], {"value": "true"})
        self.assertEqual(spec["readinessChecks"][0]["httpStatusCodesForReady"], [200])
        found = problems_of({"id": "w", "cmd": "x", "healthChecks": [{"portIndex": 1}, {"protocol": "COMMAND"}],
                             "readinessChecks": [{"portName": "nope"}]})
        self.assertIn("/healthChecks(0)/portIndex", found)
        self.assertIn("/healthChecks(1)/command", found)
        self.assertIn("/readinessChecks(0)/portName", found)
        two = problems_of({"id": "w", "cmd": "x", "healthChecks": [{"protocol": "COMMAND", "command": "true"},
                                                                   {"protocol": "MESOS_TCP"}, {"protocol": "TCP"}]})
        self.assertEqual(two["/healthChecks"], ["AppDefinition can contain at most one Mesos health check "
                                                "(COMMAND or MESOS_*)"])

    def test_ports_forms(self) -> None:
        """Deprecated ports become portDefinitions; conflicting or duplicate ports are refused."""
        self.assertEqual(spec_of({"id": "w", "cmd": "x", "ports": [8080, 0]})["portDefinitions"],
                         [{"port": 8080, "protocol": "tcp"}, {"port": 0, "protocol": "tcp"}])
        self.assertIn("/", problems_of({"id": "w", "cmd": "x", "ports": [1], "portDefinitions": [{"port": 2}]}))
        self.assertIn("/portDefinitions", problems_of({"id": "w", "cmd": "x", "ports": [5, 5]}))

    def test_read_only_and_newer_fields(self) -> None:
        """Fields marathon-python sends back are ignored, newer ones dropped, unknown ones refused."""
        spec = spec_of({"id": "w", "cmd": "x", "tasks": [], "tasksRunning": 3, "deployments": [], "tty": True,
                        "version": "2020-01-01T00:00:00.000Z", "versionInfo": {}})
        self.assertNotIn("tty", spec)
        self.assertNotIn("tasks", spec)
        self.assertIn("/colour", problems_of({"id": "w", "cmd": "x", "colour": "blue"}))

    def test_unsupported_features_are_refused_clearly(self) -> None:
        """Container images, secrets and resident apps are refused with a reason."""
        found = problems_of({"id": "w", "container": {"type": "DOCKER", "docker": {"image": "nginx"}},
                             "secrets": {"s": {"source": "x"}}, "residency": {}})
        self.assertIn("not supported", found["/container"][0])
        self.assertIn("/secrets", found)
        self.assertIn("/residency", found)

    def test_uris_become_fetch(self) -> None:
        """``uris`` are kept as ``fetch`` entries; archives are extracted."""
        spec = spec_of({"id": "w", "cmd": "x", "uris": ["http://h/a.tgz", "http://h/run.sh"]})
        self.assertEqual([(f["uri"], f["extract"]) for f in spec["fetch"]],
                         [("http://h/a.tgz", True), ("http://h/run.sh", False)])


class AppTests(unittest.TestCase):
    def setUp(self) -> None:
        self.app = App.build(spec_of({"id": "w", "cmd": "x", "instances": 2}), "2020-01-01T00:00:00.000Z")

    def test_json_has_version_info(self) -> None:
        """The definition JSON carries version and versionInfo."""
        self.assertEqual(self.app.json["version"], "2020-01-01T00:00:00.000Z")
        self.assertEqual(self.app.json["versionInfo"]["lastConfigChangeAt"], "2020-01-01T00:00:00.000Z")
        self.assertEqual(App.from_json(self.app.json).spec, self.app.spec)

    def test_scale_keeps_the_config_version(self) -> None:
        """Changing only instances moves lastScalingAt, not lastConfigChangeAt."""
        scaled = self.app.with_spec(merge(self.app.spec, {"instances": 5}), "2020-01-02T00:00:00.000Z")
        self.assertEqual(scaled.last_config_change_at, self.app.last_config_change_at)
        self.assertEqual(scaled.last_scaling_at, "2020-01-02T00:00:00.000Z")
        changed = self.app.with_spec(merge(self.app.spec, {"cmd": "y"}), "2020-01-03T00:00:00.000Z")
        self.assertEqual(changed.last_config_change_at, "2020-01-03T00:00:00.000Z")
        self.assertEqual(self.app.restarted("2020-01-04T00:00:00.000Z").last_config_change_at,
                         "2020-01-04T00:00:00.000Z")

    def test_merge_replaces_alternatives(self) -> None:
        """A partial update with args drops cmd, with ports drops portDefinitions."""
        merged = merge(self.app.spec, {"args": ["a"], "ports": [1], "tasksRunning": 4})
        self.assertNotIn("cmd", merged)
        self.assertNotIn("portDefinitions", merged)
        self.assertNotIn("tasksRunning", merged)
