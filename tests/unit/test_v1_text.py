"""The v1 operator API's texts written directly (:mod:`mesostw.master.v1_text`,
:mod:`mesostw.master.v1_agent_text`) against the dict builders they replace.

Each test fails if a text differs by one byte from ``json.dumps`` of the model (a field missing, out of
order, or shown when it should be left out), or if a text kept in one of the small shared tables is
served for a bag or an agent that changed since it was made.
"""

from __future__ import annotations

import json
from typing import Any
from weakref import WeakKeyDictionary

from twisted.trial import unittest

from mesostw.auth.acls import Authorizer, parse_acls
from mesostw.auth.policy import Security
from mesostw.http import stream
from mesostw.http.router import Router
from mesostw.http.stream import materialize
from mesostw.master import agent_text, state_json, v1_agent_text, v1_json, v1_text
from mesostw.master.http import MasterEndpoints
from mesostw.master.tally import ResourceTally
from mesostw.master.v1_agent_text import agent_v1_json
from mesostw.master.v1_text import resources_v1_json, task_v1_json
from mesostw.model import task as T
from mesostw.model.info import AgentInfo
from mesostw.model.resources import EMPTY, Resources
from mesostw.operator.approvers import EVERYTHING, Approvers
from mesostw.operator.v1 import task_v1
from tests.helpers.bigmaster import QuietAgentLink
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task
from tests.helpers.web import Client

JSON = {"Content-Type": "application/json", "Accept": "application/json"}

#: a persistent volume on a dynamic reservation refined twice, beside a labelled dynamic reservation
VOLUMES = [
    {"name": "disk", "type": "SCALAR", "scalar": {"value": 64},
     "reservations": [{"type": "STATIC", "role": "ops"},
                      {"type": "DYNAMIC", "role": "ops/web", "principal": "alice",
                       "labels": {"labels": [{"key": "k", "value": "v"}]}}],
     "disk": {"persistence": {"id": "vol1", "principal": "alice"},
              "volume": {"container_path": "data", "mode": "RW"}}},
    {"name": "mem", "type": "SCALAR", "scalar": {"value": 128},
     "reservations": [{"type": "DYNAMIC", "role": "ops", "principal": "bob",
                       "labels": {"labels": [{"key": "why", "value": "db"}]}}]},
    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.25}},
]

RESOURCES = ["cpus:0.5;mem:256;disk:512;ports:[31000-31000]", "cpus:1", "", "cpus:0.1;mem:32.5;gpus:1",
             "cpus(ops):2;mem:64;ports:[1-2,5-9]", "cpus:1;disks:{a,b};bandwidth:3.25",
             "cpus:1;ports:[10-20];ephemeral:[1-3]", "cpus(*):1;cpus(web):0.5;ports(web):[1-1]",
             "mem:0.001;weird_name\u00e9:2;zzz:{\u2603}", "ports:[31000-31000];mem:8;cpus:1e-3",
             json.dumps(VOLUMES)]

#: every kind of agent attribute: text, scalar, ranges, set
ATTRIBUTES = {"rack": "r1", "zone": "a\u00e9", "level": 3.5, "span": ((1, 5), (9, 9)), "tags": frozenset({"b", "a"})}

ACLS = {
    "permissive": False,
    "view_frameworks": [{"principals": {"values": ["dev"]}, "users": {"values": ["nobody"]}}],
    "view_tasks": [{"principals": {"values": ["dev"]}, "users": {"values": ["nobody"]}}],
    "view_executors": [{"principals": {"values": ["dev"]}, "users": {"values": ["nobody"]}}],
    "view_roles": [{"principals": {"values": ["dev"]}, "roles": {"values": ["web"]}}],
}


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def bag(text: str) -> Resources:
    return Resources.from_json(json.loads(text)) if text.startswith("[") else Resources.parse(text)


class ResourcesTextTests(unittest.TestCase):
    def test_resources_text_is_to_json(self) -> None:
        """resources_v1_json is json.dumps of Resources.to_json(role), for every allocation role, with
        static, dynamic and refined reservations, labels, persistent volumes, sets, ranges and odd names; the
        same from the tables, and for an equal bag made apart (the table by value)."""
        for text in RESOURCES:
            resources = bag(text)
            for role in (None, "*", "ops"):
                expected = dumps(resources.to_json(role))
                self.assertEqual(resources_v1_json(resources, role), expected, (text, role))
                self.assertEqual(resources_v1_json(resources, role), expected, (text, role))
                twin = Resources(dict(reversed(list(resources.entries()))))
                self.assertIsNot(twin, resources)
                self.assertEqual(resources_v1_json(twin, role), expected, (text, role))

    def test_full_tables_start_again(self) -> None:
        """Tables that are full are emptied and filled again: every text stays the bag's own."""
        self.patch(v1_text, "_RESOURCES_MAX", 2)
        self.patch(v1_text, "_BY_VALUE_MAX", 2)
        self.patch(v1_text, "_SHAPES_MAX", 2)
        for _ in range(3):
            for text in RESOURCES:
                resources = bag(text)
                self.assertEqual(resources_v1_json(resources, "web"), dumps(resources.to_json("web")))
        self.assertLessEqual(len(v1_text._RESOURCES), 2)
        self.assertLessEqual(len(v1_text._BY_VALUE), 2)

    def test_sums_made_afresh_are_not_confused(self) -> None:
        """Sums made afresh at each read (what a framework holds on an agent) that differ get their own
        texts, one after the other, even when a sum's object is freed and its id reused."""
        for count in range(1, 30):
            tally = ResourceTally()
            tally.add(Resources.parse("cpus:0.5;mem:8"), count)
            tally.add(Resources.parse(f"ports:[{31000 + count}-{31000 + count}]"))
            total = tally.total()
            self.assertEqual(resources_v1_json(total, "*"), dumps(total.to_json("*")))
            del tally, total

    def test_tally_adds_several_holders_at_once(self) -> None:
        """ResourceTally.add(bag, n) sums as n adds of the bag do, and taking them out one by one leaves
        what the others hold."""
        for text in RESOURCES[:-1]:
            resources = Resources.parse(text)
            tally = ResourceTally()
            tally.add(resources, 3)
            self.assertEqual(tally.total(), resources + resources + resources)
            tally.remove(resources)
            self.assertEqual(tally.total(), resources + resources)
            tally.remove(resources)
            tally.remove(resources)
            self.assertEqual(tally.total(), EMPTY)


    def test_tallies_without_ranges_or_sets_stay_apart(self) -> None:
        """Tallies that never held ranges or set items (which make their counters only then) keep to themselves:
        taking out ports one never held changes nothing, and ports another holds do not show in it."""
        scalars = Resources.parse("cpus:1;mem:64")
        ports = Resources.parse("ports:[31000-31009]")
        first, second = ResourceTally(), ResourceTally()
        first.add(scalars)
        first.remove(ports)
        self.assertEqual(first.total(), scalars)
        second.add(ports, 2)
        second.add(scalars)
        self.assertEqual(first.total(), scalars)
        self.assertEqual(ResourceTally().total(), EMPTY)
        second.remove(ports)
        self.assertEqual(second.total(), scalars + ports)
        second.remove(ports)
        self.assertEqual(second.total(), scalars)


class TaskTextTests(unittest.TestCase):
    def test_statuses_showing_other_ids(self) -> None:
        """A status whose task, agent or executor ID is not its task's shows its own; the status update's UUID
        is shown whether it is the latest status's or not."""
        info = T.TaskInfo.from_json({"name": "n", "task_id": {"value": "t1"}, "agent_id": {"value": "S1"},
                                     "resources": Resources.parse("cpus:1").to_json(),
                                     "executor": {"executor_id": {"value": "ex"}, "command": {"value": "x"}}})
        made = T.Task(info, "F1", executor_id="ex")
        made.record(T.TaskStatus("t1", T.RUNNING, agent_id="S2", executor_id="t1", timestamp=float("inf")))
        made.record(T.TaskStatus("other", T.RUNNING, agent_id="S1", executor_id="ex", healthy=True, timestamp=1))
        made.record(T.TaskStatus("t1", T.FAILED, reason="REASON_X", source=T.SOURCE_AGENT, healthy=False))
        for role in (None, "ops"):
            self.assertEqual(task_v1_json(made, role), dumps(task_v1(made, role)))
            self.assertEqual(v1_text.status_v1_json(made.statuses[1]), dumps(made.statuses[1].to_json()))
        # the status update's UUID: the latest status's, another one, or none
        for healthy in (None, True):
            made.record(T.TaskStatus("t1", T.FAILED, message='say "hi"', uuid=b"\xfb\xff-latest", healthy=healthy))
            for uuid in (b"\xfb\xff-latest", b"\x00other", None):
                made.status_update_uuid = uuid
                self.assertEqual(task_v1_json(made, "ops"), dumps(task_v1(made, "ops")))
        made.record(T.TaskStatus("t1", T.FAILED, message='ends with a quote"'))
        made.status_update_uuid = b"\x00other"
        self.assertEqual(task_v1_json(made, "ops"), dumps(task_v1(made, "ops")))


    def test_known_strings_start_again(self) -> None:
        """The table of known strings' texts is emptied when full, and never keeps long strings; texts stay
        each status's own (quotes, non-ASCII, long messages)."""
        self.patch(v1_text, "_KNOWN", {})
        self.patch(v1_text, "_KNOWN_MAX", 2)
        info = T.TaskInfo.from_json({"name": "n", "task_id": {"value": "t1"}, "agent_id": {"value": "S1"},
                                     "resources": Resources.parse("cpus:1").to_json(), "command": {"value": "x"}})
        for message in ['say "hi"', "caf\u00e9", "x" * 500, 'say "hi"', "plain", "caf\u00e9"]:
            made = T.Task(info, "F\u00e9", user="r\u00f6ot")
            made.record(T.TaskStatus("t1", T.FAILED, message=message, source=T.SOURCE_AGENT, reason="R",
                                     agent_id="S1", uuid=b"u", timestamp=1.5))
            made.status_update_state, made.status_update_uuid = T.FAILED, b"u"
            self.assertEqual(task_v1_json(made, "*"), dumps(task_v1(made, "*")))
            self.assertLessEqual(len(v1_text._KNOWN), 2)
            self.assertTrue(all(len(text) <= v1_text._KNOWN_LENGTH for text in v1_text._KNOWN))


class AgentTextTests(unittest.TestCase):
    """Agents of a cluster with every optional field the v1 Agent has: attributes of every kind,
    reservations, tasks of frameworks of two roles, outstanding offers, a re-registration, deactivation
    and draining."""

    def setUp(self) -> None:
        self.cluster = Cluster(agents=2, resources="cpus:8;mem:4096;disk:4096;ports:[31000-32000];cpus(ops):2")
        self.addCleanup(self.cluster.stop)
        self.master = self.cluster.master
        # an agent registered as a simulated one does, with attributes and a volume; it never answers
        link = QuietAgentLink()
        info = AgentInfo(hostname="odd-\u00e9.example", port=5099, attributes=ATTRIBUTES,
                         resources=bag(json.dumps(VOLUMES)) + Resources.parse("cpus:4;mem:512;ports:[1-100]"))
        self.master.registerAgent(link, info, "1.2.3")
        self.cluster.settle()
        self.web, self.web_driver = self.framework("web", "sleep", 4)
        self.ops, self.ops_driver = self.framework("ops", "ops-sleep", 1, role="ops",
                                                   capabilities=frozenset({"MULTI_ROLE"}), roles=("ops", "dev"))
        router = Router()
        MasterEndpoints(self.master, self.cluster.config.rendered()).install(router)
        self.client = Client(router)

    def framework(self, name: str, prefix: str, count: int, ports: bool = False,
                  **info: Any) -> tuple[RecordingScheduler, Any]:
        scheduler = RecordingScheduler()
        scheduler.decline_unused = False  # offers stay outstanding
        shapes = [f"cpus:0.25;mem:8;ports:[{31100 + i}-{31100 + i}]" if ports else "cpus:0.5;mem:16"
                  for i in range(count)]
        scheduler.pending = [command_task(f"{prefix}{i}", "sleep 100", shape) for i, shape in enumerate(shapes)]
        return self.cluster.framework(name, scheduler=scheduler, **info)

    def call(self, body: dict[str, Any]) -> None:
        reply = self.client.request("POST", "/api/v1", json.dumps(body).encode(), JSON)
        self.assertEqual(reply.code, 200, reply.body)
        self.cluster.settle()

    def assertTexts(self) -> None:
        """Every agent's text is json.dumps of its model, now."""
        self.assertEqual(len(self.master.agents), 3)
        for agent in self.master.agents.values():
            self.assertEqual(agent_v1_json(self.master, agent), dumps(v1_json.agent_v1(self.master, agent)))

    def test_agents_with_every_field(self) -> None:
        """Agents with tasks of two frameworks, offers, reservations, attributes and a volume, and one
        re-registered, show as their models do."""
        usage = [self.master.tasks.usage_on(agent_id) for agent_id in self.master.agents]
        self.assertTrue(any(len(used) for used in usage))
        self.assertTrue(any(self.master.offers.on_agent(agent_id) for agent_id in self.master.agents))
        self.cluster.cut(self.cluster.agents[0])
        self.cluster.connect(self.cluster.agents[0])
        self.cluster.settle()
        self.assertTrue(any(a.reregistered_time is not None for a in self.master.agents.values()))
        self.assertTexts()

    def test_usage_is_the_sum(self) -> None:
        """What a framework holds on an agent is the + of its live tasks' resources there, whether one task
        holds them, several hold one shared bag, or several hold bags of their own."""
        self.framework("ports", "port", 3, ports=True)
        master = self.master
        seen = set()
        for agent_id in master.agents:
            for framework_id, used in master.tasks.usage_on(agent_id).items():
                expected = EMPTY
                held = [t for t in master.frameworks[framework_id].tasks.values() if t.agent_id == agent_id]
                for task_ in held:
                    expected = expected + task_.resources
                self.assertEqual(used, expected)
                seen.add(len(held))
        self.assertTrue({1, 3, 4} <= seen, seen)

    def test_texts_follow_changes(self) -> None:
        """After tasks end, offers go back, agents are deactivated, drained and reactivated, each text is the
        model as it is then: nothing is served from before."""
        self.assertTexts()
        framework_id = self.web.framework_id
        for task_ in list(self.master.frameworks[framework_id].tasks.values())[:2]:
            self.web_driver.killTask(task_.task_id)
        self.cluster.settle()
        self.assertTexts()
        for offer in list(self.master.offers.of_framework(framework_id)):
            self.web_driver.declineOffer(offer.id)
        self.cluster.settle()
        self.assertTexts()
        first, second = [agent.id for agent in self.cluster.agents]
        self.call({"type": "DEACTIVATE_AGENT", "deactivate_agent": {"agent_id": {"value": first}}})
        self.call({"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": second},
                                                          "max_grace_period": "5s"}})
        self.assertTexts()
        self.call({"type": "REACTIVATE_AGENT", "reactivate_agent": {"agent_id": {"value": first}}})
        self.assertTexts()

    def test_summary_texts_follow_changes(self) -> None:
        """The agents of /master/state-summary, /master/state and GET_AGENTS, made of texts kept from one
        answer to the next, are what texts made afresh show, after every kind of change."""

        def fresh(build: Any) -> Any:
            kept = stream.encode(build())
            self.patch(agent_text, "_TEXTS", WeakKeyDictionary())  # nothing kept: every text made now
            made = stream.encode(build())
            self.patch(agent_text, "_TEXTS", saved)
            return json.loads(kept), json.loads(made)

        saved = agent_text._TEXTS
        framework_id = self.web.framework_id
        first, second = [agent.id for agent in self.cluster.agents]
        web_tasks = list(self.master.frameworks[framework_id].tasks.values())
        self.assertEqual(self.master.offers.on_agent(first), [])  # its activity is all that changes first
        changes = [
            lambda: self.call({"type": "DEACTIVATE_AGENT", "deactivate_agent": {"agent_id": {"value": first}}}),
            lambda: self.call({"type": "REACTIVATE_AGENT", "reactivate_agent": {"agent_id": {"value": first}}}),
            lambda: [self.web_driver.killTask(t.task_id) for t in web_tasks[:2]],
            lambda: [self.web_driver.declineOffer(o.id) for o in list(self.master.offers.of_framework(framework_id))],
            lambda: self.call({"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": second}}}),
            lambda: (self.cluster.cut(self.cluster.agents[0]), self.cluster.connect(self.cluster.agents[0])),
        ]
        for change in [lambda: None, *changes]:
            change()
            self.cluster.settle()
            for build in (lambda: state_json.state_summary(self.master), lambda: state_json.state(self.master, {}),
                          lambda: v1_json.get_agents_fields(self.master)):
                kept, made = fresh(build)
                self.assertEqual(kept, made)
        summary = json.loads(stream.encode(state_json.state_summary(self.master)))
        shown = {agent["id"]: agent for agent in summary["slaves"]}
        self.assertEqual((shown[first]["deactivated"], shown[second]["deactivated"]), (False, True))
        self.assertIn("drain_info", shown[second])

    def test_get_state_is_the_models(self) -> None:
        """GET_STATE and GET_AGENTS, made of texts, parse to exactly what the dict builders make."""
        master = self.master
        tasks: dict[str, list[Any]] = {"tasks": [], "unreachable_tasks": [], "completed_tasks": []}
        for framework in [*master.frameworks.values(), *master.completed]:
            role = framework.info.allocation_role
            for task_ in framework.tasks.values():
                tasks["unreachable_tasks" if task_.state == T.UNREACHABLE else "tasks"].append(task_v1(task_, role))
            tasks["completed_tasks"] += [task_v1(task_, role) for task_ in framework.completed_tasks]
        agents = {"agents": [v1_json.agent_v1(master, agent) for agent in master.agents.values()],
                  "recovered_agents": [v1_json.agent_info_v1(info) for info in master.recovered_agents.values()]}
        expected = {"get_tasks": tasks, "get_executors": v1_json.get_executors(master),
                    "get_frameworks": v1_json.get_frameworks(master), "get_agents": agents}
        self.assertEqual(json.loads(dumps(materialize(v1_json.get_state_fields(master)))), expected)
        self.assertEqual(json.loads(dumps(v1_json.get_agents(master))), agents)
        self.assertEqual(len(tasks["tasks"]), 5)

    def test_acls_filter_agents(self) -> None:
        """A caller the ACLs judge gets the agents as the filtering dict builder makes them (resources of
        roles it may not view left out), not the texts made for those who see everything."""
        approvers = Approvers(Security(authorizer=Authorizer(parse_acls(json.dumps(ACLS)))), "dev")
        self.assertFalse(approvers.everything)
        shown = materialize(v1_json.get_agents_fields(self.master, approvers))["agents"]
        agents = list(self.master.agents.values())
        self.assertEqual(shown, [v1_json.agent_v1(self.master, agent, approvers) for agent in agents])
        self.assertNotEqual(shown, [v1_json.agent_v1(self.master, agent, EVERYTHING) for agent in agents])

    def test_attribute_texts_are_shared(self) -> None:
        """Agents with the same attributes share one text of them; attributes that cannot be a table's key
        are written each time."""
        self.patch(v1_agent_text, "_ATTRIBUTES", {})
        one = v1_agent_text._attributes_text(dict(ATTRIBUTES))
        self.assertIs(v1_agent_text._attributes_text(dict(ATTRIBUTES)), one)
        self.assertEqual(len(v1_agent_text._ATTRIBUTES), 1)
        odd = {"rack": "r1", "weird": ["not", "hashable"]}
        self.assertEqual(v1_agent_text._attributes_text(odd), ',"attributes":' + dumps(
            [{"name": "rack", "type": "TEXT", "text": {"value": "r1"}},
             {"name": "weird", "type": "TEXT", "text": {"value": "['not', 'hashable']"}}]))
        self.assertEqual(v1_agent_text._attributes_text({}), "")


class PairsScheduler(RecordingScheduler):
    """Launches one batch of tasks on each offer it gets, as long as it has batches."""

    def __init__(self, batches: list[list[dict[str, Any]]]) -> None:
        super().__init__()
        self.batches = batches

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:
        self.offers.extend(offers)
        for offer in offers:
            if not self.batches:
                driver.declineOffer(offer.id)
                continue
            batch = self.batches.pop(0)
            for task_ in batch:
                task_["agent_id"] = {"value": offer.agent_id}
            driver.launchTasks([offer.id], batch)


class SummaryHistoryTests(unittest.TestCase):
    """/master/state-summary counts the completed tasks in the bounded history of each registered
    framework; an agent's kept summary text follows that history, not only the agent's live tasks."""

    def test_an_evicted_completed_task_is_no_longer_counted(self) -> None:
        """With room for one completed task, a task killed on one agent pushes out the one killed on the
        other: the other agent, whose live tasks did not change, shows no killed task any more."""
        cluster = Cluster(agents=2, resources="cpus:2;mem:256", max_completed_tasks_per_framework=1)
        self.addCleanup(cluster.stop)
        scheduler = PairsScheduler([[command_task(f"t{2 * i + j}", "sleep 100", "cpus:1;mem:32") for j in range(2)]
                                    for i in range(2)])
        _, driver = cluster.framework("f", scheduler=scheduler)
        master = cluster.master
        tasks = list(master.frameworks[scheduler.framework_id].tasks.values())
        by_agent: dict[str, list[Any]] = {}
        for task_ in tasks:
            by_agent.setdefault(task_.agent_id, []).append(task_)
        self.assertEqual(sorted(len(held) for held in by_agent.values()), [2, 2])
        first, second = sorted(by_agent)

        def killed_on() -> dict[str, int]:
            summary = json.loads(stream.encode(state_json.state_summary(master)))
            return {agent["id"]: agent["TASK_KILLED"] for agent in summary["slaves"]}

        driver.killTask(by_agent[first][0].task_id)
        cluster.settle()
        self.assertEqual(killed_on(), {first: 1, second: 0})
        driver.killTask(by_agent[second][0].task_id)
        cluster.settle()
        self.assertEqual(killed_on(), {first: 0, second: 1})
