"""Frameworks hosted in the master: one port, store and principal each; started once the master
leads; standby masters redirect; the probe launches tasks on the in-process cluster."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mesostw import flags as flaglib
from mesostw.interfaces import IFrameworkHost, ISchedulerDriver, IStateStore
from mesostw.master.flags import MASTER_FLAGS
from mesostw.master.registry import RegistryState
from mesostw.master.service import MasterService
from mesostw.model.info import FrameworkInfo, MasterInfo
from mesostw.scheduler import stores
from mesostw.scheduler.driver import Scheduler
from mesostw.store.memory import MemoryStateStore
from tests.helpers.cluster import Cluster
from tests.helpers.hosting import ClusterHost
from tests.helpers.probe import master_config, probe_plugin
from tests.helpers.web import Client


def settle(clock: Any, rounds: int = 200) -> None:
    for _ in range(rounds):
        if not [c for c in clock.getDelayedCalls() if c.getTime() <= clock.seconds()]:
            return
        clock.advance(0)
    raise AssertionError("did not settle")


class PendingRegistry:
    """A registry whose recovery the test completes."""

    def __init__(self) -> None:
        self.recovery: defer.Deferred = defer.Deferred()

    def recover(self) -> defer.Deferred:
        return self.recovery

    def apply(self, mutation: Any) -> defer.Deferred:
        return defer.succeed(None)


class MasterHostTests(unittest.TestCase):
    def build(self, **overrides: Any) -> MasterService:
        self.reactor = MemoryReactorClock()
        service = MasterService(master_config(**overrides), reactor=self.reactor, plugins={"probe": probe_plugin()})
        self.addCleanup(lambda: service.stopService() if service.running else None)
        return service

    def probe(self, service: MasterService) -> Any:
        return service.frameworks.frameworks["probe"]

    def test_hosts_and_what_they_give_provide_their_interfaces(self) -> None:
        """The master's host, its store and its drivers keep to their interfaces."""
        service = self.build()
        host = service.frameworks.hosts["probe"]
        verifyObject(IFrameworkHost, host)
        verifyObject(IStateStore, host.store)
        verifyObject(ISchedulerDriver, host.driver(Scheduler(), FrameworkInfo(user="u", name="p")))
        self.assertEqual((host.name, host.principal, host.api_url), ("probe", "probe", "http://127.0.0.1:4499"))

    def test_a_framework_may_ask_for_explicit_acknowledgements(self) -> None:
        """The in-process driver acknowledges updates by itself unless the framework asks otherwise."""
        host = self.build().frameworks.hosts["probe"]
        info = FrameworkInfo(user="u", name="p")
        self.assertTrue(host.driver(Scheduler(), info).implicit_acknowledgements)
        self.assertFalse(host.driver(Scheduler(), info, implicit_acknowledgements=False).implicit_acknowledgements)

    def test_with_tls_the_framework_port_speaks_tls_too(self) -> None:
        """The master's TLS settings cover its framework ports, and the API URL says https."""
        from twisted.protocols.tls import TLSMemoryBIOFactory

        from tests.helpers.tls import pki

        files = pki()
        service = self.build(ssl_cert_file=files.server_cert, ssl_key_file=files.server_key)
        host = service.frameworks.hosts["probe"]
        self.assertIsInstance(host.listener.factory, TLSMemoryBIOFactory)
        self.assertEqual(host.api_url, "https://127.0.0.1:4499")

    def test_each_framework_listens_on_its_own_port_at_the_masters_ip(self) -> None:
        """The framework's port is bound when the master starts, on the master's --ip."""
        service = self.build(ip="127.0.0.7", probe_http_port=4600)
        service.startService()
        ports = {(port, interface) for port, _, _, interface in self.reactor.tcpServers}
        self.assertEqual(ports, {(5050, "127.0.0.7"), (4600, "127.0.0.7")})

    def test_frameworks_start_once_the_registry_is_recovered(self) -> None:
        """Until the master leads the framework does not run and its port answers 503; then it
        registers with its principal, as an authenticated link."""
        service = self.build()
        registry = PendingRegistry()
        service.leadership.registry = registry
        service.master.registry = registry
        service.startService()
        settle(self.reactor)
        probe = self.probe(service)
        self.assertFalse(probe.running)
        client = Client(service.frameworks.hosts["probe"].site, self.reactor)
        reply = client.get("/state")
        self.assertEqual(reply.code, 503)
        self.assertIn("No leading master", reply.json()["message"])
        registry.recovery.callback(RegistryState())
        settle(self.reactor)
        self.assertTrue(probe.running)
        (framework,) = service.master.frameworks.values()
        self.assertEqual((framework.info.principal, framework.link.principal), ("probe", "probe"))
        self.assertEqual(framework.info.webui_url, "http://127.0.0.1:4499")
        state = client.get_json("/state")
        self.assertEqual(state["framework_id"], framework.id)

    def test_the_principal_flag_sets_the_frameworks_principal(self) -> None:
        """--probe_principal is the principal the framework registers with."""
        service = self.build(probe_principal="ops")
        service.startService()
        settle(self.reactor)
        (framework,) = service.master.frameworks.values()
        self.assertEqual(framework.info.principal, "ops")

    def test_an_acl_denying_the_principal_refuses_the_framework(self) -> None:
        """register_frameworks ACLs apply to a hosted framework's principal: denied, it is refused."""
        acls = {"register_frameworks": [{"principals": {"values": ["probe"]}, "roles": {"type": "NONE"}}]}
        service = self.build(acls=json.dumps(acls))
        service.startService()
        settle(self.reactor)
        self.assertEqual(service.master.frameworks, {})
        self.assertIn("Not authorized", self.probe(service).error)
        self.assertIn("principal probe", self.probe(service).error)

    def test_the_plugins_flags_reach_it_unprefixed(self) -> None:
        """--probe_<flag> values arrive as the plugin's own Config."""
        service = self.build(probe_command="exit 9", probe_role="ops")
        config = self.probe(service).config
        self.assertEqual((config.command, config.role), ("exit 9", "ops"))

    def test_a_standby_redirects_to_the_same_port_on_the_leader(self) -> None:
        """A master that does not lead answers on the framework's port with 307 to the leader."""
        service = self.build()
        service.leadership.leader = MasterInfo(id="other", ip="127.0.0.2", port=5050, hostname="m2")
        client = Client(service.frameworks.hosts["probe"].site, self.reactor)
        reply = client.request("POST", "/tasks?command=true")
        self.assertEqual(reply.code, 307)
        self.assertEqual(reply.headers["location"], "http://m2:4499/tasks?command=true")
        self.assertEqual(service.frameworks.hosts["probe"].leader(), "m2:4499")

    def test_abdication_is_refused_with_the_reason(self) -> None:
        """A hosted framework leads with its master: abdicating alone is refused, saying what to do."""
        from mesostw.interfaces import AbdicationRefused

        service = self.build()
        with self.assertRaises(AbdicationRefused) as refused:
            service.frameworks.hosts["probe"].abdicate()
        self.assertIn("stop this master", str(refused.exception))

    def test_two_frameworks_get_their_own_port_principal_and_scope_of_one_store(self) -> None:
        """Two hosted frameworks run side by side: each its port, principal and store scope."""
        from mesostw.scheduler.hosted_flags import frameworks_flag, hosted_flags
        from mesostw.scheduler.plugins import FrameworkPlugin

        plugins = {"probe": probe_plugin(), "other": FrameworkPlugin("other", "probe_framework", "Another", 4498)}
        flags = (*MASTER_FLAGS, frameworks_flag((), plugins), *hosted_flags(plugins))
        config = flaglib.defaults(flags, hostname="127.0.0.1", frameworks=("probe", "other"))
        self.reactor = MemoryReactorClock()
        service = MasterService(config, reactor=self.reactor, plugins=plugins)
        service.startService()
        self.addCleanup(service.stopService)
        settle(self.reactor)
        hosts = service.frameworks.hosts
        self.assertEqual({name: (h.listener.port, h.principal) for name, h in hosts.items()},
                         {"probe": (4499, "probe"), "other": (4498, "other")})
        self.assertEqual(sorted(f.info.principal for f in service.master.frameworks.values()), ["other", "probe"])
        self.assertIs(hosts["probe"].store.base, hosts["other"].store.base)
        self.assertEqual((hosts["probe"].store.prefix, hosts["other"].store.prefix), ("hosted/probe", "hosted/other"))
        ids = {name: self.successResultOf(h.store.get("framework_id")) for name, h in hosts.items()}
        self.assertEqual({json.loads(v) for v in ids.values()}, set(service.master.frameworks))

    def test_stopping_fails_the_framework_over_before_the_master_stops(self) -> None:
        """Stopping the master stops the framework first: the master keeps it, disconnected, and no
        timer is left behind."""
        service = self.build()
        service.startService()
        settle(self.reactor)
        (framework,) = service.master.frameworks.values()
        self.assertTrue(framework.connected)
        d = service.stopService()
        settle(self.reactor)
        self.successResultOf(d)
        self.assertFalse(framework.connected)
        self.assertIn(framework.id, service.master.frameworks)
        self.assertEqual([c for c in self.reactor.getDelayedCalls() if c.active()], [])
        self.assertFalse(self.probe(service).running)


class MasterStoreTests(unittest.TestCase):
    class FakeService:
        def __init__(self, **config: Any):
            self.config = flaglib.defaults(MASTER_FLAGS, **config)
            self.reactor = MemoryReactorClock()
            self.zk = None

    def test_the_registrys_own_store_is_used_when_the_master_has_one(self) -> None:
        """A master that keeps its registry in an IStateStore (``store``) hosts framework state in it."""
        service = self.FakeService(work_dir=self.mktemp())
        service.store = MemoryStateStore()  # type: ignore[attr-defined]
        self.assertIs(stores.master_store(service), service.store)  # type: ignore[attr-defined]


class ProbeOnTheClusterTests(unittest.TestCase):
    """The probe through ClusterHost: the same code against master and agents on one Clock."""

    def setUp(self) -> None:
        self.cluster = Cluster(agents=1)
        self.addCleanup(self.cluster.stop)
        self.plugin = probe_plugin()
        self.backing = MemoryStateStore()

    def start(self) -> tuple[Any, Any]:
        host = ClusterHost(self.cluster, "probe", store=self.backing, principal="probe")
        verifyObject(IFrameworkHost, host)
        probe = self.plugin.makeService(host, flaglib.defaults(self.plugin.flags, user="nobody"))
        probe.startService()
        self.cluster.settle()
        return host, probe

    def test_a_post_launches_a_task_that_finishes(self) -> None:
        """POST /tasks launches one task on an offer; its status reaches /state."""
        host, probe = self.start()
        client = Client(host.router, self.cluster.clock)
        task_id = client.request("POST", "/tasks").json()["task_id"]
        self.cluster.advance(2)
        state = client.get_json("/state")
        self.assertEqual(state["tasks"], {task_id: "TASK_FINISHED"})
        self.assertEqual(state["pending"], [])
        self.assertEqual(self.cluster.master.frameworks[state["framework_id"]].info.principal, "probe")
        probe.stopService()
        self.cluster.settle()

    def test_a_restarted_framework_fails_over_with_the_id_in_its_store(self) -> None:
        """The framework ID kept in the store makes the next instance re-register as the same framework."""
        host, probe = self.start()
        first = probe.framework_id
        self.assertEqual(self.successResultOf(host.store.get("framework_id")), json.dumps(first).encode())
        probe.stopService()
        self.cluster.settle()
        self.assertFalse(self.cluster.master.frameworks[first].connected)
        _, again = self.start()
        self.assertEqual(again.framework_id, first)
        self.assertEqual(list(self.cluster.master.frameworks), [first])
        self.assertTrue(self.cluster.master.frameworks[first].connected)
        again.stopService()
        self.cluster.settle()
