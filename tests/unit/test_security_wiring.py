"""The master's and the agent's security checks, one by one: each test fails if its check is removed.

Pure decisions (:mod:`mesostw.master.admission`, :mod:`mesostw.agent.executor_auth`, the ACLs) and their
wiring into the managers, sessions and endpoints, on in-process clusters driven by a Clock.
"""

from __future__ import annotations

import json
import os
import tempfile

import attrs
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import task
from twisted.trial import unittest

from mesostw.agent.access import AgentAccess
from mesostw.agent.executor_auth import ExecutorSecrets, bearer
from mesostw.agent.session import ExecutorSession, NotAuthenticated
from mesostw.auth.acls import Authorizer, parse_acls
from mesostw.auth.crammd5 import Authenticator, CredentialsChecker, FailureThrottle, respond
from mesostw.auth.credentials import Credential
from mesostw.auth.policy import Security
from mesostw.http.router import HTTPError
from mesostw.master.admission import agent_refusal, framework_refusal, takeover_refusal
from mesostw.master.frameworks import RegistrationRefused
from mesostw.master.master import KillOutcome, TeardownOutcome
from mesostw.model import task as T
from mesostw.model.info import AgentInfo, Filters, FrameworkInfo
from mesostw.model.resources import Resources
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task

ACLS = {
    "permissive": False,
    "register_frameworks": [{"principals": {"values": ["ops", "dev"]}, "roles": {"values": ["*", "web"]}}],
    "run_tasks": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
                  {"principals": {"values": ["dev"]}, "users": {"values": ["nobody"]}}],
    "teardown_frameworks": [{"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}}],
    "register_agents": [{"principals": {"values": ["agent", "agent2"]}, "agents": {"type": "ANY"}}],
    "access_sandboxes": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
                         {"principals": {"values": ["dev"]}, "users": {"values": ["nobody"]}}],
}


#: The same, with agents free to register (the in-process cluster's agents do not authenticate).
OPEN_AGENTS = {**ACLS, "register_agents": [{"principals": {"type": "ANY"}, "agents": {"type": "ANY"}}]}


def security(**flags) -> Security:
    return Security(CredentialsChecker({"ops": "o", "dev": "d", "agent": "a"}),
                    authorizer=Authorizer(parse_acls(json.dumps(ACLS))), **flags)


class CramMD5GuardTests(unittest.TestCase):
    def test_unknown_principal_with_the_placeholder_secret_fails(self):
        """An unknown principal answering with an HMAC keyed by 32 NUL bytes (what an unknown principal is
        compared against) is refused, over CRAM-MD5 and HTTP Basic alike; a known one is not."""
        checker = CredentialsChecker({"ops": "o"})
        session = Authenticator(checker)
        challenge = session.start("CRAM-MD5")
        self.failureResultOf(session.step(respond(Credential("mallory", "\0" * 32), challenge)), UnauthorizedLogin)
        self.failureResultOf(checker.requestAvatarId(UsernamePassword(b"mallory", b"\0" * 32)), UnauthorizedLogin)
        self.failureResultOf(checker.requestAvatarId(UsernamePassword(b"ops", b"\0" * 32)), UnauthorizedLogin)
        session = Authenticator(checker)
        challenge = session.start("CRAM-MD5")
        self.assertEqual(self.successResultOf(session.step(respond(Credential("ops", "o"), challenge))), "ops")
        self.assertEqual(self.successResultOf(checker.requestAvatarId(UsernamePassword(b"ops", b"o"))), "ops")


class AdmissionTests(unittest.TestCase):
    def test_register_agents(self):
        """Only principals the register_agents ACL names may register agents; anonymous ones neither."""
        policy = security()
        self.assertIsNone(agent_refusal(policy, "agent", None, {}))
        for principal in ("ops", None):
            self.assertIn("not authorized to register agents", agent_refusal(policy, principal, None, {}))
        self.assertIsNone(agent_refusal(Security(), None, None, {}))

    def test_agent_ids_belong_to_their_principal(self):
        """An agent ID registered by one principal is refused to another (and to none); unowned IDs are free."""
        policy = security()
        owners = {"S1": "agent", "S2": None}
        self.assertIsNone(agent_refusal(policy, "agent", "S1", owners))
        self.assertIn("was registered by principal agent", agent_refusal(policy, "agent2", "S1", owners))
        self.assertIn("was registered by principal agent", agent_refusal(Security(), None, "S1", owners))
        self.assertIsNone(agent_refusal(policy, "agent2", "S2", owners))
        self.assertIsNone(agent_refusal(policy, "agent2", "S3", owners))

    def test_framework_principal_must_be_the_authenticated_one(self):
        """A framework declaring another principal than it proved is refused; the same or none is fine."""
        policy = security()
        self.assertIn("does not match", framework_refusal(policy, FrameworkInfo("u", "n", principal="ops"), "dev", "*"))
        self.assertIsNone(framework_refusal(policy, FrameworkInfo("u", "n", principal="dev"), "dev", "*"))
        self.assertIsNone(framework_refusal(policy, FrameworkInfo("u", "n"), "dev", "*"))

    def test_register_frameworks_judges_the_proved_principal(self):
        """register_frameworks allows dev in its roles only; a framework that proved nothing is judged anonymous
        whatever principal it claims."""
        policy = security()
        self.assertIsNone(framework_refusal(policy, FrameworkInfo("u", "n"), "dev", "web"))
        self.assertIn("Not authorized", framework_refusal(policy, FrameworkInfo("u", "n"), "dev", "db"))
        self.assertIn("Not authorized", framework_refusal(policy, FrameworkInfo("u", "n", principal="ops"), None, "*"))

    def test_takeover(self):
        """A framework ID subscribed by a principal is refused to any other, and to anonymous connections."""
        self.assertIsNone(takeover_refusal("F1", "ops", "ops"))
        self.assertIn("belongs to principal ops", takeover_refusal("F1", "ops", "dev"))
        self.assertIn("belongs to principal ops", takeover_refusal("F1", "ops", None))
        self.assertIsNone(takeover_refusal("F1", None, "dev"))
        self.assertIsNone(takeover_refusal("F1", None, None))


class MasterWiringTests(unittest.TestCase):
    def cluster(self, agents: int = 1, acls: dict = OPEN_AGENTS, **flags) -> Cluster:
        cluster = Cluster(agents=agents, acls=json.dumps(acls), **flags)
        self.addCleanup(cluster.stop)
        return cluster

    def framework(self, cluster: Cluster, proved: str | None, scheduler: RecordingScheduler | None = None,
                  **info) -> RecordingScheduler:
        """A framework on the cluster's master whose connection proved the principal ``proved``."""
        from mesostw.scheduler.local import LocalSchedulerDriver

        scheduler = scheduler or RecordingScheduler()
        LocalSchedulerDriver(scheduler, FrameworkInfo(user="nobody", name="f", **info), cluster.master,
                             principal=proved).start()
        cluster.settle()
        return scheduler

    def test_agents_register_only_as_allowed_and_keep_their_ids(self):
        """The master refuses agent registrations the ACL does not allow, and re-registrations of an ID by
        another principal; the owner is recorded in the registry and survives a failover."""
        cluster = self.cluster(agents=0, acls=ACLS)
        manager = cluster.master.agent_manager
        info = AgentInfo(hostname="h", port=1, resources=Resources.parse("cpus:1;mem:64"))
        failure = self.failureResultOf(manager.registerAgent(object(), info, principal="ops"), RegistrationRefused)
        self.assertIn("not authorized to register agents", failure.getErrorMessage())
        agent_id, _ = self.successResultOf(manager.registerAgent(_Link(), info, principal="agent"))
        self.assertEqual(cluster.master.registry.state.owners[agent_id], "agent")
        again = AgentInfo(hostname="h", port=1, resources=info.resources, id=agent_id)
        failure = self.failureResultOf(manager.reregisterAgent(_Link(), again, [], [], [], principal="agent2"),
                                       RegistrationRefused)
        self.assertIn("was registered by principal agent", failure.getErrorMessage())
        self.successResultOf(manager.reregisterAgent(_Link(), again, [], [], [], principal="agent"))
        self.assertEqual(cluster.master.metrics["slave_registrations_denied"], 2)
        successor = Cluster(agents=0, acls=json.dumps(ACLS))
        self.addCleanup(successor.stop)
        successor.master.recover(cluster.master.registry.state)
        failure = self.failureResultOf(successor.master.reregisterAgent(_Link(), again, [], [], [], principal="agent2"),
                                       RegistrationRefused)
        self.assertIn("was registered by principal agent", failure.getErrorMessage())

    def successor(self, cluster: Cluster, acls: dict = ACLS, **flags) -> Cluster:
        """A master taking over from ``cluster``'s, with what its registry holds."""
        successor = Cluster(agents=0, acls=json.dumps(acls), **flags)
        self.addCleanup(successor.stop)
        successor.master.recover(cluster.master.registry.state)
        return successor

    def test_agent_ids_are_claimed_by_their_first_proved_principal(self):
        """An agent ID admitted without a principal, or unknown to the master (its registry lost), becomes the
        principal's that re-registers it first; from then on, here and on the next leading master, another
        principal's re-registration is refused."""
        cluster = self.cluster(agents=0)
        manager = cluster.master.agent_manager
        info = AgentInfo(hostname="h", port=1, resources=Resources.parse("cpus:1;mem:64"))
        anonymous, _ = self.successResultOf(manager.registerAgent(_Link(), info, principal=None))
        self.assertIsNone(manager.owners[anonymous])
        for agent_id in (anonymous, "lost-S9"):
            again = attrs.evolve(info, id=agent_id)
            self.successResultOf(manager.reregisterAgent(_Link(), again, [], [], [], principal="agent"))
            self.assertEqual(cluster.master.registry.state.owners[agent_id], "agent")
            for master in (cluster.master, self.successor(cluster, OPEN_AGENTS).master):
                failure = self.failureResultOf(master.reregisterAgent(_Link(), again, [], [], [], principal="agent2"),
                                               RegistrationRefused)
                self.assertIn("was registered by principal agent", failure.getErrorMessage())
                self.successResultOf(master.reregisterAgent(_Link(), again, [], [], [], principal="agent"))

    def test_agents_offer_cpus_and_mem(self):
        """An agent offering no cpus, or no mem, or without a hostname, is refused before any decision."""
        manager = self.cluster(agents=0).master.agent_manager
        for resources, hostname in (("cpus:1", "h"), ("mem:64", "h"), ("cpus:1;mem:64", "")):
            info = AgentInfo(hostname=hostname, port=1, resources=Resources.parse(resources))
            self.failureResultOf(manager.registerAgent(_Link(), info, principal="agent"), RegistrationRefused)
        self.assertEqual(manager.owners, {})

    def test_framework_ids_stay_their_principals(self):
        """A framework's owner may subscribe again (failing over) as often as it likes; another principal is
        refused every time after, on this master and on the next leading one."""
        cluster = self.cluster(authenticate_frameworks=True, credentials=None)
        dev = self.framework(cluster, "dev")
        self.assertEqual(dev.errors, [])
        for _ in range(2):
            again = self.framework(cluster, "dev", id=dev.framework_id)
            self.assertEqual((again.errors, again.framework_id), ([], dev.framework_id))
        successor = self.successor(cluster, OPEN_AGENTS, authenticate_frameworks=True, credentials=None)
        for master_cluster in (cluster, successor):
            thief = self.framework(master_cluster, "ops", id=dev.framework_id)
            self.assertIn("belongs to principal dev", thief.errors[0])
        self.assertEqual(self.framework(successor, "dev", id=dev.framework_id).errors, [])

    def test_an_unowned_framework_is_claimed_for_good(self):
        """A framework that subscribed before frameworks had to authenticate belongs to the first principal
        that subscribes as it once they must; the claim is in the registry, so the next leading master
        refuses everyone else too."""
        anyone = {**OPEN_AGENTS, "register_frameworks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}]}
        before = self.cluster(acls=anyone)
        anonymous = self.framework(before, None)
        self.assertEqual(anonymous.errors, [])
        now = self.successor(before, OPEN_AGENTS, authenticate_frameworks=True, credentials=None)
        self.assertEqual(self.framework(now, "dev", id=anonymous.framework_id).errors, [])
        self.assertIn("belongs to principal dev", self.framework(now, "ops", id=anonymous.framework_id).errors[0])
        later = self.successor(now, OPEN_AGENTS, authenticate_frameworks=True, credentials=None)
        self.assertIn("belongs to principal dev", self.framework(later, "ops", id=anonymous.framework_id).errors[0])

    def test_frameworks_and_acls(self):
        """Subscriptions: a mismatched principal, an unauthorized role, an anonymous claim to a principal and a
        takeover of another principal's framework are refused; run_tasks judges the proved principal."""
        cluster = self.cluster()
        refused = self.framework(cluster, "dev", principal="ops")
        self.assertIn("does not match", refused.errors[0])
        for principal, info in (("dev", {"role": "db"}), (None, {"principal": "ops"})):
            refused = self.framework(cluster, principal, **info)
            self.assertIn("Not authorized to register", refused.errors[0])
        dev = RecordingScheduler()
        dev.pending = [command_task("as-nobody", "true")]
        cluster.framework("dev", scheduler=dev, principal="dev")
        self.assertEqual(dev.states("as-nobody")[:1], [T.RUNNING])
        record = cluster.master.frameworks[dev.framework_id]
        self.assertEqual(record.principal, "dev")
        thief = self.framework(cluster, "ops", id=dev.framework_id)
        self.assertIn("belongs to principal dev", thief.errors[0])
        self.assertEqual(dev.errors, [])
        self.assertEqual(cluster.master.metrics["frameworks_denied"], 4)

    def test_run_tasks_uses_the_proved_principal(self):
        """run_tasks lets dev run as nobody only: a task as root gets TASK_ERROR, unauthorized."""
        cluster = self.cluster()
        dev = RecordingScheduler()
        task_info = command_task("as-root", "true")
        task_info["command"]["user"] = "root"
        dev.pending = [task_info]
        cluster.framework("dev", scheduler=dev, principal="dev")
        self.assertEqual(dev.states("as-root"), [T.ERROR])
        self.assertEqual(cluster.master.metrics["tasks_denied"], 1)

    def test_run_tasks_ignores_a_claimed_principal(self):
        """Where frameworks need not authenticate, one that proved nothing but declares principal ops in its
        FrameworkInfo is judged anonymous by run_tasks: its task as root gets TASK_ERROR; ops's own runs."""
        anyone = {**OPEN_AGENTS, "register_frameworks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}]}
        cluster = self.cluster(acls=anyone)
        for proved, expected in ((None, T.ERROR), ("ops", T.RUNNING)):
            scheduler = RecordingScheduler()
            task_info = command_task(f"as-root-{proved}", "sleep 100")
            task_info["command"]["user"] = "root"
            scheduler.pending = [task_info]
            self.framework(cluster, proved, scheduler=scheduler, principal="ops")
            self.assertEqual(scheduler.states(f"as-root-{proved}")[:1], [expected])
        self.assertEqual(cluster.master.metrics["tasks_denied"], 1)

    def test_kill_and_teardown_acl(self):
        """/master/kill's decision: dev may not kill a task of dev's framework (only ops tears down), ops may."""
        cluster = self.cluster()
        dev = RecordingScheduler()
        dev.pending = [command_task("t", "sleep 100")]
        cluster.framework("dev", scheduler=dev, principal="dev")
        master = cluster.master
        self.assertIs(master.operatorKill(dev.framework_id, "t", "dev"), KillOutcome.NOT_AUTHORIZED)
        self.assertIs(master.operatorKill(dev.framework_id, "t", None), KillOutcome.NOT_AUTHORIZED)
        self.assertIs(master.operatorKill(dev.framework_id, "nope", "ops"), KillOutcome.UNKNOWN_TASK)
        self.assertEqual(master.metrics["kills_denied"], 2)
        self.assertIs(master.operatorKill(dev.framework_id, "t", "ops"), KillOutcome.SENT)
        cluster.settle()
        self.assertEqual(dev.states("t")[-1], T.KILLED)

    def test_teardown_acl_judges_the_framework_principal(self):
        """teardown_frameworks rules name whose frameworks a principal may end: ops may tear down or kill in
        dev's frameworks only, so ops's own framework is refused to ops on both paths."""
        only_devs = {**OPEN_AGENTS, "teardown_frameworks": [
            {"principals": {"values": ["ops"]}, "framework_principals": {"values": ["dev"]}}]}
        cluster = self.cluster(acls=only_devs)
        master = cluster.master
        frameworks = {}
        for principal in ("dev", "ops"):
            scheduler = RecordingScheduler()
            scheduler.pending = [command_task(f"t-{principal}", "sleep 100")]
            cluster.framework(principal, scheduler=scheduler, principal=principal)
            frameworks[principal] = scheduler.framework_id
        self.assertIs(master.operatorKill(frameworks["ops"], "t-ops", "ops"), KillOutcome.NOT_AUTHORIZED)
        self.assertIs(master.teardown(frameworks["ops"], "ops"), TeardownOutcome.NOT_AUTHORIZED)
        self.assertIs(master.operatorKill(frameworks["dev"], "t-dev", "ops"), KillOutcome.SENT)
        self.assertIs(master.teardown(frameworks["dev"], "ops"), TeardownOutcome.DONE)

    def test_run_tasks_judges_the_executor_user(self):
        """A task without a command of its own runs as its executor's command's user: run_tasks judges
        that user, so dev (nobody only) may not launch an executor as root."""
        cluster = self.cluster()
        dev = RecordingScheduler()
        task_info = command_task("exec-as-root", "true")
        del task_info["command"]
        task_info["executor"] = {"executor_id": {"value": "e1"}, "command": {"value": "sleep 100", "user": "root"}}
        dev.pending = [task_info]
        cluster.framework("dev", scheduler=dev, principal="dev")
        self.assertEqual(dev.states("exec-as-root"), [T.ERROR])
        self.assertEqual(cluster.master.metrics["tasks_denied"], 1)

    def test_run_tasks_judges_every_task_of_a_group(self):
        """A task group is judged task by task: one task of dev's group as root refuses the whole group
        (TASK_ERROR, unauthorized, for each task) and starts no executor; the same group as nobody runs."""
        from tests.unit.test_task_groups import launch_group

        cluster = self.cluster()
        dev = RecordingScheduler()
        dev.decline_unused = False
        _, driver = cluster.framework("dev", scheduler=dev, principal="dev")
        agent_id = cluster.agents[0].id
        for user, expected in (("root", T.ERROR), ("nobody", T.RUNNING)):
            tasks = [command_task(f"a-{user}", "sleep 100"), command_task(f"b-{user}", "sleep 100")]
            tasks[1]["command"]["user"] = user
            [offer] = cluster.master.offers.of_framework(dev.framework_id)
            driver.acceptOffers([offer.id], [launch_group(agent_id, tasks)], Filters(0))
            cluster.settle()
            self.assertEqual((dev.states(f"a-{user}")[:1], dev.states(f"b-{user}")[:1]), ([expected], [expected]))
        refused = [u for u in dev.updates if u.state == T.ERROR]
        self.assertEqual({u.reason for u in refused}, {T.REASON_TASK_UNAUTHORIZED})
        self.assertEqual(cluster.master.metrics["tasks_denied"], 2)

    def test_recovered_frameworks_keep_their_owner_where_frameworks_authenticate(self):
        """After a failover, a framework recovered from the registry belongs to its principal when every
        framework had to authenticate, and to nobody in particular otherwise."""
        for flag, owner in ((True, "dev"), (False, None)):
            cluster = self.cluster(authenticate_frameworks=flag, credentials=None)
            cluster.master.framework_manager.recover(FrameworkInfo("u", "n", id="F9", principal="dev"), 60)
            self.assertEqual(cluster.master.frameworks["F9"].principal, owner)


class _Link:
    """An agent link that takes everything (and answers pings)."""

    def __getattr__(self, name):
        from twisted.internet import defer

        return lambda *args, **kwargs: defer.succeed(None)


class ExecutorSecretTests(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster(agents=1)
        self.addCleanup(self.cluster.stop)
        self.cluster.containerizers[0].subscribe = False
        self.scheduler = RecordingScheduler()
        self.scheduler.pending = [command_task("t1", "sleep 100")]
        self.cluster.framework("x", scheduler=self.scheduler)
        self.agent = self.cluster.agents[0]
        self.framework_id = self.scheduler.framework_id
        self.executor = self.agent.frameworks[self.framework_id].executors["t1"]
        self.secret = self.agent.executor_secrets.secret(self.framework_id, "t1", self.executor.container_id)

    def test_secret_is_in_the_environment(self):
        """The executor's environment carries its secret, last (a framework's variables cannot replace it)."""
        framework = self.agent.frameworks[self.framework_id]
        env = self.agent.executor_environment(framework, self.executor)
        self.assertEqual(env["MESOS_EXECUTOR_AUTHENTICATION_TOKEN"], self.secret)

    def test_session_binds_only_with_the_secret(self):
        """authenticate() takes the executor's own secret only; None only when secrets are not required."""
        strict = ExecutorSession(self.agent)
        strict.authenticate(self.framework_id, "t1", self.secret)
        other_run = self.agent.executor_secrets.secret(self.framework_id, "t1", "c")
        for wrong in (None, "", "x", self.secret[:-1], other_run):
            with self.assertRaises(NotAuthenticated):
                strict.authenticate(self.framework_id, "t1", wrong)
        lenient = ExecutorSession(self.agent, require_secret=False)
        lenient.authenticate(self.framework_id, "t1", None)
        with self.assertRaises(NotAuthenticated):
            lenient.authenticate(self.framework_id, "t1", "x")
        with self.assertRaises(NotAuthenticated):
            strict.bind(self.framework_id, "t1", "x")
        self.assertIsNone(strict.bound)
        self.assertEqual(self.agent.metrics["executor_authentication_failures"], 7)

    def test_secrets(self):
        """Secrets differ per executor run and per key, survive a reload of the key file, and need a real key."""
        secrets = ExecutorSecrets(b"k" * 32)
        one = secrets.secret("F", "E", "C1")
        self.assertEqual(one, ExecutorSecrets(b"k" * 32).secret("F", "E", "C1"))
        self.assertNotEqual(one, secrets.secret("F", "E", "C2"))
        self.assertNotEqual(one, secrets.secret("F", "E2", "C1"))
        self.assertNotEqual(one, secrets.secret("F2", "E", "C1"))
        self.assertNotEqual(one, ExecutorSecrets(b"j" * 32).secret("F", "E", "C1"))
        self.assertTrue(secrets.check("F", "E", "C1", one))
        self.assertFalse(secrets.check("F", "E", "C1", None))
        self.assertFalse(secrets.check("F", "E", "C2", one))
        with self.assertRaises(ValueError):
            ExecutorSecrets(b"short")
        directory = tempfile.mkdtemp()
        path = os.path.join(directory, "meta", "key")
        with self.assertRaises(FileNotFoundError):
            ExecutorSecrets.from_file(path)
        created = ExecutorSecrets.from_file(path, create=True)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(os.path.dirname(path)).st_mode & 0o777, 0o700)
        existing = os.path.join(directory, "meta", "other-key")
        self.assertNotEqual(ExecutorSecrets.from_file(existing, create=True).secret("F", "E", "C"),
                            created.secret("F", "E", "C"))
        self.assertNotIn(repr(b"k" * 32), repr(secrets))
        self.assertEqual(ExecutorSecrets.from_file(path).secret("F", "E", "C"), created.secret("F", "E", "C"))
        self.assertEqual(bearer("Bearer abc"), "abc")
        self.assertEqual(bearer("bearer  abc "), "abc")
        for header in (None, "", "Basic abc", "Bearer", "Bearer "):
            self.assertIsNone(bearer(header))


class SandboxAccessTests(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.cluster = Cluster(agents=1)
        self.addCleanup(self.cluster.stop)
        policy = Security(authorizer=Authorizer(parse_acls(json.dumps(ACLS))))
        self.access = AgentAccess(self.cluster.agents[0], policy, self.root)
        self.sandbox = os.path.join(self.root, "A", "frameworks", "F", "executors", "E", "runs", "C")
        os.makedirs(self.sandbox)

    def check(self, principal, path):
        request = type("Request", (), {"principal": principal})()
        self.access.check_sandbox(request, path)

    def test_access_sandboxes(self):
        """dev reads sandboxes of nobody's executors only, ops every one, anonymous none; above the
        sandboxes only a principal allowed every user may browse."""
        nobody = os.path.join(self.sandbox, "stdout")
        self.access.sandbox_user = lambda path: "nobody" if path.startswith(self.sandbox) else None
        self.check("dev", nobody)
        self.check("ops", nobody)
        for principal in ("mallory", None):
            with self.assertRaises(HTTPError) as refused:
                self.check(principal, nobody)
            self.assertEqual(refused.exception.code, 403)
        self.access.sandbox_user = lambda path: "root"
        with self.assertRaises(HTTPError):
            self.check("dev", nobody)
        del self.access.sandbox_user
        for above in (self.root, os.path.join(self.root, "A", "frameworks")):
            self.check("ops", above)
            with self.assertRaises(HTTPError):
                self.check("dev", above)

    def test_sandbox_user(self):
        """The user of a path is its sandbox owner's (when no executor is known there); None above sandboxes."""
        import pwd

        owner = pwd.getpwuid(os.stat(self.sandbox).st_uid).pw_name
        self.assertEqual(self.access.sandbox_user(os.path.join(self.sandbox, "deep", "file")), owner)
        self.assertEqual(self.access.sandbox_user(self.sandbox), owner)
        self.assertIsNone(self.access.sandbox_user(os.path.dirname(self.sandbox)))
        self.assertIsNone(self.access.sandbox_user(self.root))


class ThrottleTurnTests(unittest.TestCase):
    def test_parallel_attempts_wait_their_turns(self):
        """After a failure, attempts of one key are checked one at a time, further apart as failures add
        up; other keys are not slowed; a success lets new attempts through at once; too many waiting are refused."""
        clock = task.Clock()
        throttle = FailureThrottle(clock, base=1.0, cap=4.0, max_waiting=3)
        self.assertEqual(throttle.admit("a"), 0.0)
        throttle.failed("a")
        self.assertEqual([throttle.admit("a") for _ in range(3)], [1.0, 2.0, 3.0])
        self.assertIsNone(throttle.admit("a"))
        self.assertEqual(throttle.admit("b"), 0.0)
        clock.advance(1.0)
        throttle.evaluating("a")
        throttle.failed("a")
        clock.advance(1.0)
        throttle.evaluating("a")
        self.assertEqual(throttle.admit("a"), 2.0)
        throttle.succeeded("a")
        throttle.evaluating("a")
        throttle.evaluating("a")
        self.assertEqual(throttle.admit("a"), 0.0)

    def test_a_free_turn_is_still_taken(self):
        """Once a failed key's wait is over, one attempt goes at once and the next, arriving before it is
        checked, waits a full turn: parallel attempts never all go at once."""
        clock = task.Clock()
        throttle = FailureThrottle(clock, base=1.0, cap=4.0)
        throttle.failed("a")
        clock.advance(1.0)
        self.assertEqual(throttle.admit("a"), 0.0)
        self.assertEqual(throttle.admit("a"), 1.0)

    def test_waiting_count_cannot_go_negative(self):
        """Extra or unknown evaluating() calls neither fail nor let more than max_waiting attempts wait."""
        clock = task.Clock()
        throttle = FailureThrottle(clock, base=1.0, cap=4.0, max_waiting=2)
        throttle.evaluating("unknown")
        throttle.failed("a")
        self.assertEqual([throttle.admit("a"), throttle.admit("a"), throttle.admit("a")], [1.0, 2.0, None])
        for _ in range(4):
            throttle.evaluating("a")
        self.assertIsNotNone(throttle.admit("a"))
        self.assertIsNotNone(throttle.admit("a"))
        self.assertIsNone(throttle.admit("a"))
