"""The arrays of the last /master/state-summary and GET_AGENTS served again while nothing they show
changed (:mod:`mesostw.master.summary_texts`, :mod:`mesostw.master.summary_cache`): never once something did.

Each change below is followed by reads that must not be the kept arrays as they were and must equal
answers made with nothing kept; each test fails if the change it makes is not marked (for the
summary's texts) or counted (for GET_AGENTS).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

from twisted.internet import defer
from twisted.trial import unittest

from mesostw.http import stream
from mesostw.http.router import Router
from mesostw.master import agent_text, state_json, summary_cache, summary_texts, v1_json
from mesostw.master.http import MasterEndpoints
from mesostw.model.lazyjson import Raw, materialize
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task
from tests.helpers.web import Client

JSON = {"Content-Type": "application/json", "Accept": "application/json"}


class RawTests(unittest.TestCase):
    def test_raw_is_written_as_it_is(self) -> None:
        """A Raw value inside streamed Fields is written byte for byte, and materializes to what it encodes."""
        value = stream.Fields({"a": 1, "b": Raw(b'[{"x":"\\u00e9"}]'), "c": stream.Texts(["2"])})
        self.assertEqual(stream.encode(value), b'{"a":1,"b":[{"x":"\\u00e9"}],"c":[2]}')
        self.assertEqual(materialize(value), {"a": 1, "b": [{"x": "\u00e9"}], "c": [2]})

    def test_large_raw_is_written_in_pieces(self) -> None:
        """A Raw value larger than a piece is written in pieces of RAW_PIECE bytes at most, which make it whole."""
        self.patch(stream, "RAW_PIECE", 4)
        pieces = list(stream.chunks(Raw(b"[1,22,333]")))
        self.assertEqual(pieces, [b"[1,2", b"2,33", b"3]"])
        self.assertEqual(list(stream.chunks(Raw((b"[1,", b"22,333", b"]")))), [b"[1,", b"22,3", b"33", b"]"])
        self.assertEqual(materialize(Raw((b"[1,", b"22,333", b"]"))), [1, 22, 333])


class SummaryCacheTests(unittest.TestCase):
    """A cluster of two agents, a framework with tasks and outstanding offers, an operator API."""

    def setUp(self) -> None:
        self.cluster = Cluster(agents=2, resources="cpus:8;mem:4096;ports:[31000-32000]")
        self.addCleanup(self.cluster.stop)
        self.master = self.cluster.master
        self.scheduler, self.driver = self.framework("web", 4)
        router = Router()
        MasterEndpoints(self.master, self.cluster.config.rendered()).install(router)
        self.client = Client(router)

    def framework(self, name: str, count: int, **info: Any) -> tuple[RecordingScheduler, Any]:
        scheduler = RecordingScheduler()
        scheduler.decline_unused = False  # offers stay outstanding
        scheduler.pending = [command_task(f"{name}{i}", "sleep 100", "cpus:0.5;mem:16") for i in range(count)]
        return self.cluster.framework(name, scheduler=scheduler, **info)

    def call(self, body: dict[str, Any]) -> None:
        reply = self.client.request("POST", "/api/v1", json.dumps(body).encode(), JSON)
        self.assertEqual(reply.code, 200, reply.body)
        self.cluster.settle()

    def summary(self) -> tuple[bool, Any]:
        """Whether the summary read now is its kept arrays as they were (no text made again, none laid out
        again) and GET_AGENTS its kept array, and what they show."""
        fields = state_json.state_summary(self.master)
        kept = summary_texts.summary_texts(self.master).reused
        agents = v1_json.get_agents_fields(self.master)
        if kept:
            self.assertIsInstance(fields["slaves"], Raw)
        self.assertIsInstance(fields["frameworks"], Raw)
        shown = json.loads(stream.encode(fields))
        shown["get_agents"] = json.loads(stream.encode(agents))
        return kept and isinstance(agents["agents"], Raw), shown

    def fresh(self) -> Any:
        """The summary and GET_AGENTS made with nothing kept."""
        saved, saved_summaries = agent_text._TEXTS, summary_texts._SUMMARIES
        self.patch(agent_text, "_TEXTS", WeakKeyDictionary())
        self.patch(summary_texts, "_SUMMARIES", WeakKeyDictionary())
        try:
            shown = json.loads(stream.encode(state_json.state_summary(self.master)))
            shown["get_agents"] = json.loads(stream.encode(v1_json.get_agents_fields(self.master)))
            return shown
        finally:
            self.patch(agent_text, "_TEXTS", saved)
            self.patch(summary_texts, "_SUMMARIES", saved_summaries)

    def assertFollows(self, change: Callable[[], Any]) -> Any:
        """The summary is kept while nothing changes; after ``change`` it is made again, as a fresh one,
        and then kept again."""
        self.summary()
        self.assertEqual(self.summary(), (True, self.fresh()))
        change()
        self.cluster.settle()
        kept, shown = self.summary()
        self.assertFalse(kept, "a summary kept from before the change was served")
        self.assertEqual(shown, self.fresh())
        self.assertEqual(self.summary(), (True, shown))
        return shown

    def quiet(self) -> None:
        """The framework's offers declined for long and no more made: what a change does to offers does not
        hide whether the change itself was seen."""
        for offer in self.master.offers.of_framework(self.scheduler.framework_id):
            self.driver.declineOffer(offer.id, {"refuse_seconds": 3600})
        self.driver.suppressOffers()
        self.cluster.settle()
        self.assertEqual(len(self.master.offers), 0)

    def tasks(self) -> list[Any]:
        return list(self.master.frameworks[self.scheduler.framework_id].tasks.values())

    def test_task_ends(self) -> None:
        """A killed task: its state, the counts, what its agent and framework use, the completed tasks."""
        self.quiet()
        victim = self.tasks()[0]
        shown = self.assertFollows(lambda: self.driver.killTask(victim.task_id))
        self.assertEqual(sum(a["TASK_KILLED"] for a in shown["slaves"]), 1)

    def test_task_killing(self) -> None:
        """A task whose state changes but which stays live (and holds what it held): the counts."""
        self.quiet()
        victim = self.tasks()[0]
        [executor] = [e for c in self.cluster.containerizers for e in c.by_executor(victim.task_id)]
        shown = self.assertFollows(lambda: executor.update(victim.task_id, "TASK_KILLING"))
        self.assertEqual(sum(a["TASK_KILLING"] for a in shown["slaves"]), 1)
        self.assertEqual(shown["frameworks"][0]["TASK_KILLING"], 1)

    def test_agents_with_completed_tasks(self) -> None:
        """An agent's text is made again when its completed tasks change: one of its tasks ends, or an old one
        leaves the bounded history as tasks end elsewhere; it is kept through changes elsewhere. The framework's
        agents are those of its live and its completed tasks."""
        self.quiet()
        self.patch(self.master.tasks, "_max_completed", 2)  # the history of frameworks subscribing from now on
        scheduler, driver = self.framework("ops", 0)
        offers = {offer.agent_id: offer for offer in self.master.offers.of_framework(scheduler.framework_id)}
        first, second = sorted(offers)
        for agent_id, names in ((first, ["x1"]), (second, ["y1", "y2", "y3"])):
            tasks = [command_task(name, "sleep 100", "cpus:0.5;mem:16") for name in names]
            for task in tasks:
                task["agent_id"] = {"value": agent_id}
            driver.launchTasks([offers[agent_id].id], tasks, {"refuse_seconds": 3600})
        driver.suppressOffers()
        self.cluster.settle()
        self.assertEqual(len(self.master.offers), 0)

        def killed_on(shown: Any, agent_id: str) -> int:
            [agent] = [a for a in shown["slaves"] if a["id"] == agent_id]
            return int(agent["TASK_KILLED"])

        shown = self.assertFollows(lambda: driver.killTask("x1"))
        self.assertEqual(killed_on(shown, first), 1)
        kept = summary_texts.summary_texts(self.master)._agents[first][1]
        shown = self.assertFollows(lambda: driver.killTask("y1"))
        self.assertEqual((killed_on(shown, first), killed_on(shown, second)), (1, 1))
        self.assertIs(summary_texts.summary_texts(self.master)._agents[first][1], kept)
        [ops] = [f for f in shown["frameworks"] if f["name"] == "ops"]
        self.assertEqual(ops["slave_ids"], [first, second])
        # The history keeps two: x1 leaves it, and the first agent shows no killed task any more, nor the framework
        # that agent (y3 runs on, and keeps the second among its agents).
        shown = self.assertFollows(lambda: driver.killTask("y2"))
        self.assertEqual((killed_on(shown, first), killed_on(shown, second)), (0, 2))
        [ops] = [f for f in shown["frameworks"] if f["name"] == "ops"]
        self.assertEqual(ops["slave_ids"], [second])

    def test_task_launched(self) -> None:
        """A task launched on an outstanding offer: the offer goes, the task counts."""
        offer = self.master.offers.of_framework(self.scheduler.framework_id)[0]

        def launch() -> None:
            task = command_task("late", "sleep 100", "cpus:0.5;mem:16")
            task["agent_id"] = {"value": offer.agent_id}
            self.driver.launchTasks([offer.id], [task])

        shown = self.assertFollows(launch)
        self.assertEqual(shown["frameworks"][0]["TASK_RUNNING"], 5)

    def test_offers_declined(self) -> None:
        """Outstanding offers declined: the agents' and the framework's offered resources."""
        offers = self.master.offers.of_framework(self.scheduler.framework_id)
        self.assertTrue(offers)
        shown = self.assertFollows(lambda: [self.driver.declineOffer(o.id) for o in offers])
        self.assertEqual(shown["frameworks"][0]["offered_resources"]["cpus"], 0)

    def test_offers_made(self) -> None:
        """Offers made: the agents' and the framework's offered resources."""
        self.quiet()
        shown = self.assertFollows(self.driver.reviveOffers)
        self.assertEqual(shown["frameworks"][0]["offered_resources"]["cpus"], 2 * 8 - 4 * 0.5)
        self.assertTrue(all(agent["offered_resources"]["cpus"] for agent in shown["slaves"]))

    def test_agents_without_tasks_leave(self) -> None:
        """An agent that runs nothing leaves the list as it unregisters, becomes unreachable or is marked gone."""
        self.quiet()
        for port, leave in ((5099, self.master.unregisterAgent), (5098, self.master.agentUnreachable),
                            (5097, lambda agent_id: self.call({"type": "MARK_AGENT_GONE",
                                                               "mark_agent_gone": {"agent_id": {"value": agent_id}}}))):
            agent = self.cluster.add_agent("cpus:1;mem:64", port=port)
            self.cluster.settle()
            self.assertIn(agent.id, [a["id"] for a in self.summary()[1]["slaves"]])
            shown = self.assertFollows(lambda agent_id=agent.id, leave=leave: leave(agent_id))
            self.assertNotIn(agent.id, [a["id"] for a in shown["slaves"]])

    def test_agent_drained_later(self) -> None:
        """An agent without tasks drained: DRAINING, then DRAINED once the registry has it, each shown."""
        self.quiet()
        agent = self.cluster.add_agent("cpus:1;mem:64", port=5099)
        self.cluster.settle()
        states = self.master.agent_states
        persist, held = states._persist, []

        def holding(mutation: Any) -> Any:
            d = persist(mutation)
            held.append(defer.Deferred())
            return held[-1].addCallback(lambda _: d)

        self.patch(states, "_persist", holding)
        states.drain(agent.id, None, False)

        def drain_state(shown: Any) -> str:
            return str([a for a in shown["slaves"] if a["id"] == agent.id][0]["drain_info"]["state"])

        self.assertEqual(drain_state(self.assertFollows(lambda: held[0].callback(None))), "DRAINING")
        self.assertEqual(len(held), 2)
        self.assertEqual(drain_state(self.assertFollows(lambda: held[1].callback(None))), "DRAINED")

    def test_agent_added(self) -> None:
        """A new agent is listed."""
        self.quiet()
        shown = self.assertFollows(lambda: self.cluster.add_agent("cpus:1;mem:64", port=5099))
        self.assertEqual(len(shown["slaves"]), 3)

    def test_agent_joins_without_its_record_set(self) -> None:
        """An agent joining is listed as it joins, not because its record is set once it is made (its resources
        placed, left out here)."""
        self.quiet()
        self.patch(self.master.agent_resources, "place", lambda record, reported: None)
        shown = self.assertFollows(lambda: self.cluster.add_agent("cpus:1;mem:64", port=5099))
        self.assertEqual(len(shown["slaves"]), 3)

    def test_kept_in_pieces(self) -> None:
        """Arrays kept a few texts to a piece read back as the arrays they were."""
        self.patch(summary_cache, "_BATCH", 2)
        self.patch(summary_texts, "BATCH", 2)
        shown = self.assertFollows(lambda: self.cluster.add_agent("cpus:1;mem:64", port=5099))
        self.assertEqual(len(shown["slaves"]), 3)
        self.assertEqual(len(shown["get_agents"]["agents"]), 3)

    def test_agent_gone(self) -> None:
        """An agent marked gone is no longer listed."""
        self.quiet()
        agent_id = self.cluster.agents[0].id
        shown = self.assertFollows(lambda: self.call({"type": "MARK_AGENT_GONE",
                                                      "mark_agent_gone": {"agent_id": {"value": agent_id}}}))
        self.assertNotIn(agent_id, [a["id"] for a in shown["slaves"]])

    def test_agent_disconnected_and_back(self) -> None:
        """An agent cut off is inactive; back, it is active and re-registered."""
        self.quiet()
        agent = self.cluster.agents[0]
        shown = self.assertFollows(lambda: self.cluster.cut(agent))
        self.assertEqual([a["active"] for a in shown["slaves"] if a["id"] == agent.id], [False])
        shown = self.assertFollows(lambda: self.cluster.connect(agent))
        self.assertEqual([a["active"] for a in shown["slaves"] if a["id"] == agent.id], [True])

    def test_agent_without_tasks_disconnected_and_back(self) -> None:
        """An agent that runs nothing, cut off: only its record changes (inactive); back, it is active again."""
        self.quiet()
        agent = self.cluster.add_agent("cpus:1;mem:64", port=5099)
        self.cluster.settle()
        shown = self.assertFollows(lambda: self.cluster.cut(agent))
        self.assertEqual([a["active"] for a in shown["slaves"] if a["id"] == agent.id], [False])
        shown = self.assertFollows(lambda: self.cluster.connect(agent))
        self.assertEqual([a["active"] for a in shown["slaves"] if a["id"] == agent.id], [True])

    def test_agent_deactivated_drained_reactivated(self) -> None:
        """An operator's deactivation, drain and reactivation of an agent."""
        first, second = (agent.id for agent in self.cluster.agents)
        self.assertFollows(lambda: self.call({"type": "DEACTIVATE_AGENT",
                                              "deactivate_agent": {"agent_id": {"value": first}}}))
        shown = self.assertFollows(lambda: self.call({"type": "DRAIN_AGENT",
                                                      "drain_agent": {"agent_id": {"value": second}}}))
        self.assertIn("drain_info", [a for a in shown["slaves"] if a["id"] == second][0])
        shown = self.assertFollows(lambda: self.call({"type": "REACTIVATE_AGENT",
                                                      "reactivate_agent": {"agent_id": {"value": first}}}))
        self.assertEqual([a["deactivated"] for a in shown["slaves"] if a["id"] == first], [False])

    def test_framework_added_disconnected_and_torn_down(self) -> None:
        """A new framework is listed; one whose scheduler went away is not connected; one torn down is gone,
        and so are its tasks from the agents' counts."""
        ops: list[Any] = []
        shown = self.assertFollows(lambda: ops.extend(self.framework("ops", 1, failover_timeout=3600.0)))
        self.assertEqual(sorted(f["name"] for f in shown["frameworks"]), ["ops", "web"])
        self.assertEqual(sum(a["TASK_RUNNING"] for a in shown["slaves"]), 5)
        shown = self.assertFollows(lambda: self.cluster.cut_framework(ops[1]))
        self.assertEqual([f["connected"] for f in shown["frameworks"] if f["name"] == "ops"], [False])
        framework_id = ops[0].framework_id
        shown = self.assertFollows(lambda: self.call({"type": "TEARDOWN",
                                                      "teardown": {"framework_id": {"value": framework_id}}}))
        self.assertEqual([f["name"] for f in shown["frameworks"]], ["web"])
        self.assertEqual(sum(a["TASK_RUNNING"] for a in shown["slaves"]), 4)

    def test_agent_with_completed_tasks_only_of_a_framework_torn_down(self) -> None:
        """A framework torn down takes its completed tasks out of the counts of agents where it runs nothing."""
        self.quiet()
        scheduler, driver = self.framework("ops", 0)
        first = self.cluster.agents[0].id
        [offer] = [o for o in self.master.offers.of_framework(scheduler.framework_id) if o.agent_id == first]
        task = command_task("o1", "sleep 100", "cpus:0.5;mem:16")
        task["agent_id"] = {"value": first}
        driver.launchTasks([offer.id], [task], {"refuse_seconds": 3600})
        driver.suppressOffers()
        self.cluster.settle()
        for leftover in self.master.offers.of_framework(scheduler.framework_id):
            driver.declineOffer(leftover.id, {"refuse_seconds": 3600})
        driver.killTask("o1")
        self.cluster.settle()
        self.assertEqual(len(self.master.offers), 0)
        [agent] = [a for a in self.summary()[1]["slaves"] if a["id"] == first]
        self.assertEqual((agent["TASK_KILLED"], len(agent["framework_ids"])), (1, 2))
        shown = self.assertFollows(lambda: self.call({
            "type": "TEARDOWN", "teardown": {"framework_id": {"value": scheduler.framework_id}}}))
        [agent] = [a for a in shown["slaves"] if a["id"] == first]
        self.assertEqual((agent["TASK_KILLED"], agent["framework_ids"]), (0, [self.scheduler.framework_id]))

    def test_executor_ends(self) -> None:
        """A custom executor that ends gives back what it held: its agent and framework use less."""
        offer = self.master.offers.of_framework(self.scheduler.framework_id)[0]
        task = command_task("ex1", "unused", "cpus:0.5;mem:16")
        del task["command"]
        task["executor"] = {"executor_id": {"value": "ex"}, "name": "ex", "command": {"value": "./my-executor"},
                            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.25}}]}
        task["agent_id"] = {"value": offer.agent_id}
        self.driver.launchTasks([offer.id], [task])
        self.cluster.settle()
        self.quiet()
        self.assertTrue(self.master.tasks.executor(offer.agent_id, self.scheduler.framework_id, "ex"))
        used = self.summary()[1]["frameworks"][0]["used_resources"]["cpus"]
        shown = self.assertFollows(lambda: self.master.exitedExecutor(
            offer.agent_id, self.scheduler.framework_id, "ex", 0))
        self.assertEqual(shown["frameworks"][0]["used_resources"]["cpus"], used - 0.25)

    def test_streamed_summary_with_a_change_meanwhile(self) -> None:
        """Texts made as they are written are kept, and one that changed after it was made is made again at the
        next summary; if another summary took the changes meanwhile, what the first made is not kept."""
        self.patch(summary_texts, "EAGER", 0)
        self.patch(stream, "BATCH", 1)  # each agent written as it is made
        self.quiet()
        first = next(iter(self.master.agents))
        [victim, *_] = [t for t in self.tasks() if t.agent_id == first]
        [other, *_] = [t for t in self.tasks() if t.agent_id == first and t is not victim]
        for read_meanwhile, task in ((False, victim), (True, other)):
            self.patch(summary_texts, "_SUMMARIES", WeakKeyDictionary())
            pieces = stream.chunks(state_json.state_summary(self.master))
            while b'"id"' not in next(pieces):
                pass  # the first agent made
            self.driver.killTask(task.task_id)
            self.cluster.settle()
            if read_meanwhile:
                self.assertEqual(self.summary()[1], self.fresh())
            b"".join(pieces)
            kept, shown = self.summary()
            self.assertEqual(shown, self.fresh())
            self.assertEqual(self.summary(), (True, shown))

    def test_not_kept_when_changed_while_written(self) -> None:
        """A summary during whose writing something changed is not kept: the next read is made afresh."""
        self.summary()
        pieces = stream.chunks(state_json.state_summary(self.master))
        next(pieces)
        next(pieces)  # the first agents made
        self.driver.killTask(self.tasks()[0].task_id)
        self.cluster.settle()
        b"".join(pieces)
        kept, shown = self.summary()
        self.assertFalse(kept)
        self.assertEqual(shown, self.fresh())

    def test_not_kept_when_abandoned(self) -> None:
        """A summary whose client went away before its end is not kept."""
        self.patch(summary_texts, "EAGER", 0)
        self.patch(stream, "BATCH", 1)
        self.summary()
        self.assertTrue(self.summary()[0])
        self.cluster.add_agent("cpus:1;mem:64", port=5099)
        self.cluster.settle()
        pieces = stream.chunks(state_json.state_summary(self.master))
        while b'"id"' not in next(pieces):
            pass  # the first agent written
        pieces.close()
        self.assertFalse(self.summary()[0])
        self.assertTrue(self.summary()[0])
