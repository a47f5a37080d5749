"""Which agents the master asks the allocator about after an event: the ones the event freed resources on.

Mesos allocates for one agent when that agent is added or changes, and for every agent only when a
framework becomes able to take offers (subscribed, revived); a teardown frees resources only where the
framework held them. The periodic batch (``--allocation_interval``) still covers every agent.
"""

from __future__ import annotations

from typing import Any, Iterable

from mesostw.model.resources import Resources
from tests.unit.test_master import AGENT, SMALL, MasterTestCase, task_on


class AllocationRequestTests(MasterTestCase):
    def spy(self, cluster: Any) -> list[list[str] | None]:
        """Record the agents of every allocate() call the master makes from now on (None: all)."""
        calls: list[list[str] | None] = []
        allocate = cluster.allocator.allocate

        def recording(agent_ids: Iterable[str] | None = None) -> Any:
            agent_ids = None if agent_ids is None else sorted(agent_ids)
            calls.append(agent_ids)
            return allocate(agent_ids)

        cluster.allocator.allocate = recording
        return calls

    def test_teardown_allocates_only_where_the_framework_held_resources(self) -> None:
        """A torn down framework's task and offer are offered to others at once, by allocating only the
        agents they were on."""
        cluster = self.make_cluster(agents=3)
        first, first_driver = self.framework(cluster, name="one", failover_timeout=3600)
        self.assertEqual(sorted(o.agent_id for o in first.offers), ["M-S0", "M-S1", "M-S2"])
        first_driver.declineOffer(first.offers_on("M-S2")[0].id, {"refuse_seconds": 3600})
        cluster.settle()
        second, _ = self.framework(cluster, name="two")
        offer = first.offers_on("M-S0")[0]
        self.launch(cluster, first_driver, offer, task_on(offer, "t1"), refuse_seconds=3600)
        self.assertEqual(sorted((o.agent_id, o.resources) for o in second.offers),
                         [("M-S0", Resources.parse(AGENT) - Resources.parse(SMALL)),
                          ("M-S2", Resources.parse(AGENT))])
        calls = self.spy(cluster)
        first_driver.stop()
        cluster.settle()
        self.assertEqual(calls, [["M-S0", "M-S1"]])
        self.assertEqual(sorted((o.agent_id, o.resources) for o in second.offers[2:]),
                         [("M-S0", Resources.parse(SMALL)), ("M-S1", Resources.parse(AGENT))])

    def test_returned_resources_allocate_their_agent_only(self) -> None:
        """Resources left over by an ACCEPT, and a task that ended, allocate only their agent."""
        cluster = self.make_cluster(agents=2)
        scheduler, driver = self.framework(cluster)
        calls = self.spy(cluster)
        offer = scheduler.offers_on("M-S1")[0]
        self.launch(cluster, driver, offer, task_on(offer, "t1", command="true"))
        cluster.advance(1)
        cluster.settle()
        self.assertIn("TASK_FINISHED", scheduler.states("t1"))
        self.assertGreaterEqual(len(calls), 2)
        self.assertEqual([call for call in calls if call != ["M-S1"]], [])

    def test_new_agent_allocates_itself_only(self) -> None:
        """A newly registered agent is allocated on its own."""
        cluster = self.make_cluster(agents=1)
        scheduler, _ = self.framework(cluster)
        calls = self.spy(cluster)
        agent = cluster.add_agent(AGENT, port=5052)
        cluster.settle()
        self.assertEqual(calls, [[agent.id]])
        self.assertEqual([o.agent_id for o in scheduler.offers], ["M-S0", agent.id])
