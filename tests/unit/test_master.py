"""The master's core in an in-process cluster: registration, offers, launches, updates, loss and failover.

Most classes state behaviour that crosses the wire; each of those runs twice, on the cluster of direct
links and again (the ``PB...`` subclasses at the end) on the same cluster over the real Perspective
Broker adapters (``tests/helpers/pbcluster.py``). The others hold the master's core alone.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from mesostw.master.master import RegistrationRefused
from mesostw.model import task as T
from mesostw.model.info import AgentInfo
from mesostw.model.resources import EMPTY, Resources
from mesostw.model.task import Offer
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task
from tests.helpers.pbcluster import PBCluster

AGENT = "cpus:2;mem:1024;disk:1024;ports:[31000-32000]"
SMALL = "cpus:0.5;mem:128"
SECRETS = {"ops": "ops-secret", "dev": "dev-secret"}
#: Only ops may register frameworks; anyone may run tasks.
ACLS = json.dumps({"permissive": False,
                   "register_frameworks": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}}],
                   "run_tasks": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}],
                   "register_agents": [{"principals": {"type": "ANY"}, "agents": {"type": "ANY"}}]})


class Scheduler(RecordingScheduler):
    """Keeps its offers (no automatic decline)."""

    def __init__(self) -> None:
        super().__init__()
        self.decline_unused = False

    def offers_on(self, agent_id: str) -> list[Offer]:
        return [o for o in self.offers if o.agent_id == agent_id]


def task_on(offer: Offer, task_id: str, command: str = "sleep 100", resources: str = SMALL) -> dict[str, Any]:
    task = command_task(task_id, command, resources)
    task["agent_id"] = {"value": offer.agent_id}
    return task


def cpus(resources: Resources) -> float:
    return resources.scalars().get("cpus", 0.0)


class MasterTestCase(ClockTestCase):
    #: the cluster the tests run on: direct links, or the PB adapters (tests/helpers/pbcluster.py)
    cluster_class: type[Cluster] = Cluster

    def make_cluster(self, **kwargs: Any) -> Cluster:
        cluster = self.cluster_class(**kwargs)
        self.useClock(cluster.clock)
        self.addCleanup(cluster.stop)
        return cluster

    def framework(self, cluster: Cluster, **info: Any) -> tuple[Scheduler, Any]:
        scheduler, driver = cluster.framework(scheduler=Scheduler(), **info)
        return scheduler, driver  # type: ignore[return-value]

    def driver(self, cluster: Cluster, scheduler: Any, implicit_acknowledgements: bool = True,
               **info: Any) -> Any:
        """A driver for a given scheduler (for failover, or explicit acknowledgements)."""
        _, driver = cluster.framework(scheduler=scheduler, implicit_acknowledgements=implicit_acknowledgements,
                                      **info)
        return driver

    def launch(self, cluster: Cluster, driver: Any, offer: Offer, *tasks: dict[str, Any],
               refuse_seconds: float | None = None) -> None:
        filters = None if refuse_seconds is None else {"refuse_seconds": refuse_seconds}
        driver.launchTasks([offer.id], list(tasks), filters)
        cluster.settle()

    def start_task(self, cluster: Cluster, task_id: str = "t1", command: str = "sleep 100",
                   **info: Any) -> tuple[Scheduler, Any, Offer]:
        """A framework with one running task on the first agent."""
        scheduler, driver = self.framework(cluster, **info)
        offer = scheduler.offers_on(cluster.agents[0].id)[0]
        self.launch(cluster, driver, offer, task_on(offer, task_id, command))
        return scheduler, driver, offer

    def credentials(self) -> str:
        """A master's --credentials file holding :data:`SECRETS`."""
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "credentials")
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"credentials": [{"principal": p, "secret": s} for p, s in SECRETS.items()]}, f)
        return path

    def open_offers(self, cluster: Cluster) -> list[Offer]:
        return list(cluster.master.offers)

    def last_update(self, scheduler: Scheduler, task_id: str):
        return [u for u in scheduler.updates if u.task_id == task_id][-1]


class RegistrationTests(MasterTestCase):
    def test_agents_register_with_ids(self) -> None:
        """Each agent gets <master id>-S<n>, is registered, and its resources are known to the allocator."""
        cluster = self.make_cluster()
        self.assertEqual([a.id for a in cluster.agents], ["M-S0", "M-S1"])
        self.assertEqual(sorted(cluster.master.agents), ["M-S0", "M-S1"])
        for agent in cluster.agents:
            self.assertEqual(agent.state, "RUNNING")
            self.assertEqual(agent.master_info.id, "M")
            self.assertEqual(cluster.master.agents[agent.id].info.resources, Resources.parse(AGENT))
            self.assertEqual(cluster.allocator.agent_total(agent.id), Resources.parse(AGENT))
        self.assertEqual(cluster.master.metrics["slave_registrations"], 2)

    def test_frameworks_subscribe(self) -> None:
        """Frameworks get <master id>-<4 digits> IDs, a SUBSCRIBED with the master's info, and offers."""
        cluster = self.make_cluster()
        first, first_driver = self.framework(cluster, name="one")
        second, second_driver = self.framework(cluster, name="two")
        self.assertEqual(first.framework_id, "M-0000")
        self.assertEqual(second.framework_id, "M-0001")
        ((framework_id, master_info),) = first.registrations
        self.assertEqual(framework_id, "M-0000")
        self.assertEqual(master_info.id, "M")
        self.assertEqual(first_driver.framework_id, "M-0000")
        self.assertEqual(first_driver.master_info, master_info)
        self.assertEqual(sorted(cluster.master.frameworks), ["M-0000", "M-0001"])
        self.assertTrue(cluster.master.frameworks["M-0000"].active)
        # The first framework got every agent; the later one nothing, until the first lets go.
        self.assertEqual(sorted(o.agent_id for o in first.offers), ["M-S0", "M-S1"])
        self.assertEqual(second.offers, [])
        for offer in first.offers:
            self.assertEqual(offer.framework_id, "M-0000")
            self.assertTrue(offer.id.startswith("M-O"))
            self.assertEqual(offer.hostname, "127.0.0.1")

    def test_framework_without_name_refused(self) -> None:
        """A FrameworkInfo without a name is refused with an error and the driver aborts."""
        cluster = self.make_cluster()
        scheduler = Scheduler()
        driver = self.driver(cluster, scheduler, name="")
        self.assertEqual(len(scheduler.errors), 1)
        self.assertEqual(driver.status, "DRIVER_ABORTED")
        self.assertEqual(cluster.master.frameworks, {})


class OfferTests(MasterTestCase):
    def test_offer_holds_each_agents_free_resources_once(self) -> None:
        """One offer per agent with all its free resources; nothing is offered twice while it is out."""
        cluster = self.make_cluster()
        scheduler, driver = self.framework(cluster)
        self.assertEqual(len(scheduler.offers), 2)
        for offer in scheduler.offers:
            self.assertEqual(offer.resources, Resources.parse(AGENT))
        cluster.master.allocate()
        cluster.advance(10)
        cluster.master.allocate()
        cluster.settle()
        self.assertEqual(len(scheduler.offers), 2)
        self.assertEqual(len(self.open_offers(cluster)), 2)

    def test_offers_never_overlap_between_frameworks(self) -> None:
        """Two frameworks never hold offers for the same free resources; declined ones move on."""
        cluster = self.make_cluster()
        first, first_driver = self.framework(cluster, name="one")
        second, second_driver = self.framework(cluster, name="two")
        cluster.master.allocate()
        cluster.settle()
        self.assertEqual(second.offers, [])
        offer = first.offers_on("M-S0")[0]
        first_driver.declineOffer(offer.id, {"refuse_seconds": 1000})
        cluster.settle()
        cluster.master.allocate()
        cluster.settle()
        self.assertEqual([o.agent_id for o in second.offers], ["M-S0"])
        self.assertEqual(second.offers[0].resources, Resources.parse(AGENT))
        self.assertNotIn(offer.id, {o.id for o in self.open_offers(cluster)})
        for agent in cluster.agents:
            on_agent = [o for o in self.open_offers(cluster) if o.agent_id == agent.id]
            self.assertEqual(len(on_agent), 1)
            self.assertEqual(cluster.allocator.agent_allocated(agent.id), Resources.parse(AGENT))

    def test_remaining_resources_split_between_frameworks(self) -> None:
        """What one framework leaves free on an agent is offered to the other, without overlap."""
        cluster = self.make_cluster(agents=1)
        first, first_driver = self.framework(cluster, name="one")
        second, second_driver = self.framework(cluster, name="two")
        offer = first.offers[0]
        self.launch(cluster, first_driver, offer, task_on(offer, "t1", resources="cpus:1.5;mem:512"),
                    refuse_seconds=1000)
        cluster.master.allocate()
        cluster.settle()
        (rest,) = second.offers
        self.assertEqual(cpus(rest.resources), 0.5)
        self.assertEqual(rest.resources.scalars()["mem"], 512)
        self.assertEqual(len(first.offers), 1)

    def test_decline_filter_keeps_agent_away_until_expiry(self) -> None:
        """A decline with refuse_seconds hides that agent from the framework until the filter expires."""
        cluster = self.make_cluster()
        scheduler, driver = self.framework(cluster)
        offer = scheduler.offers_on("M-S0")[0]
        driver.declineOffer(offer.id, {"refuse_seconds": 30})
        cluster.settle()
        self.assertEqual(len(self.open_offers(cluster)), 1)
        cluster.advance(29)
        cluster.master.allocate()  # as the periodic allocation loop would
        cluster.settle()
        self.assertEqual(len(scheduler.offers_on("M-S0")), 1)
        cluster.advance(1)
        cluster.master.allocate()
        cluster.settle()
        self.assertEqual(len(scheduler.offers_on("M-S0")), 2)
        self.assertNotEqual(scheduler.offers_on("M-S0")[1].id, offer.id)

    def test_decline_default_filter_is_five_seconds(self) -> None:
        """A decline without filters refuses the agent for Mesos's default 5 s."""
        cluster = self.make_cluster()
        scheduler, driver = self.framework(cluster)
        driver.declineOffer(scheduler.offers_on("M-S0")[0].id)
        cluster.settle()
        cluster.advance(4)
        cluster.master.allocate()
        cluster.settle()
        self.assertEqual(len(scheduler.offers_on("M-S0")), 1)
        cluster.advance(1)
        cluster.master.allocate()
        cluster.settle()
        self.assertEqual(len(scheduler.offers_on("M-S0")), 2)

    def test_decline_without_refusal(self) -> None:
        """refuse_seconds of 0 installs no filter: the next allocation offers the agent again."""
        cluster = self.make_cluster()
        scheduler, driver = self.framework(cluster)
        driver.declineOffer(scheduler.offers_on("M-S0")[0].id, {"refuse_seconds": 0})
        cluster.settle()
        cluster.master.allocate()
        cluster.settle()
        self.assertEqual(len(scheduler.offers_on("M-S0")), 2)

    def test_revive_clears_filters(self) -> None:
        """REVIVE drops every refusal filter of the framework and offers at once."""
        cluster = self.make_cluster()
        scheduler, driver = self.framework(cluster)
        driver.declineOffer([o.id for o in scheduler.offers], {"refuse_seconds": 3600})
        cluster.settle()
        cluster.master.allocate()
        cluster.settle()
        self.assertEqual(len(scheduler.offers), 2)
        driver.reviveOffers()
        cluster.settle()
        self.assertEqual(len(scheduler.offers), 4)
        self.assertEqual(sorted(o.agent_id for o in scheduler.offers[2:]), ["M-S0", "M-S1"])

    def test_suppress_stops_offers_until_revive(self) -> None:
        """SUPPRESS stops new offers even without filters; REVIVE resumes them."""
        cluster = self.make_cluster()
        scheduler, driver = self.framework(cluster)
        driver.suppressOffers()
        driver.declineOffer([o.id for o in scheduler.offers], {"refuse_seconds": 0})
        cluster.settle()
        self.assertTrue(cluster.master.frameworks[scheduler.framework_id].suppressed)
        cluster.advance(60)
        cluster.master.allocate()
        cluster.settle()
        self.assertEqual(len(scheduler.offers), 2)
        self.assertEqual(self.open_offers(cluster), [])
        driver.reviveOffers()
        cluster.settle()
        self.assertEqual(len(scheduler.offers), 4)
        self.assertFalse(cluster.master.frameworks[scheduler.framework_id].suppressed)

    def test_suppressed_framework_still_gets_updates(self) -> None:
        """Suppressing offers does not hold back status updates."""
        cluster = self.make_cluster()
        scheduler, driver, _ = self.start_task(cluster, command="sleep 100")
        driver.suppressOffers()
        cluster.settle()
        driver.killTask("t1")
        cluster.settle()
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.KILLED])

    def test_offer_timeout_rescinds(self) -> None:
        """With --offer_timeout an unanswered offer is rescinded (offerRescinded) and offered anew."""
        cluster = self.make_cluster(offer_timeout=5.0)
        scheduler, driver = self.framework(cluster)
        old = {o.id for o in scheduler.offers}
        cluster.advance(4)
        self.assertEqual(scheduler.rescinded, [])
        cluster.advance(1)
        self.assertEqual(sorted(scheduler.rescinded), sorted(old))
        self.assertEqual(len(scheduler.offers), 4)
        self.assertTrue(old.isdisjoint(o.id for o in self.open_offers(cluster)))
        # A rescinded offer can no longer be used.
        stale = scheduler.offers[0]
        self.launch(cluster, driver, stale, task_on(stale, "late"))
        self.assertEqual(scheduler.states("late"), [T.LOST])
        self.assertEqual(self.last_update(scheduler, "late").reason, T.REASON_INVALID_OFFERS)

    def test_answered_offer_does_not_time_out(self) -> None:
        """An offer used before --offer_timeout is not rescinded later."""
        cluster = self.make_cluster(agents=1, offer_timeout=5.0)
        scheduler, driver = self.framework(cluster)
        offer = scheduler.offers[0]
        self.launch(cluster, driver, offer, task_on(offer, "t1"), refuse_seconds=1000)
        cluster.advance(20)
        self.assertEqual(scheduler.rescinded, [])
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])

class AgentAdmissionTests(MasterTestCase):
    """The master's core alone (refusals over PB: ``test_pbcluster.py``)."""

    def test_agent_without_cpus_refused(self) -> None:
        """An agent that does not offer cpus and mem is refused registration."""
        cluster = self.make_cluster(agents=0)
        info = AgentInfo(hostname="127.0.0.1", resources=Resources.parse("disk:1024"))
        d = cluster.master.registerAgent(None, info)
        self.assertIn("cpus", str(self.failureResultOf(d, RegistrationRefused).value))
        self.assertEqual(cluster.master.agents, {})


class FairShareTests(MasterTestCase):
    """Allocation policy: the same whatever carries the offers."""

    def test_weighted_drf_between_roles(self) -> None:
        """With role a weighted 2 and role b 1, six equal agents are offered four to a and two to b."""
        cluster = self.make_cluster(agents=6, resources="cpus:1;mem:256", weights={"a": 2.0})
        a, a_driver = self.framework(cluster, name="a", role="a")
        b, b_driver = self.framework(cluster, name="b", role="b")
        self.assertEqual((len(a.offers), len(b.offers)), (6, 0))
        a_driver.declineOffer([o.id for o in a.offers], {"refuse_seconds": 0})
        cluster.settle()
        cluster.master.allocate()
        cluster.settle()
        self.assertEqual((len(a.offers) - 6, len(b.offers)), (4, 2))
        self.assertEqual({o.role for o in b.offers}, {"b"})

    def test_unweighted_drf_is_even(self) -> None:
        """Without weights two roles share six equal agents three and three."""
        cluster = self.make_cluster(agents=6, resources="cpus:1;mem:256")
        a, a_driver = self.framework(cluster, name="a", role="a")
        b, b_driver = self.framework(cluster, name="b", role="b")
        a_driver.declineOffer([o.id for o in a.offers], {"refuse_seconds": 0})
        cluster.settle()
        cluster.master.allocate()
        cluster.settle()
        self.assertEqual((len(a.offers) - 6, len(b.offers)), (3, 3))

    def test_drf_counts_running_tasks(self) -> None:
        """Resources held by running tasks count in DRF: the framework with less gets the free agent."""
        cluster = self.make_cluster(agents=3, resources="cpus:1;mem:256")
        a, a_driver = self.framework(cluster, name="a", role="a")
        for index, offer in enumerate(a.offers[:2]):
            self.launch(cluster, a_driver, offer, task_on(offer, f"t{index}", resources="cpus:1;mem:256"))
        b, b_driver = self.framework(cluster, name="b", role="b")
        a_driver.declineOffer(a.offers[2].id, {"refuse_seconds": 0})
        cluster.settle()
        cluster.master.allocate()
        cluster.settle()
        self.assertEqual([o.agent_id for o in b.offers], [a.offers[2].agent_id])


class RoleTests(MasterTestCase):
    def test_role_whitelist(self) -> None:
        """With --roles only whitelisted roles (and *) may subscribe; others get an error."""
        cluster = self.make_cluster(roles=("ops",))
        refused = Scheduler()
        driver = self.driver(cluster, refused, role="dev")
        self.assertEqual(len(refused.errors), 1)
        self.assertIn("dev", refused.errors[0])
        self.assertEqual(driver.status, "DRIVER_ABORTED")
        self.assertEqual(cluster.master.frameworks, {})
        ops, ops_driver = self.framework(cluster, role="ops")
        self.assertEqual(ops.errors, [])
        self.assertEqual(len(ops.offers), 2)
        self.assertEqual({o.role for o in ops.offers}, {"ops"})


class AcceptTests(MasterTestCase):
    def test_unknown_offer_loses_tasks(self) -> None:
        """Launching on an unknown offer answers TASK_LOST with REASON_INVALID_OFFERS, without a UUID."""
        cluster = self.make_cluster()
        scheduler, driver = self.framework(cluster)
        bogus = Offer("M-O999", scheduler.framework_id, "M-S0", "127.0.0.1", Resources.parse(AGENT))
        self.launch(cluster, driver, bogus, task_on(bogus, "t1"))
        self.assertEqual(scheduler.states("t1"), [T.LOST])
        update = scheduler.updates[0]
        self.assertEqual(update.reason, T.REASON_INVALID_OFFERS)
        self.assertEqual(update.source, T.SOURCE_MASTER)
        self.assertIsNone(update.uuid)
        self.assertEqual(cluster.master.frameworks[scheduler.framework_id].tasks, {})
        self.assertEqual(len(self.open_offers(cluster)), 2)

    def test_unknown_offer_drops_tasks_of_partition_aware(self) -> None:
        """A PARTITION_AWARE framework gets TASK_DROPPED instead of TASK_LOST for an invalid offer."""
        cluster = self.make_cluster()
        scheduler, driver = self.framework(cluster, capabilities=frozenset({"PARTITION_AWARE"}))
        bogus = Offer("M-O999", scheduler.framework_id, "M-S0", "127.0.0.1", Resources.parse(AGENT))
        self.launch(cluster, driver, bogus, task_on(bogus, "t1"))
        self.assertEqual(scheduler.states("t1"), [T.DROPPED])
        self.assertEqual(scheduler.updates[0].reason, T.REASON_INVALID_OFFERS)

    def test_offers_of_two_agents_refused(self) -> None:
        """An ACCEPT naming offers of two agents is refused; the offers' resources go back."""
        cluster = self.make_cluster()
        scheduler, driver = self.framework(cluster)
        ids = [o.id for o in scheduler.offers]
        task = task_on(scheduler.offers[0], "t1")
        driver.launchTasks(ids, [task])
        cluster.settle()
        self.assertEqual(scheduler.states("t1"), [T.LOST])
        self.assertEqual(scheduler.updates[0].reason, T.REASON_INVALID_OFFERS)
        self.assertEqual(cluster.master.frameworks[scheduler.framework_id].tasks, {})
        for agent in cluster.agents:
            self.assertEqual(agent.frameworks, {})
        # Both agents are offered again, under new IDs.
        self.assertEqual(len(scheduler.offers), 4)
        self.assertEqual(sorted(o.agent_id for o in scheduler.offers[2:]), ["M-S0", "M-S1"])
        self.assertTrue(set(ids).isdisjoint(o.id for o in scheduler.offers[2:]))

    def test_offer_of_another_framework_refused(self) -> None:
        """A framework cannot launch on another framework's offer; that offer stays with its owner."""
        cluster = self.make_cluster()
        owner, owner_driver = self.framework(cluster, name="owner")
        thief, thief_driver = self.framework(cluster, name="thief")
        offer = owner.offers[0]
        self.launch(cluster, thief_driver, offer, task_on(offer, "t1"))
        self.assertEqual(thief.states("t1"), [T.LOST])
        self.assertEqual(thief.updates[0].reason, T.REASON_INVALID_OFFERS)
        self.assertIn(offer.id, {o.id for o in self.open_offers(cluster)})
        self.launch(cluster, owner_driver, offer, task_on(offer, "t1"))
        self.assertEqual(owner.states("t1"), [T.RUNNING])

    def test_offer_used_twice_refused(self) -> None:
        """An offer ID may be used in one ACCEPT only; the second gets TASK_LOST."""
        cluster = self.make_cluster()
        scheduler, driver = self.framework(cluster)
        offer = scheduler.offers[0]
        self.launch(cluster, driver, offer, task_on(offer, "t1"))
        self.launch(cluster, driver, offer, task_on(offer, "t2"))
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])
        self.assertEqual(scheduler.states("t2"), [T.LOST])

    def test_duplicate_task_ids_refused(self) -> None:
        """A task ID used twice in one ACCEPT, or already in use, is answered TASK_ERROR (task invalid)."""
        cluster = self.make_cluster(agents=1)
        scheduler, driver = self.framework(cluster)
        offer = scheduler.offers[0]
        self.launch(cluster, driver, offer, task_on(offer, "t1"), task_on(offer, "t1"), refuse_seconds=0)
        self.assertEqual(scheduler.states("t1"), [T.ERROR, T.RUNNING])
        error = scheduler.updates[0]
        self.assertEqual(error.reason, T.REASON_TASK_INVALID)
        self.assertEqual(error.source, T.SOURCE_MASTER)
        self.assertIsNone(error.uuid)
        self.assertEqual(len(cluster.containerizers[0].executors), 1)
        cluster.master.allocate()
        cluster.settle()
        again = scheduler.offers[-1]
        self.assertNotEqual(again.id, offer.id)
        self.launch(cluster, driver, again, task_on(again, "t1"))
        self.assertEqual(scheduler.states("t1"), [T.ERROR, T.RUNNING, T.ERROR])
        self.assertEqual(len(cluster.containerizers[0].executors), 1)
        self.assertEqual(cluster.master.frameworks[scheduler.framework_id].tasks["t1"].state, T.RUNNING)

    def test_resources_beyond_offer_refused(self) -> None:
        """A task needing more than the offer holds gets TASK_ERROR; tasks that fit still launch."""
        cluster = self.make_cluster(agents=1)
        scheduler, driver = self.framework(cluster)
        offer = scheduler.offers[0]
        self.launch(cluster, driver, offer, task_on(offer, "fits", resources="cpus:1.5;mem:512"),
                    task_on(offer, "too-big", resources="cpus:1;mem:128"), refuse_seconds=1000)
        self.assertEqual(scheduler.states("fits"), [T.RUNNING])
        self.assertEqual(scheduler.states("too-big"), [T.ERROR])
        self.assertEqual(self.last_update(scheduler, "too-big").reason, T.REASON_TASK_INVALID)
        self.assertNotIn("too-big", cluster.master.frameworks[scheduler.framework_id].tasks)
        # Only what the launched task uses stays allocated; the rest is back (filtered for this framework).
        self.assertEqual(cluster.allocator.agent_allocated(offer.agent_id), Resources.parse("cpus:1.5;mem:512"))
        self.assertEqual(self.open_offers(cluster), [])

    def test_single_task_beyond_offer_returns_everything(self) -> None:
        """If the only task of an ACCEPT does not fit, the whole offer goes back."""
        cluster = self.make_cluster(agents=1)
        scheduler, driver = self.framework(cluster)
        offer = scheduler.offers[0]
        self.launch(cluster, driver, offer, task_on(offer, "huge", resources="cpus:4;mem:128"), refuse_seconds=0)
        self.assertEqual(scheduler.states("huge"), [T.ERROR])
        self.assertEqual(scheduler.updates[0].reason, T.REASON_TASK_INVALID)
        self.assertEqual(cluster.agents[0].frameworks, {})
        cluster.master.allocate()
        cluster.settle()
        self.assertEqual(scheduler.offers[-1].resources, Resources.parse(AGENT))

    def test_unused_resources_refused_with_filter(self) -> None:
        """Unused resources of an ACCEPT return to the pool, under the ACCEPT's refusal filter."""
        cluster = self.make_cluster(agents=1)
        first, first_driver = self.framework(cluster, name="one")
        offer = first.offers[0]
        self.launch(cluster, first_driver, offer, task_on(offer, "t1"), refuse_seconds=10)
        self.assertEqual(cluster.allocator.agent_allocated(offer.agent_id), Resources.parse(SMALL))
        cluster.master.allocate()
        cluster.settle()
        self.assertEqual(len(first.offers), 1)
        cluster.advance(10)
        cluster.master.allocate()
        cluster.settle()
        self.assertEqual(len(first.offers), 2)
        self.assertEqual(first.offers[1].resources, Resources.parse(AGENT) - Resources.parse(SMALL))

    def test_launch_on_two_offers_of_one_agent(self) -> None:
        """Offers of the same agent may be combined in one ACCEPT, their resources pooled."""
        cluster = self.make_cluster(agents=1)
        scheduler, driver = self.framework(cluster)
        offer = scheduler.offers[0]
        self.launch(cluster, driver, offer, task_on(offer, "t1", resources="cpus:1;mem:256"), refuse_seconds=0)
        rest = scheduler.offers[-1]
        self.assertEqual(cpus(rest.resources), 1.0)
        driver.killTask("t1")
        cluster.settle()
        freed = scheduler.offers[-1]
        self.assertNotEqual(freed.id, rest.id)
        self.assertEqual(freed.resources, Resources.parse("cpus:1;mem:256"))
        task = task_on(rest, "t2", resources="cpus:2;mem:512")
        driver.launchTasks([rest.id, freed.id], [task], {"refuse_seconds": 1000})
        cluster.settle()
        self.assertEqual(scheduler.states("t2"), [T.RUNNING])
        self.assertEqual(self.open_offers(cluster), [])
        self.assertEqual(cluster.allocator.agent_allocated(rest.agent_id), Resources.parse("cpus:2;mem:512"))


class StatusUpdateTests(MasterTestCase):
    def test_updates_flow_and_acks_retire_task(self) -> None:
        """RUNNING and FINISHED reach the scheduler with UUIDs; the acks retire the task to completed_tasks."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster, command="true")
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.FINISHED])
        for update in scheduler.updates:
            self.assertIsNotNone(update.uuid)
            self.assertEqual(update.source, T.SOURCE_EXECUTOR)
            self.assertEqual(update.agent_id, offer.agent_id)
            self.assertEqual(update.executor_id, "t1")
        framework = cluster.master.frameworks[scheduler.framework_id]
        self.assertEqual(framework.tasks, {})
        (done,) = framework.completed_tasks
        self.assertEqual(done.task_id, "t1")
        self.assertEqual(done.state, T.FINISHED)
        self.assertEqual(cluster.master.agents[offer.agent_id].tasks, {})
        agent = cluster.agents[0]
        self.assertEqual(list(agent.updates.heads()), [])
        self.assertEqual(agent.frameworks, {})
        # The task's resources are free again, so the whole agent is offered anew.
        self.assertEqual(cluster.master.agents[offer.agent_id].used(), EMPTY)
        self.assertEqual([o.resources for o in self.open_offers(cluster) if o.agent_id == offer.agent_id],
                         [Resources.parse(AGENT)])
        # Acknowledged updates are never sent again.
        cluster.advance(120)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.FINISHED])

    def test_failed_task(self) -> None:
        """A command that fails ends TASK_FAILED, and is retired like any terminal task."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster, command="exit 3")
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.FAILED])
        self.assertIn("status 3", self.last_update(scheduler, "t1").message)
        self.assertEqual(cluster.master.frameworks[scheduler.framework_id].tasks, {})

    def test_unacknowledged_updates_retried_and_task_kept(self) -> None:
        """Without acks the head is retried and a terminal task stays live, its resources already freed."""
        cluster = self.make_cluster(agents=1)
        scheduler = Scheduler()
        driver = self.driver(cluster, scheduler, implicit_acknowledgements=False)
        offer = scheduler.offers[0]
        self.launch(cluster, driver, offer, task_on(offer, "t1", "true"), refuse_seconds=1000)
        # Only the head (RUNNING) went out; FINISHED waits behind it.
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])
        framework = cluster.master.frameworks[scheduler.framework_id]
        self.assertEqual(framework.tasks["t1"].state, T.RUNNING)
        cluster.advance(10)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.RUNNING])
        running = scheduler.updates[0]
        self.assertEqual(scheduler.updates[1].uuid, running.uuid)
        driver.acknowledgeStatusUpdate(running)
        cluster.settle()
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.RUNNING, T.FINISHED])
        finished = scheduler.updates[-1]
        # Seen as terminal: resources go back (and are offered) at once; the task is kept until acked.
        self.assertEqual(framework.tasks["t1"].state, T.FINISHED)
        self.assertEqual(cluster.master.agents[offer.agent_id].used(), EMPTY)
        self.assertEqual(scheduler.offers[-1].resources, Resources.parse(AGENT))
        driver.acknowledgeStatusUpdate(finished)
        cluster.settle()
        self.assertEqual(framework.tasks, {})
        self.assertEqual([t.task_id for t in framework.completed_tasks], ["t1"])
        cluster.advance(60)
        self.assertEqual(len(scheduler.updates), 3)

    def test_duplicate_update_reaches_scheduler_once_applied(self) -> None:
        """A retried update (same UUID) is passed on again but changes the master's task only once."""
        cluster = self.make_cluster(agents=1)
        scheduler = Scheduler()
        driver = self.driver(cluster, scheduler, implicit_acknowledgements=False)
        offer = scheduler.offers[0]
        self.launch(cluster, driver, offer, task_on(offer, "t1"))
        cluster.advance(10)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.RUNNING])
        task = cluster.master.frameworks[scheduler.framework_id].tasks["t1"]
        self.assertEqual([s.state for s in task.statuses], [T.RUNNING])

    def test_kill_running_task(self) -> None:
        """KILL of a running task ends it TASK_KILLED and retires it."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster)
        driver.killTask("t1")
        cluster.settle()
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.KILLED])
        framework = cluster.master.frameworks[scheduler.framework_id]
        self.assertEqual(framework.tasks, {})
        self.assertEqual(framework.completed_tasks[-1].state, T.KILLED)
        self.assertEqual(cluster.master.agents[offer.agent_id].used(), EMPTY)

    def test_kill_unknown_task(self) -> None:
        """KILL of a task the master does not know answers TASK_LOST (reconciliation), without UUID."""
        cluster = self.make_cluster()
        scheduler, driver = self.framework(cluster)
        driver.killTask("nope")
        cluster.settle()
        self.assertEqual(scheduler.states("nope"), [T.LOST])
        update = scheduler.updates[0]
        self.assertIsNone(update.uuid)
        self.assertEqual(update.source, T.SOURCE_MASTER)
        self.assertEqual(update.reason, T.REASON_RECONCILIATION)

    def test_kill_unknown_task_partition_aware(self) -> None:
        """A PARTITION_AWARE framework killing an unknown task hears TASK_UNKNOWN."""
        cluster = self.make_cluster()
        scheduler, driver = self.framework(cluster, capabilities=frozenset({"PARTITION_AWARE"}))
        driver.killTask("nope")
        cluster.settle()
        self.assertEqual(scheduler.states("nope"), [T.UNKNOWN])


class ReconciliationTests(MasterTestCase):
    def test_explicit_reconciliation(self) -> None:
        """Named tasks get their latest state (REASON_RECONCILIATION, no UUID); unknown ones TASK_LOST."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster)
        acks = cluster.master.metrics["messages_status_update_acknowledgement"]
        before = len(scheduler.updates)
        driver.reconcileTasks(["t1", "ghost"])
        cluster.settle()
        known, unknown = scheduler.updates[before:]
        self.assertEqual((known.task_id, known.state), ("t1", T.RUNNING))
        self.assertEqual(known.reason, T.REASON_RECONCILIATION)
        self.assertEqual(known.source, T.SOURCE_MASTER)
        self.assertEqual(known.agent_id, offer.agent_id)
        self.assertIsNone(known.uuid)
        self.assertEqual((unknown.task_id, unknown.state), ("ghost", T.LOST))
        self.assertEqual(unknown.reason, T.REASON_RECONCILIATION)
        self.assertIsNone(unknown.uuid)
        # Updates without a UUID are not acknowledged.
        self.assertEqual(cluster.master.metrics["messages_status_update_acknowledgement"], acks)

    def test_explicit_reconciliation_of_finished_task(self) -> None:
        """A task retired after its acknowledged terminal update is unknown to reconciliation."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster, command="true")
        driver.reconcileTasks(["t1"])
        cluster.settle()
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.FINISHED, T.LOST])

    def test_explicit_reconciliation_partition_aware_unknown(self) -> None:
        """A PARTITION_AWARE framework hears TASK_UNKNOWN for tasks the master does not know."""
        cluster = self.make_cluster()
        scheduler, driver = self.framework(cluster, capabilities=frozenset({"PARTITION_AWARE"}))
        driver.reconcileTasks(["ghost"])
        cluster.settle()
        self.assertEqual(scheduler.states("ghost"), [T.UNKNOWN])

    def test_implicit_reconciliation(self) -> None:
        """An empty RECONCILE answers for every live task of the framework, and only those."""
        cluster = self.make_cluster(agents=1)
        scheduler, driver = self.framework(cluster)
        offer = scheduler.offers[0]
        self.launch(cluster, driver, offer, task_on(offer, "a"), task_on(offer, "b"), task_on(offer, "done", "true"))
        other, other_driver = self.framework(cluster, name="other")
        before = len(scheduler.updates)
        driver.reconcileTasks()
        cluster.settle()
        answers = scheduler.updates[before:]
        self.assertEqual(sorted((u.task_id, u.state) for u in answers), [("a", T.RUNNING), ("b", T.RUNNING)])
        self.assertTrue(all(u.uuid is None and u.reason == T.REASON_RECONCILIATION for u in answers))
        other_driver.reconcileTasks()
        cluster.settle()
        self.assertEqual(other.updates, [])


class AgentLossTests(MasterTestCase):
    def test_a_stopped_master_ignores_closing_connections(self) -> None:
        """Once a master stopped (handing over to the next leader), its agents and frameworks leaving lose no
        task and change nothing: the next leader takes them over."""
        cluster = self.make_cluster()
        scheduler, driver = self.framework(cluster)
        agent = cluster.agents[0]
        offer = scheduler.offers_on(agent.id)[0]
        self.launch(cluster, driver, offer, task_on(offer, "t1"), refuse_seconds=0)
        cluster.master.stop()
        cluster.cut(agent)
        cluster.settle()
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])
        record = cluster.master.agents[agent.id]
        self.assertTrue(record.connected)
        self.assertEqual(list(cluster.master.frameworks[scheduler.framework_id].tasks), ["t1"])

    def test_disconnect_loses_tasks_of_non_checkpointing_framework(self) -> None:
        """A broken agent connection gives TASK_LOST (agent disconnected) at once if not checkpointing."""
        cluster = self.make_cluster()
        scheduler, driver = self.framework(cluster)
        agent = cluster.agents[0]
        offer = scheduler.offers_on(agent.id)[0]
        self.launch(cluster, driver, offer, task_on(offer, "t1"), refuse_seconds=0)
        (rest,) = [o for o in self.open_offers(cluster) if o.agent_id == agent.id]
        cluster.cut(agent)
        cluster.settle()
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.LOST])
        lost = scheduler.updates[-1]
        self.assertEqual(lost.reason, T.REASON_AGENT_DISCONNECTED)
        self.assertEqual(lost.source, T.SOURCE_MASTER)
        self.assertIsNone(lost.uuid)
        framework = cluster.master.frameworks[scheduler.framework_id]
        self.assertEqual(framework.tasks, {})
        # Its outstanding offer is rescinded and the agent is not offered while disconnected.
        self.assertEqual(scheduler.rescinded, [rest.id])
        self.assertNotIn(agent.id, {o.agent_id for o in self.open_offers(cluster)})
        self.assertFalse(cluster.master.agents[agent.id].connected)
        cluster.master.allocate()
        cluster.settle()
        self.assertNotIn(agent.id, {o.agent_id for o in self.open_offers(cluster)})

    def test_checkpointing_framework_waits_for_ping_timeouts(self) -> None:
        """A checkpointing framework hears nothing until five 15 s pings go unanswered, then TASK_LOST."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster, checkpoint=True)
        agent = cluster.agents[0]
        cluster.cut(agent)
        cluster.settle()
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])
        cluster.advance(75)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])
        self.assertEqual(scheduler.lost_agents, [])
        self.assertIn(agent.id, cluster.master.agents)
        cluster.advance(15)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.LOST])
        lost = scheduler.updates[-1]
        self.assertEqual(lost.reason, T.REASON_AGENT_REMOVED)
        self.assertIsNone(lost.uuid)
        self.assertEqual(scheduler.lost_agents, [agent.id])
        self.assertNotIn(agent.id, cluster.master.agents)
        self.assertIn(agent.id, cluster.master.unreachable)
        framework = cluster.master.frameworks[scheduler.framework_id]
        self.assertEqual(framework.tasks, {})
        self.assertEqual(framework.completed_tasks[-1].state, T.LOST)

    def test_unreachable_for_partition_aware_framework(self) -> None:
        """After the ping timeouts a PARTITION_AWARE framework hears TASK_UNREACHABLE, and slaveLost."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster, checkpoint=True,
                                                   capabilities=frozenset({"PARTITION_AWARE"}))
        agent = cluster.agents[0]
        cluster.cut(agent)
        cluster.advance(90)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.UNREACHABLE])
        self.assertEqual(scheduler.lost_agents, [agent.id])
        task = cluster.master.frameworks[scheduler.framework_id].tasks["t1"]
        self.assertEqual(task.state, T.UNREACHABLE)
        driver.reconcileTasks(["t1"])
        cluster.settle()
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.UNREACHABLE, T.UNREACHABLE])

    def test_partition_aware_task_resumes_when_agent_returns(self) -> None:
        """When an unreachable agent comes back, a PARTITION_AWARE framework's task is RUNNING again."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster, checkpoint=True,
                                                   capabilities=frozenset({"PARTITION_AWARE"}))
        agent = cluster.agents[0]
        cluster.cut(agent)
        cluster.advance(90)
        self.assertIn(agent.id, cluster.master.unreachable)
        cluster.connect(agent)
        cluster.settle()
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.UNREACHABLE, T.RUNNING])
        self.assertIsNone(scheduler.updates[-1].uuid)
        self.assertNotIn(agent.id, cluster.master.unreachable)
        self.assertIn(agent.id, cluster.master.agents)
        framework = cluster.master.frameworks[scheduler.framework_id]
        self.assertEqual(framework.tasks["t1"].state, T.RUNNING)
        self.assertNotIn("t1", [t.task_id for t in framework.completed_tasks])
        self.assertEqual(cluster.master.agents[agent.id].used(), Resources.parse(SMALL))

    def test_lost_task_killed_when_agent_returns(self) -> None:
        """When an unreachable agent comes back, tasks already reported TASK_LOST are killed on it."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster, checkpoint=True)
        agent = cluster.agents[0]
        cluster.cut(agent)
        cluster.advance(90)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.LOST])
        (fake,) = cluster.containerizers[0].by_executor("t1")
        cluster.connect(agent)
        cluster.settle()
        self.assertIn("KILL", [e["type"] for e in fake.events])
        self.assertNotIn("t1", cluster.master.frameworks[scheduler.framework_id].tasks)
        self.assertEqual(cluster.master.agents[agent.id].used(), EMPTY)
        self.assertEqual(agent.frameworks, {})

    def test_every_framework_hears_of_lost_agent(self) -> None:
        """slaveLost goes to every framework, also those without tasks on the agent."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster, checkpoint=True)
        bystander, bystander_driver = self.framework(cluster, name="bystander")
        cluster.cut(cluster.agents[0])
        cluster.advance(90)
        self.assertEqual(bystander.lost_agents, [cluster.agents[0].id])

    def test_healthy_agent_is_kept(self) -> None:
        """An agent that answers its pings is never removed."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster, checkpoint=True)
        cluster.advance(600, step=15)
        self.assertEqual(sorted(cluster.master.agents), ["M-S0", "M-S1"])
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])

    def test_reconnect_within_timeouts_keeps_id_and_tasks(self) -> None:
        """An agent back before the ping timeouts re-registers with its ID and keeps its running tasks."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster, checkpoint=True)
        agent = cluster.agents[0]
        agent_id = agent.id
        cluster.cut(agent)
        cluster.advance(45)
        cluster.connect(agent)
        cluster.settle()
        self.assertEqual(agent.id, agent_id)
        self.assertEqual(agent.state, "RUNNING")
        self.assertEqual(sorted(cluster.master.agents), ["M-S0", "M-S1"])
        record = cluster.master.agents[agent_id]
        self.assertTrue(record.connected)
        self.assertIsNotNone(record.reregistered_time)
        self.assertEqual(cluster.master.metrics["slave_reregistrations"], 1)
        task = cluster.master.frameworks[scheduler.framework_id].tasks["t1"]
        self.assertEqual(task.state, T.RUNNING)
        self.assertEqual(list(record.tasks[scheduler.framework_id]), ["t1"])
        # Still healthy long after: the old ping misses were forgotten.
        cluster.advance(200)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])
        self.assertEqual(scheduler.lost_agents, [])
        # The task still holds its resources and can be killed through the new connection.
        self.assertEqual(record.used(), Resources.parse(SMALL))
        driver.killTask("t1")
        cluster.settle()
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.KILLED])

    def test_reconnected_agent_offered_again(self) -> None:
        """A re-registered agent's free resources are offered again."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster, checkpoint=True)
        agent = cluster.agents[0]
        cluster.cut(agent)
        cluster.settle()
        cluster.connect(agent)
        cluster.settle()
        fresh = [o for o in self.open_offers(cluster) if o.agent_id == agent.id]
        self.assertEqual(len(fresh), 1)
        self.assertEqual(fresh[0].resources, Resources.parse(AGENT) - Resources.parse(SMALL))


class FrameworkLifecycleTests(MasterTestCase):
    def test_failover_within_timeout_keeps_tasks(self) -> None:
        """A scheduler that re-subscribes with its ID within failover_timeout gets its tasks back."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster, failover_timeout=60)
        framework_id = scheduler.framework_id
        cluster.cut_framework(driver)
        cluster.settle()
        framework = cluster.master.frameworks[framework_id]
        self.assertFalse(framework.active)
        self.assertEqual(cluster.master.offers.of_framework(framework_id), [])
        self.assertEqual(self.open_offers(cluster), [])
        cluster.advance(59)
        self.assertIn(framework_id, cluster.master.frameworks)
        successor = Scheduler()
        new_driver = self.driver(cluster, successor, id=framework_id, failover_timeout=60)
        self.assertEqual(successor.registrations[0][0], framework_id)
        self.assertEqual(new_driver.framework_id, framework_id)
        self.assertTrue(framework.active)
        self.assertEqual(list(framework.tasks), ["t1"])
        self.assertEqual(framework.tasks["t1"].state, T.RUNNING)
        self.assertEqual(sorted(o.agent_id for o in successor.offers), ["M-S0", "M-S1"])
        # The failover timer no longer runs, and the new scheduler owns the task.
        cluster.advance(120)
        self.assertIn(framework_id, cluster.master.frameworks)
        new_driver.killTask("t1")
        cluster.settle()
        self.assertEqual(successor.states("t1"), [T.KILLED])
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])

    def test_update_during_failover_delivered_to_successor(self) -> None:
        """An update made while the scheduler is away is retried until the new scheduler gets it."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster, failover_timeout=60)
        framework_id = scheduler.framework_id
        cluster.cut_framework(driver)
        cluster.settle()
        (fake,) = cluster.containerizers[0].by_executor("t1")
        fake.update("t1", T.FINISHED, "done")
        cluster.settle()
        cluster.advance(5)
        successor = Scheduler()
        self.driver(cluster, successor, id=framework_id, failover_timeout=60)
        self.assertEqual(successor.updates, [])
        cluster.advance(5)
        self.assertEqual(successor.states("t1"), [T.FINISHED])
        self.assertEqual(cluster.master.frameworks[framework_id].tasks, {})

    def test_driver_reconnects_with_its_framework_id(self) -> None:
        """A driver whose connection broke hears disconnected, then subscribes again with its framework ID: it
        is re-registered (not registered anew) with its tasks, and offers resume."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster, failover_timeout=60)
        framework = cluster.master.frameworks[scheduler.framework_id]
        cluster.cut_framework(driver)
        cluster.settle()
        self.assertEqual(scheduler.disconnections, 1)
        self.assertFalse(framework.active)
        cluster.advance(30)
        offers = len(scheduler.offers)
        cluster.reconnect_framework(driver)
        self.assertEqual((len(scheduler.registrations), len(scheduler.reregistrations)), (1, 1))
        self.assertEqual(scheduler.reregistrations[0].id, "M")
        self.assertTrue(framework.active)
        self.assertEqual(framework.tasks["t1"].state, T.RUNNING)
        self.assertEqual(len(scheduler.offers), offers + 2)
        driver.killTask("t1")
        cluster.settle()
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.KILLED])

    def test_failover_timeout_removes_framework(self) -> None:
        """Without re-subscription within failover_timeout the framework is removed and its tasks killed."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster, failover_timeout=60)
        framework_id = scheduler.framework_id
        (fake,) = cluster.containerizers[0].by_executor("t1")
        cluster.cut_framework(driver)
        cluster.advance(59)
        self.assertFalse(fake.exited.called)
        cluster.advance(1)
        self.assertNotIn(framework_id, cluster.master.frameworks)
        self.assertIn(framework_id, cluster.master.completed)
        self.assertIn("SHUTDOWN", [e["type"] for e in fake.events])
        self.assertTrue(fake.exited.called)
        self.assertEqual(cluster.agents[0].frameworks, {})
        self.assertEqual(list(cluster.agents[0].updates.heads()), [])
        (record,) = list(cluster.master.completed)
        self.assertEqual(record.completed_tasks[-1].state, T.KILLED)
        self.assertEqual(cluster.allocator.agent_allocated(offer.agent_id), Resources.parse(""))
        # Too late: the ID cannot be used again.
        successor = Scheduler()
        self.driver(cluster, successor, id=framework_id, failover_timeout=60)
        self.assertEqual(len(successor.errors), 1)

    def test_zero_failover_timeout_removes_at_once(self) -> None:
        """With the default failover_timeout of 0 a disconnected framework is removed at once."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster)
        cluster.cut_framework(driver)
        cluster.settle()
        self.assertNotIn(scheduler.framework_id, cluster.master.frameworks)
        self.assertEqual(cluster.agents[0].frameworks, {})

    def test_teardown_removes_framework_and_kills_tasks(self) -> None:
        """driver.stop() tears the framework down: its tasks are killed and its resources offered to others."""
        cluster = self.make_cluster(agents=1)
        scheduler, driver, offer = self.start_task(cluster, failover_timeout=3600)
        framework_id = scheduler.framework_id
        other, other_driver = self.framework(cluster, name="other")
        self.assertEqual([o.resources for o in other.offers], [Resources.parse(AGENT) - Resources.parse(SMALL)])
        (fake,) = cluster.containerizers[0].by_executor("t1")
        driver.stop()
        cluster.settle()
        self.assertNotIn(framework_id, cluster.master.frameworks)
        self.assertIn(framework_id, cluster.master.completed)
        (record,) = list(cluster.master.completed)
        self.assertEqual([(t.task_id, t.state) for t in record.completed_tasks], [("t1", T.KILLED)])
        self.assertTrue(fake.exited.called)
        self.assertEqual(cluster.agents[0].frameworks, {})
        self.assertEqual(list(cluster.agents[0].updates.heads()), [])
        self.assertEqual(cluster.master.agents[offer.agent_id].used(), EMPTY)
        cluster.master.allocate()
        cluster.settle()
        self.assertEqual([o.resources for o in other.offers[1:]], [Resources.parse(SMALL)])
        # Nothing of the old framework is retried or reported later.
        cluster.advance(120)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])

    def test_torn_down_framework_cannot_resubscribe(self) -> None:
        """A framework ID that was torn down is refused on SUBSCRIBE."""
        cluster = self.make_cluster()
        scheduler, driver = self.framework(cluster, failover_timeout=3600)
        framework_id = scheduler.framework_id
        driver.stop()
        cluster.settle()
        again = Scheduler()
        new_driver = self.driver(cluster, again, id=framework_id, failover_timeout=3600)
        self.assertEqual(len(again.errors), 1)
        self.assertIn("removed", again.errors[0])
        self.assertEqual(new_driver.status, "DRIVER_ABORTED")
        self.assertNotIn(framework_id, cluster.master.frameworks)
        self.assertEqual(again.offers, [])

    def test_second_scheduler_takes_over(self) -> None:
        """A new scheduler subscribing with a connected framework's ID takes it over, tasks and events."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster, failover_timeout=60)
        successor = Scheduler()
        successor_driver = self.driver(cluster, successor, id=scheduler.framework_id, failover_timeout=60)
        self.assertEqual(successor.registrations[0][0], scheduler.framework_id)
        self.assertIn("t1", cluster.master.frameworks[scheduler.framework_id].tasks)
        self.assertEqual(driver.status, "DRIVER_ABORTED")
        before = len(scheduler.updates)
        successor_driver.killTask("t1")
        cluster.settle()
        self.assertEqual(successor.states("t1"), [T.KILLED])
        self.assertEqual(len(scheduler.updates), before)

    def test_old_scheduler_told_it_failed_over(self) -> None:
        """The scheduler replaced by a new instance gets the error "Framework failed over"."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster, failover_timeout=60)
        self.driver(cluster, Scheduler(), id=scheduler.framework_id, failover_timeout=60)
        self.assertEqual(scheduler.errors, ["Framework failed over"])


class MessageTests(MasterTestCase):
    def test_framework_and_executor_messages(self) -> None:
        """A framework message reaches the executor, and an executor message the scheduler with the executor's
        and the agent's IDs, byte for byte."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster)
        (fake,) = cluster.containerizers[0].by_executor("t1")
        driver.sendFrameworkMessage("t1", offer.agent_id, b"\x00\xffto the executor")
        cluster.settle()
        self.assertEqual(fake.messages(), [b"\x00\xffto the executor"])
        fake.message(b"\xfe\x00to the scheduler")
        cluster.settle()
        self.assertEqual(scheduler.messages, [("t1", offer.agent_id, b"\xfe\x00to the scheduler")])
        self.assertEqual(cluster.agents[0].metrics["valid_framework_messages"], 2)

    def test_message_for_unknown_executor_dropped(self) -> None:
        """A framework message for an executor the agent does not run is dropped there; nothing else changes."""
        cluster = self.make_cluster()
        scheduler, driver, offer = self.start_task(cluster)
        driver.sendFrameworkMessage("nobody", offer.agent_id, b"hello?")
        cluster.settle()
        self.assertEqual(cluster.agents[0].metrics["invalid_framework_messages"], 1)
        self.assertEqual(scheduler.errors, [])
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])


class LargeMessageTests(MasterTestCase):
    """Messages larger than one Perspective Broker string (640 KiB) arrive whole, as Mesos's do."""

    def data_task(self, offer: Offer, task_id: str, size: int) -> dict[str, Any]:
        task = task_on(offer, task_id, resources="cpus:0.1;mem:32")
        task["data"] = base64.b64encode(os.urandom(size)).decode()
        return task

    def test_large_launch(self) -> None:
        """A task whose data alone is 700 KiB launches and runs, its data intact on the agent."""
        cluster = self.make_cluster(agents=1)
        scheduler, driver = self.framework(cluster)
        offer = scheduler.offers[0]
        task = self.data_task(offer, "big", 700 * 1024)
        self.launch(cluster, driver, offer, task)
        self.assertEqual(scheduler.states("big"), [T.RUNNING])
        (fake,) = cluster.containerizers[0].by_executor("big")
        self.assertEqual(fake.running["big"].data, base64.b64decode(task["data"]))

    def test_large_reregistration(self) -> None:
        """An agent whose tasks add up to over a MiB re-registers with every one of them."""
        cluster = self.make_cluster(agents=1)
        scheduler, driver = self.framework(cluster, checkpoint=True)
        for index in range(8):
            offer = scheduler.offers[-1]
            self.launch(cluster, driver, offer, self.data_task(offer, f"t{index}", 128 * 1024), refuse_seconds=0)
        agent = cluster.agents[0]
        agent_id = agent.id
        cluster.cut(agent)
        cluster.settle()
        cluster.connect(agent)
        cluster.settle()
        self.assertEqual((agent.id, agent.state), (agent_id, "RUNNING"))
        self.assertEqual(cluster.master.metrics["slave_reregistrations"], 1)
        tasks = cluster.master.frameworks[scheduler.framework_id].tasks
        self.assertEqual(sorted(tasks), [f"t{index}" for index in range(8)])
        self.assertEqual({task.state for task in tasks.values()}, {T.RUNNING})

    def test_large_messages(self) -> None:
        """Framework and executor messages of a MiB each arrive byte for byte."""
        cluster = self.make_cluster(agents=1)
        scheduler, driver, offer = self.start_task(cluster)
        (fake,) = cluster.containerizers[0].by_executor("t1")
        down, up = os.urandom(1024 * 1024), os.urandom(1024 * 1024)
        driver.sendFrameworkMessage("t1", offer.agent_id, down)
        fake.message(up)
        cluster.settle()
        self.assertEqual(fake.messages(), [down])
        self.assertEqual(scheduler.messages, [("t1", offer.agent_id, up)])


class AuthorizationTests(MasterTestCase):
    def test_acls_judge_the_authenticated_principal(self) -> None:
        """The register_frameworks ACLs judge the principal a framework proved (with CRAM-MD5 over PB; in
        process, the one its host vouches for): ops registers and runs tasks; dev, whose credential is good,
        is refused with the reason and its driver aborts; so is an anonymous framework."""
        cluster = self.make_cluster(agents=1, credentials=self.credentials(), acls=ACLS)
        ops = Scheduler()
        ops.pending = [command_task("t1", "true")]
        cluster.framework("ops", scheduler=ops, principal="ops")
        self.assertEqual(ops.states("t1"), [T.RUNNING, T.FINISHED])
        self.assertEqual(cluster.master.frameworks[ops.framework_id].info.principal, "ops")
        for principal in ("dev", None):
            refused = Scheduler()
            _, driver = cluster.framework("other", scheduler=refused, principal=principal)
            self.assertIsNone(refused.framework_id)
            (error,) = refused.errors
            self.assertIn("Not authorized to register", error)
            self.assertEqual(driver.status, "DRIVER_ABORTED")
        self.assertEqual(list(cluster.master.frameworks), [ops.framework_id])


# -- the same behaviours over the real PB adapters ---------------------------------------------------------------------
# Agents, scheduler drivers and the master talk through their production PB adapters over an in-memory network.


class PBRegistrationTests(RegistrationTests):
    cluster_class = PBCluster


class PBOfferTests(OfferTests):
    cluster_class = PBCluster


class PBRoleTests(RoleTests):
    cluster_class = PBCluster


class PBAcceptTests(AcceptTests):
    cluster_class = PBCluster


class PBStatusUpdateTests(StatusUpdateTests):
    cluster_class = PBCluster


class PBReconciliationTests(ReconciliationTests):
    cluster_class = PBCluster


class PBAgentLossTests(AgentLossTests):
    cluster_class = PBCluster


class PBFrameworkLifecycleTests(FrameworkLifecycleTests):
    cluster_class = PBCluster


class PBMessageTests(MessageTests):
    cluster_class = PBCluster


class PBLargeMessageTests(LargeMessageTests):
    cluster_class = PBCluster


class PBAuthorizationTests(AuthorizationTests):
    cluster_class = PBCluster
