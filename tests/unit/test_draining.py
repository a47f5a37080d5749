"""DRAIN_AGENT, DEACTIVATE_AGENT and REACTIVATE_AGENT on the in-process cluster: offers stop, tasks are
killed within the grace period, the agent ends DRAINED or gone, and all of it survives a master failover."""

from __future__ import annotations

import json
import os
from typing import Any

from mesostw.http.router import Router
from mesostw.master.http import MasterEndpoints
from mesostw.master.master import Master
from mesostw.master.registry import Registry
from mesostw.model import task as T
from mesostw.model.info import Filters
from mesostw.store.memory import MemoryStateStore
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task
from tests.helpers.pbcluster import PBCluster
from tests.helpers.web import Client, Reply

JSON = {"Content-Type": "application/json"}


class DrainCase(ClockTestCase):
    """Two agents; a framework runs t1 (kill grace 20 s) and t2 (no kill policy) on the first."""

    cluster_class: Any = Cluster
    capabilities: frozenset[str] = frozenset()

    def master_flags(self) -> dict[str, Any]:
        return {}

    def setUp(self) -> None:
        self.cluster = cluster = self.cluster_class(agents=2, **self.master_flags())
        self.useClock(cluster.clock)
        self.addCleanup(cluster.stop)
        self.master = cluster.master
        self.store = MemoryStateStore()
        self.master.registry = Registry(self.store)
        self.successResultOf(self.master.registry.recover())
        self.agent, self.other = cluster.agents
        self.scheduler = RecordingScheduler()
        self.scheduler.decline_unused = False
        _, self.driver = cluster.framework("drained", scheduler=self.scheduler, checkpoint=True,
                                           capabilities=self.capabilities)
        offer = next(o for o in self.master.offers.of_framework(self.scheduler.framework_id)
                     if o.agent_id == self.agent.id)
        t1 = {**command_task("t1", "sleep 100"), "agent_id": {"value": self.agent.id},
              "kill_policy": {"grace_period": {"nanoseconds": 20 * 10**9}}}
        t2 = {**command_task("t2", "sleep 100"), "agent_id": {"value": self.agent.id}}
        self.driver.launchTasks([offer.id], [t1, t2], Filters(0))
        cluster.settle()
        router = Router()
        MasterEndpoints(self.master, cluster.config.rendered()).install(router)
        self.client = Client(router)

    def call(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> Reply:
        reply = self.client.request("POST", "/api/v1", json.dumps(body).encode(), headers or JSON)
        self.cluster.settle()
        return reply

    def drain(self, agent_id: str, **fields: Any) -> Reply:
        return self.call({"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": agent_id}, **fields}})

    def agent_call(self, call_type: str, agent_id: str) -> Reply:
        return self.call({"type": call_type, call_type.lower(): {"agent_id": {"value": agent_id}}})

    def agent_v1(self, agent_id: str) -> dict[str, Any] | None:
        agents = self.call({"type": "GET_AGENTS"}).json()["get_agents"]["agents"]
        return next((a for a in agents if a["agent_info"]["id"]["value"] == agent_id), None)

    def offered_on(self, agent_id: str) -> list[Any]:
        return [o for o in self.master.offers if o.agent_id == agent_id]

    def assertRefused(self, reply: Reply, code: int, fragment: str) -> None:
        self.assertEqual(reply.code, code, reply.body)
        self.assertIn(fragment, reply.json()["message"])


class DrainTests(DrainCase):
    def test_drain_kills_tasks_within_the_grace_period(self) -> None:
        """The agent is deactivated at once (its offers rescinded, none made), its tasks are killed with the
        shorter of their grace period and max_grace_period, and once their TASK_KILLED are acknowledged the
        agent is DRAINED."""
        self.assertTrue(self.offered_on(self.agent.id))
        self.assertEqual(self.drain(self.agent.id, max_grace_period="10s").code, 200)
        self.assertEqual(self.offered_on(self.agent.id), [])
        self.assertEqual(self.scheduler.states("t1"), [T.RUNNING, T.KILLED])
        self.assertEqual(self.scheduler.states("t2"), [T.RUNNING, T.KILLED])
        self.assertEqual({u.reason for u in self.scheduler.updates if u.state == T.KILLED}, {T.REASON_AGENT_DRAINING})
        model = self.agent_v1(self.agent.id)
        assert model is not None
        self.assertEqual((model["deactivated"], model["active"]), (True, False))
        self.assertEqual(model["drain_info"], {"state": "DRAINED", "config": {
            "mark_gone": False, "max_grace_period": {"nanoseconds": 10 * 10**9}}})
        self.master.allocate()
        self.cluster.settle()
        self.assertEqual(self.offered_on(self.agent.id), [])
        state = self.client.get_json("/master/slaves")["slaves"]
        [v0] = [s for s in state if s["id"] == self.agent.id]
        self.assertEqual((v0["deactivated"], v0["drain_info"]["state"]), (True, "DRAINED"))

    def test_grace_periods_sent_to_the_agent(self) -> None:
        """The kill carries min(task's grace period, max_grace_period), or max_grace_period when the task has
        none."""
        self.cluster.cut(self.agent)  # the kills wait for it
        self.cluster.settle()
        self.assertEqual(self.drain(self.agent.id, max_grace_period="10s").code, 200)
        link = self.cluster.connect(self.agent)
        self.cluster.settle()
        kills = sorted(link.agent_link.named("killTask"))
        self.assertEqual(kills, [(self.scheduler.framework_id, "t1", 10.0), (self.scheduler.framework_id, "t2", 10.0)])

    def test_drain_and_mark_gone(self) -> None:
        """With mark_gone, the drained agent is marked gone: removed, and never back."""
        self.assertEqual(self.drain(self.agent.id, mark_gone=True).code, 200)
        self.assertNotIn(self.agent.id, self.master.agents)
        self.assertIn(self.agent.id, self.master.agent_manager.gone)
        self.assertEqual(self.master.agent_states.state_json(self.agent.id), None)
        state = self.successResultOf(Registry(self.store).recover())
        self.assertIn(self.agent.id, state.gone)
        self.assertNotIn(self.agent.id, state.agent_states)

    def test_kills_after_the_drain_are_the_frameworks_own(self) -> None:
        """A task killed on a drained (no longer draining) agent is reported as the agent reports it."""
        self.assertEqual(self.drain(self.agent.id).code, 200)
        update = T.TaskStatus("t3", T.KILLED, reason=T.REASON_TASK_KILLED_DURING_LAUNCH)
        self.assertIs(self.master.agent_states.reported(self.agent.id, update, True), update)
        self.assertIs(self.master.agent_states.reported(self.other.id, update, True), update)

    def test_drain_waits_for_acknowledgements(self) -> None:
        """With explicit acknowledgements the agent stays DRAINING until the terminal updates are acknowledged."""
        for offer in self.offered_on(self.other.id):
            self.driver.declineOffer(offer.id, Filters(1000))
        self.cluster.settle()
        scheduler = RecordingScheduler()
        scheduler.decline_unused = False
        _, driver = self.cluster.framework("explicit", scheduler=scheduler, implicit_acknowledgements=False)
        offer = next(o for o in self.master.offers.of_framework(scheduler.framework_id) if o.agent_id == self.other.id)
        driver.launchTasks([offer.id], [{**command_task("e1", "sleep 100"), "agent_id": {"value": self.other.id}}])
        self.cluster.settle()
        for update in scheduler.updates:
            driver.acknowledgeStatusUpdate(update)
        self.cluster.settle()
        self.drain(self.other.id)
        self.assertEqual(scheduler.states("e1"), [T.RUNNING, T.KILLED])
        self.assertEqual(self.master.agent_states.draining[self.other.id].state, "DRAINING")
        driver.acknowledgeStatusUpdate(scheduler.updates[-1])
        self.cluster.settle()
        self.assertEqual(self.master.agent_states.draining[self.other.id].state, "DRAINED")

    def test_refusals(self) -> None:
        """Unknown agents and bad durations are 400s; a DRAINING agent cannot be reactivated."""
        self.assertRefused(self.drain("no-such-agent"), 400, "Unknown agent")
        self.assertEqual(self.drain(self.agent.id, max_grace_period="soon").code, 400)
        self.assertEqual(self.drain(self.agent.id, max_grace_period=-1).code, 400)
        self.cluster.cut(self.agent)
        self.cluster.settle()
        self.drain(self.agent.id)
        self.assertRefused(self.agent_call("REACTIVATE_AGENT", self.agent.id), 400, "still in the DRAINING state")

    def test_drained_agent_reactivated(self) -> None:
        """REACTIVATE_AGENT of a DRAINED agent clears its drain state: it is offered again."""
        self.drain(self.agent.id)
        self.assertEqual(self.agent_call("REACTIVATE_AGENT", self.agent.id).code, 200)
        model = self.agent_v1(self.agent.id)
        assert model is not None
        self.assertNotIn("drain_info", model)
        self.assertTrue(self.offered_on(self.agent.id))



class PartitionAwareDrainTests(DrainCase):
    """The framework is partition-aware."""

    capabilities = frozenset({"PARTITION_AWARE"})

    def test_a_drain_that_marks_the_agent_gone_reports_tasks_gone(self) -> None:
        """With mark_gone a partition-aware framework hears TASK_GONE_BY_OPERATOR (REASON_AGENT_DRAINING) for
        each task the drain kills, as Mesos's agents report them; the agent is then gone."""
        self.assertEqual(self.drain(self.agent.id, mark_gone=True).code, 200)
        for task_id in ("t1", "t2"):
            self.assertEqual(self.scheduler.states(task_id), [T.RUNNING, T.GONE_BY_OPERATOR])
        self.assertEqual({u.reason for u in self.scheduler.updates if u.state == T.GONE_BY_OPERATOR},
                         {T.REASON_AGENT_DRAINING})
        self.assertIn(self.agent.id, self.master.agent_manager.gone)

    def test_a_drain_that_keeps_the_agent_reports_tasks_killed(self) -> None:
        """Without mark_gone the same framework hears TASK_KILLED (REASON_AGENT_DRAINING)."""
        self.assertEqual(self.drain(self.agent.id).code, 200)
        self.assertEqual(self.scheduler.states("t1"), [T.RUNNING, T.KILLED])
        self.assertEqual(self.scheduler.updates[-1].reason, T.REASON_AGENT_DRAINING)

class DeactivationTests(DrainCase):
    def test_deactivate_and_reactivate(self) -> None:
        """A deactivated agent keeps its tasks and gets no offers; reactivated, it is offered again; reactivating
        an active agent is a 400."""
        self.assertEqual(self.agent_call("DEACTIVATE_AGENT", self.agent.id).code, 200)
        self.assertEqual(self.offered_on(self.agent.id), [])
        self.assertEqual(self.scheduler.states("t1"), [T.RUNNING])
        self.master.allocate()
        self.cluster.settle()
        self.assertEqual(self.offered_on(self.agent.id), [])
        self.assertEqual(self.agent_call("REACTIVATE_AGENT", self.agent.id).code, 200)
        self.assertTrue(self.offered_on(self.agent.id))
        self.assertRefused(self.agent_call("REACTIVATE_AGENT", self.agent.id), 400, "not deactivated")
        self.assertRefused(self.agent_call("DEACTIVATE_AGENT", "nobody"), 400, "Unknown agent")

    def test_deactivation_outlives_reconnection_and_failover(self) -> None:
        """A deactivated agent that reconnects stays deactivated; a new leader recovers deactivated and
        draining agents from the registry, deactivates them when they re-register and kills a draining one's
        tasks again."""
        self.agent_call("DEACTIVATE_AGENT", self.other.id)
        self.cluster.cut(self.other)
        self.cluster.settle()
        self.cluster.connect(self.other)
        self.cluster.settle()
        self.assertEqual(self.offered_on(self.other.id), [])
        self.cluster.cut(self.agent)
        self.cluster.settle()
        self.drain(self.agent.id)
        state = self.successResultOf(Registry(self.store).recover())
        self.assertEqual(state.agent_states[self.other.id], {"deactivated": True})
        self.assertEqual(state.agent_states[self.agent.id]["drain_info"]["state"], "DRAINING")
        successor = Master(self.cluster.config, type(self.cluster.allocator)(self.cluster.clock), self.cluster.clock,
                           master_id="N")
        self.addCleanup(successor.stop)
        successor.recover(state)
        self.assertEqual(successor.agent_states.deactivated, {self.agent.id, self.other.id})
        from tests.helpers.cluster import DirectAgentLink

        link = DirectAgentLink(None, self.cluster.clock)
        framework = self.agent.frameworks[self.scheduler.framework_id].info
        self.successResultOf(successor.reregisterAgent(link, self.agent.info, self.agent._all_tasks(), [], [framework]))
        self.assertEqual(sorted(args[1] for args in link.named("killTask")), ["t1", "t2"])
        other_link = DirectAgentLink(None, self.cluster.clock)
        self.successResultOf(successor.reregisterAgent(other_link, self.other.info, [], [], []))
        for agent in (self.agent, self.other):
            self.assertFalse(successor.allocator._agents[agent.id].active)  # type: ignore[attr-defined]
        self.cluster.settle()  # the successor's first pings


class PBDrainTests(DrainTests):
    """The same drains with agents and the framework over Perspective Broker."""

    cluster_class = PBCluster

    def test_grace_periods_sent_to_the_agent(self) -> None:
        """Over PB the kills reach the agent once it is back: its tasks end killed."""
        self.cluster.cut(self.agent)
        self.cluster.settle()
        self.assertEqual(self.drain(self.agent.id, max_grace_period="10s").code, 200)
        self.cluster.connect(self.agent)
        self.cluster.advance(5)
        self.assertEqual(self.scheduler.states("t1")[-1], T.KILLED)


AGENT_ACLS = {
    "drain_agents": [{"principals": {"values": ["ops"]}, "agents": {"type": "ANY"}},
                     {"principals": {"type": "ANY"}, "agents": {"type": "NONE"}}],
    "mark_agents_gone": [{"principals": {"type": "ANY"}, "agents": {"type": "NONE"}}],
    "deactivate_agents": [{"principals": {"type": "ANY"}, "agents": {"type": "NONE"}}],
}


class DrainACLTests(DrainCase):
    def master_flags(self) -> dict[str, Any]:
        credentials = os.path.abspath(self.mktemp())
        with open(credentials, "w") as f:
            json.dump({"credentials": [{"principal": "ops", "secret": "ops-secret"}]}, f)
        return {"credentials": credentials, "acls": json.dumps(AGENT_ACLS)}

    def test_acls(self) -> None:
        """drain_agents decides who drains; draining with mark_gone needs mark_agents_gone too;
        deactivate_agents who deactivates."""
        import base64

        ops = {**JSON, "Authorization": "Basic " + base64.b64encode(b"ops:ops-secret").decode()}
        body = {"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": self.agent.id}}}
        self.assertEqual(self.call(body).code, 403)
        gone = {"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": self.agent.id}, "mark_gone": True}}
        self.assertEqual(self.call(gone, ops).code, 403)
        self.assertEqual(self.call({"type": "DEACTIVATE_AGENT", "deactivate_agent": {
            "agent_id": {"value": self.agent.id}}}, ops).code, 403)
        self.assertEqual(self.call(body, ops).code, 200)
