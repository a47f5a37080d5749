"""Quota, maintenance and draining on real daemons, through the ``mesostw`` CLI and the operator API: a drain
that ends with the agent gone and its task reported, a drained agent that stays drained across a master
restart, machines taken down and brought up with inverse offers to a PB framework, a pymesos framework
(the HTTP scheduler API) that runs a task group and declines an inverse offer, quota honoured between
frameworks of different roles, and a reservation that counts towards its role's limit."""

from __future__ import annotations

import json
import threading
from typing import Any

from pymesos import MesosSchedulerDriver as PyMesosDriver
from pymesos import Scheduler as PyMesosScheduler
from twisted.internet import defer

from mesostw.model import task as T
from tests.helpers.cluster import RecordingScheduler, command_task
from tests.helpers.processes import ProcessCluster, http, wait_for
from tests.integration.test_containers import processes_with
from tests.integration.test_core_cluster import LaunchingScheduler
from tests.integration.test_operator_api import OperatorAPITestCase
from tests.integration.test_pymesos import resources


class DrainTests(OperatorAPITestCase):
    """Two agents; the master's registry on disk."""

    agents = 2

    @defer.inlineCallbacks
    def setUp(self):
        self.master_args = [f"--work_dir={self.mktemp()}", "--allocation_interval=0.2secs"]
        yield super().setUp()

    @defer.inlineCallbacks
    def agents_by_id(self) -> Any:
        _, answer = yield self.call({"type": "GET_AGENTS"})
        return {a["agent_info"]["id"]["value"]: a for a in answer["get_agents"]["agents"]}

    @defer.inlineCallbacks
    def test_drain_ends_with_the_agent_gone(self):
        """`mesostw drain --mark-gone`: the task is killed on the agent and reported TASK_KILLED, the framework
        hears the agent is lost, and the agent is gone from the master."""
        scheduler = LaunchingScheduler()
        scheduler.pending = [command_task("drained", "exec sleep 5151")]
        self.framework(scheduler)
        yield wait_for(lambda: T.RUNNING in scheduler.states("drained"), 60, what="TASK_RUNNING")
        agent_id = [u.agent_id for u in scheduler.updates if u.task_id == "drained"][0]
        done = yield self.mesostw("drain", agent_id, "--grace", "5s", "--mark-gone")
        self.assertEqual(done.returncode, 0, done.stderr)
        yield wait_for(lambda: T.KILLED in scheduler.states("drained"), 30, what="TASK_KILLED")
        killed = [u for u in scheduler.updates if u.task_id == "drained" and u.state == T.KILLED]
        self.assertEqual(killed[-1].reason, T.REASON_AGENT_DRAINING)
        yield wait_for(lambda: self.agents_by_id().addCallback(lambda agents: agent_id not in agents), 30,
                       what="the drained agent gone")
        yield wait_for(lambda: agent_id in scheduler.lost_agents, 30, what="the framework told the agent is lost")
        self.assertEqual(processes_with("sleep 5151"), [])
        again = yield self.mesostw("drain", agent_id)
        self.assertEqual(again.returncode, 1)
        self.assertIn("Unknown agent", again.stderr)

    @defer.inlineCallbacks
    def test_drained_and_deactivated_across_a_master_restart(self):
        """A drained agent (no task: DRAINED at once) and a deactivated one stay so when the master restarts:
        GET_AGENTS says so once they are back, and neither is offered."""
        agents = yield self.agents_by_id()
        drained, deactivated = sorted(agents)
        self.assertEqual((yield self.mesostw("drain", drained)).returncode, 0)
        self.assertEqual((yield self.mesostw("agents", "deactivate", deactivated)).returncode, 0)
        yield wait_for(lambda: self.agents_by_id().addCallback(
            lambda a: a[drained].get("drain_info", {}).get("state") == "DRAINED"), 30, what="DRAINED")
        self.cluster.master.stop()
        self.cluster.master.start()
        yield wait_for(lambda: self.agents_by_id().addCallback(lambda a: len(a) == 2), 60, what="both agents back")
        agents = yield self.agents_by_id()
        self.assertEqual(agents[drained]["drain_info"]["state"], "DRAINED")
        self.assertEqual((agents[drained]["deactivated"], agents[deactivated]["deactivated"]), (True, True))
        scheduler = RecordingScheduler()
        self.framework(scheduler)
        yield wait_for(lambda: scheduler.registrations, 30, what="the framework registered")
        self.assertEqual(scheduler.offers, [])
        listed = yield self.mesostw("agents")
        self.assertEqual(sorted(line.split()[2] for line in listed.stdout.splitlines()[1:]), ["deactivated", "drained"])
        self.assertEqual((yield self.mesostw("agents", "reactivate", deactivated)).returncode, 0)
        yield wait_for(lambda: scheduler.offers, 30, what="an offer of the reactivated agent")
        self.assertEqual({o.agent_id for o in scheduler.offers}, {deactivated})


class MaintenanceTests(OperatorAPITestCase):
    """Agents on machines 127.0.0.2 and 127.0.0.3 (their --ip, hence their hostnames)."""

    @defer.inlineCallbacks
    def setUp(self):
        self.cluster = ProcessCluster(self, agents=2, agent_ips=["127.0.0.2", "127.0.0.3"],
                                      master_args=["--allocation_interval=0.2secs"])
        yield self.cluster.start()

    @defer.inlineCallbacks
    def test_down_and_up(self):
        """A scheduled machine's framework gets an inverse offer, whose acceptance shows in the status; taken
        down, its agent is removed and its task TASK_LOST, and the agent is refused until the machine is up,
        when it registers again."""
        scheduler = LaunchingScheduler()
        scheduler.pending = [command_task("victim", "exec sleep 5252", "cpus:4;mem:64")]
        driver = self.framework(scheduler)
        yield wait_for(lambda: T.RUNNING in scheduler.states("victim"), 60, what="TASK_RUNNING")
        _, answer = yield self.call({"type": "GET_AGENTS"})
        agent_id = [u.agent_id for u in scheduler.updates if u.task_id == "victim"][0]
        [host] = [a["agent_info"]["hostname"] for a in answer["get_agents"]["agents"]
                  if a["agent_info"]["id"]["value"] == agent_id]
        done = yield self.mesostw("maintenance", "schedule", "set", "--machines", host, "--start", "+1h",
                                  "--duration", "1h")
        self.assertEqual(done.returncode, 0, done.stderr)
        yield wait_for(lambda: scheduler.inverse_offers, 30, what="an inverse offer")
        [inverse] = scheduler.inverse_offers
        self.assertEqual(inverse.agent_id, agent_id)
        driver.acceptInverseOffers([inverse.id])
        status = yield wait_for(lambda: self.mesostw("maintenance", "status").addCallback(
            lambda r: r if "ACCEPT" in r.stdout else None), 30, what="the answer in the status")
        self.assertIn(host, status.stdout)

        self.assertEqual((yield self.mesostw("maintenance", "down", host)).returncode, 0)
        yield wait_for(lambda: T.LOST in scheduler.states("victim"), 30, what="TASK_LOST")
        lost = [u for u in scheduler.updates if u.task_id == "victim"][-1]
        self.assertEqual(lost.reason, T.REASON_AGENT_REMOVED)
        yield wait_for(lambda: "its machine is DOWN" in self.cluster.master.log(), 60, what="the agent refused")
        _, answer = yield self.call({"type": "GET_AGENTS"})
        self.assertNotIn(agent_id, [a["agent_info"]["id"]["value"] for a in answer["get_agents"]["agents"]])
        status = yield self.mesostw("maintenance", "status", "--json")
        self.assertEqual(json.loads(status.stdout)["down_machines"], [{"ip": host}])  # an address: its IP
        yield wait_for(lambda: not processes_with("sleep 5252"), 30, what="the task shut down on its agent")

        self.assertEqual((yield self.mesostw("maintenance", "up", host)).returncode, 0)
        yield self.cluster.wait_agents(2, 60)
        schedule = yield self.mesostw("maintenance", "--json")
        self.assertEqual(json.loads(schedule.stdout), {"windows": []})


class GroupAndInverseOffers(PyMesosScheduler):
    """Launches one task group on the first offer, declines every inverse offer; records what it hears
    (pymesos calls from its own thread)."""

    def __init__(self, tasks: list[dict]):
        self.lock = threading.Lock()
        self.group = tasks
        self.updates: list[dict] = []
        self.inverse_offers: list[dict] = []
        self.agent_id: str | None = None

    def resourceOffers(self, driver, offers):
        with self.lock:
            for offer in offers:
                if not self.group:
                    driver.declineOffer(offer["id"], filters={"refuse_seconds": 1})
                    continue
                tasks, self.group = self.group, []
                self.agent_id = offer["agent_id"]["value"]
                for task in tasks:
                    task["agent_id"] = offer["agent_id"]
                executor = {"executor_id": {"value": "pod"}, "type": "DEFAULT", "resources": resources(0.1, 32)}
                driver.acceptOffers([offer["id"]], [{"type": "LAUNCH_GROUP", "launch_group": {
                    "executor": executor, "task_group": {"tasks": tasks}}}])

    def inverseOffers(self, driver, offers):
        with self.lock:
            self.inverse_offers.extend(offers)
        for offer in offers:
            driver.declineInverseOffer([offer["id"]], filters={"refuse_seconds": 3600})

    def statusUpdate(self, driver, update):
        with self.lock:
            self.updates.append(update)

    def states(self, task_id: str) -> list[str]:
        with self.lock:
            return [u["state"] for u in self.updates if u["task_id"]["value"] == task_id]


class HTTPSchedulerTests(OperatorAPITestCase):
    """pymesos, over the v1 scheduler API."""

    @defer.inlineCallbacks
    def test_task_group_and_declined_inverse_offer(self):
        """pymesos launches a task group (LAUNCH_GROUP) whose tasks both run in the default executor; once the
        agent's machine is scheduled for maintenance, pymesos's inverseOffers hears of it and its decline
        shows in the maintenance status."""
        tasks = [{"name": name, "task_id": {"value": name}, "resources": resources(),
                  "command": {"value": "exec sleep 4343"}} for name in ("pod-a", "pod-b")]
        scheduler = GroupAndInverseOffers(tasks)
        driver = PyMesosDriver(scheduler, {"user": "root", "name": "pymesos-pod", "hostname": "127.0.0.1"},
                               self.cluster.master_address)
        driver.start()

        def stop():
            driver.stop()
            driver.join()

        self.addCleanup(stop)
        yield wait_for(lambda: all("TASK_RUNNING" in scheduler.states(t) for t in ("pod-a", "pod-b")), 60,
                       what="the group running")
        _, answer = yield self.call({"type": "GET_AGENTS"})
        [agent] = answer["get_agents"]["agents"]
        self.assertEqual(agent["agent_info"]["id"]["value"], scheduler.agent_id)
        host = agent["agent_info"]["hostname"]
        done = yield self.mesostw("maintenance", "schedule", "set", "--machines", host, "--start", "+1h",
                                  "--duration", "1h")
        self.assertEqual(done.returncode, 0, done.stderr)
        yield wait_for(lambda: scheduler.inverse_offers, 30, what="an inverse offer through pymesos")
        self.assertEqual(scheduler.inverse_offers[0]["agent_id"]["value"], scheduler.agent_id)
        status = yield wait_for(lambda: self.call({"type": "GET_MAINTENANCE_STATUS"}).addCallback(
            lambda r: r[1]["get_maintenance_status"]["status"] if "DECLINE" in json.dumps(r[1]) else None), 30,
            what="the decline in the status")
        [machine] = status["draining_machines"]
        self.assertEqual([s["status"] for s in machine["statuses"]], ["DECLINE"])
        self.assertEqual(len(processes_with("sleep 4343")), 2)


class QuotaTests(OperatorAPITestCase):
    """Two agents of cpus:4;mem:4096;disk:4096."""

    agents = 2

    @defer.inlineCallbacks
    def setUp(self):
        self.master_args = ["--allocation_interval=0.2secs"]
        yield super().setUp()

    @defer.inlineCallbacks
    def held(self, framework_id: str) -> Any:
        _, answer = yield self.call({"type": "GET_FRAMEWORKS"})
        [framework] = [f for f in answer["get_frameworks"]["frameworks"]
                       if f["framework_info"]["id"]["value"] == framework_id]
        total: dict[str, float] = {}
        for key in ("offered_resources", "allocated_resources"):
            for resource in framework.get(key, []):
                if resource["type"] == "SCALAR":
                    total[resource["name"]] = total.get(resource["name"], 0.0) + resource["scalar"]["value"]
        return total

    @defer.inlineCallbacks
    def test_quota_honoured_between_roles(self):
        """With prod guaranteed 5 cpus and 2 GB and dev limited to 1 cpu (set with `mesostw quota`), dev's
        framework, first, gets 1 cpu; a greedy framework of another role leaves prod its guarantee; prod,
        last, gets it."""
        for argv in (("quota", "set", "prod", "--guarantee", "cpus=5,mem=2048"),
                     ("quota", "set", "dev", "--limit", "cpus=1")):
            done = yield self.mesostw(*argv)
            self.assertEqual(done.returncode, 0, done.stderr)
        listed = yield self.mesostw("quota")
        self.assertEqual([line.split()[0] for line in listed.stdout.splitlines()], ["ROLE", "dev", "prod"])
        schedulers = {}
        for role in ("dev", "ops", "prod"):
            scheduler = schedulers[role] = RecordingScheduler()
            scheduler.decline_unused = False
            self.framework(scheduler, role=role)
            yield wait_for(lambda s=scheduler: s.offers, 30, what=f"offers to {role}")
        prod = yield wait_for(lambda: self.held(schedulers["prod"].framework_id).addCallback(
            lambda h: h if h.get("cpus", 0) >= 5 else None), 30, what="prod's guarantee")
        self.assertGreaterEqual(prod["mem"], 2048)
        ops = yield self.held(schedulers["ops"].framework_id)
        dev = yield self.held(schedulers["dev"].framework_id)
        self.assertEqual(dev.get("cpus"), 1)
        self.assertEqual(ops.get("cpus", 0) + prod["cpus"] + dev["cpus"], 8)
        refused = yield self.mesostw("quota", "set", "dev", "--limit", "cpus=0.5", "--guarantee", "cpus=1")
        self.assertEqual(refused.returncode, 1)
        self.assertIn("more than its limit", refused.stderr)
        code, _, _ = yield http("GET", self.cluster.url("/quota"))
        self.assertEqual(code, 200)

    @defer.inlineCallbacks
    def test_a_reservation_counts_towards_the_limit(self):
        """eng limited to 3 cpus, 2 of them reserved for it on one agent with `mesostw reserve`: `mesostw quota`
        shows the reservation consumed before any framework, and eng's framework then holds the 2 reserved
        cpus and only 1 unreserved one, over both agents."""
        done = yield self.mesostw("quota", "set", "eng", "--limit", "cpus=3")
        self.assertEqual(done.returncode, 0, done.stderr)
        _, answer = yield self.call({"type": "GET_AGENTS"})
        agent_id = answer["get_agents"]["agents"][0]["agent_info"]["id"]["value"]
        done = yield self.mesostw("reserve", agent_id, "cpus:2", "--role", "eng")
        self.assertEqual(done.returncode, 0, done.stderr)
        listed = yield self.mesostw("quota")
        self.assertEqual(listed.stdout.splitlines()[1].split(), ["eng", "-", "cpus=3", "cpus=2"])
        scheduler = RecordingScheduler()
        scheduler.decline_unused = False
        self.framework(scheduler, role="eng")

        def reserved_and_unreserved(framework):
            amounts = [0.0, 0.0]
            for resource in framework.get("offered_resources", []):
                if resource["name"] == "cpus":
                    amounts[0 if resource.get("reservations") else 1] += resource["scalar"]["value"]
            return amounts

        @defer.inlineCallbacks
        def held():
            _, frameworks = yield self.call({"type": "GET_FRAMEWORKS"})
            [framework] = frameworks["get_frameworks"]["frameworks"]
            return reserved_and_unreserved(framework)

        amounts = yield wait_for(lambda: held().addCallback(lambda a: a if a[0] == 2 else None), 30,
                                 what="the reserved cpus offered")
        self.assertEqual(amounts, [2.0, 1.0])
