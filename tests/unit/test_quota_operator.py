"""Quota through the master: UPDATE_QUOTA/GET_QUOTA (and the legacy SET/REMOVE_QUOTA and ``/quota``), their
checks, ACLs, durability, enforcement on offers, and the views that report quota."""

from __future__ import annotations

import json
import os
from typing import Any

from mesostw.allocator.quota import Quota
from mesostw.master.master import Master
from mesostw.master.registry import Registry
from mesostw.store.memory import MemoryStateStore
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task
from tests.helpers.web import Reply
from tests.unit.test_operator_api import JSON, APITestCase, basic, call, only


def limits(**amounts: float) -> dict[str, Any]:
    return {name: {"value": value} for name, value in amounts.items()}


def config(role: str, guarantees: dict[str, float] | None = None, limit: dict[str, float] | None = None
           ) -> dict[str, Any]:
    out: dict[str, Any] = {"role": role}
    if guarantees:
        out["guarantees"] = limits(**guarantees)
    if limit:
        out["limits"] = limits(**limit)
    return out


class QuotaAPICase(APITestCase):
    """The operator API cluster (two agents of cpus:2;mem:1024; beta in "ops" runs b1 and holds an offer)."""

    def update(self, *configs: dict[str, Any], force: bool = False, **kwargs: Any) -> Reply:
        body: dict[str, Any] = {"quota_configs": list(configs)}
        if force:
            body["force"] = True
        reply = self.call({"type": "UPDATE_QUOTA", "update_quota": body}, **kwargs)
        self.cluster.settle()
        return reply

    def call(self, body: Any, **kwargs: Any) -> Reply:
        reply = super().call(body, **kwargs)
        self.cluster.settle()  # what the call changed reaches the frameworks
        return reply

    def status(self) -> dict[str, Any]:
        return self.answer("GET_QUOTA")["status"]


class UpdateQuotaTests(QuotaAPICase):
    def test_set_read_and_remove(self) -> None:
        """UPDATE_QUOTA sets guarantees and limits that GET_QUOTA, /quota and the allocator then show; a
        config without either removes the quota."""
        self.assertEqual(self.status(), {"infos": [], "configs": []})
        reply = self.update(config("dev", {"cpus": 1}, {"cpus": 2, "mem": 512}))
        self.assertEqual((reply.code, reply.body), (200, b""))
        expected = {"role": "dev", "guarantees": limits(cpus=1.0), "limits": limits(cpus=2.0, mem=512.0)}
        self.assertEqual(self.status()["configs"], [expected])
        self.assertEqual(self.status()["infos"],
                         [{"role": "dev", "guarantee": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.0}}]}])
        self.assertEqual(self.client.get_json("/quota")["configs"], [expected])
        self.assertEqual(self.cluster.allocator.quota("dev"), Quota.of({"cpus": 1}, {"cpus": 2, "mem": 512}))
        self.assertEqual(self.update(config("dev")).code, 200)
        self.assertEqual(self.status()["configs"], [])
        self.assertEqual(self.cluster.allocator.quota("dev"), Quota())

    def test_all_or_nothing(self) -> None:
        """One invalid config refuses the whole call: nothing changes."""
        reply = self.update(config("dev", limit={"cpus": 2}), config("qa", {"cpus": 3}, {"cpus": 1}))
        self.assertRefused(reply, 400, "more than its limit")
        self.assertEqual(self.status()["configs"], [])

    def test_invalid_configs_are_refused_with_reasons(self) -> None:
        """Bad roles, non-scalar or negative amounts, repeated roles and a missing message are 400s."""
        cases = [
            ([config("-bad", limit={"cpus": 1})], "invalid role"),
            ([config("dev", limit={"ports": 10})], "scalars only"),
            ([config("dev", limit={"cpus": -1})], "non-negative"),
            ([config("dev", limit={"mem": 2e12})], "exabyte"),
            ([config("dev", limit={"cpus": 1}), config("dev", limit={"cpus": 2})], "more than once"),
            ([{"guarantees": limits(cpus=1)}], "role is required"),
        ]
        for configs, fragment in cases:
            self.assertRefused(self.update(*configs), 400, fragment)
        self.assertRefused(self.call({"type": "UPDATE_QUOTA"}), 400, "update_quota")
        self.assertEqual(self.status()["configs"], [])

    def test_limit_below_consumption_needs_force(self) -> None:
        """A limit below what the role uses already is refused unless forced; forced, the role's offers that
        pass the limit are rescinded."""
        beta = self.beta
        self.assertTrue(self.master.offers.of_framework(beta.framework_id))
        reply = self.update(config("ops", limit={"cpus": 0.05}))
        self.assertRefused(reply, 400, "already consuming", "force")
        self.assertEqual(self.update(config("ops", limit={"cpus": 0.1}), force=True).code, 200)
        self.assertTrue(beta.rescinded)
        self.assertEqual([o.resources.scalar("cpus") for o in self.master.offers.of_framework(beta.framework_id)],
                         [0.0])  # offered again, without cpus
        self.assertEqual(self.master.quota.consumed("ops")["cpus"], 0.1)

    def test_guarantees_cannot_overcommit_unless_forced(self) -> None:
        """Guarantees beyond the registered agents' capacity are refused unless forced."""
        self.assertRefused(self.update(config("dev", {"cpus": 5})), 400, "exceed cluster capacity")
        self.assertEqual(self.update(config("dev", {"cpus": 5}), force=True).code, 200)

    def test_hierarchy(self) -> None:
        """A child's guarantees need a parent whose guarantees hold all its children's, and must fit every
        ancestor's limits; limits of a parent bound its children together."""
        self.assertRefused(self.update(config("eng/web", {"cpus": 1})), 400, "Parent role 'eng'")
        self.assertRefused(self.update(config("eng", {"cpus": 1}), config("eng/web", {"cpus": 1}),
                                       config("eng/api", {"cpus": 1})), 400, "sum of its children")
        self.assertRefused(self.update(config("eng", {"cpus": 1}, {"cpus": 1}), config("eng/web", {"cpus": 1}),
                                       config("eng/web/x", {"cpus": 2}), config("eng/api", limit={"cpus": 3})),
                           400, "Parent role 'eng/web'")
        reply = self.update(config("eng", {"cpus": 2}, {"cpus": 3}), config("eng/web", {"cpus": 1}))
        self.assertEqual(reply.code, 200, reply.body)

    def test_whitelist(self) -> None:
        """With --roles, only listed roles may have quota."""
        self.master.config.roles = ("ops", "dev")
        self.assertRefused(self.update(config("qa", limit={"cpus": 1})), 400, "whitelist")
        self.assertEqual(self.update(config("dev", limit={"cpus": 1})).code, 200)


class LegacyQuotaTests(QuotaAPICase):
    def test_set_and_remove_quota_calls(self) -> None:
        """SET_QUOTA gives a role its guarantees (which are its limits too); a second SET is refused; REMOVE_QUOTA
        takes the quota away, and removing it again is refused."""
        request = {"role": "dev", "guarantee": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}]}
        reply = self.call({"type": "SET_QUOTA", "set_quota": {"quota_request": request}})
        self.assertEqual(reply.code, 200, reply.body)
        self.assertEqual(self.status()["configs"],
                         [{"role": "dev", "guarantees": limits(cpus=1.0), "limits": limits(cpus=1.0)}])
        self.assertRefused(self.call({"type": "SET_QUOTA", "set_quota": {"quota_request": request}}), 400,
                           "already has quota")
        self.assertEqual(self.call({"type": "REMOVE_QUOTA", "remove_quota": {"role": "dev"}}).code, 200)
        self.assertRefused(self.call({"type": "REMOVE_QUOTA", "remove_quota": {"role": "dev"}}), 400, "no quota set")

    def test_v0_endpoint(self) -> None:
        """POST /quota sets (409 when guarantees overcommit the cluster, 400 when malformed), GET /quota shows,
        DELETE /quota/<role> removes, also for hierarchical roles."""
        def post(body: Any) -> Reply:
            return self.client.request("POST", "/quota", json.dumps(body).encode(), JSON)

        huge = {"role": "dev", "guarantee": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 100}}]}
        self.assertEqual(post(huge).code, 409)
        self.assertEqual(post({"role": "dev", "guarantee": [{"name": "ports", "type": "RANGES"}]}).code, 400)
        self.assertEqual(self.client.request("POST", "/quota", b"{", {}).code, 400)
        self.assertEqual(post({**huge, "force": True}).code, 200)
        web = {"role": "dev/web", "guarantee": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}]}
        self.assertEqual(post(web).code, 409)  # dev's guarantees overcommit the cluster already
        self.assertEqual(post({**web, "force": True}).code, 200)
        self.assertEqual([c["role"] for c in self.client.get_json("/master/quota")["configs"]], ["dev", "dev/web"])
        self.assertEqual(self.client.request("DELETE", "/quota/dev/web").code, 200)
        self.assertEqual(self.client.request("DELETE", "/quota/dev/web").code, 400)
        self.assertEqual(self.client.request("DELETE", "/master/quota/dev").code, 200)
        self.assertEqual(self.client.get_json("/quota"), {"infos": [], "configs": []})
        self.cluster.settle()


class ReportingTests(QuotaAPICase):
    def test_roles_metrics_and_capability(self) -> None:
        """/roles shows a role's guarantee, limit and consumption; /metrics/snapshot the allocator's quota keys;
        the master advertises QUOTA_V2."""
        self.assertEqual(self.update(config("ops", {"cpus": 1}, {"cpus": 3})).code, 200)
        self.cluster.settle()
        [ops] = [r for r in self.client.get_json("/roles")["roles"] if r["name"] == "ops"]
        self.assertEqual(ops["quota"]["guarantee"], {"cpus": 1.0})
        self.assertEqual(ops["quota"]["limit"], {"cpus": 3.0})
        self.assertEqual(ops["quota"]["consumed"]["cpus"], 0.1)  # b1's; offers are not consumption
        metrics = self.client.get_json("/metrics/snapshot")
        self.assertEqual(metrics["allocator/mesos/quota/roles/ops/resources/cpus/guarantee"], 1.0)
        self.assertEqual(metrics["allocator/mesos/quota/roles/ops/resources/cpus/limit"], 3.0)
        self.assertGreater(metrics["allocator/mesos/quota/roles/ops/resources/cpus/offered_or_allocated"], 0.1)
        self.assertIn({"type": "QUOTA_V2"}, self.answer("GET_MASTER")["master_info"]["capabilities"])


QUOTA_ACLS = {
    "get_quotas": only("get_quotas", "roles", {"admin": {"type": "ANY"}, "alice": {"values": ["eng"]}}),
    "update_quotas": only("update_quotas", "roles", {"admin": {"type": "ANY"}, "alice": {"values": ["eng"]}}),
}


class QuotaACLTests(QuotaAPICase):
    def master_flags(self) -> dict[str, Any]:
        credentials = os.path.abspath(self.mktemp())
        with open(credentials, "w") as f:
            json.dump({"credentials": [{"principal": p, "secret": s}
                                       for p, s in (("admin", "admin-secret"), ("alice", "alice-secret"))]}, f)
        return {"credentials": credentials, "acls": json.dumps(QUOTA_ACLS)}

    def test_update_and_get_quotas(self) -> None:
        """update_quotas decides per role, for the whole call; get_quotas hides the roles a caller may not see."""
        def as_(principal: str | None, body: Any) -> Reply:
            return call(self.client, body, headers=basic(principal) if principal else JSON)

        both = {"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [config("eng", limit={"cpus": 1}),
                                                                           config("ops", limit={"cpus": 3})]}}
        self.assertRefused(as_("alice", both), 403, "ops")
        self.assertRefused(as_(None, both), 403)
        self.assertEqual(as_("admin", both).code, 200)
        seen = as_("alice", {"type": "GET_QUOTA"}).json()["get_quota"]["status"]["configs"]
        self.assertEqual([c["role"] for c in seen], ["eng"])
        seen = as_("admin", {"type": "GET_QUOTA"}).json()["get_quota"]["status"]["configs"]
        self.assertEqual([c["role"] for c in seen], ["eng", "ops"])


class DurabilityTests(ClockTestCase):
    def test_quotas_survive_a_master_failover(self) -> None:
        """A new leader recovers the quotas from the registry and gives them to its allocator."""
        store = MemoryStateStore()
        cluster = Cluster(agents=1)
        self.useClock(cluster.clock)
        self.addCleanup(cluster.stop)
        cluster.master.registry = registry = Registry(store)
        self.successResultOf(registry.recover())
        from mesostw.model.quota import QuotaConfig

        self.successResultOf(cluster.master.quota.update([QuotaConfig("dev", {"cpus": 1.0}, {"cpus": 1.5})]))
        state = self.successResultOf(Registry(store).recover())
        self.assertEqual(state.quotas, {"dev": {"role": "dev", "guarantees": {"cpus": {"value": 1.0}},
                                                "limits": {"cpus": {"value": 1.5}}}})
        successor = Master(cluster.config, type(cluster.allocator)(cluster.clock), cluster.clock, master_id="N")
        self.addCleanup(successor.stop)
        successor.recover(state)
        self.assertEqual(successor.allocator.quota("dev"), Quota.of({"cpus": 1}, {"cpus": 1.5}))  # type: ignore
        self.assertEqual([c.role for c in successor.quota.sorted()], ["dev"])


class HonouredTests(ClockTestCase):
    def test_frameworks_of_different_roles(self) -> None:
        """A greedy role's framework that comes first leaves what another role's guarantee needs; the guaranteed
        framework then gets it; a limited role's framework never gets more than its limit."""
        cluster = Cluster(agents=4)
        self.useClock(cluster.clock)
        self.addCleanup(cluster.stop)
        from mesostw.model.quota import QuotaConfig

        self.successResultOf(cluster.master.quota.update([QuotaConfig("dev", limits={"cpus": 1.0}),
                                                          QuotaConfig("prod", {"cpus": 6.0, "mem": 2048.0})]))
        frameworks, drivers = {}, {}
        for role in ("ops", "prod", "dev"):
            scheduler = frameworks[role] = RecordingScheduler()
            scheduler.decline_unused = False
            _, drivers[role] = cluster.framework(role, scheduler=scheduler, role=role)
        cluster.advance(2)

        def held(role: str, name: str) -> float:
            offers = cluster.master.offers.of_framework(frameworks[role].framework_id)
            return sum(o.resources.scalar(name) for o in offers)

        self.assertEqual(held("ops", "cpus"), 2.0)
        self.assertEqual((held("prod", "cpus"), held("prod", "mem")), (6.0, 2048.0))
        self.assertLessEqual(held("dev", "cpus"), 1.0)
        offer = next(o for o in cluster.master.offers.of_framework(frameworks["prod"].framework_id)
                     if o.resources.scalar("mem"))
        task = command_task("p1", "sleep 100", "cpus:1;mem:32")
        task["agent_id"] = {"value": offer.agent_id}
        drivers["prod"].launchTasks([offer.id], [task])
        cluster.settle()
        self.assertEqual(frameworks["prod"].states("p1"), ["TASK_RUNNING"])
