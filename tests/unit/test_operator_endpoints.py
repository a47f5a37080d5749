"""The operator endpoints of master and agent, over real HTTP parsing, against Mesos's JSON shapes."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import attrs
from prometheus_client import REGISTRY
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer
from twisted.trial import unittest

from mesostw.agent.http import AgentEndpoints
from mesostw.http.prometheus import CONTENT_TYPE, is_counter, metric_name
from mesostw.http.router import Router
from mesostw.master.http import MasterEndpoints
from mesostw.model.resources import Resources
from mesostw.model.task import TASK_STATES, Task
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task
from tests.helpers.web import Client, Reply

# -- shape checks: a spec is a type, a list [spec], a Schema, or a check function -----------------------


class Number:
    """int or float, never bool."""


class Schema:
    def __init__(self, required: dict[str, Any], optional: dict[str, Any] | None = None) -> None:
        self.required, self.optional = required, optional or {}

    def extend(self, required: dict[str, Any] | None = None, optional: dict[str, Any] | None = None) -> Schema:
        return Schema({**self.required, **(required or {})}, {**self.optional, **(optional or {})})


def dict_of(spec: Any) -> Callable[[Any, str], list[str]]:
    def check(value: Any, where: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {value!r}"]
        return [e for key, item in value.items() for e in problems(item, spec, f"{where}.{key}")]

    return check


def one_of(*choices: Any) -> Callable[[Any, str], list[str]]:
    return lambda value, where: [] if value in choices else [f"{where}: {value!r} is not one of {choices}"]


RANGES = re.compile(r"^\[\d+-\d+(, \d+-\d+)*\]$")


def resources(value: Any, where: str) -> list[str]:
    """The flat v0 resources object: cpus/mem/disk/gpus as floats, ranges as "[a-b, ...]"."""
    if not isinstance(value, dict):
        return [f"{where}: expected a flat resources object, got {value!r}"]
    errors = [f"{where}.{name} is missing or not a float" for name in ("cpus", "mem", "disk", "gpus")
              if not isinstance(value.get(name), float)]
    for name, item in value.items():
        if isinstance(item, str):
            if not (RANGES.match(item) or (item.startswith("{") and item.endswith("}"))):
                errors.append(f"{where}.{name}: {item!r} is neither a ranges nor a set string")
        elif not isinstance(item, float):
            errors.append(f"{where}.{name}: {item!r} is not a float")
    return errors


def absolute_path(value: Any, where: str) -> list[str]:
    return [] if isinstance(value, str) and value.startswith("/") else [f"{where}: {value!r} is not absolute"]


def problems(value: Any, spec: Any, where: str = "$") -> list[str]:
    if isinstance(spec, Schema):
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        errors = [f"{where}.{key} is missing" for key in spec.required if key not in value]
        for key, sub in [*spec.required.items(), *spec.optional.items()]:
            if key in value:
                errors.extend(problems(value[key], sub, f"{where}.{key}"))
        return errors
    if isinstance(spec, list):
        if not isinstance(value, list):
            return [f"{where}: expected an array, got {type(value).__name__}"]
        return [e for i, item in enumerate(value) for e in problems(item, spec[0], f"{where}[{i}]")]
    if spec is Number:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if ok else [f"{where}: {value!r} is not a number"]
    if isinstance(spec, type):
        ok = isinstance(value, spec) and not (spec is int and isinstance(value, bool))
        return [] if ok else [f"{where}: {value!r} is not a {spec.__name__}"]
    return spec(value, where)


STATE = one_of(*TASK_STATES)
COUNTS = {state: int for state in TASK_STATES if state != "TASK_UNKNOWN"}
TASK = Schema({"id": str, "name": str, "framework_id": str, "executor_id": str, "slave_id": str, "state": STATE,
               "resources": resources, "role": str,
               "statuses": [Schema({"state": STATE, "timestamp": Number}, {"healthy": bool})]},
              {"user": str, "labels": dict})
OFFER = Schema({"id": str, "framework_id": str, "slave_id": str, "resources": resources,
                "allocation_info": Schema({"role": str})})
AGENT = Schema({"id": str, "pid": str, "hostname": str, "port": int, "registered_time": Number,
                "resources": resources, "used_resources": resources, "offered_resources": resources,
                "reserved_resources": dict_of(resources), "unreserved_resources": resources, "attributes": dict,
                "active": bool, "version": str, "capabilities": [str]},
               {"reregistered_time": Number})
FRAMEWORK = Schema({"id": str, "name": str, "user": str, "failover_timeout": Number, "checkpoint": bool,
                    "role": str, "registered_time": Number, "unregistered_time": Number, "active": bool,
                    "connected": bool, "recovered": bool, "resources": resources, "used_resources": resources,
                    "offered_resources": resources, "hostname": str, "webui_url": str, "capabilities": [str],
                    "tasks": [TASK], "completed_tasks": [TASK], "unreachable_tasks": [TASK], "offers": [OFFER],
                    "executors": [Schema({"executor_id": Schema({"value": str}), "slave_id": str})]},
                   {"reregistered_time": Number, "roles": [str], "principal": str, "pid": str})
SUMMARY_AGENT = AGENT.extend({**COUNTS, "framework_ids": [str]})
SUMMARY_FRAMEWORK = Schema({"id": str, "name": str, "used_resources": resources, "offered_resources": resources,
                            "capabilities": [str], "hostname": str, "webui_url": str, "active": bool, **COUNTS,
                            "slave_ids": [str]},
                           {"pid": str})
ROLE = Schema({"name": str, "weight": float, "resources": resources, "frameworks": [str]})
QUEUED_TASK = Schema({"id": str, "name": str, "slave_id": str, "resources": resources},
                     {"command": dict, "executor_id": str})
EXECUTOR = Schema({"id": str, "name": str, "source": str, "container": str, "directory": absolute_path,
                   "resources": resources, "tasks": [TASK], "queued_tasks": [QUEUED_TASK],
                   "completed_tasks": [TASK]},
                  {"type": str, "role": str, "labels": dict})
AGENT_FRAMEWORK = Schema({"id": str, "name": str, "user": str, "failover_timeout": Number, "checkpoint": bool,
                          "role": str, "hostname": str, "executors": [EXECUTOR], "completed_executors": [EXECUTOR]},
                         {"principal": str, "roles": [str], "capabilities": [str]})
AGENT_STATE = Schema({"version": str, "build_date": str, "build_time": Number, "build_user": str,
                      "start_time": Number, "id": str, "pid": str, "hostname": str, "resources": resources,
                      "attributes": dict, "flags": dict_of(str), "frameworks": [AGENT_FRAMEWORK],
                      "completed_frameworks": [AGENT_FRAMEWORK]},
                     {"master_hostname": str, "reserved_resources": dict_of(resources),
                      "unreserved_resources": resources})
STATISTICS = [Schema({"framework_id": str, "executor_id": str, "executor_name": str, "source": str,
                      "statistics": Schema({"timestamp": Number})})]


# -- the cluster every test looks at ---------------------------------------------------------------------


class OperatorTestCase(ClockTestCase):
    """A two-agent cluster at t=3: alpha ("*") finished a1 and runs a2 (t=0) and failed a3 (t=1); gamma ("dev")
    ran g1 and was torn down (t=2); beta ("ops") runs b1 and holds an offer (t=3)."""

    def setUp(self) -> None:
        self.cluster = cluster = Cluster(weights={"ops": 2.0, "dev": 0.5}, cluster="lab", **self.master_flags())
        self.useClock(cluster.clock)
        self.addCleanup(cluster.stop)
        self.master = cluster.master
        alpha = RecordingScheduler()
        alpha.pending = [command_task("a1", "true"), command_task("a2", "sleep 100")]
        self.alpha, alpha_driver = cluster.framework("alpha", scheduler=alpha)
        cluster.advance(1)
        alpha.pending = [command_task("a3", "false")]
        alpha_driver.reviveOffers()
        cluster.settle()
        cluster.advance(1)
        gamma = RecordingScheduler()
        gamma.pending = [command_task("g1", "sleep 100")]
        self.gamma, _ = cluster.framework("gamma", scheduler=gamma, role="dev")
        self.master.removeFramework(gamma.framework_id)
        cluster.settle()
        cluster.advance(1)
        beta = RecordingScheduler()
        beta.decline_unused = False
        beta.pending = [command_task("b1", "sleep 100")]
        self.beta, _ = cluster.framework("beta", scheduler=beta, role="ops")
        self.endpoints = MasterEndpoints(self.master, cluster.config.rendered())
        router = Router()
        self.endpoints.install(router)
        self.client = Client(router)

    def master_flags(self) -> dict[str, Any]:
        return {}

    def assertConforms(self, value: Any, spec: Any) -> None:
        self.assertEqual(problems(value, spec), [])

    def assertBadRequest(self, reply: Reply) -> None:
        self.assertEqual(reply.code, 400, reply.body)
        self.assertEqual(reply.headers["content-type"], "application/json")
        self.assertIsInstance(reply.json()["message"], str)


class StateSummaryTests(OperatorTestCase):
    def test_shape(self) -> None:
        """/master/state-summary has hostname, cluster and the summary shapes of agents and frameworks."""
        summary = self.client.get_json("/master/state-summary")
        self.assertConforms(summary, Schema({"hostname": str, "cluster": str, "slaves": [SUMMARY_AGENT],
                                             "frameworks": [SUMMARY_FRAMEWORK]}))
        self.assertEqual((summary["hostname"], summary["cluster"]), ("127.0.0.1", "lab"))
        self.assertEqual(len(summary["slaves"]), 2)

    def test_task_counts_and_mapping(self) -> None:
        """Counts cover live and completed tasks of registered frameworks; agents and frameworks map to each other."""
        summary = self.client.get_json("/master/state-summary")
        frameworks = {f["name"]: f for f in summary["frameworks"]}
        self.assertEqual(sorted(frameworks), ["alpha", "beta"])
        alpha = frameworks["alpha"]
        self.assertEqual((alpha["TASK_RUNNING"], alpha["TASK_FINISHED"], alpha["TASK_FAILED"]), (1, 1, 1))
        self.assertEqual(frameworks["beta"]["TASK_RUNNING"], 1)
        agents = {a["id"]: a for a in summary["slaves"]}
        self.assertEqual(sum(a["TASK_RUNNING"] for a in agents.values()), 2)
        for framework in summary["frameworks"]:
            for agent_id in framework["slave_ids"]:
                self.assertIn(framework["id"], agents[agent_id]["framework_ids"])
        self.assertNotIn(self.gamma.framework_id, [i for a in agents.values() for i in a["framework_ids"]])

    def test_resources_agree_with_state(self) -> None:
        """Used and offered resources in the summary are those of /master/state."""
        summary = self.client.get_json("/master/state-summary")
        state = self.client.get_json("/master/state")
        for kind in ("slaves", "frameworks"):
            full = {o["id"]: o for o in state[kind]}
            for entry in summary[kind]:
                for key in ("used_resources", "offered_resources"):
                    self.assertEqual(entry[key], full[entry["id"]][key])
        self.assertGreater(sum(a["offered_resources"]["cpus"] for a in summary["slaves"]), 0)

    def test_unprefixed_alias(self) -> None:
        """/state-summary reaches the master, as libprocess's delegate."""
        self.assertEqual(self.client.get_json("/state-summary"), self.client.get_json("/master/state-summary"))


class FrameworksAndSlavesTests(OperatorTestCase):
    def test_frameworks_shape(self) -> None:
        """/master/frameworks lists active, completed and unregistered frameworks in the /state model."""
        reply = self.client.get_json("/master/frameworks")
        self.assertConforms(reply, Schema({"frameworks": [FRAMEWORK], "completed_frameworks": [FRAMEWORK],
                                           "unregistered_frameworks": list}))
        self.assertEqual(sorted(f["name"] for f in reply["frameworks"]), ["alpha", "beta"])
        self.assertEqual([f["id"] for f in reply["completed_frameworks"]], [self.gamma.framework_id])
        self.assertEqual([t["state"] for t in reply["completed_frameworks"][0]["completed_tasks"]], ["TASK_KILLED"])
        beta = next(f for f in reply["frameworks"] if f["name"] == "beta")
        self.assertEqual(len(beta["offers"]), 1)
        self.assertEqual(beta["role"], "ops")
        self.assertEqual({t["role"] for t in beta["tasks"]}, {"ops"})

    def test_framework_filter(self) -> None:
        """?framework_id= keeps just that framework, wherever it is listed."""
        alpha = self.client.get_json(f"/master/frameworks?framework_id={self.alpha.framework_id}")
        self.assertEqual([f["name"] for f in alpha["frameworks"]], ["alpha"])
        self.assertEqual(alpha["completed_frameworks"], [])
        gamma = self.client.get_json(f"/master/frameworks?framework_id={self.gamma.framework_id}")
        self.assertEqual((gamma["frameworks"], len(gamma["completed_frameworks"])), ([], 1))

    def test_unknown_framework_filter(self) -> None:
        """An unknown framework ID gives empty lists, not an error."""
        reply = self.client.get_json("/master/frameworks?framework_id=nope")
        self.assertEqual(reply, {"frameworks": [], "completed_frameworks": [], "unregistered_frameworks": []})

    def test_slaves_shape_and_filter(self) -> None:
        """/master/slaves lists agents in the /state model; ?slave_id= filters, unknown IDs give empty lists."""
        reply = self.client.get_json("/master/slaves")
        self.assertConforms(reply, Schema({"slaves": [AGENT], "recovered_slaves": list}))
        self.assertEqual(sorted(a["id"] for a in reply["slaves"]), sorted(self.master.agents))
        self.assertEqual(reply["slaves"][0]["resources"]["ports"], "[31000-32000]")
        agent_id = reply["slaves"][1]["id"]
        self.assertEqual(self.client.get_json(f"/master/slaves?slave_id={agent_id}")["slaves"], [reply["slaves"][1]])
        self.assertEqual(self.client.get_json("/master/slaves?slave_id=nope"), {"slaves": [], "recovered_slaves": []})

    def test_state_matches_models(self) -> None:
        """/master/state and its aliases use the same agent, framework, task and offer shapes."""
        state = self.client.get_json("/master/state")
        self.assertConforms(state, Schema({"slaves": [AGENT], "frameworks": [FRAMEWORK],
                                           "completed_frameworks": [FRAMEWORK], "flags": dict_of(str)}))
        for alias in ("/master/state.json", "/state", "/state.json"):
            self.assertEqual(self.client.get_json(alias).keys(), state.keys())

    def test_capabilities_are_the_implemented_ones(self) -> None:
        """/master/state advertises AGENT_UPDATE, AGENT_DRAINING and QUOTA_V2, and agents do re-register with
        changed resources, which the master then offers."""
        self.assertEqual(self.client.get_json("/master/state")["capabilities"], ["AGENT_UPDATE", "AGENT_DRAINING",
                                                                                  "QUOTA_V2"])
        agent = self.cluster.agents[1]
        agent.info = attrs.evolve(agent.info, resources=Resources.parse("cpus:8;mem:2048;disk:1024"))
        self.cluster.cut(agent)
        self.cluster.settle()
        self.cluster.connect(agent)
        self.cluster.settle()
        [model] = self.client.get_json(f"/master/slaves?slave_id={agent.id}")["slaves"]
        self.assertEqual((model["resources"]["cpus"], model["resources"]["mem"]), (8, 2048))
        self.assertEqual(self.cluster.allocator.agent_total(agent.id), Resources.parse("cpus:8;mem:2048;disk:1024"))


class TasksTests(OperatorTestCase):
    def ids(self, target: str) -> list[str]:
        return [t["id"] for t in self.client.get_json(target)["tasks"]]

    def test_shape_and_default_order(self) -> None:
        """/master/tasks lists live and completed tasks of all frameworks, latest status first, ties by ID."""
        reply = self.client.get_json("/master/tasks")
        self.assertConforms(reply, Schema({"tasks": [TASK]}))
        self.assertEqual([t["id"] for t in reply["tasks"]], ["b1", "g1", "a3", "a2", "a1"])

    def test_ascending(self) -> None:
        """order=asc reverses the order."""
        self.assertEqual(self.ids("/master/tasks?order=asc"), ["a1", "a2", "a3", "g1", "b1"])
        self.assertEqual(self.ids("/master/tasks?order=desc"), ["b1", "g1", "a3", "a2", "a1"])

    def test_limit_and_offset(self) -> None:
        """limit and offset page through the ordered list."""
        self.assertEqual(self.ids("/master/tasks?limit=2"), ["b1", "g1"])
        self.assertEqual(self.ids("/master/tasks?limit=2&offset=2"), ["a3", "a2"])
        self.assertEqual(self.ids("/master/tasks?offset=4"), ["a1"])
        self.assertEqual(self.ids("/master/tasks?offset=9"), [])
        self.assertEqual(self.ids("/master/tasks?limit=0"), [])

    def test_default_limit(self) -> None:
        """Without limit at most 100 tasks are listed."""
        framework = self.master.frameworks[self.alpha.framework_id]
        template = next(iter(framework.completed_tasks))
        for _ in range(120):
            framework.completed_tasks.append(Task(info=template.info, framework_id=framework.id,
                                                  state=template.state, statuses=list(template.statuses)))
        self.assertEqual(len(self.ids("/master/tasks")), 100)
        self.assertEqual(len(self.ids("/master/tasks?limit=1000")), 125)

    def test_filters(self) -> None:
        """framework_id and task_id filters narrow the list; unknown ones give an empty list."""
        self.assertEqual(self.ids(f"/master/tasks?framework_id={self.alpha.framework_id}"), ["a3", "a2", "a1"])
        self.assertEqual(self.ids("/master/tasks?task_id=g1"), ["g1"])
        self.assertEqual(self.ids(f"/master/tasks?framework_id={self.beta.framework_id}&task_id=a1"), [])
        self.assertEqual(self.ids("/master/tasks?framework_id=nope"), [])

    def test_bad_parameters(self) -> None:
        """A non-integer or negative limit or offset, or an unknown order, is a 400 with a JSON message."""
        for query in ("limit=ten", "limit=-1", "offset=x", "offset=-3", "order=sideways"):
            self.assertBadRequest(self.client.get(f"/master/tasks?{query}"))

    def test_aliases(self) -> None:
        """/master/tasks.json (0.21) and /tasks answer the same."""
        expected = self.client.get_json("/master/tasks?order=asc")
        for alias in ("/master/tasks.json?order=asc", "/tasks?order=asc", "/tasks.json?order=asc"):
            self.assertEqual(self.client.get_json(alias), expected)


class RolesTests(OperatorTestCase):
    def test_shape_and_members(self) -> None:
        """/master/roles lists '*', roles with frameworks and weighted roles with their frameworks and weights."""
        reply = self.client.get_json("/master/roles")
        self.assertConforms(reply, Schema({"roles": [ROLE]}))
        roles = {r["name"]: r for r in reply["roles"]}
        self.assertEqual(sorted(roles), ["*", "dev", "ops"])
        self.assertEqual(roles["*"]["frameworks"], [self.alpha.framework_id])
        self.assertEqual(roles["ops"]["frameworks"], [self.beta.framework_id])
        self.assertEqual(roles["dev"]["frameworks"], [])
        self.assertEqual({n: r["weight"] for n, r in roles.items()}, {"*": 1.0, "dev": 0.5, "ops": 2.0})

    def test_resources_are_the_frameworks(self) -> None:
        """A role's resources are what its frameworks use and are offered."""
        roles = {r["name"]: r for r in self.client.get_json("/master/roles")["roles"]}
        frameworks = {f["id"]: f for f in self.client.get_json("/master/frameworks")["frameworks"]}
        self.assertEqual(roles["ops"]["resources"], frameworks[self.beta.framework_id]["resources"])
        self.assertEqual(roles["*"]["resources"], frameworks[self.alpha.framework_id]["resources"])
        self.assertEqual(roles["dev"]["resources"], {"cpus": 0.0, "gpus": 0.0, "mem": 0.0, "disk": 0.0})

    def test_aliases(self) -> None:
        """/master/roles.json (0.21) and /roles answer the same."""
        expected = self.client.get_json("/master/roles")
        for alias in ("/master/roles.json", "/roles", "/roles.json"):
            self.assertEqual(self.client.get_json(alias), expected)


class WeightsTests(OperatorTestCase):
    def put(self, body: Any) -> Reply:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.request("PUT", "/master/weights", raw)

    def test_get(self) -> None:
        """GET /master/weights lists the configured weights."""
        self.assertEqual(self.client.get_json("/master/weights"),
                         [{"role": "dev", "weight": 0.5}, {"role": "ops", "weight": 2.0}])

    def test_put_updates_everything(self) -> None:
        """PUT changes the allocator, the config, GET /master/weights and /master/roles."""
        reply = self.put([{"role": "ops", "weight": 3}, {"role": "qa", "weight": 1.5}])
        self.assertEqual(reply.code, 200, reply.body)
        expected = {"dev": 0.5, "ops": 3.0, "qa": 1.5}
        self.assertEqual(self.master.config.weights, expected)
        self.assertEqual(self.cluster.allocator.weights(), expected)
        self.assertEqual(self.client.get_json("/master/weights"),
                         [{"role": r, "weight": w} for r, w in sorted(expected.items())])
        roles = {r["name"]: r["weight"] for r in self.client.get_json("/master/roles")["roles"]}
        self.assertEqual(roles, {"*": 1.0, **expected})

    def test_put_persists_first(self) -> None:
        """The registry holds the complete new weights before they take effect."""
        seen: list[tuple[dict, dict]] = []
        registry = self.master.registry

        def apply(mutation: Any) -> defer.Deferred:
            seen.append((dict(mutation.weights), dict(self.master.config.weights)))
            return registry.apply(mutation)

        self.master.registry = SimpleNamespace(apply=apply)  # type: ignore[assignment]
        self.assertEqual(self.put([{"role": "dev", "weight": 4}]).code, 200)
        self.assertEqual(seen, [({"dev": 4.0, "ops": 2.0}, {"dev": 0.5, "ops": 2.0})])
        self.assertEqual(self.master.config.weights, {"dev": 4.0, "ops": 2.0})

    def test_refused_by_registry(self) -> None:
        """If the registry refuses the weights they stay as they were and the answer is 503."""
        self.master.registry = SimpleNamespace(apply=lambda m: defer.fail(RuntimeError("disk full")))  # type: ignore[assignment]
        reply = self.put([{"role": "dev", "weight": 4}])
        self.assertEqual(reply.code, 503)
        self.assertIn("disk full", reply.json()["message"])
        self.assertEqual(self.master.config.weights, {"dev": 0.5, "ops": 2.0})
        self.assertEqual(self.cluster.allocator.weights(), {"dev": 0.5, "ops": 2.0})
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_bad_bodies(self) -> None:
        """Malformed JSON, bad roles and non-positive or non-numeric weights are a 400 and change nothing."""
        bodies: list[Any] = [
            b"{not json", b"", {"role": "ops", "weight": 1}, [["ops", 1]], [{"weight": 1}],
            [{"role": "a//b", "weight": 1}], [{"role": "", "weight": 1}], [{"role": "ops", "weight": 0}],
            [{"role": "ops", "weight": -2}], [{"role": "ops", "weight": "2"}], [{"role": "ops", "weight": True}],
            [{"role": "ops"}], [{"role": "ops", "weight": 1}, {"role": "ops", "weight": 2}],
            [{"role": "ops", "weight": 3}, {"role": "dev", "weight": 0}],
        ]
        for body in bodies:
            self.assertBadRequest(self.put(body))
        self.assertEqual(self.master.config.weights, {"dev": 0.5, "ops": 2.0})
        self.assertEqual(self.cluster.allocator.weights(), {"dev": 0.5, "ops": 2.0})


class WhitelistedWeightsTests(OperatorTestCase):
    def master_flags(self) -> dict[str, Any]:
        return {"roles": ("dev", "ops")}

    def test_role_outside_whitelist(self) -> None:
        """With --roles, weights may only be set for listed roles."""
        self.assertBadRequest(self.client.request("PUT", "/master/weights", b'[{"role": "qa", "weight": 2}]'))
        reply = self.client.request("PUT", "/master/weights", b'[{"role": "ops", "weight": 2.5}]')
        self.assertEqual(reply.code, 200)

    def test_whitelisted_roles_listed(self) -> None:
        """Every whitelisted role appears in /master/roles."""
        names = [r["name"] for r in self.client.get_json("/master/roles")["roles"]]
        self.assertEqual(names, ["*", "dev", "ops"])


def parse_metrics(testcase: unittest.TestCase, reply: Reply) -> dict[str, tuple[str, float]]:
    """Family name -> (type, value) from a text-format reply, checking counters' ``_total`` samples."""
    testcase.assertEqual(reply.code, 200)
    testcase.assertEqual(reply.headers["content-type"], CONTENT_TYPE)
    out = {}
    for family in text_string_to_metric_families(reply.body.decode("utf-8")):
        [sample] = family.samples
        expected = family.name + "_total" if family.type == "counter" else family.name
        testcase.assertEqual(sample.name, expected)
        out[family.name] = (family.type, sample.value)
    return out


class PrometheusTests(OperatorTestCase):
    def assertAgrees(self, metrics: dict[str, tuple[str, float]], snapshot: dict[str, float]) -> None:
        for key, value in snapshot.items():
            name = metric_name(key)
            kind = "counter" if is_counter(key) else "gauge"
            family = name.removesuffix("_total") if kind == "counter" else name
            self.assertIn(family, metrics, key)
            self.assertEqual(metrics[family][0], kind, key)
            if not key.startswith("system/"):  # load and free memory move between two reads
                self.assertEqual(metrics[family][1], value, key)
        self.assertEqual(len(metrics), len(snapshot))

    def test_master_metrics(self) -> None:
        """GET /metrics on the master is text format 0.0.4 with the figures of /metrics/snapshot."""
        metrics = parse_metrics(self, self.client.get("/metrics"))
        self.assertAgrees(metrics, self.client.get_json("/metrics/snapshot"))
        self.assertEqual(metrics["mesos_master_cpus_total"], ("gauge", 4.0))
        self.assertEqual(metrics["mesos_master_tasks_finished"], ("counter", 1.0))
        self.assertEqual(metrics["mesos_master_tasks_running"], ("gauge", 2.0))
        self.assertEqual(metrics["mesos_master_messages_decline_offers"][0], "counter")
        self.assertEqual(metrics["mesos_system_cpus_total"][0], "gauge")

    def test_agent_metrics(self) -> None:
        """GET /metrics on an agent agrees with its /metrics/snapshot (slave/... keys)."""
        client = agent_client(self.cluster, 0)
        metrics = parse_metrics(self, client.get("/metrics"))
        self.assertAgrees(metrics, client.get_json("/metrics/snapshot"))
        self.assertEqual(metrics["mesos_slave_registered"], ("gauge", 1.0))
        self.assertEqual(metrics["mesos_slave_tasks_finished"], ("counter", 1.0))
        self.assertEqual(metrics["mesos_slave_valid_status_updates"][0], "counter")

    def test_private_registries(self) -> None:
        """Each daemon has its own registry: two masters in one process both answer, the global one stays clean."""
        other = Cluster(agents=1)
        self.useClock(other.clock)
        self.addCleanup(other.stop)
        router = Router()
        MasterEndpoints(other.master, other.config.rendered()).install(router)
        theirs = parse_metrics(self, Client(router).get("/metrics"))
        ours = parse_metrics(self, self.client.get("/metrics"))
        self.assertEqual((theirs["mesos_master_cpus_total"][1], ours["mesos_master_cpus_total"][1]), (2.0, 4.0))
        self.assertNotIn(b"mesos_", generate_latest(REGISTRY))


def agent_client(cluster: Cluster, index: int) -> Client:
    router = Router()
    AgentEndpoints(cluster.agents[index], cluster.agent_config.rendered()).install(router)
    return Client(router)


class AgentEndpointsTests(OperatorTestCase):
    def test_state_shape(self) -> None:
        """/slave(1)/state has the documented top level, frameworks, executors and tasks."""
        state = agent_client(self.cluster, 0).get_json("/slave(1)/state")
        self.assertConforms(state, AGENT_STATE)
        frameworks = {f["name"]: f for f in state["frameworks"]}
        self.assertIn("alpha", frameworks)
        executors = {e["id"]: e for e in frameworks["alpha"]["executors"]}
        self.assertEqual([t["id"] for t in executors["a2"]["tasks"]], ["a2"])
        self.assertEqual(executors["a2"]["tasks"][0]["state"], "TASK_RUNNING")
        self.assertIn("/frameworks/", executors["a2"]["directory"])
        self.assertEqual(executors["a2"]["resources"]["cpus"], 0.1)
        completed = {e["id"]: e for e in frameworks["alpha"]["completed_executors"]}
        self.assertEqual([t["state"] for t in completed["a1"]["completed_tasks"]], ["TASK_FINISHED"])
        self.assertEqual(completed["a1"]["tasks"], [])

    def test_completed_frameworks(self) -> None:
        """A torn-down framework moves to completed_frameworks with its killed task."""
        state = agent_client(self.cluster, 0).get_json("/slave(1)/state")
        [gamma] = [f for f in state["completed_frameworks"] if f["id"] == self.gamma.framework_id]
        tasks = [t for e in gamma["completed_executors"] for t in e["completed_tasks"]]
        self.assertEqual([(t["id"], t["state"]) for t in tasks], [("g1", "TASK_KILLED")])

    def test_aliases(self) -> None:
        """/slave(1)/state.json, /state and /state.json answer like /slave(1)/state."""
        client = agent_client(self.cluster, 0)
        expected = client.get_json("/slave(1)/state")
        for alias in ("/slave(1)/state.json", "/state", "/state.json"):
            self.assertEqual(client.get_json(alias), expected)

    def test_flags(self) -> None:
        """/slave(1)/flags is {"flags": {name: string}}."""
        flags = agent_client(self.cluster, 0).get_json("/slave(1)/flags")
        self.assertConforms(flags, Schema({"flags": dict_of(str)}))
        self.assertEqual(flags["flags"]["master"], "127.0.0.1:5050")

    def test_monitor_statistics(self) -> None:
        """/monitor/statistics(.json) lists running executors with ResourceStatistics (timestamp included)."""
        client = agent_client(self.cluster, 0)
        statistics = client.get_json("/monitor/statistics")
        self.assertConforms(statistics, STATISTICS)
        self.assertIn("a2", [s["executor_id"] for s in statistics])
        self.assertEqual(client.get_json("/monitor/statistics.json"), statistics)

    def test_snapshot(self) -> None:
        """/metrics/snapshot is a flat object of numbers with Mesos's slave/ keys."""
        snapshot = agent_client(self.cluster, 0).get_json("/metrics/snapshot")
        self.assertConforms(snapshot, dict_of(Number))
        for key in ("slave/registered", "slave/uptime_secs", "slave/cpus_total", "slave/mem_used",
                    "slave/executors_running", "slave/executors_terminating", "slave/tasks_running",
                    "system/load_1min"):
            self.assertIn(key, snapshot)
        self.assertEqual(snapshot["slave/tasks_running"], 2.0)
        self.assertTrue(math.isclose(snapshot["slave/cpus_used"], 0.2))


class QueuedTasksTests(ClockTestCase):
    def test_queued_task_shape(self) -> None:
        """A task waiting for its executor to subscribe is listed in queued_tasks in the TaskInfo shape."""
        cluster = Cluster(agents=1)
        self.useClock(cluster.clock)
        self.addCleanup(cluster.stop)
        cluster.containerizers[0].subscribe = False
        scheduler = RecordingScheduler()
        scheduler.pending = [command_task("q1", "sleep 100")]
        cluster.framework("queued", scheduler=scheduler)
        state = agent_client(cluster, 0).get_json("/slave(1)/state")
        self.assertEqual(problems(state, AGENT_STATE), [])
        [executor] = state["frameworks"][0]["executors"]
        self.assertEqual(executor["tasks"], [])
        [queued] = executor["queued_tasks"]
        self.assertEqual((queued["id"], queued["name"]), ("q1", "q1"))
        self.assertEqual(queued["command"]["value"], "sleep 100")
        self.assertEqual(executor["resources"], queued["resources"])


class ShapeCheckTests(unittest.TestCase):
    def test_checker_catches_bad_shapes(self) -> None:
        """The shape checks reject v1 resource arrays, integer scalars, bad range strings and missing keys."""
        flat = {"cpus": 1.0, "mem": 32.0, "disk": 0.0, "gpus": 0.0}
        self.assertEqual(problems({**flat, "ports": "[1-2, 5-9]"}, resources), [])
        self.assertNotEqual(problems([{"name": "cpus", "type": "SCALAR"}], resources), [])
        self.assertNotEqual(problems({**flat, "cpus": 1}, resources), [])
        self.assertNotEqual(problems({**flat, "ports": "31000-32000"}, resources), [])
        self.assertNotEqual(problems({"id": "o1", "framework_id": "f", "resources": flat}, OFFER), [])
        self.assertNotEqual(problems({"roles": [{"name": "*", "weight": 1, "resources": flat, "frameworks": []}]},
                                     Schema({"roles": [ROLE]})), [])
