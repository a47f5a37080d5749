"""The probe framework plugin in both hosts, as real processes: inside ``mesos-master --frameworks=probe``
and standalone (``twistd mesos-probe``), alone and as two instances electing a leader in ZooKeeper."""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest

from mesostw.master.service import MasterService
from mesostw.scheduler.election import zookeeper_election
from mesostw.store import StoreFenced, put_json
from mesostw.store import get_json as store_get_json
from mesostw.store.zookeeper import ZooKeeperStateStore
from mesostw.zk.client import ZooKeeper
from mesostw.zk.url import parse_zk_url
from tests.helpers.probe import master_config, probe_environment, probe_plugin
from tests.helpers.processes import Daemon, ProcessCluster, environment, free_port, get_json, http, wait_for
from tests.helpers.zookeeper import AVAILABLE, ZooKeeperEnsemble

if not AVAILABLE:
    raise RuntimeError("ZooKeeper is not installed: `make test` installs Debian's zookeeper package")

CREDENTIALS = "probe s3cret\n"


def finished(url: str, task_id: str) -> defer.Deferred:
    return get_json(f"{url}/state").addCallback(lambda s: s["tasks"].get(task_id) == "TASK_FINISHED")


@defer.inlineCallbacks
def launch(url: str) -> Any:
    """POST one task to a probe's API; fires with its task ID."""
    code, body, _ = yield http("POST", f"{url}/tasks")
    assert code == 200, (code, body)
    return json.loads(body)["task_id"]


class HostedProbeTests(unittest.TestCase):
    """``mesos-master --frameworks=probe`` with one agent."""

    timeout = 120

    @defer.inlineCallbacks
    def test_the_hosted_probe_registers_with_its_principal_and_runs_a_task(self) -> Any:
        """The probe registers as its principal with its own API as webui_url; a POST to that API
        launches a task that finishes."""
        port = free_port()
        cluster = ProcessCluster(self, agents=1, master_args=["--frameworks=probe", f"--probe_http_port={port}",
                                                              "--probe_principal=hosted-probe"])
        cluster.master.env = environment(probe_environment())
        yield cluster.start()
        api = f"http://127.0.0.1:{port}"
        state = yield wait_for(lambda: get_json(f"{api}/state").addCallback(lambda s: s["framework_id"] and s),
                               30, what="the hosted probe to register")
        task_id = yield launch(api)
        yield wait_for(lambda: finished(api, task_id), 30, what="the probe's task to finish")
        frameworks = (yield cluster.state())["frameworks"]
        (framework,) = [f for f in frameworks if f["id"] == state["framework_id"]]
        self.assertEqual((framework["principal"], framework["webui_url"]), ("hosted-probe", api))

    @defer.inlineCallbacks
    def test_an_acl_denying_the_principal_refuses_the_hosted_probe(self) -> Any:
        """With register_frameworks denying its principal, the master refuses the probe, which says why."""
        port = free_port()
        acls = {"register_frameworks": [{"principals": {"values": ["probe"]}, "roles": {"type": "NONE"}}]}
        cluster = ProcessCluster(self, agents=0, master_args=["--frameworks=probe", f"--probe_http_port={port}",
                                                              f"--acls={json.dumps(acls)}"])
        cluster.master.env = environment(probe_environment())
        cluster.master.start()
        state = yield wait_for(lambda: get_json(f"http://127.0.0.1:{port}/state").addCallback(
            lambda s: s["error"] and s), 30, what="the probe's refusal")
        self.assertIn("Not authorized to register a framework with role '*' (principal probe)", state["error"])
        self.assertIsNone(state["framework_id"])
        self.assertEqual((yield cluster.state())["frameworks"], [])


class StandaloneProbeTests(unittest.TestCase):
    """``twistd mesos-probe`` against a master that authenticates frameworks."""

    timeout = 180

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.cluster = ProcessCluster(self, agents=1)
        credentials = os.path.join(self.cluster.base, "credentials")
        with open(credentials, "w") as f:
            f.write(CREDENTIALS)
        self.cluster.master.args += ["--authenticate_frameworks", f"--credentials={credentials}"]
        yield self.cluster.start()

    def probe(self, name: str, *args: str) -> tuple[Daemon, str]:
        port = free_port()
        daemon = Daemon("mesos-probe", [f"--master={self.cluster.master_address}", f"--http_port={port}",
                                        "--secret=s3cret", *args],
                        os.path.join(self.cluster.base, f"{name}.log"), env=probe_environment())
        self.cluster.agents.append(daemon)  # stopped with the cluster
        return daemon.start(), f"http://127.0.0.1:{port}"

    @defer.inlineCallbacks
    def test_two_instances_elect_forward_and_fail_over(self) -> Any:
        """Two instances on one ZooKeeper path: one leads and runs the framework, the other forwards
        API calls to it; when the leader is killed the other takes over as the same framework."""
        ensemble = ZooKeeperEnsemble(1)
        self.addCleanup(ensemble.stop)
        yield ensemble.start()
        zk = [f"--zk={ensemble.url('/mesostw/probe')}", "--zk_session_timeout=2secs"]
        first, first_url = self.probe("probe1", *zk)
        second, second_url = self.probe("probe2", *zk)

        def registered(url: str) -> defer.Deferred:
            return get_json(f"{url}/state").addCallback(lambda s: s["framework_id"] and s)

        state = yield wait_for(lambda: registered(first_url), 60, what="a probe to register")
        leader, follower = (first, second) if state["api_url"] == first_url else (second, first)
        leader_url, follower_url = (first_url, second_url) if leader is first else (second_url, first_url)
        self.assertEqual(state["api_url"], leader_url)
        through_follower = yield wait_for(lambda: registered(follower_url), 30, what="the follower to forward")
        self.assertEqual((through_follower["api_url"], through_follower["framework_id"]),
                         (leader_url, state["framework_id"]))
        task_id = yield launch(follower_url)
        yield wait_for(lambda: finished(leader_url, task_id), 30, what="the task posted to the follower")

        leader.kill()
        taken_over = yield wait_for(lambda: get_json(f"{follower_url}/state").addCallback(
            lambda s: s["api_url"] == follower_url and s["framework_id"] and s), 60, what="the takeover")
        self.assertEqual(taken_over["framework_id"], state["framework_id"])
        task_id = yield launch(follower_url)
        yield wait_for(lambda: finished(follower_url, task_id), 30, what="a task on the new leader")
        frameworks = (yield self.cluster.state())["frameworks"]
        self.assertEqual([(f["id"], f["active"], f["principal"]) for f in frameworks],
                         [(state["framework_id"], True, "probe")])
        self.assertIn("Elected as the leading instance", follower.log())


class ZooKeeperHostingTests(unittest.TestCase):
    """The election and the fenced stores of both hosts against a real ZooKeeper server."""

    timeout = 60

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.ensemble = ZooKeeperEnsemble(1)
        self.addCleanup(self.ensemble.stop)
        yield self.ensemble.start()

    @defer.inlineCallbacks
    def client(self) -> Any:
        # Expiry is simulated by deleting nodes; a long session keeps a loaded machine from expiring it.
        zk = ZooKeeper(reactor, parse_zk_url(self.ensemble.url("/probe")), session_timeout=10.0)
        self.addCleanup(zk.stop)
        yield zk.start()
        return zk

    @defer.inlineCallbacks
    def test_the_first_leads_the_next_follows_then_takes_over_and_the_old_writer_is_fenced(self) -> Any:
        """The lowest member leads and the other knows its address; once the leader's node goes, the
        other is elected, reads what the leader stored, and the old leader's writes fail."""
        first_zk = yield self.client()
        second_zk = yield self.client()
        first, second = zookeeper_election(first_zk, "/probe/leader"), zookeeper_election(second_zk, "/probe/leader")
        yield first.contend(b"127.0.0.1:4401")
        yield first.whenElected()
        yield second.contend(b"127.0.0.1:4402")
        yield wait_for(lambda: second.leader() == b"127.0.0.1:4401", 10, what="the follower to see the leader")
        self.assertIsNone(first.leader())
        old = ZooKeeperStateStore(first_zk, "/probe/state", lambda: first.fence)
        yield put_json(old, "framework_id", "F1")
        self.assertFalse(second.leading)

        yield first_zk.delete(first.fence)  # as when its session expires
        yield second.whenElected()
        new = ZooKeeperStateStore(second_zk, "/probe/state", lambda: second.fence)
        self.assertEqual((yield store_get_json(new, "framework_id")), "F1")
        yield put_json(new, "framework_id", "F2")
        yield self.assertFailure(put_json(old, "framework_id", "F3"), StoreFenced)
        self.assertEqual((yield store_get_json(new, "framework_id")), "F2")

    @defer.inlineCallbacks
    def test_a_hosted_framework_keeps_its_id_in_the_masters_zookeeper_across_masters(self) -> Any:
        """With --zk the master keeps a hosted framework's state in ZooKeeper next to its registry: the
        next leading master's probe comes back as the same framework."""
        @defer.inlineCallbacks
        def run_master() -> Any:
            config = master_config(port=0, probe_http_port=0, zk=self.ensemble.url("/mesos"), quorum=1,
                                   zk_session_timeout=10.0, agent_reregister_timeout=60.0)
            service = MasterService(config, reactor=reactor, plugins={"probe": probe_plugin()})
            service.startService()
            self.addCleanup(lambda: service.stopService() if service.running else None)
            probe = service.frameworks.frameworks["probe"]
            yield wait_for(lambda: probe.framework_id, 30, what="the hosted probe to register")
            return service, probe

        service, probe = yield run_master()
        first = probe.framework_id
        store = service.frameworks.hosts["probe"].store
        # The probe writes its ID once registered; the write lands a moment later.
        yield wait_for(lambda: store_get_json(store, "framework_id").addCallback(lambda stored: stored == first), 30,
                       what="the framework ID in the store")
        yield service.stopService()
        service, probe = yield run_master()
        self.assertEqual(probe.framework_id, first)
        self.assertEqual(list(service.master.frameworks), [first])
