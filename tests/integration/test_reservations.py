"""Dynamic reservations and persistent volumes on real daemons.

A framework reserves resources and creates a volume in one ACCEPT, a task writes into the volume, and
the volume comes back in later offers with its data: after the task, after the agent is killed with
SIGKILL and restarted, and after the master restarts on its --work_dir. Operators reserve and unreserve
through ``/master/reserve`` and RESERVE_RESOURCES, as the ACLs allow, and ``mesostw`` does the same.
Reservations and volumes made on the leader of three masters in ZooKeeper are the next leader's.
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import subprocess
import sys
from typing import Any
from urllib.parse import urlencode

from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from mesostw.model import task as T
from mesostw.model.info import FrameworkInfo
from mesostw.model.reservation import disk_of, is_volume
from mesostw.model.resources import Resources
from mesostw.scheduler.pb import MesosSchedulerDriver
from tests.helpers.cluster import RecordingScheduler
from tests.helpers.processes import ProcessCluster, environment, get_json, http, wait_for

ROLE = "eng"
MESOSTW = os.path.join(os.path.dirname(sys.executable), "mesostw")
PRINCIPAL = "ops"


def reserved(text: str, role: str = ROLE, principal: str = PRINCIPAL) -> list[dict[str, Any]]:
    """``text`` (unreserved resources) with a dynamic reservation for ``role`` by ``principal``."""
    return [{**r, "role": role, "reservation": {"principal": principal}} for r in Resources.parse(text).to_json()]


def volume(persistence_id: str, size: float, path: str = "data") -> list[dict[str, Any]]:
    return [{**reserved(f"disk:{size:g}")[0],
             "disk": {"persistence": {"id": persistence_id, "principal": PRINCIPAL},
                      "volume": {"container_path": path, "mode": "RW"}}}]


class VolumeScheduler(RecordingScheduler):
    """Runs ``script`` tasks one after the other on the volume ``vol1``: the first offer is reserved and
    the volume created in the same ACCEPT as the first task's launch; later tasks go on offers that hold
    the volume. ``ready`` says when the next task may go."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[str, str]] = []
        self.created = False
        self.launched: list[str] = []
        self.ready = True

    def task(self, task_id: str, script: str, agent_id: str, resources: Resources) -> dict[str, Any]:
        return {"name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": agent_id},
                "resources": resources.to_json(), "command": {"value": script}}

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:
        self.offers.extend(offers)
        for offer in offers:
            if not self.scripts or not self.ready:
                driver.declineOffer(offer.id, {"refuse_seconds": 0.2})
                continue
            task_id, script = self.scripts[0]
            cpus_mem = Resources.from_json(reserved("cpus:0.2;mem:32"))
            vol = Resources.from_json(volume("vol1", 16))
            if not self.created:
                operations: list[Any] = [
                    {"type": "RESERVE", "reserve": {"resources": reserved("cpus:0.2;mem:32;disk:16")}},
                    {"type": "CREATE", "create": {"volumes": volume("vol1", 16)}}]
            elif offer.resources.contains(vol) and offer.resources.contains(cpus_mem):
                operations = []
            else:
                driver.declineOffer(offer.id, {"refuse_seconds": 0.2})
                continue
            operations.append({"type": "LAUNCH", "launch": {
                "task_infos": [self.task(task_id, script, offer.agent_id, cpus_mem + vol)]}})
            driver.acceptOffers([offer.id], operations, {"refuse_seconds": 0.2})
            self.created = True
            self.scripts.pop(0)
            self.launched.append(task_id)
            self.ready = False


def volumes_in(resources: Resources) -> set[str]:
    return {disk_of(k).persistence_id for k in resources.keys() if is_volume(k)}  # type: ignore[union-attr]


class FrameworkVolumeTests(unittest.TestCase):
    timeout = 240

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.cluster = ProcessCluster(self, agents=1, resources="cpus:2;mem:1024;disk:1024",
                                      master_args=["--allocation_interval=0.2secs"])
        self.cluster.master.args.append(f"--work_dir={os.path.join(self.cluster.base, 'master')}")
        yield self.cluster.start()
        self.agent = self.cluster.agents[0]

    def framework(self, scheduler: Any) -> MesosSchedulerDriver:
        # As root the agent runs tasks as the framework's user: run them as nobody, who must be given the
        # volume to write it, and who must be able to reach the agent's work_dir (mkdtemp makes it 0700).
        user = "nobody" if os.getuid() == 0 else getpass.getuser()
        os.chmod(self.cluster.base, 0o755)
        info = FrameworkInfo(user=user, name="volumes", role=ROLE, principal=PRINCIPAL, checkpoint=True,
                             failover_timeout=600.0)
        driver = MesosSchedulerDriver(scheduler, info, self.cluster.master_address, reactor=reactor, backoff=0.2)
        self.addCleanup(lambda: driver.abort() and driver.stopped())
        driver.start()
        return driver

    @defer.inlineCallbacks
    def run_task(self, scheduler: VolumeScheduler, task_id: str, script: str) -> Any:
        scheduler.scripts.append((task_id, script))
        scheduler.ready = True
        yield wait_for(lambda: any(s in (T.FINISHED, T.FAILED, T.ERROR, T.LOST) for s in scheduler.states(task_id)),
                       60, what=f"task {task_id} to end")
        self.assertEqual(scheduler.states(task_id)[-1], T.FINISHED,
                         [(u.state, u.message) for u in scheduler.updates if u.task_id == task_id])

    def offered_volumes(self, scheduler: VolumeScheduler, since: int) -> set[str]:
        return set().union(*(volumes_in(o.resources) for o in scheduler.offers[since:]))

    def slaves(self) -> defer.Deferred:
        return threads.deferToThread(lambda: json.loads(_get(self.cluster.url("/master/slaves"))))

    @defer.inlineCallbacks
    def test_volume_outlives_tasks_agent_restart_and_master_restart(self) -> Any:
        """A framework reserves and creates vol1 with its first task, which writes a file there (as nobody,
        when the agent runs as root); the file is read by a second task on a later offer of the volume, by a
        third after the agent was killed -9 and restarted, and by a fourth after the master restarted on its
        --work_dir; the reservation shows in /master/slaves all along, and the volume lives under the
        agent's work_dir/volumes/roles/eng."""
        scheduler = VolumeScheduler()
        self.framework(scheduler)
        yield self.run_task(scheduler, "writer", "echo persisted > data/file && test -w data")
        path = os.path.join(self.cluster.base, "agent0", "volumes", "roles", ROLE, "vol1", "file")
        self.assertTrue(os.path.exists(path))
        seen = len(scheduler.offers)
        yield wait_for(lambda: "vol1" in self.offered_volumes(scheduler, seen), 30, what="vol1 offered again")
        yield self.run_task(scheduler, "reader", "grep -q persisted data/file")

        [agent] = (yield self.slaves())["slaves"]
        full = agent["reserved_resources_full"][ROLE]
        self.assertEqual({r["name"] for r in full}, {"cpus", "mem", "disk"})
        self.assertIn({"persistence": {"id": "vol1", "principal": PRINCIPAL},
                       "volume": {"container_path": "data", "mode": "RW"}}, [r.get("disk") for r in full])

        self.agent.kill(signal.SIGKILL)
        self.agent.process.wait()
        self.agent.start()
        seen = len(scheduler.offers)
        yield wait_for(lambda: "vol1" in self.offered_volumes(scheduler, seen), 60, what="vol1 after the agent restart")
        yield self.run_task(scheduler, "after-agent-restart", "grep -q persisted data/file")

        self.cluster.master.stop()
        self.cluster.master.start()
        seen = len(scheduler.offers)
        yield wait_for(lambda: "vol1" in self.offered_volumes(scheduler, seen), 90,
                       what="vol1 after the master restart")
        yield self.run_task(scheduler, "after-master-restart", "grep -q persisted data/file")
        [agent] = (yield self.slaves())["slaves"]
        self.assertEqual(agent["reserved_resources"][ROLE]["disk"], 16.0)
        self.assertNotIn("Traceback", self.cluster.master.log())
        self.assertNotIn("Traceback", self.agent.log())


def _get(url: str) -> bytes:
    from urllib.request import urlopen

    with urlopen(url, timeout=10) as response:
        return response.read()


ACLS = {
    "reserve_resources": [{"principals": {"values": [PRINCIPAL]}, "roles": {"values": [ROLE]}},
                          {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}],
    "unreserve_resources": [{"principals": {"values": [PRINCIPAL]}, "reserver_principals": {"values": [PRINCIPAL]}},
                            {"principals": {"type": "ANY"}, "reserver_principals": {"type": "NONE"}}],
}


class OperatorReservationTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        base_credentials = {"credentials": [{"principal": PRINCIPAL, "secret": "s3cret"},
                                            {"principal": "intern", "secret": "letmein"}]}
        self.cluster = ProcessCluster(self, agents=1, resources="cpus:2;mem:1024;disk:1024")
        credentials = os.path.join(self.cluster.base, "credentials.json")
        with open(credentials, "w") as f:
            json.dump(base_credentials, f)
        self.cluster.master.args += [f"--credentials={credentials}", "--authenticate_http_readwrite",
                                     f"--acls={json.dumps(ACLS)}"]
        yield self.cluster.start()
        state = yield self.cluster.state()
        self.agent_id = state["slaves"][0]["id"]

    def auth(self, principal: str, secret: str) -> dict[str, str]:
        import base64

        return {"Authorization": "Basic " + base64.b64encode(f"{principal}:{secret}".encode()).decode()}

    def form(self, path: str, headers: dict[str, str], **fields: Any) -> defer.Deferred:
        body = urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}).encode()
        return http("POST", self.cluster.url(path), body,
                    {**headers, "Content-Type": "application/x-www-form-urlencoded"})

    def v1(self, call: dict[str, Any], headers: dict[str, str]) -> defer.Deferred:
        return http("POST", self.cluster.url("/api/v1"), json.dumps(call).encode(),
                    {**headers, "Content-Type": "application/json"})

    @defer.inlineCallbacks
    def reserved_of(self) -> Any:
        headers = self.auth(PRINCIPAL, "s3cret")
        code, body, _ = yield http("GET", self.cluster.url("/master/slaves"), None, headers)
        self.assertEqual(code, 200, body)
        return json.loads(body)["slaves"][0]["reserved_resources"]

    @defer.inlineCallbacks
    def test_reserve_and_unreserve_through_both_endpoints(self) -> Any:
        """/master/reserve and RESERVE_RESOURCES answer 202 to the principal the ACLs allow and 403 to
        another, 401 without credentials, 409 for more than is free and 400 for an unknown agent; the
        reservation shows in /master/slaves until /master/unreserve and UNRESERVE_RESOURCES undo it."""
        ops, intern = self.auth(PRINCIPAL, "s3cret"), self.auth("intern", "letmein")
        code, body, _ = yield self.form("/master/reserve", ops, slaveId=self.agent_id, resources=reserved("cpus:1"))
        self.assertEqual(code, 202, body)
        call = {"type": "RESERVE_RESOURCES", "reserve_resources": {"agent_id": {"value": self.agent_id},
                                                                   "resources": reserved("mem:256")}}
        code, body, _ = yield self.v1(call, ops)
        self.assertEqual(code, 202, body)
        self.assertEqual({k: v for k, v in (yield self.reserved_of())[ROLE].items() if v},
                         {"cpus": 1.0, "mem": 256.0})

        code, body, _ = yield self.form("/master/reserve", intern, slaveId=self.agent_id,
                                        resources=reserved("cpus:0.5", principal="intern"))
        self.assertEqual(code, 403, body)
        code, body, _ = yield self.form("/master/reserve", {}, slaveId=self.agent_id, resources=reserved("cpus:0.5"))
        self.assertEqual(code, 401, body)
        code, body, _ = yield self.form("/master/reserve", ops, slaveId=self.agent_id, resources=reserved("cpus:5"))
        self.assertEqual(code, 409, body)
        code, body, _ = yield self.form("/master/reserve", ops, slaveId="nope", resources=reserved("cpus:1"))
        self.assertEqual(code, 400, body)
        code, body, _ = yield self.form("/master/unreserve", intern, slaveId=self.agent_id,
                                        resources=reserved("cpus:1"))
        self.assertEqual(code, 403, body)

        code, body, _ = yield self.form("/master/unreserve", ops, slaveId=self.agent_id, resources=reserved("cpus:1"))
        self.assertEqual(code, 202, body)
        call = {"type": "UNRESERVE_RESOURCES", "unreserve_resources": {"agent_id": {"value": self.agent_id},
                                                                       "resources": reserved("mem:256")}}
        code, body, _ = yield self.v1(call, ops)
        self.assertEqual(code, 202, body)
        self.assertEqual((yield self.reserved_of()), {})


class CommandLineTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.cluster = yield ProcessCluster(self, agents=1, resources="cpus:2;mem:1024;disk:1024").start()
        state = yield self.cluster.state()
        self.agent_id = state["slaves"][0]["id"]

    def mesostw(self, *args: str) -> defer.Deferred:
        """Run the ``mesostw`` console script; fires with (exit status, stdout, stderr)."""
        def run() -> tuple[int, str, str]:
            done = subprocess.run([MESOSTW, *args, f"--master={self.cluster.master_address}"],
                                  capture_output=True, text=True, env=environment(), timeout=60)
            return done.returncode, done.stdout, done.stderr

        return threads.deferToThread(run)

    @defer.inlineCallbacks
    def test_reserve_create_list_destroy_unreserve(self) -> Any:
        """mesostw reserve, volumes create, volumes list (table and --json), volumes destroy and
        unreserve --all work against a real master; a volume on disk that is not reserved is refused
        with a clear message and a non-zero exit."""
        code, out, err = yield self.mesostw("reserve", self.agent_id, "cpus:0.5;disk:128", "--role", ROLE,
                                            "--principal", PRINCIPAL, "--label", "team=web")
        self.assertEqual(code, 0, err)
        self.assertIn("Reserved on agent", out, (out, err))
        code, out, err = yield self.mesostw("volumes", "create", self.agent_id, "db", "--size", "100",
                                            "--role", "other", "--path", "data")
        self.assertEqual(code, 1)
        self.assertIn("no disk reserved for role other", err)
        code, out, err = yield self.mesostw("volumes", "create", self.agent_id, "db", "--size", "100",
                                            "--role", ROLE, "--path", "data", "--principal", PRINCIPAL)
        self.assertEqual(code, 0, err)
        code, out, err = yield self.mesostw("volumes", "list")
        self.assertEqual(code, 0, err)
        self.assertIn("db", out)
        self.assertIn("100 MB", out)
        self.assertIn("free", out)
        code, out, err = yield self.mesostw("volumes", "list", "--json")
        [row] = json.loads(out)
        self.assertEqual((row["id"], row["role"], row["size_mb"], row["container_path"]), ("db", ROLE, 100.0, "data"))
        path = os.path.join(self.cluster.base, "agent0", "volumes", "roles", ROLE, "db")
        yield wait_for(lambda: os.path.isdir(path), 10, what="the volume's directory")
        code, out, err = yield self.mesostw("unreserve", self.agent_id, "--all", "--role", ROLE)
        self.assertEqual(code, 0, err)
        code, out, err = yield self.mesostw("volumes", "destroy", self.agent_id, "db")
        self.assertEqual(code, 0, err)
        yield wait_for(lambda: not os.path.exists(path), 10, what="the volume's directory removed")
        code, out, err = yield self.mesostw("unreserve", self.agent_id, "--all", "--role", ROLE)
        self.assertEqual(code, 0, err)
        state = yield self.cluster.state()
        self.assertEqual(state["slaves"][0]["reserved_resources"], {})
        code, out, err = yield self.mesostw("volumes", "destroy", self.agent_id, "db")
        self.assertEqual(code, 1)
        self.assertIn("no persistent volume db", err)



class AgentResourcesTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.cluster = yield ProcessCluster(self, agents=1, resources="cpus:2;mem:1024;disk:1024").start()
        self.agent = self.cluster.agents[0]
        self.agent_id = (yield self.cluster.state())["slaves"][0]["id"]

    @defer.inlineCallbacks
    def test_restart_with_resources_that_cannot_hold_the_reservations(self) -> Any:
        """An agent restarted with --resources too small for its checkpointed reservations refuses to start,
        saying why; restarted with the old ones it comes back with its reservation."""
        body = urlencode({"slaveId": self.agent_id, "resources": json.dumps(reserved("cpus:1.5"))}).encode()
        code, answer, _ = yield http("POST", self.cluster.url("/master/reserve"), body,
                                     {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(code, 202, answer)
        port = next(a.split("=", 1)[1] for a in self.agent.args if a.startswith("--port="))
        yield wait_for(lambda: get_json(f"http://127.0.0.1:{port}/state").addCallback(
            lambda s: s["reserved_resources"].get(ROLE, {}).get("cpus") == 1.5), 10, what="the agent to hold it")
        self.agent.kill(signal.SIGKILL)
        self.agent.process.wait()
        given = self.agent.args
        self.agent.args = [a if not a.startswith("--resources=") else "--resources=cpus:1;mem:1024;disk:1024"
                           for a in given]
        self.agent.start()
        yield wait_for(lambda: not self.agent.alive(), 30, what="the agent to refuse to start")
        self.assertEqual(self.agent.process.returncode, 1)
        self.assertIn("incompatible with the agent's resources", self.agent.log())
        self.agent.args = given
        self.agent.start()

        def back() -> defer.Deferred:
            return self.cluster.state().addCallback(
                lambda s: [(a["id"], a["active"], a["reserved_resources"].get(ROLE, {}).get("cpus"))
                           for a in s["slaves"]] == [(self.agent_id, True, 1.5)])

        yield wait_for(back, 60, what="the agent back with its reservation")


class FailoverTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        from tests.integration.test_high_availability import HACluster

        self.cluster = HACluster(self)
        yield self.cluster.zk.start()

    def post(self, port: int, path: str, agent_id: str, **fields: Any) -> defer.Deferred:
        body = urlencode({"slaveId": agent_id, **{k: json.dumps(v) for k, v in fields.items()}}).encode()
        return http("POST", f"http://127.0.0.1:{port}{path}", body,
                    {"Content-Type": "application/x-www-form-urlencoded"})

    def reserved_on(self, port: int) -> defer.Deferred:
        """The only agent's reserved_resources_full for ROLE on the master at ``port`` (None: no agent)."""
        def full(slaves: dict[str, Any]) -> Any:
            return slaves["slaves"][0]["reserved_resources_full"].get(ROLE, []) if slaves["slaves"] else None

        return get_json(f"http://127.0.0.1:{port}/master/slaves").addCallback(full)

    @defer.inlineCallbacks
    def test_reservations_and_volumes_survive_the_leaders_death(self) -> Any:
        """An operator reserves and creates a volume on the leading master of three in ZooKeeper; once the
        leader is killed -9, the new leader shows the reservation and the volume, and undoes them: the
        agent removes the volume's directory."""
        cluster = self.cluster
        for _ in range(3):
            cluster.start_master()
        leader = yield cluster.wait_leader()
        agent = cluster.start_agent(0)
        yield wait_for(lambda: cluster.state(leader).addCallback(lambda s: s["activated_slaves"] == 1), 30,
                       what="the agent on the leader")
        agent_id = (yield cluster.state(leader))["slaves"][0]["id"]
        code, body, _ = yield self.post(leader, "/master/reserve", agent_id, resources=reserved("cpus:1;disk:64"))
        self.assertEqual(code, 202, body)
        code, body, _ = yield self.post(leader, "/master/create-volumes", agent_id, volumes=volume("vol1", 64))
        self.assertEqual(code, 202, body)
        path = os.path.join(cluster.base, "agent0", "volumes", "roles", ROLE, "vol1")
        yield wait_for(lambda: os.path.isdir(path), 30, what="the volume on the agent")
        before = yield self.reserved_on(leader)

        cluster.masters[leader].kill(signal.SIGKILL)
        new_leader = yield cluster.wait_leader(exclude={leader}, timeout=30)
        yield wait_for(lambda: self.reserved_on(new_leader).addCallback(lambda full: full == before), 30,
                       what="the reservation and the volume on the new leader")
        self.assertIn({"persistence": {"id": "vol1", "principal": PRINCIPAL},
                       "volume": {"container_path": "data", "mode": "RW"}}, [r.get("disk") for r in before])

        code, body, _ = yield self.post(new_leader, "/master/destroy-volumes", agent_id, volumes=volume("vol1", 64))
        self.assertEqual(code, 202, body)
        code, body, _ = yield self.post(new_leader, "/master/unreserve", agent_id,
                                        resources=reserved("cpus:1;disk:64"))
        self.assertEqual(code, 202, body)
        yield wait_for(lambda: not os.path.exists(path), 30, what="the volume removed by the agent")
        self.assertEqual((yield self.reserved_on(new_leader)), [])
        self.assertNotIn("Traceback", agent.log())
