"""HTTP Basic authentication as a client meets it: the master's read-only and read-write endpoints, the
agent's endpoints and its ``/files`` behind the ``access_sandboxes`` ACL, malformed and guessed
credentials, and the throttle that holds guessing down.

Requests go through the daemons' own site (:class:`~mesostw.wire.listen.QuietSite`) over an in-memory
transport, on the cluster's Clock; the policies are built from flags as the daemons build them.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web import server
from twisted.web.test.requesthelper import DummyRequest

from mesostw import flags as flaglib
from mesostw.agent.access import AgentAccess, executor_user
from mesostw.agent.executor_http import ExecutorAPI
from mesostw.agent.files import SandboxFiles
from mesostw.agent.flags import AGENT_FLAGS
from mesostw.agent.http import AgentEndpoints
from mesostw.auth.crammd5 import CredentialsChecker, FailureThrottle
from mesostw.auth.http import basic_credentials, http_principal, peer_of
from mesostw.auth.policy import Security, throttle_for
from mesostw.http.router import HTTPError, Router
from mesostw.master.http import MasterEndpoints
from mesostw.master.scheduler_http import SchedulerAPI
from mesostw.model import task as T
from mesostw.wire.listen import QuietSite
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task

SECRETS = {"ops": "ops-secret", "dev": "dev-secret", "mallory": "mallory-secret"}
ACLS = {
    "permissive": False,
    "register_frameworks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}],
    "run_tasks": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}],
    "register_agents": [{"principals": {"type": "ANY"}, "agents": {"type": "ANY"}}],
    "teardown_frameworks": [{"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}}],
    "access_sandboxes": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
                         {"principals": {"values": ["dev"]}, "users": {"values": ["nobody"]}}],
}


def basic(principal: str, secret: str | None = None) -> dict[str, str]:
    token = base64.b64encode(f"{principal}:{secret or SECRETS[principal]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def header(value: str | bytes) -> Any:
    """A request carrying ``Authorization: value``."""
    request = DummyRequest([b""])
    request.requestHeaders.setRawHeaders(b"authorization", [value])
    return request


class Answer:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.code = int(lines[0].split()[1]) if lines[0] else 0
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}

    def json(self) -> Any:
        return json.loads(self.body)


class SiteTestCase(unittest.TestCase):
    """Serves a router as the daemons do, on ``self.clock``; clients come from 127.0.0.9 unless told."""

    def serve(self, router: Router) -> None:
        self.site = QuietSite(router, reactor=self.clock)
        self.site.displayTracebacks = False

    def request(self, method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b"",
                peer: str = "127.0.0.9", settle: Any = None) -> Answer:
        channel = self.site.buildProtocol(IPv4Address("TCP", peer, 40000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", peer, 40000))
        channel.makeConnection(transport)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        channel.dataReceived(f"{method} {target} HTTP/1.0\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
                             .encode() + body)
        (settle or (lambda: self.clock.advance(0)))()
        answer = Answer(transport.value())
        channel.connectionLost(Failure(ConnectionDone()))
        return answer

    def credentials_file(self) -> str:
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "credentials.json")
        with open(path, "w") as f:
            json.dump({"credentials": [{"principal": p, "secret": s} for p, s in SECRETS.items()]}, f)
        return path


class BasicCredentialsTests(unittest.TestCase):
    def test_well_formed(self) -> None:
        """``Basic base64(user:password)`` gives the user and the password (which may hold colons), whatever
        the case of the scheme and the spaces around the token."""
        for scheme in ("Basic", "basic", "BASIC"):
            token = base64.b64encode(b"ops:a:b c").decode()
            credentials = basic_credentials(header(f"{scheme}  {token} "))
            self.assertEqual((credentials.username, credentials.password), (b"ops", b"a:b c"))
        credentials = basic_credentials(header("Basic " + base64.b64encode("øps:sécret".encode()).decode()))
        self.assertEqual((credentials.username, credentials.password), ("øps".encode(), "sécret".encode()))

    def test_malformed_is_no_credentials(self) -> None:
        """Anything but well-formed Basic credentials counts as none: another scheme, bad base64 (junk
        characters included), a token that is not UTF-8, no colon, more than 4096 decoded bytes."""
        for value in ("", "Bearer abc", "Basicb3BzOm8=", "Basic", "Basic !!!", "Basic b3BzOm8=!",
                      "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
                      "Basic " + base64.b64encode(b"no-colon").decode(),
                      "Basic " + base64.b64encode(b"ops:" + b"x" * 4093).decode()):
            self.assertIsNone(basic_credentials(header(value)), value)
        self.assertIsNone(basic_credentials(DummyRequest([b""])))
        longest = basic_credentials(header("Basic " + base64.b64encode(b"ops:" + b"x" * 4092).decode()))
        self.assertEqual(len(longest.password), 4092)

    def test_peer(self) -> None:
        """Failures are counted per client IP address (the address of a UNIX socket client as a whole)."""
        request = DummyRequest([b""])
        request.client = IPv4Address("TCP", "127.0.0.7", 5000)
        self.assertEqual(peer_of(request), "127.0.0.7")
        request.client = UNIXAddress(b"/run/socket")
        self.assertEqual(peer_of(request), str(UNIXAddress(b"/run/socket")))


class PrincipalTests(SiteTestCase):
    """:func:`http_principal` behind a route, with the master's own throttle."""

    def setUp(self) -> None:
        from twisted.internet import task

        self.clock = task.Clock()
        self.throttle = FailureThrottle(self.clock, base=1.0, cap=4.0, max_waiting=2)
        self.security = Security(CredentialsChecker(SECRETS), throttle=self.throttle)
        self.seen: list[Any] = []
        router = Router()
        router.route("/required", lambda request: self.who(request, True))
        router.route("/optional", lambda request: self.who(request, False))
        self.serve(router)

    def who(self, request: server.Request, required: bool) -> Any:
        def seen(principal: str | None) -> dict[str, Any]:
            self.seen.append(principal)
            return {"principal": principal, "bound": getattr(request, "principal", "unbound")}

        return http_principal(self.security, request, "realm", required).addCallback(seen)

    def test_required(self) -> None:
        """Where credentials are required: none or wrong ones get 401 with the realm's challenge; right ones
        give the principal, bound to the request."""
        for headers in ({}, basic("ops", "guess"), {"Authorization": "Bearer abc"}):
            answer = self.request("GET", "/required", headers)
            self.assertEqual((answer.code, answer.headers["www-authenticate"]), (401, 'Basic realm="realm"'))
            self.clock.advance(10)
        answer = self.request("GET", "/required", basic("dev"))
        self.assertEqual((answer.code, answer.json()), (200, {"principal": "dev", "bound": "dev"}))
        self.assertEqual(self.seen, ["dev"])

    def test_optional(self) -> None:
        """Where they are optional: none is anonymous; wrong ones are still refused (401), right ones taken."""
        self.assertEqual(self.request("GET", "/optional").json(), {"principal": None, "bound": "unbound"})
        self.assertEqual(self.request("GET", "/optional", basic("ops", "guess")).code, 401)
        self.clock.advance(10)
        self.assertEqual(self.request("GET", "/optional", basic("ops")).json()["principal"], "ops")

    def test_no_credentials_to_check_against(self) -> None:
        """A daemon without credentials refuses where they are required (401), even a client that sends some,
        and takes the client as anonymous where they are optional."""
        self.security = Security(None, throttle=self.throttle)
        self.assertEqual(self.request("GET", "/required", basic("ops")).code, 401)
        self.assertEqual(self.request("GET", "/optional", basic("ops")).json()["principal"], None)

    def test_failures_are_throttled_per_address(self) -> None:
        """After a wrong password from an address, its next attempt (even the right one) is checked only when
        its turn comes; other addresses are not slowed; past ``max_waiting`` waiting attempts, 429 with
        Retry-After; a success lets the address's next attempts through at once."""
        self.assertEqual(self.request("GET", "/required", basic("ops", "guess")).code, 401)
        self.assertEqual(self.throttle.delay("127.0.0.9"), 1.0)
        self.assertEqual(self.request("GET", "/required", basic("ops"), peer="127.0.0.10").code, 200)
        waiting = self.request("GET", "/required", basic("ops"), settle=lambda: None)
        self.assertEqual(waiting.code, 0)  # not answered yet: it waits its turn
        self.assertEqual(self.seen, ["ops"])
        self.request("GET", "/required", basic("ops", "guess2"), settle=lambda: None)
        refused = self.request("GET", "/required", basic("ops"))
        self.assertEqual((refused.code, refused.headers["retry-after"]), (429, "4"))
        self.clock.advance(1.0)
        self.assertEqual(self.seen, ["ops", "ops"])
        self.clock.advance(1.0)  # guess2's turn: a failure again
        self.assertEqual(self.throttle.delay("127.0.0.9"), 1.0)
        self.clock.advance(2.0)
        self.assertEqual(self.request("GET", "/required", basic("ops")).code, 200)
        self.assertEqual(self.throttle.delay("127.0.0.9"), 0.0)

    def test_own_logins_do_not_wipe_out_guesses(self) -> None:
        """A tenant guessing another principal's password gains nothing by logging in as itself between guesses:
        its next guess still waits its turn, longer after each failure."""
        self.assertEqual(self.request("GET", "/required", basic("ops", "guess")).code, 401)
        for turn in (1.0, 2.0):
            login = self.request("GET", "/required", basic("mallory"), settle=lambda: None)
            self.clock.advance(turn)
            self.assertEqual(self.seen[-1], "mallory")
            self.assertEqual(login.code, 0)  # answered only after its turn (the connection is gone by then)
            self.assertEqual(self.throttle.delay("127.0.0.9"), turn)
            self.assertEqual(self.request("GET", "/required", basic("ops", "guess"), settle=lambda: None).code, 0)
            self.clock.advance(turn)
        self.assertEqual(self.throttle.delay("127.0.0.9"), 4.0)

    def test_checked_before_the_body(self) -> None:
        """A principal already checked (before the body was read) is taken as it is, not checked again; an
        anonymous one is checked where credentials are required."""
        request = DummyRequest([b""])
        request.principal = "dev"
        self.assertEqual(self.successResultOf(http_principal(self.security, request, "r", True)), "dev")
        request = header("Basic " + base64.b64encode(b"ops:guess").decode())
        request.principal, request.path = None, b"/x"
        self.assertIsNone(self.successResultOf(http_principal(self.security, request, "r", False)))
        self.failureResultOf(http_principal(self.security, request, "r", True), HTTPError)


class MasterEndpointTests(SiteTestCase):
    """The master's endpoints with --authenticate_http_readonly / --authenticate_http_readwrite."""

    def cluster(self, **flags: Any) -> Cluster:
        cluster = Cluster(agents=1, credentials=self.credentials_file(), acls=json.dumps(ACLS), **flags)
        self.addCleanup(cluster.stop)
        self.clock = cluster.clock
        router = Router()
        MasterEndpoints(cluster.master, cluster.config.rendered()).install(router)
        self.serve(router)
        return cluster

    def test_readonly(self) -> None:
        """With --authenticate_http_readonly reads need credentials (401 with the read-only realm), health
        does not; writes do not unless --authenticate_http_readwrite."""
        cluster = self.cluster(authenticate_http_readonly=True)
        answer = self.request("GET", "/master/state")
        self.assertEqual((answer.code, answer.headers["www-authenticate"]),
                         (401, 'Basic realm="mesos-master-readonly"'))
        self.assertEqual(self.request("GET", "/master/state", basic("dev")).code, 200)
        self.assertEqual(self.request("GET", "/master/health").code, 200)
        self.assertEqual(self.request("POST", "/master/teardown?frameworkId=nope").code, 400)
        self.assertTrue(cluster.master.leading)

    def test_wrong_credentials_are_counted(self) -> None:
        """Wrong HTTP Basic credentials count in master/http_authentication_failures; none at all, or right
        ones, do not."""
        cluster = self.cluster(authenticate_http_readonly=True)
        self.assertEqual(self.request("GET", "/master/state").code, 401)
        self.assertEqual(self.request("GET", "/master/state", basic("dev")).code, 200)
        self.assertEqual(cluster.master.metrics["http_authentication_failures"], 0)
        self.assertEqual(self.request("GET", "/master/state", basic("dev", "guess")).code, 401)
        self.clock.advance(60)
        snapshot = json.loads(self.request("GET", "/metrics/snapshot", basic("ops")).body)
        self.assertEqual(snapshot["master/http_authentication_failures"], 1)

    def test_readwrite(self) -> None:
        """With --authenticate_http_readwrite a teardown without credentials gets 401 (the read-write realm) and
        does nothing; ops tears down, dev may not (403, the ACL); reads stay open without the read-only flag."""
        cluster = self.cluster(authenticate_http_readwrite=True)
        scheduler = RecordingScheduler()
        scheduler.pending = [command_task("t1", "sleep 100")]
        cluster.framework("victim", scheduler=scheduler, principal="dev")
        target = f"/master/teardown?frameworkId={scheduler.framework_id}"
        answer = self.request("POST", target)
        self.assertEqual((answer.code, answer.headers["www-authenticate"]),
                         (401, 'Basic realm="mesos-master-readwrite"'))
        self.assertEqual(self.request("POST", target, basic("dev")).code, 403)
        self.assertEqual(self.request("GET", "/master/state").code, 200)
        self.assertIn(scheduler.framework_id, cluster.master.frameworks)
        self.assertEqual(self.request("POST", target, basic("ops")).code, 200)
        cluster.settle()
        self.assertNotIn(scheduler.framework_id, cluster.master.frameworks)


class SchedulerAPITests(SiteTestCase):
    """The v1 scheduler API with --authenticate_frameworks (or --authenticate_http_frameworks alone)."""

    def cluster(self, **flags: Any) -> Cluster:
        cluster = Cluster(agents=1, credentials=self.credentials_file(), acls=json.dumps(ACLS), **flags)
        self.addCleanup(cluster.stop)
        self.clock = cluster.clock
        router = Router()
        SchedulerAPI(cluster.master, cluster.clock).install(router)
        self.serve(router)
        return cluster

    def subscribe(self, headers: dict[str, str], **info: Any) -> Answer:
        body = json.dumps({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "nobody", "name": "f",
                                                                                  **info}}}).encode()
        return self.request("POST", "/api/v1/scheduler", {"Content-Type": "application/json", **headers}, body)

    def test_subscribing_needs_credentials(self) -> None:
        """Without credentials a subscription gets 401 (the scheduler realm), under either flag; with them the
        framework is its principal's."""
        for flag in ("authenticate_frameworks", "authenticate_http_frameworks"):
            cluster = self.cluster(**{flag: True})
            answer = self.subscribe({})
            self.assertEqual((answer.code, answer.headers["www-authenticate"]),
                             (401, 'Basic realm="mesos-master-scheduler"'))
            self.assertEqual(cluster.master.frameworks, {})
            answer = self.subscribe(basic("dev"))
            self.assertIn(b"SUBSCRIBED", answer.body)
            (record,) = cluster.master.frameworks.values()
            self.assertEqual((record.principal, record.info.principal), ("dev", "dev"))

    def test_no_claims_no_takeover(self) -> None:
        """A subscription declaring another principal than it proved, or naming another principal's framework,
        is refused with an ERROR event; the owner keeps its framework."""
        cluster = self.cluster(authenticate_frameworks=True)
        self.assertIn(b"SUBSCRIBED", self.subscribe(basic("dev"), failover_timeout=3600).body)
        (framework_id,) = cluster.master.frameworks
        claims = ((basic("dev"), {"principal": "ops"}), (basic("mallory"), {"id": {"value": framework_id}}))
        for headers, info in claims:
            answer = self.subscribe(headers, **info)
            self.assertIn(b"ERROR", answer.body)
            self.assertNotIn(b"SUBSCRIBED", answer.body)
        self.assertEqual(list(cluster.master.frameworks), [framework_id])
        self.assertEqual(cluster.master.frameworks[framework_id].principal, "dev")

    def test_anonymous_where_nothing_is_required(self) -> None:
        """Without the flags an anonymous subscription is taken as anonymous, never as the principal it claims."""
        cluster = self.cluster()
        answer = self.subscribe({}, principal="ops", failover_timeout=3600)
        self.assertIn(b"SUBSCRIBED", answer.body)
        (record,) = cluster.master.frameworks.values()
        self.assertIsNone(record.principal)


class AgentEndpointTests(SiteTestCase):
    """An agent's endpoints behind --authenticate_http_readonly, --http_credentials and access_sandboxes."""

    def setUp(self) -> None:
        self.root_dir = os.path.abspath(self.mktemp())
        self.cluster = Cluster(agents=1, work_dir=self.root_dir)
        self.addCleanup(self.cluster.stop)
        self.clock = self.cluster.clock
        self.agent = self.cluster.agents[0]
        config = flaglib.defaults(AGENT_FLAGS, master="127.0.0.1:5050", work_dir=self.root_dir,
                                  http_credentials=self.credentials_file(), authenticate_http_readonly=True,
                                  acls=json.dumps(ACLS), authentication_failure_delay=2.0)
        self.sandboxes = os.path.join(self.root_dir, "slaves")
        self.access = AgentAccess(self.agent, Security.for_agent(config, self.clock), self.sandboxes)
        router = Router()
        self.access.install(router)
        AgentEndpoints(self.agent, config.rendered()).install(router)
        ExecutorAPI(self.agent, True).install(router)
        SandboxFiles(self.sandboxes, self.access.check_sandbox).install(router)
        self.serve(router)

    def launch(self, task_id: str, user: str | None = None) -> str:
        """Run a task (as ``user`` when given, else as its framework's user, nobody); its sandbox's stdout."""
        scheduler = RecordingScheduler()
        task = command_task(task_id, "sleep 100")
        if user is not None:
            task = {**task, "command": {**task["command"], "user": user}}
        scheduler.pending = [task]
        self.cluster.framework(f"fw-{task_id}", scheduler=scheduler)
        executor = self.agent.frameworks[scheduler.framework_id].executors[task_id]
        os.makedirs(executor.directory)
        stdout = os.path.join(executor.directory, "stdout")
        with open(stdout, "w") as f:
            f.write(f"output of {task_id}\n")
        self.schedulers = {**getattr(self, "schedulers", {}), task_id: scheduler}
        return stdout

    def read(self, path: str, *who: str) -> int:
        return self.request("GET", f"/files/read?path={path}&offset=0", basic(*who) if who else {}).code

    def test_endpoints_need_credentials(self) -> None:
        """State needs credentials (401, the agent's realm; wrong ones too); health does not; the executor
        API checks executor secrets itself, never asking for Basic credentials."""
        answer = self.request("GET", "/slave(1)/state")
        self.assertEqual((answer.code, answer.headers["www-authenticate"]), (401, 'Basic realm="mesos-agent-readonly"'))
        self.assertEqual(self.request("GET", "/slave(1)/state", basic("ops", "guess")).code, 401)
        self.clock.advance(10)
        self.assertEqual(self.request("GET", "/slave(1)/state", basic("ops")).code, 200)
        self.assertEqual(self.request("GET", "/slave(1)/health").code, 200)
        self.assertEqual(self.request("GET", "/health").code, 200)
        executor = self.request("POST", "/api/v1/executor", {"Content-Type": "application/json"}, b"{}")
        self.assertNotIn("basic", executor.headers.get("www-authenticate", "").lower())

    def test_throttle_comes_from_the_flags(self) -> None:
        """A wrong password makes the address wait --authentication_failure_delay before its next attempt."""
        self.assertEqual(self.request("GET", "/slave(1)/state", basic("ops", "guess")).code, 401)
        self.assertEqual(self.request("GET", "/slave(1)/state", basic("ops"), settle=lambda: None).code, 0)
        self.assertEqual(self.access.security.throttle.delay("127.0.0.9"), 2.0)

    def test_sandboxes_of_other_users_are_refused(self) -> None:
        """dev may read the sandboxes of nobody's executors only, ops every one, mallory none (403), a client
        without credentials none (401); the user is the executor's: its command's, else its framework's."""
        nobody, daemon = self.launch("t1"), self.launch("t2", user="daemon")
        self.assertEqual([self.read(nobody, p) for p in ("ops", "dev", "mallory")], [200, 200, 403])
        self.assertEqual([self.read(daemon, p) for p in ("ops", "dev", "mallory")], [200, 403, 403])
        self.assertEqual(self.read(nobody), 401)

    def test_above_the_sandboxes_is_everyones(self) -> None:
        """Browsing above the sandboxes (the agent's, a framework's directory) needs a rule allowing every
        user: ops may, dev may not."""
        self.launch("t1")
        framework_dir = os.path.join(self.sandboxes, os.listdir(self.sandboxes)[0], "frameworks")
        for path in (self.sandboxes, framework_dir):
            self.assertEqual(self.request("GET", f"/files/browse?path={path}", basic("ops")).code, 200)
            self.assertEqual(self.request("GET", f"/files/browse?path={path}", basic("dev")).code, 403)

    def test_finished_executors_keep_their_user(self) -> None:
        """Once its executor has finished, a sandbox is still its user's: dev may read nobody's, mallory not."""
        nobody = self.launch("t1")
        (executor,) = self.cluster.containerizers[0].by_executor("t1")
        executor.update("t1", T.FINISHED)
        executor.exit(0)
        self.cluster.advance(1)
        self.assertEqual([self.read(nobody, p) for p in ("dev", "mallory")], [200, 403])

    def test_unknown_sandboxes_belong_to_their_owner(self) -> None:
        """A sandbox no executor is known at belongs to the user owning it on disk (not nobody here)."""
        stray = os.path.join(self.sandboxes, "A", "frameworks", "F", "executors", "E", "runs", "C")
        os.makedirs(stray)
        with open(os.path.join(stray, "stdout"), "w") as f:
            f.write("stray\n")
        self.assertEqual(self.read(os.path.join(stray, "stdout"), "dev"), 403)
        self.assertEqual(self.read(os.path.join(stray, "stdout"), "ops"), 200)

    def test_executor_user(self) -> None:
        """An executor's user is its own, else (recovered from a checkpoint that kept none) its command's, else
        its framework's; and so is its sandbox's."""
        nobody = self.launch("t1")
        daemon = self.launch("t2", user="daemon")
        (first,), (second,) = (self.agent.frameworks[s.framework_id].executors.values()
                               for s in self.schedulers.values())
        self.assertEqual((executor_user(self.agent, first), executor_user(self.agent, second)), ("nobody", "daemon"))
        first.user = second.user = None
        self.assertEqual((executor_user(self.agent, first), executor_user(self.agent, second)), ("nobody", "daemon"))
        self.assertEqual([self.read(nobody, "dev"), self.read(daemon, "dev")], [200, 403])

    def test_sandboxes_of_users_without_a_name(self) -> None:
        """A sandbox owned by a uid that has no name is that uid's, by number."""
        stray = os.path.join(self.sandboxes, "A", "frameworks", "F", "executors", "E", "runs", "C")
        os.makedirs(stray)
        try:
            os.chown(stray, 54321, -1)
        except PermissionError:
            raise unittest.SkipTest("needs root to give a directory away") from None
        self.assertEqual(self.access.sandbox_user(os.path.join(stray, "stdout")), "54321")

    def test_authentication_before_the_body(self) -> None:
        """A request without credentials announcing a 100 GB body is refused (401) before any of it is read."""
        channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.9", 40000))
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(b"GET /slave(1)/state HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n")
        self.assertEqual(Answer(transport.value()).code, 401)
        channel.connectionLost(Failure(ConnectionDone()))


class PolicyTests(unittest.TestCase):
    def test_master_policy_from_flags(self) -> None:
        """The master's policy takes each flag to its place: credentials, what must authenticate, the ACLs and
        the throttle's delays."""
        from mesostw.master.flags import MASTER_FLAGS

        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "credentials")
        with open(path, "w") as f:
            f.write("ops ops-secret\n")
        config = flaglib.defaults(MASTER_FLAGS, credentials=path, authenticate_frameworks=True,
                                  authenticate_agents=True, authenticate_http_frameworks=True,
                                  authenticate_http_readonly=True, authenticate_http_readwrite=True,
                                  acls=json.dumps(ACLS), authentication_failure_delay=0.25,
                                  authentication_failure_delay_max=8.0)
        policy = Security.from_config(config, object())
        self.assertEqual((policy.authenticate_frameworks, policy.authenticate_agents,
                          policy.authenticate_http_frameworks, policy.authenticate_http_readonly,
                          policy.authenticate_http_readwrite), (True,) * 5)
        self.assertEqual((policy.throttle.base, policy.throttle.cap), (0.25, 8.0))
        self.assertTrue(policy.authorize("teardown_frameworks", "ops", "anyone"))
        self.assertFalse(policy.authorize("teardown_frameworks", "dev", "anyone"))
        self.assertIsNotNone(policy.checker)
        bare = Security.from_config(flaglib.defaults(MASTER_FLAGS), object())
        self.assertEqual((bare.checker, bare.authenticate_frameworks, bare.authenticate_http_readonly),
                         (None, False, False))
        self.assertTrue(bare.authorize("teardown_frameworks", "dev", "anyone"))

    def test_agent_policy_without_flags(self) -> None:
        """An agent without --http_credentials, --authenticate_http_readonly or --acls checks nothing and allows
        every read."""
        policy = Security.for_agent(object(), object())
        self.assertEqual((policy.checker, policy.authenticate_http_readonly), (None, False))
        self.assertTrue(policy.authorize("access_sandboxes", None, "root"))

    def test_throttle_defaults(self) -> None:
        """Without the delay flags, failures cost 0.5 s at first and at most 30 s."""
        throttle = throttle_for(object(), "clock")
        self.assertEqual((throttle.base, throttle.cap, throttle.clock), (0.5, 30.0, "clock"))
        throttle = throttle_for(type("C", (), {"authentication_failure_delay": 1.0,
                                                "authentication_failure_delay_max": 2.0})(), "clock")
        self.assertEqual((throttle.base, throttle.cap), (1.0, 2.0))
