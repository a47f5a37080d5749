"""The master's v1 operator API (``POST /api/v1``) over real HTTP parsing: every call's shape against
``master.proto``, Mesos's answers to malformed calls, and what each call changes."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from twisted.internet import defer
from twisted.logger import LogLevel, globalLogPublisher

from mesostw.http.router import Router
from mesostw.master.operator_api import MasterOperatorAPI
from mesostw.master.registry import RegistryState
from mesostw.model import task as T
from mesostw.model.info import FrameworkInfo
from mesostw.model.task import Task, TaskInfo, TaskStatus
from mesostw.verbosity import Verbosity
from tests.helpers.cluster import RecordingScheduler, command_task
from tests.helpers.v1shapes import FILE_INFO, MASTER_RESPONSES, exact
from tests.helpers.web import Client, Reply
from tests.unit.test_operator_endpoints import OperatorTestCase, Schema, problems

JSON = {"Content-Type": "application/json"}


def call(client: Client, body: Any, path: str = "/api/v1", headers: dict[str, str] | None = None) -> Reply:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.request("POST", path, raw, JSON if headers is None else headers)


class APITestCase(OperatorTestCase):
    """The two-agent cluster of the v0 endpoint tests (see :class:`OperatorTestCase`), asked over ``/api/v1``."""

    def call(self, body: Any, **kwargs: Any) -> Reply:
        return call(self.client, body, **kwargs)

    def answer(self, call_type: str, **fields: Any) -> Any:
        """The Response to a call of ``call_type``, checked to be a 200 of the right shape."""
        reply = self.call({"type": call_type, **fields})
        self.assertEqual(reply.code, 200, reply.body)
        self.assertEqual(reply.headers["content-type"], "application/json")
        answer = reply.json()
        if call_type in MASTER_RESPONSES:
            self.assertEqual(problems(answer, MASTER_RESPONSES[call_type]), [])
        return answer[call_type.lower()] if call_type.lower() in answer else answer

    def assertRefused(self, reply: Reply, code: int, *fragments: str) -> None:
        self.assertEqual(reply.code, code, reply.body)
        self.assertEqual(reply.headers["content-type"], "application/json")
        for fragment in fragments:
            self.assertIn(fragment, reply.json()["message"])


class ShapeTests(APITestCase):
    def test_every_read_call_conforms(self) -> None:
        """Every call without a message answers a Response of master.proto's shape, without stray fields."""
        for call_type in MASTER_RESPONSES:
            body: dict[str, Any] = {"type": call_type}
            if call_type == "GET_METRICS":
                body["get_metrics"] = {}
            reply = self.call(body)
            self.assertEqual((call_type, reply.code), (call_type, 200), reply.body)
            self.assertEqual((call_type, problems(reply.json(), MASTER_RESPONSES[call_type])), (call_type, []))

    def test_both_paths(self) -> None:
        """/master/api/v1 answers as /api/v1 (the master is libprocess's delegate)."""
        self.assertEqual(self.call({"type": "GET_HEALTH"}, path="/master/api/v1").json(),
                         {"type": "GET_HEALTH", "get_health": {"healthy": True}})

    def test_version_and_master(self) -> None:
        """GET_VERSION is the build; GET_MASTER the MasterInfo, its honest capabilities and its times."""
        self.assertEqual(self.answer("GET_VERSION")["version_info"]["build_user"], "mesostw")
        master = self.answer("GET_MASTER")
        self.assertEqual(master["master_info"]["id"], "M")
        self.assertEqual(master["master_info"]["capabilities"], [{"type": "AGENT_UPDATE"}, {"type": "AGENT_DRAINING"},
                                                                {"type": "QUOTA_V2"}])
        self.assertEqual((master["start_time"], master["elected_time"]), (0.0, 0.0))

    def test_flags(self) -> None:
        """GET_FLAGS lists every flag as {name, value} strings."""
        flags = {f["name"]: f["value"] for f in self.answer("GET_FLAGS")["flags"]}
        self.assertEqual((flags["cluster"], flags["weights"]), ("lab", "dev=0.5,ops=2"))

    def test_metrics(self) -> None:
        """GET_METRICS is /metrics/snapshot as Metric messages, with or without a timeout."""
        metrics = {m["name"]: m["value"] for m in self.answer("GET_METRICS", get_metrics={})["metrics"]}
        snapshot = self.client.get_json("/metrics/snapshot")
        self.assertEqual(metrics.keys(), snapshot.keys())
        self.assertEqual(metrics["master/tasks_running"], 2.0)
        timed = self.answer("GET_METRICS", get_metrics={"timeout": {"nanoseconds": 5_000_000_000}})
        self.assertEqual(len(timed["metrics"]), len(metrics))

    def test_state(self) -> None:
        """GET_STATE holds the tasks, executors, frameworks and agents, in their own calls' shapes."""
        state = self.answer("GET_STATE")
        tasks = state["get_tasks"]
        self.assertEqual(sorted(t["task_id"]["value"] for t in tasks["tasks"]), ["a2", "b1"])
        self.assertEqual(sorted(t["task_id"]["value"] for t in tasks["completed_tasks"]), ["a1", "a3", "g1"])
        frameworks = state["get_frameworks"]
        self.assertEqual(sorted(f["framework_info"]["name"] for f in frameworks["frameworks"]), ["alpha", "beta"])
        self.assertEqual([f["framework_info"]["name"] for f in frameworks["completed_frameworks"]], ["gamma"])
        self.assertEqual(len(state["get_agents"]["agents"]), 2)
        for name in ("GET_TASKS", "GET_FRAMEWORKS", "GET_AGENTS", "GET_EXECUTORS"):
            self.assertEqual(self.answer(name), state[name.lower()])

    def test_tasks(self) -> None:
        """A task carries its resources allocated to its framework's role, its statuses and its user."""
        tasks = {t["task_id"]["value"]: t for t in self.answer("GET_TASKS")["tasks"]}
        b1 = tasks["b1"]
        self.assertEqual(b1["framework_id"]["value"], self.beta.framework_id)
        self.assertEqual({r["allocation_info"]["role"] for r in b1["resources"]}, {"ops"})
        self.assertEqual([s["state"] for s in b1["statuses"]], ["TASK_RUNNING"])
        self.assertEqual((b1["state"], b1["user"]), ("TASK_RUNNING", "nobody"))
        self.assertNotIn("executor_id", b1)  # a command task has no executor of its own

    def test_agents(self) -> None:
        """An agent shows its total, allocated (by role) and offered resources."""
        agents = self.answer("GET_AGENTS")["agents"]
        by_id = {a["agent_info"]["id"]["value"]: a for a in agents}
        b1 = self.master.tasks.get(self.beta.framework_id, "b1")
        assert b1 is not None
        agent = by_id[b1.agent_id]
        self.assertIn({"name": "cpus", "role": "*", "type": "SCALAR", "scalar": {"value": 2.0}},
                      agent["total_resources"])
        roles = {r["allocation_info"]["role"] for r in agent["allocated_resources"]}
        self.assertIn("ops", roles)
        offered = [a for a in agents if "offered_resources" in a]
        self.assertTrue(offered)
        self.assertEqual({r["allocation_info"]["role"] for a in offered for r in a["offered_resources"]}, {"ops"})
        self.assertEqual(agent["capabilities"], [{"type": "MULTI_ROLE"}, {"type": "HIERARCHICAL_ROLE"},
                                                 {"type": "RESERVATION_REFINEMENT"}])

    def test_frameworks(self) -> None:
        """A framework shows its FrameworkInfo, its offers and what it holds."""
        frameworks = {f["framework_info"]["name"]: f for f in self.answer("GET_FRAMEWORKS")["frameworks"]}
        beta = frameworks["beta"]
        self.assertEqual(len(beta["offers"]), len(self.master.offers.of_framework(self.beta.framework_id)))
        self.assertTrue(beta["offered_resources"])
        self.assertEqual((beta["active"], beta["connected"], beta["recovered"]), (True, True, False))
        self.assertNotIn("offers", frameworks["alpha"])

    def start_custom_executor(self) -> RecordingScheduler:
        """A framework "delta" whose task e1 runs under its own executor "custom"; its scheduler."""
        scheduler = RecordingScheduler()
        task = command_task("e1", "sleep 100")
        del task["command"]
        task["executor"] = {"executor_id": {"value": "custom"}, "command": {"value": "./run"},
                            "resources": task["resources"]}
        scheduler.pending = [task]
        self.cluster.framework("delta", scheduler=scheduler)
        return scheduler

    def test_executors(self) -> None:
        """GET_EXECUTORS lists frameworks' own executors with their agents (command tasks have none)."""
        self.assertEqual(self.answer("GET_EXECUTORS"), {"executors": []})
        scheduler = self.start_custom_executor()
        [executor] = self.answer("GET_EXECUTORS")["executors"]
        self.assertEqual(executor["executor_info"]["executor_id"], {"value": "custom"})
        self.assertEqual(executor["executor_info"]["framework_id"], {"value": scheduler.framework_id})

    def test_agents_with_and_without_custom_executors(self) -> None:
        """Only the agent running a custom executor shows it (records, /master/state, GET_STATE); once it
        exits, none does, and the next one shows again."""
        scheduler = self.start_custom_executor()
        framework_id = scheduler.framework_id
        running = self.master.tasks.get(framework_id, "e1")
        assert running is not None
        agent_id = running.agent_id
        [executor] = self.master.agents[agent_id].executors.values()

        def shown() -> tuple[dict[str, list[Any]], list[str], list[str]]:
            records = {a.id: list(a.executors) for a in self.master.agents.values()}
            state = self.client.get_json("/master/state")
            [delta] = [f for f in state["frameworks"] if f["id"] == framework_id]
            v1 = self.answer("GET_STATE")["get_executors"]["executors"]
            self.assertEqual(v1, self.answer("GET_EXECUTORS")["executors"])
            self.assertEqual(self.master.tasks.problems(), [])
            return (records, [e["slave_id"] for e in delta["executors"]],
                    [e["agent_id"]["value"] for e in v1])

        others = {a: [] for a in self.master.agents if a != agent_id}
        self.assertEqual(shown(), ({agent_id: [(framework_id, "custom")], **others}, [agent_id], [agent_id]))
        self.master.exitedExecutor(agent_id, framework_id, "custom", 0)
        self.cluster.settle()
        self.assertEqual(shown(), ({agent_id: [], **others}, [], []))
        self.assertTrue(self.master.tasks.add_executor(agent_id, executor))
        self.assertEqual(shown(), ({agent_id: [(framework_id, "custom")], **others}, [agent_id], [agent_id]))

    def test_roles_and_weights(self) -> None:
        """GET_ROLES lists *, the weighted roles and the frameworks' roles; GET_WEIGHTS the weights."""
        roles = {r["name"]: r for r in self.answer("GET_ROLES")["roles"]}
        self.assertEqual(sorted(roles), ["*", "dev", "ops"])
        self.assertEqual((roles["ops"]["weight"], roles["dev"]["weight"]), (2.0, 0.5))
        self.assertEqual(roles["ops"]["frameworks"], [{"value": self.beta.framework_id}])
        self.assertIn("cpus", [r["name"] for r in roles["ops"]["resources"]])
        self.assertEqual(self.answer("GET_WEIGHTS")["weight_infos"],
                         [{"weight": 0.5, "role": "dev"}, {"weight": 2.0, "role": "ops"}])


class MalformedCallTests(APITestCase):
    def test_method(self) -> None:
        """Only POST: 405 naming it."""
        reply = self.client.get("/api/v1")
        self.assertRefused(reply, 405, "POST")
        self.assertEqual(reply.headers["allow"], "POST")

    def test_content_types(self) -> None:
        """No Content-Type is a 400, protobuf a 415 (as the scheduler API), anything else a 415."""
        body = json.dumps({"type": "GET_HEALTH"}).encode()
        self.assertRefused(self.call(body, headers={}), 400, "Content-Type")
        self.assertRefused(self.call(body, headers={"Content-Type": "application/x-protobuf"}), 415, "protobuf")
        self.assertRefused(self.call(body, headers={"Content-Type": "text/plain"}), 415)

    def test_accept(self) -> None:
        """A call whose answer could not be JSON is a 406, after the call is validated."""
        headers = {**JSON, "Accept": "application/x-protobuf"}
        self.assertRefused(self.call({"type": "GET_HEALTH"}, headers=headers), 406, "Accept")
        self.assertRefused(self.call({"type": "NO_SUCH_CALL"}, headers=headers), 400)

    def test_bodies(self) -> None:
        """Bodies that are no JSON object, calls without a type or of a type master.proto does not know are
        400s; a type it knows that this master does not answer is a 501."""
        self.assertRefused(self.call(b"{"), 400, "Failed to parse body into JSON")
        self.assertRefused(self.call([1, 2]), 400, "expected a JSON object")
        self.assertRefused(self.call({}), 400, "Expecting 'type' to be present")
        self.assertRefused(self.call({"type": "GET_EVERYTHING"}), 400, "is not a master::Call type")
        self.assertRefused(self.call({"type": 7}), 400, "is not a master::Call type")
        self.assertRefused(self.call({"type": "UNKNOWN"}), 501)
        self.assertRefused(self.call({"type": "GROW_VOLUME", "grow_volume": {}}), 501, "GROW_VOLUME")

    def test_messages(self) -> None:
        """A call missing its message, with a message that is not an object, or with bad fields is a 400
        naming every problem."""
        self.assertRefused(self.call({"type": "GET_METRICS"}), 400, "Expecting 'get_metrics' to be present")
        self.assertRefused(self.call({"type": "READ_FILE", "read_file": "x"}), 400, "'read_file' must be an object")
        reply = self.call({"type": "SET_LOGGING_LEVEL", "set_logging_level": {"level": -1}})
        self.assertRefused(reply, 400, "set_logging_level.level must be at least 0",
                           "set_logging_level.duration is required")
        reply = self.call({"type": "GET_METRICS", "get_metrics": {"timeout": {"nanoseconds": -1}}})
        self.assertRefused(reply, 400, "timeout must not be negative")
        self.assertRefused(self.call({"type": "TEARDOWN", "teardown": {"framework_id": 3}}), 400, "framework_id")
        self.assertRefused(self.call({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": {}}}), 400)


class LoggingLevelTests(APITestCase):
    def test_level_is_raised_for_a_while(self) -> None:
        """SET_LOGGING_LEVEL has an effect: verbose messages (here, of read calls) are logged until the
        duration passes, then the original level is back."""
        verbosity = Verbosity()
        router = Router()
        MasterOperatorAPI(self.master, {}, verbosity=verbosity).install(router)
        client = Client(router, self.cluster.clock)
        logged: list[dict[str, Any]] = []

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_level") == LogLevel.debug and event.get("type") == "GET_HEALTH":
                logged.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        call(client, {"type": "GET_HEALTH"})
        self.assertEqual(logged, [])
        reply = call(client, {"type": "SET_LOGGING_LEVEL",
                              "set_logging_level": {"level": 1, "duration": {"nanoseconds": 10_000_000_000}}})
        self.assertEqual((reply.code, reply.body), (200, b""))
        self.assertEqual(call(client, {"type": "GET_LOGGING_LEVEL"}).json()["get_logging_level"], {"level": 1})
        call(client, {"type": "GET_HEALTH"})
        self.assertEqual(len(logged), 1)
        self.cluster.advance(10)
        self.assertEqual(verbosity.level, 0)
        call(client, {"type": "GET_HEALTH"})
        self.assertEqual(len(logged), 1)

    def test_a_later_call_replaces_the_timer(self) -> None:
        """A second SET_LOGGING_LEVEL replaces the first's level and revert time; the original level
        returns only once the last duration passed."""
        verbosity = Verbosity()
        clock = self.cluster.clock
        verbosity.set(2, 10, clock)
        clock.advance(5)
        verbosity.set(1, 10, clock)
        clock.advance(6)
        self.assertEqual(verbosity.level, 1)
        clock.advance(4)
        self.assertEqual((verbosity.level, verbosity.reverts_at), (0, None))


class WeightTests(APITestCase):
    def update(self, *infos: dict[str, Any]) -> Reply:
        return self.call({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": list(infos)}})

    def test_update(self) -> None:
        """UPDATE_WEIGHTS is durable before it answers, and GET_WEIGHTS and the allocator see it."""
        reply = self.update({"role": "ops", "weight": 3.0}, {"role": "qa", "weight": 1.5})
        self.assertEqual((reply.code, reply.body), (200, b""))
        self.assertEqual(self.master.registry.state.weights, {"ops": 3.0, "dev": 0.5, "qa": 1.5})
        self.assertEqual({w["role"]: w["weight"] for w in self.answer("GET_WEIGHTS")["weight_infos"]},
                         {"ops": 3.0, "dev": 0.5, "qa": 1.5})

    def test_invalid_updates_change_nothing(self) -> None:
        """Bad weights or roles are a 400 naming every problem, and nothing changes."""
        reply = self.update({"role": "ops", "weight": 0}, {"role": "a b", "weight": 1}, {"weight": 1})
        self.assertRefused(reply, 400, "weight of role 'ops' must be a positive number", "'role' must be a string")
        self.assertEqual(self.master.config.weights, {"ops": 2.0, "dev": 0.5})

    def test_registry_refusal(self) -> None:
        """A registry that refuses the write makes the call fail with 503, and nothing changes."""
        self.patch(self.master.registry, "apply", lambda mutation: defer.fail(RuntimeError("disk full")))
        self.patch(self.master, "on_registry_failure", lambda failure: None)
        self.assertRefused(self.update({"role": "ops", "weight": 3.0}), 503, "disk full")
        self.assertEqual(self.master.config.weights, {"ops": 2.0, "dev": 0.5})
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class TeardownTests(APITestCase):
    def test_teardown(self) -> None:
        """TEARDOWN removes the framework and ends its tasks; an unknown framework is a 400."""
        framework_id = self.alpha.framework_id
        reply = self.call({"type": "TEARDOWN", "teardown": {"framework_id": {"value": framework_id}}})
        self.assertEqual((reply.code, reply.body), (200, b""))
        self.assertNotIn(framework_id, self.master.frameworks)
        self.assertIn(framework_id, self.master.completed)
        reply = self.call({"type": "TEARDOWN", "teardown": {"framework_id": {"value": framework_id}}})
        self.assertRefused(reply, 400, "No framework found")
        self.cluster.settle()


class MarkAgentGoneTests(APITestCase):
    def gone(self, agent_id: str) -> Reply:
        return self.call({"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": agent_id}}})

    def test_registered_agent(self) -> None:
        """A registered agent marked gone: the registry holds it first; its tasks are lost to frameworks that
        are not partition-aware, it is told to shut its frameworks down, and it leaves the agents."""
        task = self.master.tasks.get(self.alpha.framework_id, "a2")
        assert task is not None
        agent_id = task.agent_id
        link = self.master.agents[agent_id].link
        reply = self.gone(agent_id)
        self.assertEqual((reply.code, reply.body), (200, b""))
        self.assertIn(agent_id, self.master.registry.state.gone)
        self.assertNotIn(agent_id, self.master.registry.state.agents)
        self.assertNotIn(agent_id, [a["agent_info"]["id"]["value"] for a in self.answer("GET_AGENTS")["agents"]])
        self.cluster.settle()
        [update] = [u for u in self.alpha.updates if u.task_id == "a2" and u.state == T.LOST]
        self.assertEqual((update.reason, update.message), (T.REASON_AGENT_REMOVED, "Agent has been marked gone"))
        self.assertIn((self.alpha.framework_id,), link.named("shutdownFramework"))
        self.assertEqual(link.named("removedByMaster"), [("Agent has been marked gone",)])
        self.assertEqual(self.gone(agent_id).code, 200)  # gone already: nothing more to do

    def test_partition_aware_tasks_are_gone_by_operator(self) -> None:
        """A partition-aware framework hears TASK_GONE_BY_OPERATOR, as Mesos's frameworks do."""
        scheduler = RecordingScheduler()
        scheduler.pending = [command_task("p1", "sleep 100")]
        _, driver = self.cluster.framework("aware", scheduler=scheduler, capabilities=frozenset({"PARTITION_AWARE"}))
        task = self.master.tasks.get(scheduler.framework_id, "p1")
        assert task is not None
        self.assertEqual(self.gone(task.agent_id).code, 200)
        self.cluster.settle()
        self.assertEqual(scheduler.states("p1")[-1], T.GONE_BY_OPERATOR)
        self.assertEqual(scheduler.updates[-1].reason, T.REASON_AGENT_REMOVED_BY_OPERATOR)
        driver.reconcileTasks([TaskStatus("p1", T.RUNNING, agent_id=task.agent_id)])
        self.cluster.settle()
        self.assertEqual((scheduler.updates[-1].state, scheduler.updates[-1].reason),
                         (T.GONE_BY_OPERATOR, T.REASON_RECONCILIATION))  # what a reconciliation says of it

    def test_it_never_comes_back(self) -> None:
        """A gone agent that re-registers is refused, even by a new leader recovering from the registry."""
        agent = self.cluster.agents[0]
        agent_id = agent.info.id
        assert agent_id is not None
        self.assertEqual(self.gone(agent_id).code, 200)
        self.cluster.settle()
        refused = self.master.reregisterAgent(self.master.agents[self.cluster.agents[1].info.id].link, agent.info,
                                              [], [], [])
        self.assertEqual(self.failureResultOf(refused).getErrorMessage(), "Agent has been marked gone")
        state = self.master.registry.state.copy()
        self.assertEqual(list(state.gone), [agent_id])
        successor = self.cluster.standby("M2")
        successor.recover(RegistryState.from_json(json.loads(json.dumps(state.to_json()))))
        refused = successor.reregisterAgent(None, agent.info, [], [], [])  # type: ignore[arg-type]
        self.assertEqual(self.failureResultOf(refused).getErrorMessage(), "Agent has been marked gone")

    def test_what_a_gone_agent_still_runs_is_shut_down(self) -> None:
        """A gone agent re-registering is told to shut down every framework it reports, those of its
        tasks and those it only lists, before it is refused."""
        agent = self.cluster.agents[0]
        agent_id = agent.info.id
        assert agent_id is not None
        self.assertEqual(self.gone(agent_id).code, 200)
        self.cluster.settle()
        shut: list[str] = []

        class Link:
            def shutdownFramework(self, framework_id: str) -> None:
                shut.append(framework_id)

        task = Task(TaskInfo("t", "t1", agent_id), "F-task")
        refused = self.master.reregisterAgent(Link(), agent.info, [task], [],  # type: ignore[arg-type]
                                              [FrameworkInfo("u", "n", id="F-listed"), FrameworkInfo("u", "n")])
        self.assertEqual(self.failureResultOf(refused).getErrorMessage(), "Agent has been marked gone")
        self.assertEqual(shut, ["F-listed", "F-task"])

    def test_unknown_and_busy_agents(self) -> None:
        """An agent nobody knows is a 404; one being marked gone already is a 503 (retry later)."""
        self.assertRefused(self.gone("nobody"), 404, "Agent 'nobody' not found")
        pending: defer.Deferred = defer.Deferred()
        self.patch(self.master.registry, "apply", lambda mutation: pending)
        agent_id = self.cluster.agents[0].info.id
        assert agent_id is not None
        first = self.master.markAgentGone(agent_id)
        self.assertRefused(self.gone(agent_id), 503, "already being transitioned")
        pending.callback(None)
        self.successResultOf(first)
        self.assertIn(agent_id, self.master.agent_manager.gone)
        self.cluster.settle()

    def test_unreachable_agent(self) -> None:
        """An unreachable agent can be marked gone: its partition-aware tasks move from unreachable to gone."""
        scheduler = RecordingScheduler()
        scheduler.pending = [command_task("u1", "sleep 100")]
        self.cluster.framework("aware", scheduler=scheduler, capabilities=frozenset({"PARTITION_AWARE"}))
        task = self.master.tasks.get(scheduler.framework_id, "u1")
        assert task is not None
        agent_id = task.agent_id
        self.master.agentUnreachable(agent_id)
        self.cluster.settle()
        self.assertEqual(scheduler.states("u1")[-1], T.UNREACHABLE)
        self.assertEqual(self.gone(agent_id).code, 200)
        self.cluster.settle()
        self.assertEqual(scheduler.states("u1")[-1], T.GONE_BY_OPERATOR)
        self.assertIsNone(self.master.tasks.get(scheduler.framework_id, "u1"))
        self.assertNotIn(agent_id, self.master.unreachable)


class FilesTests(APITestCase):
    def api(self, log_file: str | None) -> Client:
        router = Router()
        MasterOperatorAPI(self.master, {}, log_file=log_file, verbosity=Verbosity()).install(router)
        return Client(router, self.cluster.clock)

    def test_master_log(self) -> None:
        """With --external_log_file, /master/log is listed and read in ranges, as Mesos's Files does."""
        log = os.path.abspath(self.mktemp())
        with open(log, "wb") as f:
            f.write(b"line one\nline two\n")
        client = self.api(log)
        reply = call(client, {"type": "LIST_FILES", "list_files": {"path": "/master/log"}})
        [info] = reply.json()["list_files"]["file_infos"]
        self.assertEqual(problems(info, FILE_INFO), [])
        self.assertEqual((info["path"], info["size"]), ("/master/log", 18))
        read = call(client, {"type": "READ_FILE", "read_file": {"path": "/master/log", "offset": 5, "length": 3}})
        self.assertEqual(problems(read.json(), exact(Schema({"type": str, "read_file": exact(Schema(
            {"size": int, "data": str}))}))), [])
        self.assertEqual(read.json()["read_file"]["size"], 18)
        self.assertEqual(base64.b64decode(read.json()["read_file"]["data"]), b"one")
        past = call(client, {"type": "READ_FILE", "read_file": {"path": "/master/log", "offset": 100}})
        self.assertEqual(past.json()["read_file"], {"size": 18, "data": ""})

    def test_unknown_paths(self) -> None:
        """Paths nothing is attached to are 404s, as /master/log is without a log file."""
        client = self.api(None)
        for body in ({"type": "LIST_FILES", "list_files": {"path": "/master/log"}},
                     {"type": "READ_FILE", "read_file": {"path": "/etc/passwd", "offset": 0}}):
            self.assertRefused(call(client, body), 404)
        missing = self.api(os.path.abspath(self.mktemp()))
        self.assertRefused(call(missing, {"type": "READ_FILE", "read_file": {"path": "/master/log", "offset": 0}}),
                           404, "does not exist")


# -- who sees what: authentication and the view ACLs ------------------------------------------------------

PRINCIPALS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}


def only(action: str, objects: str, rules: dict[str, Any]) -> list[dict[str, Any]]:
    """ACL rules of ``action``: each principal's objects, then nothing for anyone else."""
    return [*({"principals": {"values": [p]}, objects: o} for p, o in rules.items()),
            {"principals": {"type": "ANY"}, objects: {"type": "NONE"}}]


VIEW_USERS = {"admin": {"type": "ANY"}, "alice": {"values": ["alice"]}}
ACLS = {
    "view_frameworks": only("view_frameworks", "users", VIEW_USERS),
    "view_tasks": only("view_tasks", "users", VIEW_USERS),
    "view_executors": only("view_executors", "users", VIEW_USERS),
    "view_roles": only("view_roles", "roles", {"admin": {"type": "ANY"}, "alice": {"values": ["*", "eng"]}}),
    "view_flags": only("view_flags", "flags", {"admin": {"type": "ANY"}}),
    "set_log_level": only("set_log_level", "level", {"admin": {"type": "ANY"}}),
    "mark_agents_gone": only("mark_agents_gone", "agents", {"admin": {"type": "ANY"}}),
    "access_mesos_logs": only("access_mesos_logs", "logs", {"admin": {"type": "ANY"}}),
    "update_weights": only("update_weights", "roles", {"admin": {"type": "ANY"}, "alice": {"values": ["eng"]}}),
}


def basic(principal: str) -> dict[str, str]:
    token = base64.b64encode(f"{principal}:{PRINCIPALS[principal]}".encode()).decode()
    return {**JSON, "Authorization": f"Basic {token}"}


def started(cluster: Any, name: str, user: str, role: str, *tasks: dict[str, Any]) -> RecordingScheduler:
    """A framework of ``user`` in ``role`` whose ``tasks`` run, settled."""
    from mesostw.model.info import FrameworkInfo
    from mesostw.scheduler.local import LocalSchedulerDriver

    scheduler = RecordingScheduler()
    scheduler.pending = list(tasks)
    LocalSchedulerDriver(scheduler, FrameworkInfo(user=user, name=name, role=role), cluster.master).start()
    cluster.settle()
    return scheduler


class ACLTestCase(OperatorTestCase):
    """alice's framework (user alice, role eng) and bob's (user bob, role ops) on agents with cpus reserved
    for ops; admin may see everything, alice what is hers and the roles * and eng, anonymous callers nothing."""

    def master_flags(self) -> dict[str, Any]:
        credentials = os.path.abspath(self.mktemp())
        with open(credentials, "w") as f:
            json.dump({"credentials": [{"principal": p, "secret": s} for p, s in PRINCIPALS.items()]}, f)
        return {"credentials": credentials, "acls": json.dumps(ACLS)}

    def setUp(self) -> None:
        super().setUp()
        self.cluster.add_agent("cpus:2;mem:1024;cpus(ops):1")
        self.cluster.settle()
        self.alice = started(self.cluster, "alices", "alice", "eng", command_task("al1", "sleep 100"))
        self.bob = started(self.cluster, "bobs", "bob", "ops", command_task("bo1", "sleep 100", "cpus:1.5;mem:32"))

    def as_(self, principal: str | None, body: Any) -> Reply:
        return call(self.client, body, headers=basic(principal) if principal else JSON)

    def names(self, principal: str | None) -> list[str]:
        reply = self.as_(principal, {"type": "GET_FRAMEWORKS"})
        return sorted(f["framework_info"]["name"] for f in reply.json()["get_frameworks"]["frameworks"])


class ACLTests(ACLTestCase):
    def test_wrong_credentials(self) -> None:
        """Credentials the master cannot check are a 401 with the read-write realm's challenge."""
        headers = {**JSON, "Authorization": "Basic " + base64.b64encode(b"alice:wrong").decode()}
        reply = call(self.client, {"type": "GET_HEALTH"}, headers=headers)
        self.assertEqual(reply.code, 401)
        self.assertIn("mesos-master-readwrite", reply.headers["www-authenticate"])

    def test_frameworks_and_tasks(self) -> None:
        """Frameworks, their tasks and executors are shown only to principals who may view their users."""
        self.assertEqual(self.names("admin"), ["alices", "alpha", "beta", "bobs"])
        self.assertEqual(self.names("alice"), ["alices"])
        self.assertEqual(self.names(None), [])
        tasks = self.as_("alice", {"type": "GET_TASKS"}).json()["get_tasks"]
        self.assertEqual([t["task_id"]["value"] for t in tasks["tasks"]], ["al1"])
        self.assertEqual(tasks["completed_tasks"], [])
        state = self.as_("alice", {"type": "GET_STATE"}).json()["get_state"]
        self.assertEqual(state["get_tasks"], tasks)
        self.assertEqual(len(self.as_("admin", {"type": "GET_TASKS"}).json()["get_tasks"]["tasks"]), 4)

    def test_roles_and_resources(self) -> None:
        """Roles, weights and resources of roles a principal may not view are left out."""
        roles = [r["name"] for r in self.as_("alice", {"type": "GET_ROLES"}).json()["get_roles"]["roles"]]
        self.assertEqual(roles, ["*", "eng"])
        weights = self.as_("alice", {"type": "GET_WEIGHTS"}).json()["get_weights"]["weight_infos"]
        self.assertEqual(weights, [])
        self.assertEqual(len(self.as_("admin", {"type": "GET_WEIGHTS"}).json()["get_weights"]["weight_infos"]), 2)
        agents = self.as_("alice", {"type": "GET_AGENTS"}).json()["get_agents"]["agents"]
        seen = [r for a in agents for key in ("total_resources", "allocated_resources", "offered_resources")
                for r in a.get(key, [])]
        self.assertTrue(seen)
        self.assertFalse([r for r in seen if "ops" in (r.get("role"), r.get("allocation_info", {}).get("role"))])
        agents = self.as_("admin", {"type": "GET_AGENTS"}).json()["get_agents"]["agents"]
        self.assertIn("ops", [r["role"] for a in agents for r in a["total_resources"]])

    def test_object_less_actions(self) -> None:
        """GET_FLAGS, SET_LOGGING_LEVEL, MARK_AGENT_GONE and the master's log are 403s for whoever the ACLs
        do not allow, and answered for admin."""
        log_file = os.path.abspath(self.mktemp())
        with open(log_file, "w") as f:
            f.write("x")
        router = Router()
        MasterOperatorAPI(self.master, {"cluster": "lab"}, verbosity=Verbosity(), log_file=log_file).install(router)
        router.filter(self.endpoints.authenticate)
        client = Client(router, self.cluster.clock)
        agent_id = self.cluster.agents[2].info.id
        calls = [{"type": "GET_FLAGS"},
                 {"type": "SET_LOGGING_LEVEL", "set_logging_level": {"level": 0, "duration": {"nanoseconds": 0}}},
                 {"type": "READ_FILE", "read_file": {"path": "/master/log", "offset": 0}},
                 {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": agent_id}}}]
        for body in calls:
            for principal in ("alice", None):
                reply = call(client, body, headers=basic(principal) if principal else JSON)
                self.assertEqual((body["type"], principal, reply.code), (body["type"], principal, 403), reply.body)
        for body in calls:
            reply = call(client, body, headers=basic("admin"))
            self.assertEqual((body["type"], reply.code), (body["type"], 200), reply.body)
        self.cluster.settle()

    def test_update_weights_per_role(self) -> None:
        """UPDATE_WEIGHTS needs update_weights on every role it names; one denied role refuses them all."""
        body = {"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": "eng", "weight": 2}]}}
        self.assertEqual(self.as_("alice", body).code, 200)
        body["update_weights"]["weight_infos"].append({"role": "ops", "weight": 9})
        reply = self.as_("alice", body)
        self.assertEqual(reply.code, 403, reply.body)
        self.assertIn("ops", reply.json()["message"])
        self.assertEqual(self.master.config.weights["ops"], 2.0)
        put = self.client.request("PUT", "/master/weights", json.dumps([{"role": "ops", "weight": 9}]).encode(),
                                  basic("alice"))
        self.assertEqual(put.code, 403)  # the v0 endpoint obeys the same ACL
