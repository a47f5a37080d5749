"""Maintenance on the in-process cluster: schedules, unavailability on offers, inverse offers and their
answers, machines going down (agents removed, tasks ended) and up again, durability, the v0 endpoints."""

from __future__ import annotations

import json
from typing import Any

from mesostw.http.router import Router
from mesostw.master.http import MasterEndpoints
from mesostw.master.master import Master
from mesostw.master.registry import Registry
from mesostw.model import task as T
from mesostw.model.info import Filters
from mesostw.model.maintenance import Schedule
from mesostw.store.memory import MemoryStateStore
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task
from tests.helpers.pbcluster import PBCluster
from tests.helpers.v1shapes import MASTER_RESPONSES
from tests.helpers.web import Client, Reply
from tests.unit.test_operator_endpoints import problems
from tests.unit.test_scheduler_http import SchedulerAPITestCase

JSON = {"Content-Type": "application/json"}
HOUR = 3600 * 10**9


def window(*hosts: str, start: int = 10**18, duration: int | None = HOUR) -> dict[str, Any]:
    unavailability: dict[str, Any] = {"start": {"nanoseconds": start}}
    if duration is not None:
        unavailability["duration"] = {"nanoseconds": duration}
    return {"machine_ids": [{"hostname": h} for h in hosts], "unavailability": unavailability}


class MaintenanceCase(ClockTestCase):
    """Agents on machines h1 and h2 (cpus:2;mem:1024 each), a framework running t1 on h1's agent."""

    cluster_class: Any = Cluster
    partition_aware = False

    def setUp(self) -> None:
        self.cluster = cluster = self.cluster_class(agents=0)
        self.useClock(cluster.clock)
        self.addCleanup(cluster.stop)
        self.master = cluster.master
        self.store = MemoryStateStore()
        self.master.registry = Registry(self.store)
        self.successResultOf(self.master.registry.recover())
        self.h1 = cluster.add_agent("cpus:2;mem:1024", port=5051, hostname="h1")
        self.h2 = cluster.add_agent("cpus:2;mem:1024", port=5052, hostname="h2")
        cluster.settle()
        self.scheduler = RecordingScheduler()
        self.scheduler.decline_unused = False
        capabilities = frozenset({"PARTITION_AWARE"}) if self.partition_aware else frozenset()
        self.scheduler, self.driver = cluster.framework("maint", scheduler=self.scheduler, capabilities=capabilities)
        self.launch("t1", self.h1.id)
        router = Router()
        MasterEndpoints(self.master, cluster.config.rendered()).install(router)
        self.client = Client(router)

    def launch(self, task_id: str, agent_id: str, command: str = "sleep 100") -> None:
        offer = next(o for o in self.master.offers.of_framework(self.scheduler.framework_id) if o.agent_id == agent_id)
        task = command_task(task_id, command)
        task["agent_id"] = {"value": agent_id}
        self.driver.launchTasks([offer.id], [task], Filters(0))
        self.cluster.settle()

    def tick(self) -> None:
        """One turn of the master's allocation loop (``--allocation_interval``), which the cluster has not."""
        self.master.allocate()
        self.cluster.settle()

    def rejoin(self, agent: Any) -> Any:
        """The agent connects again and (re-)registers; the Deferred of its registration."""
        from tests.helpers.cluster import DirectMasterLink

        link = DirectMasterLink(self.master, agent, self.cluster.clock)
        self.cluster.links[id(agent)] = link
        d = agent.masterConnected(link)
        self.cluster.settle()
        return d

    def assertRejoinRefused(self, agent: Any) -> None:
        self.assertIn("Machine is DOWN", self.failureResultOf(self.rejoin(agent)).getErrorMessage())
        self.assertEqual(self.master.metrics["registrations_refused_machine_down"], 1)

    def assertRejoins(self, agent: Any) -> None:
        self.successResultOf(self.rejoin(agent))

    def call(self, body: dict[str, Any]) -> Reply:
        reply = self.client.request("POST", "/api/v1", json.dumps(body).encode(), JSON)
        self.cluster.settle()
        return reply

    def answer(self, call_type: str, **fields: Any) -> Any:
        reply = self.call({"type": call_type, **fields})
        self.assertEqual(reply.code, 200, reply.body)
        if call_type in MASTER_RESPONSES:
            self.assertEqual(problems(reply.json(), MASTER_RESPONSES[call_type]), [])
            return reply.json()[call_type.lower()]
        return None

    def schedule(self, *windows: dict[str, Any]) -> Reply:
        return self.call({"type": "UPDATE_MAINTENANCE_SCHEDULE",
                          "update_maintenance_schedule": {"schedule": {"windows": list(windows)}}})

    def machines_call(self, call_type: str, *hosts: str) -> Reply:
        return self.call({"type": call_type, call_type.lower(): {"machines": [{"hostname": h} for h in hosts]}})

    def status(self) -> dict[str, Any]:
        return self.answer("GET_MAINTENANCE_STATUS")["status"]

    def assertRefused(self, reply: Reply, code: int, fragment: str) -> None:
        self.assertEqual(reply.code, code, reply.body)
        self.assertIn(fragment, reply.json()["message"])


class ScheduleTests(MaintenanceCase):
    def test_schedule_round_trip_and_status(self) -> None:
        """A schedule is read back as given; its machines are DRAINING, with no answers yet."""
        self.assertEqual(self.schedule(window("h1", "10.0.0.9")).code, 200)
        schedule = self.answer("GET_MAINTENANCE_SCHEDULE")["schedule"]
        self.assertEqual(schedule, {"windows": [window("h1", "10.0.0.9")]})
        self.assertEqual(self.status(), {"draining_machines": [{"id": {"hostname": "10.0.0.9"}, "statuses": []},
                                                               {"id": {"hostname": "h1"}, "statuses": []}],
                                         "down_machines": []})
        self.assertEqual(self.client.get_json("/maintenance/schedule"), schedule)
        self.assertEqual(self.client.get_json("/master/maintenance/status")["draining_machines"][1]["id"],
                         {"hostname": "h1"})

    def test_invalid_schedules_are_refused(self) -> None:
        """Empty windows, machines twice, machines with neither hostname nor a valid IP, negative durations and
        a missing unavailability are 400s, and the schedule stays as it was."""
        bad = [
            {"machine_ids": [], "unavailability": {"start": {"nanoseconds": 1}}},
            window("h1", "h1"),
            {"machine_ids": [{}], "unavailability": {"start": {"nanoseconds": 1}}},
            {"machine_ids": [{"ip": "300.1.1.1"}], "unavailability": {"start": {"nanoseconds": 1}}},
            window("h1", duration=-1),
            {"machine_ids": [{"hostname": "h1"}]},
        ]
        for entry in bad:
            self.assertEqual(self.schedule(entry).code, 400, entry)
        self.assertEqual(self.answer("GET_MAINTENANCE_SCHEDULE")["schedule"], {"windows": []})
        reply = self.client.request("POST", "/maintenance/schedule", b"[1]", JSON)
        self.assertEqual(reply.code, 400)

    def test_offers_carry_unavailability(self) -> None:
        """Offers of an agent on a scheduled machine are rescinded and made again with its unavailability; the
        other agent's are not."""
        other = self.scheduler
        before = {o.agent_id: o.id for o in self.master.offers.of_framework(other.framework_id)}
        self.assertEqual(self.schedule(window("h2", start=5 * 10**18)).code, 200)
        self.assertIn(before[self.h2.id], other.rescinded)
        self.assertNotIn(before[self.h1.id], other.rescinded)
        [remade] = [o for o in self.master.offers.of_framework(other.framework_id) if o.agent_id == self.h2.id]
        self.assertEqual(remade.unavailability.start, 5e9)
        self.assertEqual(remade.to_json()["unavailability"], {"start": {"nanoseconds": 5 * 10**18},
                                                             "duration": {"nanoseconds": HOUR}})
        [kept] = [o for o in self.master.offers.of_framework(other.framework_id) if o.agent_id == self.h1.id]
        self.assertIsNone(kept.unavailability)


class InverseOfferTests(MaintenanceCase):
    def test_frameworks_using_the_agent_are_asked(self) -> None:
        """A framework with a task on a DRAINING machine's agent gets one inverse offer for it, with the
        window's unavailability; none for the other agent, where it holds nothing."""
        self.assertEqual(self.schedule(window("h1")).code, 200)
        [inverse] = self.scheduler.inverse_offers
        self.assertEqual((inverse.agent_id, inverse.framework_id), (self.h1.id, self.scheduler.framework_id))
        self.assertEqual(inverse.unavailability.duration, 3600.0)
        [framework] = self.answer("GET_FRAMEWORKS")["frameworks"]
        self.assertEqual([o["id"]["value"] for o in framework["inverse_offers"]], [inverse.id])
        self.cluster.advance(3)
        self.assertEqual(len(self.scheduler.inverse_offers), 1)  # one outstanding at a time

    def test_answers_reach_the_status_and_filter(self) -> None:
        """Accepting shows as ACCEPT in the status; the framework is asked again once its filter expires;
        declining then shows as DECLINE."""
        self.schedule(window("h1"))
        [inverse] = self.scheduler.inverse_offers
        self.cluster.clock.advance(1)
        self.driver.acceptInverseOffers([inverse.id], Filters(refuse_seconds=10))
        self.cluster.settle()
        [machine] = self.status()["draining_machines"]
        [answer] = machine["statuses"]
        self.assertEqual((answer["status"], answer["framework_id"]), ("ACCEPT", {"value": self.scheduler.framework_id}))
        self.assertEqual(answer["timestamp"], {"nanoseconds": 10**9})
        self.cluster.advance(8)
        self.tick()
        self.assertEqual(len(self.scheduler.inverse_offers), 1)
        self.cluster.advance(3)
        self.tick()
        self.assertEqual(len(self.scheduler.inverse_offers), 2)
        self.driver.declineInverseOffer(self.scheduler.inverse_offers[-1].id)
        self.cluster.settle()
        self.assertEqual(self.status()["draining_machines"][0]["statuses"][0]["status"], "DECLINE")
        self.driver.declineInverseOffer(["no-such-inverse-offer"])  # ignored, as Mesos
        self.cluster.settle()

    def test_leaving_the_schedule_rescinds(self) -> None:
        """A machine taken out of the schedule is UP: its inverse offers are rescinded, its answers forgotten."""
        self.schedule(window("h1"))
        [inverse] = self.scheduler.inverse_offers
        self.assertEqual(self.schedule().code, 200)
        self.assertEqual(self.scheduler.inverse_rescinded, [inverse.id])
        self.assertEqual(self.status(), {"draining_machines": [], "down_machines": []})
        offers = [o for o in self.master.offers.of_framework(self.scheduler.framework_id) if o.agent_id == self.h1.id]
        self.assertTrue(all(o.unavailability is None for o in offers))


class DownUpTests(MaintenanceCase):
    def test_machine_down_removes_its_agents(self) -> None:
        """START_MAINTENANCE: the agent is removed (its framework told it is lost), its task is TASK_LOST with
        REASON_AGENT_REMOVED, the agent is told to shut its frameworks down, and it may not register again
        while the machine is down."""
        self.schedule(window("h1"))
        self.assertEqual(self.machines_call("START_MAINTENANCE", "h1").code, 200)
        self.assertEqual(self.scheduler.states("t1"), [T.RUNNING, T.LOST])
        lost = self.scheduler.updates[-1]
        self.assertEqual((lost.reason, lost.message), (T.REASON_AGENT_REMOVED, "Operator initiated 'Machine DOWN'"))
        self.assertIn(self.h1.id, self.scheduler.lost_agents)
        self.assertNotIn(self.h1.id, self.master.agents)
        self.cluster.advance(10)  # the executor's shutdown grace period
        self.assertNotIn(self.scheduler.framework_id, self.h1.frameworks)  # shut down on the agent too
        self.assertEqual(self.status()["down_machines"], [{"hostname": "h1"}])
        self.assertRejoinRefused(self.h1)
        self.assertNotIn(self.h1.id, self.master.agents)

    def test_machine_up_lets_agents_back(self) -> None:
        """STOP_MAINTENANCE: the machine leaves the schedule and its agent registers again."""
        self.schedule(window("h1", "h2"))
        self.machines_call("START_MAINTENANCE", "h1")
        self.assertEqual(self.machines_call("STOP_MAINTENANCE", "h1").code, 200)
        self.assertEqual(self.answer("GET_MAINTENANCE_SCHEDULE")["schedule"], {"windows": [window("h2")]})
        self.assertRejoins(self.h1)
        self.assertIn(self.h1.id, self.master.agents)

    def test_transitions_are_checked(self) -> None:
        """Only scheduled DRAINING machines go down, only DOWN ones come up, a DOWN machine cannot leave the
        schedule, and machine lists must be non-empty and distinct."""
        self.assertRefused(self.machines_call("START_MAINTENANCE", "h1"), 400, "not part of a maintenance schedule")
        self.schedule(window("h1"))
        self.assertRefused(self.machines_call("STOP_MAINTENANCE", "h1"), 400, "not in DOWN mode")
        self.machines_call("START_MAINTENANCE", "h1")
        self.assertRefused(self.machines_call("START_MAINTENANCE", "h1"), 400, "not in DRAINING mode")
        self.assertRefused(self.schedule(window("h2")), 400, "cannot be removed from the schedule")
        self.assertRefused(self.machines_call("STOP_MAINTENANCE"), 400, "empty")
        self.assertRefused(self.machines_call("STOP_MAINTENANCE", "h1", "H1"), 400, "more than once")

    def test_v0_endpoints(self) -> None:
        """POST /maintenance/schedule, /machine/down and /machine/up do what the v1 calls do."""
        def post(path: str, body: Any) -> Reply:
            reply = self.client.request("POST", path, json.dumps(body).encode(), JSON)
            self.cluster.settle()
            return reply

        self.assertEqual(post("/maintenance/schedule", {"windows": [window("h2")]}).code, 200)
        self.assertEqual(post("/machine/down", [{"hostname": "h2"}]).code, 200)
        self.assertNotIn(self.h2.id, self.master.agents)
        self.assertEqual(post("/master/machine/down", [{"hostname": "h1"}]).code, 400)
        self.assertEqual(post("/machine/up", {"hostname": "h2"}).code, 400)
        self.assertEqual(post("/machine/up", [{"hostname": "h2"}]).code, 200)
        self.assertEqual(self.client.get_json("/maintenance/status"), {"draining_machines": [], "down_machines": []})

    def test_durable_across_failover(self) -> None:
        """A new leader recovers the schedule and the machines that are down: the agent of a DOWN machine is
        refused by it too."""
        self.schedule(window("h1", "h2"))
        self.machines_call("START_MAINTENANCE", "h1")
        state = self.successResultOf(Registry(self.store).recover())
        successor = Master(self.cluster.config, type(self.cluster.allocator)(self.cluster.clock), self.cluster.clock,
                           master_id="N")
        self.addCleanup(successor.stop)
        successor.recover(state)
        self.assertEqual(successor.maintenance.status_json(), self.master.maintenance.status_json())
        self.assertEqual(successor.maintenance.schedule, self.master.maintenance.schedule)
        from tests.helpers.cluster import DirectAgentLink

        refused = successor.reregisterAgent(DirectAgentLink(None, self.cluster.clock), self.h1.info, [], [], [])
        self.assertIn("DOWN", self.failureResultOf(refused).getErrorMessage())


class PartitionAwareDownTests(MaintenanceCase):
    partition_aware = True

    def test_tasks_of_partition_aware_frameworks_are_gone_by_operator(self) -> None:
        """A partition-aware framework hears TASK_GONE_BY_OPERATOR (REASON_AGENT_REMOVED_BY_OPERATOR)."""
        self.schedule(window("h1"))
        self.machines_call("START_MAINTENANCE", "h1")
        self.assertEqual(self.scheduler.states("t1"), [T.RUNNING, T.GONE_BY_OPERATOR])
        self.assertEqual(self.scheduler.updates[-1].reason, T.REASON_AGENT_REMOVED_BY_OPERATOR)


class PBInverseOfferTests(InverseOfferTests):
    """The same, with the framework's driver and the agents speaking Perspective Broker to the master: the PB
    driver delivers inverse offers and their rescinding, and sends the answers, and agents are matched to
    machines by the hostnames they register with."""

    cluster_class = PBCluster


class PBDownUpTests(DownUpTests):
    """Machines down and up with agents over PB (refused while down, back once up)."""

    cluster_class = PBCluster

    def assertRejoinRefused(self, agent: Any) -> None:
        """The agent keeps dialling (with backoff) and is refused each time."""
        before = self.master.metrics["registrations_refused_machine_down"]
        self.cluster.reset(agent)
        self.cluster.advance(30)
        self.assertGreater(self.master.metrics["registrations_refused_machine_down"], before)

    def assertRejoins(self, agent: Any) -> None:
        """Once its machine is up, the agent's next attempt is admitted."""
        self.cluster.reset(agent)
        self.cluster.advance(60)


class SchedulerHTTPInverseOfferTests(SchedulerAPITestCase):
    def test_inverse_offers_over_the_scheduler_api(self) -> None:
        """An HTTP framework gets INVERSE_OFFERS on its stream, ACCEPT_INVERSE_OFFERS and DECLINE_INVERSE_OFFERS
        are accepted (202) and reach the maintenance status, and leaving the schedule sends
        RESCIND_INVERSE_OFFER."""
        stream = self.subscribe()
        self.launch(stream)
        hostname = self.cluster.agents[0].info.hostname
        schedule = Schedule.from_json({"windows": [window(hostname)]})
        self.successResultOf(self.cluster.master.maintenance.update_schedule(schedule))
        self.cluster.settle()
        [event] = stream.of_type("INVERSE_OFFERS")
        [inverse] = event["inverse_offers"]["inverse_offers"]
        self.assertEqual(inverse["agent_id"], {"value": self.cluster.agents[0].id})
        self.assertEqual(inverse["unavailability"], window(hostname)["unavailability"])
        self.accepted(self.call(stream, "ACCEPT_INVERSE_OFFERS", {"inverse_offer_ids": [inverse["id"]],
                                                                  "filters": {"refuse_seconds": 0}}))
        [machine] = self.cluster.master.maintenance.status_json()["draining_machines"]
        self.assertEqual(machine["statuses"][0]["status"], "ACCEPT")
        self.cluster.master.allocate()
        self.cluster.settle()
        [_, again] = stream.of_type("INVERSE_OFFERS")
        second = again["inverse_offers"]["inverse_offers"][0]
        self.accepted(self.call(stream, "DECLINE_INVERSE_OFFERS", {"inverse_offer_ids": [second["id"]]}))
        [machine] = self.cluster.master.maintenance.status_json()["draining_machines"]
        self.assertEqual(machine["statuses"][0]["status"], "DECLINE")
        self.cluster.master.allocate()  # declined with the default 5 s filter: not asked again yet
        self.cluster.settle()
        self.assertEqual(len(stream.of_type("INVERSE_OFFERS")), 2)
        self.cluster.clock.advance(6)
        self.cluster.master.allocate()
        self.cluster.settle()
        third = stream.of_type("INVERSE_OFFERS")[2]["inverse_offers"]["inverse_offers"][0]
        self.successResultOf(self.cluster.master.maintenance.update_schedule(Schedule()))
        self.cluster.settle()
        [rescind] = stream.of_type("RESCIND_INVERSE_OFFER")
        self.assertEqual(rescind["rescind_inverse_offer"]["inverse_offer_id"], third["id"])
