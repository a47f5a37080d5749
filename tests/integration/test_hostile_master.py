"""Issue 12, items 2 and 3: agent IDs and framework IDs belong to the principals that registered
them, every way a framework subscribes is authenticated, and ``/master/kill`` obeys an ACL.

Mallory holds valid credentials (a framework's); ``rogue-agent`` is a second agent host allowed to
register agents of its own; an anonymous client holds nothing.
"""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.spread import pb
from twisted.trial import unittest

from mesostw.model import internal
from mesostw.model.info import AgentInfo
from mesostw.model.resources import Resources
from mesostw.wire.pb import encode
from tests.helpers.processes import get_json, http, wait_for
from tests.integration.hostile import HostileCluster, basic, pb_root

JSON = "application/json"


def subscribe_call(principal: str | None = None, framework_id: str | None = None, user: str = "nobody") -> dict:
    info = {"user": user, "name": "http-framework"}
    if principal is not None:
        info["principal"] = principal
    call = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
    if framework_id is not None:
        info["id"] = {"value": framework_id}
        call["framework_id"] = {"value": framework_id}
    return call


class AgentIdentityTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.cluster = yield HostileCluster(self).start()
        self.alice, self.executor = yield self.cluster.running_task(self, "alice", "alice-task")
        state = yield self.cluster.state()
        self.agent = state["slaves"][0]

    @defer.inlineCallbacks
    def reregister_as_the_agent(self, principal):
        """Re-register the cluster's agent ID, claiming no tasks, over a connection authenticated as ``principal``."""
        root = yield pb_root(self.cluster.master_address, principal)
        self.addCleanup(root.broker.transport.loseConnection)
        info = AgentInfo(hostname="127.0.0.1", port=self.agent["port"], id=self.agent["id"],
                         resources=Resources.parse("cpus:4;mem:4096;disk:4096"))
        payload = encode(internal.reregistration(info, [], [], [], "1.0"))
        try:
            yield root.callRemote("reregisterAgent", pb.Referenceable(), payload)
        except Exception as exc:  # noqa: BLE001 - the refusal is what the test wants
            return str(exc)
        return None

    @defer.inlineCallbacks
    def test_other_principals_cannot_take_an_agent_id(self):
        """A framework's credential and another agent host's both fail to re-register as the agent:
        the refusal is logged, the real agent stays, and Alice's task is neither lost nor sent elsewhere."""
        refusal = yield self.reregister_as_the_agent("mallory")
        self.assertIn("not authorized to register agents", refusal or "")
        refusal = yield self.reregister_as_the_agent("rogue-agent")
        self.assertIn("was registered by principal agent", refusal or "")
        yield wait_for(lambda: "principal rogue-agent may not re-register it" in self.cluster.master.log(), 10,
                       what="the refusal in the master's log")
        state = yield self.cluster.state()
        self.assertEqual([(a["id"], a["active"]) for a in state["slaves"]], [(self.agent["id"], True)])
        task = yield self.cluster.master_task("alice-task")
        self.assertEqual(task["state"], "TASK_RUNNING")
        self.assertEqual(self.alice.states("alice-task"), ["TASK_RUNNING"])

    @defer.inlineCallbacks
    def test_framework_credentials_cannot_register_agents(self):
        """register_agents is enforced: a framework's principal cannot add an agent either."""
        root = yield pb_root(self.cluster.master_address, "mallory")
        self.addCleanup(root.broker.transport.loseConnection)
        info = AgentInfo(hostname="127.0.0.1", port=1, resources=Resources.parse("cpus:64;mem:65536"))
        with self.assertRaises(Exception) as refused:
            yield root.callRemote("registerAgent", pb.Referenceable(), encode(internal.registration(info, "1.0")))
        self.assertIn("not authorized to register agents", str(refused.exception))
        state = yield self.cluster.state()
        self.assertEqual(len(state["slaves"]), 1)


class HTTPFrameworkTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.cluster = yield HostileCluster(self).start()
        self.alice, self.executor = yield self.cluster.running_task(self, "alice", "alice-task")

    def post(self, path: str, body: bytes, headers: dict) -> defer.Deferred:
        return http("POST", self.cluster.url(path), body, headers)

    @defer.inlineCallbacks
    def test_anonymous_http_subscription_is_refused(self):
        """With --authenticate_frameworks, an HTTP client without credentials that claims principal ops is
        answered 401 and registers nothing."""
        code, body, headers = yield self.post("/api/v1/scheduler", json.dumps(subscribe_call("ops")).encode(),
                                              {"Content-Type": JSON, "Accept": JSON, "Connection": "close"})
        self.assertEqual(code, 401, body)
        self.assertIn(b"Basic", headers.getRawHeaders(b"www-authenticate")[0])
        state = yield self.cluster.state()
        self.assertEqual([f["principal"] for f in state["frameworks"]], ["alice"])

    @defer.inlineCallbacks
    def test_another_principal_cannot_take_over_a_framework(self):
        """Mallory, authenticated, subscribes with Alice's framework ID over HTTP and over PB: refused both
        ways; Alice stays subscribed and her task keeps running."""
        framework_id = self.alice.framework_id
        call = subscribe_call(None, framework_id, user="daemon")
        code, body, _ = yield self.post("/api/v1/scheduler", json.dumps(call).encode(),
                                        {"Content-Type": JSON, "Accept": JSON, "Connection": "close",
                                         **basic("mallory")})
        self.assertIn(b"belongs to principal alice", body)
        root = yield pb_root(self.cluster.master_address, "mallory")
        self.addCleanup(root.broker.transport.loseConnection)
        with self.assertRaises(Exception) as refused:
            yield root.callRemote("subscribe", pb.Referenceable(), encode(call))
        self.assertIn("belongs to principal alice", str(refused.exception))
        state = yield self.cluster.state()
        framework = next(f for f in state["frameworks"] if f["id"] == framework_id)
        self.assertTrue(framework["active"])
        self.assertEqual(self.alice.errors, [])
        task = yield self.cluster.master_task("alice-task")
        self.assertEqual(task["state"], "TASK_RUNNING")

    @defer.inlineCallbacks
    def test_kill_obeys_the_teardown_acl(self):
        """Mallory may not tear Alice's framework down, and may not kill its tasks one by one either
        (403); Alice and ops may."""
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        body = f"frameworkId={self.alice.framework_id}&taskId=alice-task".encode()
        code, data, _ = yield self.post("/master/kill", body, {**form, **basic("mallory")})
        self.assertEqual(code, 403, data)
        code, data, _ = yield self.post("/master/kill", body, form)
        self.assertEqual(code, 401, data)
        task = yield self.cluster.master_task("alice-task")
        self.assertEqual(task["state"], "TASK_RUNNING")
        code, data, _ = yield self.post("/master/kill", body, {**form, **basic("alice")})
        self.assertEqual(code, 202, data)
        yield wait_for(lambda: self.alice.states("alice-task")[-1:] == ["TASK_KILLED"], 60, what="the kill")
        state = yield get_json(self.cluster.url("/master/state"), basic("ops"))
        self.assertEqual(len(state["frameworks"]), 1)
