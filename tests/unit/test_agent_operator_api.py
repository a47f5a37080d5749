"""The agent's v1 operator API (``POST /api/v1``, after ``agent.proto``) over real HTTP parsing: every call's
shape, the sandbox files with the confinement of ``/files/*``, and the view ACLs."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from mesostw.agent.access import AgentAccess
from mesostw.agent.files import SandboxFiles
from mesostw.agent.operator_api import AgentOperatorAPI
from mesostw.auth.policy import Security
from mesostw.flags import defaults
from mesostw.http.router import Router
from mesostw.master.flags import MASTER_FLAGS
from mesostw.verbosity import Verbosity
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task
from tests.helpers.v1shapes import AGENT_RESPONSES, FILE_INFO
from tests.helpers.web import Client, Reply
from tests.unit.test_operator_api import ACLS, PRINCIPALS, VIEW_USERS, basic, only, started
from tests.unit.test_operator_endpoints import problems

JSON = {"Content-Type": "application/json"}


class AgentAPITestCase(ClockTestCase):
    """One agent running t1 (``sleep``), having finished t2, with q1 waiting for its executor; its sandboxes
    under a real ``work_dir``."""

    def security(self) -> Security | None:
        return None

    def setUp(self) -> None:
        self.work_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.work_dir)
        self.cluster = Cluster(agents=1, work_dir=self.work_dir)
        self.useClock(self.cluster.clock)
        self.addCleanup(self.cluster.stop)
        self.agent = self.cluster.agents[0]
        scheduler = RecordingScheduler()
        scheduler.pending = [command_task("t1", "sleep 100"), command_task("t2", "true")]
        self.scheduler, _ = self.cluster.framework("fw", scheduler=scheduler)
        self.cluster.containerizers[0].subscribe = False
        queued = RecordingScheduler()
        queued.pending = [command_task("q1", "sleep 100")]
        self.cluster.framework("waits", scheduler=queued)
        self.sandboxes = os.path.join(self.work_dir, "slaves")
        self.log_file = os.path.join(self.work_dir, "agent.log")
        with open(self.log_file, "w") as f:
            f.write("agent log\n")
        security = self.security()
        # As the agent's service wires it: sandbox reads go through the access_sandboxes check.
        access = AgentAccess(self.agent, security if security is not None else Security(), self.sandboxes)
        self.api = AgentOperatorAPI(self.agent, self.cluster.agent_config.rendered(),
                                    SandboxFiles(self.sandboxes, access.check_sandbox),
                                    security=security, verbosity=Verbosity(), log_file=self.log_file)
        router = Router()
        self.api.install(router)
        self.client = Client(router, self.cluster.clock)

    def call(self, body: Any, path: str = "/api/v1", headers: dict[str, str] | None = None) -> Reply:
        return self.client.request("POST", path, json.dumps(body).encode(), headers or JSON)

    def answer(self, call_type: str, **fields: Any) -> Any:
        reply = self.call({"type": call_type, **fields})
        self.assertEqual(reply.code, 200, reply.body)
        self.assertEqual(problems(reply.json(), AGENT_RESPONSES[call_type]), [])
        return reply.json()[call_type.lower()]


class AgentCallTests(AgentAPITestCase):
    def test_every_call_conforms(self) -> None:
        """Every call answers a Response of agent.proto's shape, at /api/v1 and /slave(1)/api/v1."""
        for call_type in AGENT_RESPONSES:
            body: dict[str, Any] = {"type": call_type}
            if call_type == "GET_METRICS":
                body["get_metrics"] = {"timeout": {"nanoseconds": 1_000_000_000}}
            for path in ("/api/v1", "/slave(1)/api/v1"):
                reply = self.call(body, path)
                self.assertEqual((call_type, reply.code), (call_type, 200), reply.body)
                self.assertEqual((call_type, problems(reply.json(), AGENT_RESPONSES[call_type])), (call_type, []))

    def test_tasks(self) -> None:
        """Launched, completed and queued tasks, each where Mesos lists it."""
        tasks = self.answer("GET_TASKS")
        self.assertEqual([t["task_id"]["value"] for t in tasks["launched_tasks"]], ["t1"])
        self.assertEqual([t["task_id"]["value"] for t in tasks["completed_tasks"]], ["t2"])
        [queued] = tasks["queued_tasks"]
        self.assertEqual((queued["task_id"]["value"], queued["state"]), ("q1", "TASK_STAGING"))
        self.assertEqual(tasks["launched_tasks"][0]["state"], "TASK_RUNNING")
        self.assertEqual(self.answer("GET_STATE")["get_tasks"], tasks)

    def test_executors_frameworks_containers(self) -> None:
        """Executors (live and completed), frameworks and the live executors' containers with statistics."""
        executors = self.answer("GET_EXECUTORS")
        self.assertEqual(sorted(e["executor_info"]["executor_id"]["value"] for e in executors["executors"]),
                         ["q1", "t1"])
        self.assertEqual([e["executor_info"]["executor_id"]["value"] for e in executors["completed_executors"]],
                         ["t2"])
        frameworks = self.answer("GET_FRAMEWORKS")
        self.assertEqual(sorted(f["framework_info"]["name"] for f in frameworks["frameworks"]), ["fw", "waits"])
        containers = self.answer("GET_CONTAINERS")["containers"]
        self.assertEqual(sorted(c["executor_id"]["value"] for c in containers), ["q1", "t1"])
        [t1] = [c for c in containers if c["executor_id"]["value"] == "t1"]
        self.assertEqual(t1["container_status"], {"container_id": t1["container_id"], "executor_pid": 4242})
        self.assertIn("timestamp", t1["resource_statistics"])

    def test_agent_flags_metrics(self) -> None:
        """GET_AGENT is its AgentInfo; GET_FLAGS and GET_METRICS its flags and slave/ metrics."""
        agent = self.answer("GET_AGENT")["agent_info"]
        self.assertEqual((agent["id"]["value"], agent["port"]), (self.agent.info.id, 5051))
        flags = {f["name"]: f["value"] for f in self.answer("GET_FLAGS")["flags"]}
        self.assertEqual(flags["work_dir"], self.work_dir)
        metrics = {m["name"]: m["value"] for m in self.answer("GET_METRICS", get_metrics={})["metrics"]}
        self.assertEqual(metrics["slave/tasks_running"], 1.0)

    def test_logging_level(self) -> None:
        """SET_LOGGING_LEVEL raises the agent's verbosity for the duration given."""
        reply = self.call({"type": "SET_LOGGING_LEVEL",
                           "set_logging_level": {"level": 3, "duration": {"nanoseconds": 2_000_000_000}}})
        self.assertEqual(reply.code, 200, reply.body)
        self.assertEqual(self.answer("GET_LOGGING_LEVEL"), {"level": 3})
        self.cluster.advance(2)
        self.assertEqual(self.answer("GET_LOGGING_LEVEL"), {"level": 0})

    def test_malformed(self) -> None:
        """The agent refuses malformed calls as the master does, naming agent::Call."""
        reply = self.call({"type": "GET_QUOTA"})
        self.assertEqual(reply.code, 400)
        self.assertIn("agent::Call", reply.json()["message"])
        self.assertEqual(self.call({"type": "LAUNCH_CONTAINER"}).code, 501)
        self.assertEqual(self.client.request("POST", "/api/v1", b"{}", {"Content-Type": "application/x-protobuf"}).code,
                         415)


class AgentFilesTests(AgentAPITestCase):
    def setUp(self) -> None:
        super().setUp()
        [executor] = [e for f in self.agent.frameworks.values() for e in f.executors.values() if e.id == "t1"]
        self.sandbox = executor.directory
        os.makedirs(os.path.join(self.sandbox, "sub"))
        with open(os.path.join(self.sandbox, "stdout"), "wb") as f:
            f.write(b"hello sandbox\n")
        self.outside = os.path.abspath(self.mktemp())
        with open(self.outside, "w") as f:
            f.write("secret")

    def list(self, path: str) -> Reply:
        return self.call({"type": "LIST_FILES", "list_files": {"path": path}})

    def read(self, path: str, offset: int = 0, length: int | None = None) -> Reply:
        body: dict[str, Any] = {"path": path, "offset": offset}
        if length is not None:
            body["length"] = length
        return self.call({"type": "READ_FILE", "read_file": body})

    def test_list_and_read_a_sandbox(self) -> None:
        """A sandbox is listed as FileInfos (sorted) and its files read in ranges, data in base64."""
        infos = self.list(self.sandbox).json()["list_files"]["file_infos"]
        self.assertEqual([i["path"] for i in infos], [f"{self.sandbox}/stdout", f"{self.sandbox}/sub"])
        for info in infos:
            self.assertEqual(problems(info, FILE_INFO), [])
        answer = self.read(f"{self.sandbox}/stdout", 6, 7).json()["read_file"]
        self.assertEqual((answer["size"], base64.b64decode(answer["data"])), (14, b"sandbox"))
        self.assertEqual(self.read(f"{self.sandbox}/stdout", 100).json()["read_file"], {"size": 14, "data": ""})

    def test_agent_log(self) -> None:
        """/slave/log is the agent's --external_log_file."""
        answer = self.read("/slave/log").json()["read_file"]
        self.assertEqual(base64.b64decode(answer["data"]), b"agent log\n")

    def test_confinement(self) -> None:
        """Paths outside the sandboxes, through '..' or a symlink, are refused before anything is opened;
        a missing file is a 404 and a directory cannot be read."""
        os.symlink(self.outside, os.path.join(self.sandbox, "escape"))
        for path in (self.outside, f"{self.sandbox}/../../../../../../{os.path.basename(self.outside)}",
                     f"{self.sandbox}/escape"):
            for reply in (self.read(path), self.list(path)):
                self.assertEqual(reply.code, 403, reply.body)
                self.assertNotIn(b"secret", reply.body)
        self.assertEqual(self.read(f"{self.sandbox}/missing").code, 404)
        self.assertEqual(self.read(f"{self.sandbox}/sub").code, 400)
        self.assertEqual(self.read("relative/path").code, 400)


class AgentACLTests(AgentAPITestCase):
    """The agent obeys the same view ACLs as the master, for principals proved with HTTP Basic."""

    def security(self) -> Security | None:
        credentials = os.path.abspath(self.mktemp())
        with open(credentials, "w") as f:
            json.dump({"credentials": [{"principal": p, "secret": s} for p, s in PRINCIPALS.items()]}, f)
        acls = {**ACLS, "view_containers": only("view_containers", "users", VIEW_USERS)}
        config = defaults(MASTER_FLAGS, credentials=credentials, acls=json.dumps(acls))
        return Security.from_config(config, self.cluster.clock)

    def test_views(self) -> None:
        """alice sees only her framework's tasks, executors and containers; nobody else sees the flags."""
        started(self.cluster, "alices", "alice", "eng", command_task("al1", "sleep 100"))
        alice, admin = basic("alice"), basic("admin")
        tasks = self.call({"type": "GET_TASKS"}, headers=alice).json()["get_tasks"]
        self.assertEqual([t["task_id"]["value"] for key in ("queued_tasks", "launched_tasks", "completed_tasks")
                          for t in tasks[key]], ["al1"])
        frameworks = self.call({"type": "GET_FRAMEWORKS"}, headers=alice).json()["get_frameworks"]["frameworks"]
        self.assertEqual([f["framework_info"]["name"] for f in frameworks], ["alices"])
        containers = self.call({"type": "GET_CONTAINERS"}, headers=alice).json()["get_containers"]["containers"]
        self.assertEqual([c["executor_id"]["value"] for c in containers], ["al1"])
        self.assertEqual(self.call({"type": "GET_FLAGS"}, headers=alice).code, 403)
        self.assertEqual(self.call({"type": "GET_FLAGS"}, headers=admin).code, 200)
        every = self.call({"type": "GET_TASKS"}, headers=admin).json()["get_tasks"]
        self.assertEqual(sorted(t["task_id"]["value"] for tasks in every.values() for t in tasks),
                         ["al1", "q1", "t1", "t2"])
        self.assertEqual(self.call({"type": "GET_HEALTH"}, headers={**JSON, "Authorization": "Basic eDp5"}).code, 401)


class AgentSandboxAccessTests(AgentFilesTests):
    """LIST_FILES and READ_FILE obey access_sandboxes as /files does: a principal reads the sandboxes
    of the users the ACLs give it, nobody else's."""

    def security(self) -> Security | None:
        credentials = os.path.abspath(self.mktemp())
        with open(credentials, "w") as f:
            json.dump({"credentials": [{"principal": p, "secret": s} for p, s in PRINCIPALS.items()]}, f)
        acls = {"access_sandboxes": only("access_sandboxes", "users", {"admin": {"type": "ANY"}})}
        config = defaults(MASTER_FLAGS, credentials=credentials, acls=json.dumps(acls))
        return Security.from_config(config, self.cluster.clock)

    def call(self, body: Any, path: str = "/api/v1", headers: dict[str, str] | None = None) -> Reply:
        return super().call(body, path, headers or basic("admin"))

    def test_another_principal_reads_no_sandbox(self) -> None:
        """alice, whom the ACLs give no sandbox, can neither list nor read t1's; admin can."""
        alice = basic("alice")
        for body in ({"type": "LIST_FILES", "list_files": {"path": self.sandbox}},
                     {"type": "READ_FILE", "read_file": {"path": f"{self.sandbox}/stdout", "offset": 0}}):
            refused = self.call(body, headers=alice)
            self.assertEqual(refused.code, 403, refused.body)
            self.assertNotIn(b"hello sandbox", refused.body)
            self.assertEqual(self.call(body).code, 200)
