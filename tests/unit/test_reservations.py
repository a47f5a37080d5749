"""Dynamic reservations and persistent volumes through the master, in an in-process cluster.

Frameworks RESERVE, UNRESERVE, CREATE and DESTROY in ACCEPT; operators through ``/master/reserve`` and
the rest (v0) and RESERVE_RESOURCES and the rest (v1). What changes reaches the allocator, the agent's
record, the registry and the agent; a master that takes over from the registry, and an agent that
missed an operation, end up agreeing with the registry.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any
from urllib.parse import urlencode

from twisted.internet import defer

from mesostw.http.router import Router
from mesostw.master.http import MasterEndpoints
from mesostw.master.master import Master
from mesostw.master.registry import InMemoryRegistry, RegistryState
from mesostw.model.reservation import disk_of, is_volume
from mesostw.model.resources import EMPTY, Resources
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import Cluster, DirectMasterLink, RecordingScheduler
from tests.helpers.web import Client, Reply

AGENT = "cpus:4;mem:1024;disk:1024"


def reserved(text: str, role: str = "eng", principal: str | None = "ops", labels: dict[str, str] | None = None
             ) -> Resources:
    """``text`` dynamically reserved for ``role`` by ``principal``."""
    reservation: dict[str, Any] = {} if principal is None else {"principal": principal}
    if labels:
        reservation["labels"] = {"labels": [{"key": k, "value": v} for k, v in labels.items()]}
    return Resources.from_json([{**r, "role": role, "reservation": reservation}
                                for r in Resources.parse(text).to_json()])


def volume(persistence_id: str, size: float, role: str = "eng", principal: str | None = "ops",
           path: str = "data") -> Resources:
    [disk] = reserved(f"disk:{size:g}", role, principal).to_json()
    persistence: dict[str, Any] = {"id": persistence_id, **({"principal": principal} if principal else {})}
    return Resources.from_json([{**disk, "disk": {"persistence": persistence,
                                                  "volume": {"container_path": path, "mode": "RW"}}}])


def refined(text: str, principal: str = "ops") -> Resources:
    """``text`` reserved for eng by ``principal``, refined to eng/web by ``principal``."""
    return Resources.from_json([{k: v for k, v in r.items() if k not in ("role", "reservation")}
                                | {"reservations": [{"type": "DYNAMIC", "role": "eng", "principal": principal},
                                                    {"type": "DYNAMIC", "role": "eng/web", "principal": principal}]}
                                for r in Resources.parse(text).to_json()])


def op(kind: str, resources: Resources, **extra: Any) -> dict[str, Any]:
    field, key = {"RESERVE": ("reserve", "resources"), "UNRESERVE": ("unreserve", "resources"),
                  "CREATE": ("create", "volumes"), "DESTROY": ("destroy", "volumes")}[kind]
    return {"type": kind, field: {key: resources.to_json()}, **extra}


def launch(task_id: str, agent_id: str, resources: Resources, command: str = "sleep 100") -> dict[str, Any]:
    return {"type": "LAUNCH", "launch": {"task_infos": [{
        "name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": agent_id},
        "resources": resources.to_json(), "command": {"value": command}}]}}


def volumes_of(resources: Resources) -> set[str]:
    return {disk_of(k).persistence_id for k in resources.keys() if is_volume(k)}  # type: ignore[union-attr]


class ReservationCase(ClockTestCase):
    """One agent of ``AGENT`` and a framework of role eng, principal ops, that keeps its offers."""

    role = "eng"
    capabilities: tuple[str, ...] = ()

    def master_flags(self) -> dict[str, Any]:
        return {}

    def setUp(self) -> None:
        self.cluster = Cluster(agents=1, resources=AGENT, **self.master_flags())
        self.useClock(self.cluster.clock)
        self.addCleanup(self.cluster.stop)
        self.master = self.cluster.master
        self.agent = self.cluster.agents[0]
        self.agent_id = self.agent.id
        self.scheduler, self.driver = self.framework(self.role, "ops", self.capabilities)

    def framework(self, role: str, principal: str | None, capabilities: tuple[str, ...] = ()) -> tuple[Any, Any]:
        scheduler = RecordingScheduler()
        scheduler.decline_unused = False
        return self.cluster.framework(f"fw-{role}", scheduler=scheduler, role=role, principal=principal,
                                      capabilities=frozenset(capabilities))

    def accept(self, *operations: dict[str, Any], scheduler: Any = None, driver: Any = None) -> None:
        """Accept the framework's outstanding offers with ``operations`` (nothing left is refused for long)."""
        scheduler, driver = scheduler or self.scheduler, driver or self.driver
        offers = [o.id for o in self.master.offers.of_framework(scheduler.framework_id)]
        self.assertTrue(offers, "no offer to accept")
        driver.acceptOffers(offers, list(operations), {"refuse_seconds": 0})
        self.cluster.settle()

    def offered(self, scheduler: Any = None) -> Resources:
        """What the framework's outstanding offers hold, after a fresh allocation."""
        self.cluster.advance(1)
        scheduler = scheduler or self.scheduler
        return self.master.offers.offered_to(scheduler.framework_id)

    def record(self) -> Any:
        return self.master.agents[self.agent_id]


class FrameworkOperationTests(ReservationCase):
    def test_reserve_create_and_launch_in_one_accept(self) -> None:
        """RESERVE, CREATE and a LAUNCH on the volume in one ACCEPT apply in order: the task gets the
        reserved resources and the volume, the agent and the registry hold them, and once the task ends
        the volume is offered to the framework again."""
        res, vol = reserved("cpus:1;mem:128;disk:64"), volume("vol1", 64)
        task = reserved("cpus:1;mem:128") + vol
        self.accept(op("RESERVE", res), op("CREATE", vol), launch("t1", self.agent_id, task, "true"))
        self.assertEqual(self.scheduler.states("t1")[-1], "TASK_FINISHED")
        checkpointed = reserved("cpus:1;mem:128") + vol
        self.assertEqual(self.agent.checkpointed, checkpointed)
        self.assertEqual(Resources.from_json(self.master.registry.state.resources[self.agent_id]), checkpointed)
        self.assertEqual(self.record().checkpointed, checkpointed)
        self.assertEqual(self.record().total, Resources.parse("cpus:3;mem:896;disk:960") + checkpointed)
        self.assertEqual(self.agent.total, self.record().total)
        [run] = self.cluster.links[id(self.agent)].agent_link.named("runTasks")
        self.assertEqual(run[1][0].resources, task)
        self.assertEqual(self.offered(), self.record().total)
        self.assertEqual(self.master.metrics["operations_dropped"], 0)

    def test_leftover_is_offered_once_the_registry_holds_it(self) -> None:
        """What an ACCEPT with operations leaves is offered again only after the registry write fires."""
        pending: list[defer.Deferred] = []
        registry = self.master.registry

        def slow(mutation: Any) -> defer.Deferred:
            d = registry.apply(mutation)
            held: defer.Deferred = defer.Deferred()
            pending.append(held)
            return d.addCallback(lambda _: held)

        self.master.registry = type("Slow", (), {"apply": staticmethod(slow)})()  # type: ignore[assignment]
        offers = len(self.scheduler.offers)
        self.accept(op("RESERVE", reserved("cpus:1")))
        self.cluster.advance(2)
        self.assertEqual(len(self.scheduler.offers), offers)
        self.assertEqual(len(pending), 1)
        pending[0].callback(None)
        self.cluster.advance(1)
        self.assertEqual(self.scheduler.offers[-1].resources, Resources.parse("cpus:3;mem:1024;disk:1024")
                         + reserved("cpus:1"))

    def test_invalid_operations_are_dropped_alone(self) -> None:
        """Each invalid operation is dropped (and counted) without an error to the framework; the valid
        one among them applies."""
        self.accept(
            op("RESERVE", reserved("cpus:1", principal="dev")),
            op("RESERVE", reserved("cpus:1", role="ads")),
            op("RESERVE", reserved("cpus:100")),
            op("RESERVE", Resources.parse("cpus(eng):1")),
            op("UNRESERVE", Resources.parse("cpus:1")),
            op("CREATE", volume("v", 64)),
            op("DESTROY", volume("v", 64)),
            op("RESERVE", reserved("cpus:1"), id={"value": "feedback"}),
            {"type": "RESERVE", "reserve": {"resources": [{"name": "cpus", "type": "SCALAR"}]}},
            {"type": "CREATE"},
            op("RESERVE", reserved("mem:64")),
        )
        self.assertEqual(self.master.metrics["operations_dropped"], 10)
        self.assertEqual(self.scheduler.errors, [])
        self.assertEqual(self.record().checkpointed, reserved("mem:64"))

    def test_later_operations_see_earlier_ones(self) -> None:
        """UNRESERVE undoes a RESERVE of the same ACCEPT; a second CREATE of the same ID is dropped."""
        self.accept(op("RESERVE", reserved("cpus:1;disk:128")), op("UNRESERVE", reserved("cpus:1")),
                    op("CREATE", volume("v", 64)), op("CREATE", volume("v", 64)))
        self.assertEqual(self.record().checkpointed, reserved("disk:64") + volume("v", 64))
        self.assertEqual(self.master.metrics["operations_dropped"], 1)

    def test_reserved_resources_go_to_their_role_and_sub_roles(self) -> None:
        """Resources reserved for eng are offered to eng/web's framework, never to ads's or to *'s; once
        unreserved they go to anyone."""
        self.accept(op("RESERVE", reserved("cpus:4;mem:1024;disk:1024")))
        self.driver.stop()
        self.cluster.settle()
        others = {role: self.framework(role, None)[0] for role in ("ads", "*", "eng/web")}
        self.cluster.advance(1)
        self.assertEqual([o.resources for o in others["eng/web"].offers], [reserved("cpus:4;mem:1024;disk:1024")])
        self.assertEqual(others["ads"].offers + others["*"].offers, [])
        web = others["eng/web"]
        d = self.master.operations.operate(self.agent_id, "UNRESERVE", reserved("cpus:4"), None)
        self.cluster.settle()
        self.successResultOf(d)
        self.assertTrue(web.rescinded)
        self.cluster.advance(6)
        offered = sum((s.offers[-1].resources for s in others.values() if s.offers), EMPTY)
        self.assertTrue(offered.contains(Resources.parse("cpus:4")), offered)


class RefinementTests(ReservationCase):
    role = "eng/web"
    capabilities = ("RESERVATION_REFINEMENT",)

    def test_refine_and_unrefine(self) -> None:
        """A framework of eng/web refines resources reserved for eng (offered to it) to eng/web; they are
        then reserved for eng/web and unreserving gives them back to eng, not to the pool."""
        self.master.operations.operate(self.agent_id, "RESERVE", reserved("cpus:2"), None)
        self.cluster.advance(1)
        eng, web = reserved("cpus:2"), refined("cpus:2")
        self.assertTrue(self.scheduler.offers[-1].resources.contains(eng))
        self.accept(op("RESERVE", web))
        self.assertEqual(self.record().checkpointed, web)
        self.assertEqual(self.record().total.reservations()["eng/web"], web)
        self.accept(op("UNRESERVE", web))
        self.assertEqual(self.record().checkpointed, eng)

    def test_refined_reservations_need_the_capability(self) -> None:
        """Without RESERVATION_REFINEMENT a framework may not refine (its RESERVE is dropped)."""
        scheduler, driver = self.framework("eng/web", "ops")
        self.driver.stop()
        self.cluster.settle()
        self.master.operations.operate(self.agent_id, "RESERVE", reserved("cpus:2"), None)
        self.cluster.advance(1)
        self.accept(op("RESERVE", refined("cpus:2")), scheduler=scheduler, driver=driver)
        self.assertEqual(self.master.metrics["operations_dropped"], 1)
        self.assertEqual(self.record().checkpointed, reserved("cpus:2"))


class ReregistrationTests(ReservationCase):
    def test_an_agent_that_missed_an_operation_gets_it_when_it_returns(self) -> None:
        """An operation applied while the agent's connection was down reaches it when it re-registers: the
        master's view (the registry's) wins over the agent's checkpoint."""
        self.cluster.cut(self.agent)
        self.cluster.settle()
        d = self.master.operations.operate(self.agent_id, "RESERVE", reserved("cpus:1"), None)
        self.cluster.settle()
        self.successResultOf(d)
        self.assertEqual(self.agent.checkpointed, EMPTY)
        self.cluster.connect(self.agent)
        self.cluster.settle()
        self.assertEqual(self.agent.checkpointed, reserved("cpus:1"))
        self.assertEqual(self.record().total, self.agent.total)

    def take_over(self, state: RegistryState) -> Master:
        """A new leading master recovered from ``state``, which the agent re-registers with."""
        registry = InMemoryRegistry()
        registry.state = state.copy()
        master = Master(self.cluster.config, type(self.cluster.allocator)(self.cluster.clock, randomize=False),
                        self.cluster.clock, master_id="N", registry=registry)
        master.recover(state)
        self.addCleanup(master.stop)
        link = DirectMasterLink(master, self.agent, self.cluster.clock)
        self.cluster.cut(self.agent)
        self.cluster.settle()
        self.agent.masterConnected(link)
        self.cluster.settle()
        return master

    def test_a_new_master_holds_the_registry_view(self) -> None:
        """A master that takes over from the registry knows the agent's reservations and volumes, and gives
        them back to an agent that lost its checkpoint."""
        self.accept(op("RESERVE", reserved("cpus:1;disk:64")), op("CREATE", volume("v", 64)))
        state = self.master.registry.state.copy()
        self.agent.checkpointed = EMPTY
        master = self.take_over(state)
        record = master.agents[self.agent_id]
        self.assertEqual(record.checkpointed, reserved("cpus:1") + volume("v", 64))
        self.assertEqual(self.agent.checkpointed, record.checkpointed)
        self.assertEqual(master.allocator.agent_total(self.agent_id), record.total)  # type: ignore[attr-defined]

    def test_an_agent_the_registry_knows_nothing_of_is_taken_at_its_word(self) -> None:
        """Without the registry's view (an operation's write lost with a registry kept in memory), the
        master takes the agent's checkpointed resources, and tells it nothing."""
        self.accept(op("RESERVE", reserved("cpus:1")))
        state = self.master.registry.state.copy()
        state.resources.clear()
        master = self.take_over(state)
        self.assertEqual(master.agents[self.agent_id].checkpointed, reserved("cpus:1"))
        self.assertEqual(self.agent.checkpointed, reserved("cpus:1"))

    def test_a_registry_view_that_no_longer_fits_gives_way(self) -> None:
        """When the agent came back with --resources that cannot hold the registry's reservations, its own
        checkpoint wins and the registry is corrected."""
        state = self.master.registry.state.copy()
        state.resources[self.agent_id] = reserved("cpus:40").to_json()
        master = self.take_over(state)
        self.assertEqual(master.agents[self.agent_id].checkpointed, EMPTY)
        self.assertEqual(master.registry.state.resources[self.agent_id], [])  # type: ignore[attr-defined]
        self.assertEqual(self.agent.checkpointed, EMPTY)


PASSWORDS = {"ops": "ops-secret", "intern": "intern-secret"}
ACLS = {
    "reserve_resources": [{"principals": {"values": ["ops"]}, "roles": {"values": ["eng"]}},
                          {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}],
    "unreserve_resources": [{"principals": {"values": ["ops"]}, "reserver_principals": {"values": ["ops"]}},
                            {"principals": {"type": "ANY"}, "reserver_principals": {"type": "NONE"}}],
    "create_volumes": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}},
                       {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}],
    "destroy_volumes": [{"principals": {"values": ["ops"]}, "creator_principals": {"values": ["ops"]}},
                        {"principals": {"type": "ANY"}, "creator_principals": {"type": "NONE"}}],
}


class OperatorCase(ReservationCase):
    """The master's endpoints over HTTP, with credentials for ops and intern and the ACLs above."""

    def master_flags(self) -> dict[str, Any]:
        credentials = os.path.abspath(self.mktemp())
        with open(credentials, "w") as f:
            json.dump({"credentials": [{"principal": p, "secret": s} for p, s in PASSWORDS.items()]}, f)
        return {"credentials": credentials, "acls": json.dumps(ACLS)}

    def setUp(self) -> None:
        super().setUp()
        router = Router()
        MasterEndpoints(self.master, self.cluster.config.rendered()).install(router)
        self.client = Client(router, self.cluster.clock)

    def headers(self, principal: str | None) -> dict[str, str]:
        if principal is None:
            return {}
        return {"Authorization": "Basic " + base64.b64encode(f"{principal}:{PASSWORDS[principal]}".encode()).decode()}

    def form(self, path: str, principal: str | None = "ops", **fields: Any) -> Reply:
        body = urlencode({k: v if isinstance(v, str) else json.dumps(v.to_json() if isinstance(v, Resources) else v)
                          for k, v in fields.items()}).encode()
        reply = self.client.request("POST", path, body, {**self.headers(principal),
                                                         "Content-Type": "application/x-www-form-urlencoded"})
        self.cluster.settle()
        return reply

    def v1(self, kind: str, principal: str | None = "ops", **fields: Any) -> Reply:
        body = {"type": kind, kind.lower(): {"agent_id": {"value": self.agent_id},
                                             **{k: v.to_json() for k, v in fields.items()}}}
        reply = self.client.request("POST", "/api/v1", json.dumps(body).encode(),
                                    {**self.headers(principal), "Content-Type": "application/json"})
        self.cluster.settle()
        return reply

    def assertCode(self, reply: Reply, code: int, text: str = "") -> None:
        self.assertEqual(reply.code, code, reply.body)
        if text:
            self.assertIn(text, reply.json()["message"])


class OperatorEndpointTests(OperatorCase):
    def test_reserve_and_unreserve_v0(self) -> None:
        """/master/reserve and /master/unreserve answer 202 and change the agent, its record and the registry."""
        self.assertCode(self.form("/master/reserve", slaveId=self.agent_id, resources=reserved("cpus:1;mem:64")), 202)
        self.assertEqual(self.agent.checkpointed, reserved("cpus:1;mem:64"))
        self.assertCode(self.form("/master/unreserve", slaveId=self.agent_id, resources=reserved("cpus:1")), 202)
        self.assertEqual(self.agent.checkpointed, reserved("mem:64"))
        self.assertEqual(Resources.from_json(self.master.registry.state.resources[self.agent_id]), reserved("mem:64"))

    def test_reserve_and_unreserve_v1(self) -> None:
        """RESERVE_RESOURCES and UNRESERVE_RESOURCES answer 202 with an empty body."""
        reply = self.v1("RESERVE_RESOURCES", resources=reserved("cpus:1", labels={"team": "web"}))
        self.assertCode(reply, 202)
        self.assertEqual(reply.body, b"")
        self.assertEqual(self.agent.checkpointed, reserved("cpus:1", labels={"team": "web"}))
        self.assertCode(self.v1("UNRESERVE_RESOURCES", resources=reserved("cpus:1", labels={"team": "web"})), 202)
        self.assertEqual(self.agent.checkpointed, EMPTY)

    def test_volumes_v0_and_v1(self) -> None:
        """Volumes are created and destroyed through either API; destroying one a task uses is a 400."""
        self.assertCode(self.form("/master/reserve", slaveId=self.agent_id, resources=reserved("disk:128")), 202)
        self.assertCode(self.form("/master/create-volumes", slaveId=self.agent_id, volumes=volume("a", 64)), 202)
        self.assertCode(self.v1("CREATE_VOLUMES", volumes=volume("b", 64)), 202)
        self.assertEqual(volumes_of(self.agent.checkpointed), {"a", "b"})
        self.assertCode(self.form("/master/create-volumes", slaveId=self.agent_id, volumes=volume("a", 1)), 400,
                        "not unique")
        self.cluster.advance(1)
        self.accept(launch("user", self.agent_id, volume("a", 64)))
        self.assertCode(self.v1("DESTROY_VOLUMES", volumes=volume("a", 64)), 400, "in use")
        self.assertCode(self.form("/master/destroy-volumes", slaveId=self.agent_id, volumes=volume("b", 64)), 202)
        self.assertCode(self.v1("DESTROY_VOLUMES", volumes=volume("b", 64)), 400, "not found")
        self.assertEqual(volumes_of(self.agent.checkpointed), {"a"})

    def test_bad_requests(self) -> None:
        """Missing fields, bad JSON, unknown agents and invalid operations are 400s that change nothing."""
        cases = [
            ({"resources": reserved("cpus:1")}, "Missing 'slaveId'"),
            ({"slaveId": self.agent_id}, "Missing 'resources'"),
            ({"slaveId": self.agent_id, "resources": "[not json"}, "Error in parsing 'resources'"),
            ({"slaveId": self.agent_id, "resources": [{"name": "cpus"}]}, "Error in parsing 'resources'"),
            ({"slaveId": "nope", "resources": reserved("cpus:1")}, "No agent found with specified ID"),
            ({"slaveId": self.agent_id, "resources": Resources.parse("cpus:1")}, "not dynamically reserved"),
            ({"slaveId": self.agent_id, "resources": reserved("cpus:1", principal="intern")}, "does not match"),
            ({"slaveId": self.agent_id, "resources": reserved("cpus:1"), "source": reserved("cpus:1")}, "source"),
        ]
        for fields, message in cases:
            self.assertCode(self.form("/master/reserve", **fields), 400, message)
        self.assertCode(self.v1("RESERVE_RESOURCES"), 400, "resources is required")
        self.assertCode(self.client.request("GET", "/master/reserve"), 405)
        self.assertEqual(self.agent.checkpointed, EMPTY)

    def test_acls(self) -> None:
        """reserve_resources and the rest judge the caller: intern may do nothing, ops only what the rules
        say (role eng; its own reservations and volumes); anonymous callers are ANY."""
        self.assertCode(self.form("/master/reserve", "intern", slaveId=self.agent_id,
                                  resources=reserved("cpus:1", principal="intern")), 403)
        self.assertCode(self.form("/master/reserve", None, slaveId=self.agent_id, resources=reserved("cpus:1")), 403)
        self.assertCode(self.v1("RESERVE_RESOURCES", resources=reserved("cpus:1", role="ads")), 403)
        self.assertCode(self.v1("RESERVE_RESOURCES", resources=reserved("cpus:1;disk:64")), 202)
        self.assertCode(self.v1("UNRESERVE_RESOURCES", "intern", resources=reserved("cpus:1")), 403)
        self.assertCode(self.v1("CREATE_VOLUMES", "intern", volumes=volume("v", 64, principal="intern")), 403)
        self.assertCode(self.v1("CREATE_VOLUMES", volumes=volume("v", 64)), 202)
        self.assertCode(self.v1("DESTROY_VOLUMES", "intern", volumes=volume("v", 64)), 403)
        self.assertCode(self.v1("DESTROY_VOLUMES", volumes=volume("v", 64)), 202)
        self.assertEqual(self.agent.checkpointed, reserved("cpus:1;disk:64"))

    def test_conflicts_and_rescinds(self) -> None:
        """Resources held in an offer are taken back (the framework gets RESCIND) to make room; resources
        in use by a task, or more than the agent has, are a 409."""
        self.assertTrue(self.master.offers.offered_to(self.scheduler.framework_id))
        self.assertCode(self.form("/master/reserve", slaveId=self.agent_id, resources=reserved("cpus:2")), 202)
        self.cluster.settle()
        self.assertEqual(len(self.scheduler.rescinded), 1)
        self.assertCode(self.form("/master/reserve", slaveId=self.agent_id, resources=reserved("cpus:5")), 409,
                        "Insufficient resources")
        self.driver.reviveOffers()
        self.cluster.settle()
        self.accept(launch("busy", self.agent_id, reserved("cpus:2")))
        self.assertEqual(self.scheduler.states("busy"), ["TASK_RUNNING"])
        self.assertCode(self.form("/master/unreserve", slaveId=self.agent_id, resources=reserved("cpus:2")), 409)
        self.assertEqual(self.agent.checkpointed, reserved("cpus:2"))

    def test_state_endpoints_show_reservations_and_volumes(self) -> None:
        """/master/slaves shows reserved resources per role in full (what /master/unreserve takes back),
        /master/state in the flat model, GET_AGENTS in the total_resources of each agent."""
        self.assertCode(self.v1("RESERVE_RESOURCES", resources=reserved("cpus:1;disk:64")), 202)
        self.assertCode(self.v1("CREATE_VOLUMES", volumes=volume("v", 32)), 202)
        [agent] = self.client.get_json("/master/slaves")["slaves"]
        self.assertEqual(Resources.from_json(agent["reserved_resources_full"]["eng"]),
                         reserved("cpus:1;disk:32") + volume("v", 32))
        self.assertEqual(agent["reserved_resources"]["eng"]["disk"], 64.0)
        self.assertEqual(agent["unreserved_resources"]["cpus"], 3.0)
        self.assertEqual(agent["resources"]["cpus"], 4.0)
        for key in ("unreserved_resources_full", "used_resources_full", "offered_resources_full"):
            Resources.from_json([{k: v for k, v in r.items() if k != "allocation_info"} for r in agent[key]])
        [state_agent] = self.client.get_json("/master/state")["slaves"]
        self.assertEqual(state_agent["reserved_resources"], agent["reserved_resources"])
        self.assertNotIn("reserved_resources_full", state_agent)
        reply = self.client.request("POST", "/api/v1", json.dumps({"type": "GET_AGENTS"}).encode(),
                                    {"Content-Type": "application/json", **self.headers("ops")})
        [v1] = reply.json()["get_agents"]["agents"]
        self.assertEqual(Resources.from_json(v1["total_resources"]), self.record().total)
        self.assertEqual(Resources.from_json(v1["agent_info"]["resources"]), Resources.parse(AGENT))
