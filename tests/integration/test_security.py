"""Authentication, authorization and tasks as users, with real daemons."""

from __future__ import annotations

import base64
import json
import os
import pwd

from twisted.internet import defer, reactor
from twisted.trial import unittest

from mesostw.auth.crammd5 import respond
from mesostw.auth.credentials import Credential
from mesostw.model import task as T
from mesostw.model.info import FrameworkInfo
from mesostw.scheduler.pb import MesosSchedulerDriver
from mesostw.wire.pb import ClientFactory
from tests.helpers.cluster import command_task
from tests.helpers.processes import ProcessCluster, get_json, http, wait_for
from tests.integration.test_core_cluster import LaunchingScheduler

CREDENTIALS = {"credentials": [{"principal": "ops", "secret": "s3cret"},
                               {"principal": "agent", "secret": "agent-secret"},
                               {"principal": "dev", "secret": "dev-secret"}]}
ACLS = {
    "permissive": False,
    "register_frameworks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}],
    "run_tasks": [{"principals": {"values": ["ops"]}, "users": {"values": ["nobody"]}},
                  {"principals": {"values": ["dev"]}, "users": {"type": "ANY"}}],
    "teardown_frameworks": [{"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}}],
    "register_agents": [{"principals": {"values": ["agent"]}, "agents": {"type": "ANY"}}],
}


def basic(principal: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{principal}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class SecurityTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.cluster = ProcessCluster(self, agents=1)
        base = self.cluster.base
        credentials = os.path.join(base, "credentials.json")
        with open(credentials, "w") as f:
            json.dump(CREDENTIALS, f)
        self.agent_credential = os.path.join(base, "agent-credential")
        with open(self.agent_credential, "w") as f:
            f.write("agent agent-secret\n")
        self.cluster.agent_args = [f"--credential=file://{self.agent_credential}"]
        self.cluster.master.args += ["--authenticate_frameworks", "--authenticate_agents",
                                     "--authenticate_http_readonly", "--authenticate_http_readwrite",
                                     f"--credentials={credentials}", f"--acls={json.dumps(ACLS)}"]
        self.cluster.http_headers = basic("ops", "s3cret")
        yield self.cluster.start()

    def framework(self, scheduler, principal, secret, user="root"):
        driver = MesosSchedulerDriver(scheduler, FrameworkInfo(user=user, name="secure"),
                                      self.cluster.master_address, reactor=reactor, backoff=0.2,
                                      credential=Credential(principal, secret))
        self.addCleanup(lambda: driver.abort() and driver.stopped())
        driver.start()
        return driver

    def state(self):
        return get_json(self.cluster.url("/master/state"), basic("ops", "s3cret"))

    @defer.inlineCallbacks
    def test_agents_and_frameworks_must_authenticate(self):
        """The agent with its credential registered; a framework with the right secret registers,
        a wrong secret and an unknown principal are refused, and none of them registers anything."""
        state = yield self.state()
        self.assertEqual(state["activated_slaves"], 1)
        good = LaunchingScheduler()
        self.framework(good, "ops", "s3cret")
        yield wait_for(lambda: good.framework_id, 30, what="the authenticated framework")
        for principal, secret in (("ops", "wrong"), ("mallory", "s3cret")):
            bad = LaunchingScheduler()
            self.framework(bad, principal, secret)
            yield wait_for(lambda bad=bad: bad.errors, 30, what=f"refusal of {principal}")
            self.assertIn("authentication failed", bad.errors[0])
            self.assertIsNone(bad.framework_id)
        state = yield self.state()
        self.assertEqual([f["principal"] for f in state["frameworks"]], ["ops"])

    @defer.inlineCallbacks
    def test_agent_without_credentials_is_refused(self):
        """An agent with no credential is refused while agents must authenticate."""
        daemon = self.cluster.agent_daemon(9)
        daemon.args = [a for a in daemon.args if not a.startswith("--credential")]
        self.cluster.agents.append(daemon.start())
        yield wait_for(lambda: "Agent is not authenticated" in daemon.log(), 30, what="the refusal")
        state = yield self.state()
        self.assertEqual(state["activated_slaves"], 1)

    @defer.inlineCallbacks
    def test_replayed_response_fails(self):
        """A CRAM-MD5 response captured from one exchange does not authenticate another."""
        host, port = self.cluster.master_address.split(":")

        @defer.inlineCallbacks
        def root():
            factory = ClientFactory()
            connector = reactor.connectTCP(host, int(port), factory)
            self.addCleanup(connector.disconnect)
            value = yield factory.getRootObject()
            return value

        first = yield root()
        challenge = yield first.callRemote("authenticate", "CRAM-MD5")
        captured = respond(Credential("ops", "s3cret"), challenge)
        principal = yield first.callRemote("authenticationStep", captured)
        self.assertEqual(principal, "ops")
        second = yield root()
        yield second.callRemote("authenticate", "CRAM-MD5")
        with self.assertRaises(Exception) as refused:
            yield second.callRemote("authenticationStep", captured)
        self.assertIn("authentication failed", str(refused.exception))

    @defer.inlineCallbacks
    def test_run_tasks_acl_and_task_user(self):
        """run_tasks refuses ops running as root with TASK_ERROR, and its task as nobody really runs as nobody."""
        scheduler = LaunchingScheduler()
        as_root = command_task("as-root", "true")
        as_nobody = command_task("as-nobody", "id -u")
        as_nobody["command"]["user"] = "nobody"
        scheduler.pending = [as_root, as_nobody]
        self.framework(scheduler, "ops", "s3cret")
        yield wait_for(lambda: scheduler.states("as-root") and scheduler.states("as-nobody")[-1:] == [T.FINISHED],
                       60, what="the two tasks")
        refused = [u for u in scheduler.updates if u.task_id == "as-root"]
        self.assertEqual([u.state for u in refused], [T.ERROR])
        self.assertEqual(refused[0].reason, T.REASON_TASK_UNAUTHORIZED)
        self.assertIn("user 'root'", refused[0].message)
        state = yield self.state()
        agent = state["slaves"][0]
        agent_state = yield get_json(f"http://127.0.0.1:{agent['port']}/slave(1)/state", basic("ops", "s3cret"))
        executor = next(e for f in agent_state["frameworks"] + agent_state["completed_frameworks"]
                        for e in f["executors"] + f["completed_executors"] if e["id"] == "as-nobody")
        output = yield get_json(f"http://127.0.0.1:{agent['port']}/files/read?offset=0&path="
                                f"{executor['directory']}/stdout")
        self.assertEqual(output["data"].strip(), str(pwd.getpwnam("nobody").pw_uid))

    @defer.inlineCallbacks
    def test_unknown_user_fails_the_task_clearly(self):
        """A task for a user the agent does not have fails with a message naming the user."""
        scheduler = LaunchingScheduler()
        ghost = command_task("ghost", "true")
        ghost["command"]["user"] = "no-such-user-here"
        scheduler.pending = [ghost]
        self.framework(scheduler, "dev", "dev-secret")
        yield wait_for(lambda: scheduler.states("ghost")[-1:] == [T.FAILED], 60, what="the failed task")
        final = [u for u in scheduler.updates if u.task_id == "ghost"][-1]
        self.assertIn("user 'no-such-user-here' does not exist", final.message)

    @defer.inlineCallbacks
    def test_http_authentication_and_teardown_acl(self):
        """Endpoints need HTTP Basic credentials; only ops may tear frameworks down."""
        code, _, headers = yield http("GET", self.cluster.url("/master/state"))
        self.assertEqual(code, 401)
        self.assertIn(b"Basic", headers.getRawHeaders(b"www-authenticate")[0])
        code, _, _ = yield http("GET", self.cluster.url("/master/state"), headers=basic("ops", "nope"))
        self.assertEqual(code, 401)
        scheduler = LaunchingScheduler()
        self.framework(scheduler, "dev", "dev-secret")
        yield wait_for(lambda: scheduler.framework_id, 30, what="the framework")
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        body = f"frameworkId={scheduler.framework_id}".encode()
        code, data, _ = yield http("POST", self.cluster.url("/master/teardown"), body,
                                   {**form, **basic("dev", "dev-secret")})
        self.assertEqual(code, 403, data)
        code, data, _ = yield http("POST", self.cluster.url("/master/teardown"), body,
                                   {**form, **basic("ops", "s3cret")})
        self.assertEqual(code, 200, data)
        health, _, _ = yield http("GET", self.cluster.url("/master/health"))
        self.assertEqual(health, 200)
