"""A framework on its own: PB driver with its principal and credential, its port, its store, its
election; standbys forward to the leader or answer 503; a lost ZooKeeper session ends the process."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.trial import unittest
from twisted.web import server
from zope.interface import implementer
from zope.interface.verify import verifyObject

from mesostw import flags as flaglib
from mesostw.auth.credentials import Credential
from mesostw.interfaces import IFrameworkHost, ISchedulerDriver, IStateStore
from mesostw.model.info import FrameworkInfo
from mesostw.scheduler import driver as D
from mesostw.scheduler import standalone_tap
from mesostw.scheduler.election import IElection, Unopposed, zookeeper_election
from mesostw.scheduler.standalone import StandaloneFramework
from mesostw.scheduler.stores import standalone_store
from mesostw.store.files import FileStateStore
from mesostw.store.memory import MemoryStateStore
from mesostw.zk.client import CONNECTED, LOST, SUSPENDED
from tests.helpers.probe import probe_plugin
from tests.helpers.web import Client


@implementer(IElection)
class FakeElection:
    """An election the test decides."""

    def __init__(self) -> None:
        self.leading = False
        self.fence: str | None = None
        self.data: bytes | None = None
        self.other: bytes | None = None
        self.withdrawn = False
        self._waiters: list[defer.Deferred] = []

    def contend(self, data: bytes) -> defer.Deferred:
        self.data, self.fence = data, "/probe/leader/member_0000000001"
        return defer.succeed(None)

    def whenElected(self) -> defer.Deferred:
        if self.leading:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._waiters.append(d)
        return d

    def win(self) -> None:
        self.leading, self.other = True, None
        for d in self._waiters:
            d.callback(None)

    def whenDeposed(self) -> defer.Deferred:
        self.deposed: defer.Deferred = defer.Deferred()
        return self.deposed

    def leader(self) -> bytes | None:
        return None if self.leading else self.other

    def withdraw(self) -> defer.Deferred:
        self.withdrawn = True
        return defer.succeed(None)


class FakeZooKeeper:
    session_timeout = 4.0

    def __init__(self, log: list[str]):
        self.listeners: list[Any] = []
        self.log = log

    def start(self) -> defer.Deferred:
        self.log.append("zk start")
        return defer.succeed(None)

    def stop(self) -> defer.Deferred:
        self.log.append("zk stop")
        return defer.succeed(None)


class RecordingProxy:
    def __init__(self) -> None:
        self.forwarded: list[tuple[str, str]] = []

    def forward(self, request: server.Request, address: str) -> Any:
        self.forwarded.append((request.uri.decode(), address))
        request.setResponseCode(299)
        request.write(b"from the leader")
        request.finish()
        return server.NOT_DONE_YET


def host_config(*argv: str, environ: dict[str, str] | None = None) -> tuple[Any, flaglib.Config, flaglib.Config]:
    plugin = probe_plugin()
    options = standalone_tap.options_for(plugin)()
    options.environ = environ or {}
    options.parseOptions(["--master=127.0.0.1:5050", *argv])
    config = options.config
    return plugin, config, flaglib.Config(plugin.flags, {f.name: getattr(config, f.name) for f in plugin.flags})


class StandaloneHostTests(unittest.TestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.aborts: list[tuple[str, str]] = []

    def build(self, *argv: str, election: Any = None, zk: Any = None, store: Any = None) -> StandaloneFramework:
        plugin, config, framework_config = host_config(*argv)
        self.ended = 0

        def end() -> None:
            self.ended += 1

        framework = StandaloneFramework(plugin, config, framework_config, reactor=self.reactor, zk=zk,
                                        election=election, store=store or MemoryStateStore(),
                                        on_abort=lambda name, reason: self.aborts.append((name, reason)), end=end)
        self.addCleanup(lambda: framework.stopService() if framework.running else None)
        return framework

    def test_host_and_elections_provide_their_interfaces(self) -> None:
        """The standalone host, its store, its driver and every election keep to their interfaces."""
        framework = self.build()
        verifyObject(IFrameworkHost, framework.host)
        verifyObject(IStateStore, framework.host.store)
        verifyObject(ISchedulerDriver, framework.host.driver(D.Scheduler(), FrameworkInfo(user="u", name="probe")))
        for election in (Unopposed(), zookeeper_election(FakeZooKeeper([]), "/probe/leader"), FakeElection()):
            verifyObject(IElection, election)

    def test_a_framework_may_ask_for_explicit_acknowledgements(self) -> None:
        """The PB driver acknowledges updates by itself unless the framework asks otherwise."""
        host = self.build().host
        info = FrameworkInfo(user="u", name="probe")
        self.assertTrue(host.driver(D.Scheduler(), info).implicit_acknowledgements)
        self.assertFalse(host.driver(D.Scheduler(), info, implicit_acknowledgements=False).implicit_acknowledgements)

    def test_alone_it_leads_at_once_and_registers_through_pb(self) -> None:
        """Without --zk the instance leads as it starts; its PB driver dials the master with the
        framework's principal and API URL filled in."""
        framework = self.build("--http_port=4600", "--principal=ops", "--hostname=probe.local")
        framework.startService()
        self.assertEqual([(port, interface) for port, _, _, interface in self.reactor.tcpServers],
                         [(4600, "127.0.0.1")])
        self.assertEqual(framework.host.whenLeading().result, None)
        self.assertTrue(framework.framework.running)
        driver = framework.framework.driver
        self.assertEqual((driver.framework.principal, driver.framework.webui_url),
                         ("ops", "http://probe.local:4600"))
        self.assertIsNone(driver.credential)
        self.assertEqual([(host, port) for host, port, *_ in self.reactor.tcpClients], [("127.0.0.1", 5050)])

    def test_a_secret_or_a_credential_authenticates_the_driver(self) -> None:
        """--secret authenticates --principal (default: the plugin's name); --credential brings both."""
        framework = self.build("--secret=s3cret")
        self.assertEqual(framework.host.credential, Credential("probe", "s3cret"))
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write('{"principal": "ops", "secret": "pw"}')
        framework = self.build(f"--credential=file://{path}")
        self.assertEqual((framework.host.principal, framework.host.credential), ("ops", Credential("ops", "pw")))

    def test_a_standby_without_a_leader_answers_503(self) -> None:
        """Before any instance leads, every request gets a 503 with a JSON message."""
        election = FakeElection()
        framework = self.build(election=election)
        framework.startService()
        self.assertFalse(framework.framework.running)
        reply = Client(framework.site, self.reactor).request("POST", "/tasks")
        self.assertEqual(reply.code, 503)
        self.assertEqual(reply.json(), {"message": "No leading probe instance is elected yet"})

    def test_a_standby_forwards_every_request_to_the_leader(self) -> None:
        """While another instance leads, requests (known routes or not) go to its address."""
        election = FakeElection()
        framework = self.build(election=election)
        framework.proxy = RecordingProxy()  # type: ignore[assignment]
        framework.startService()
        election.other = b"127.0.0.2:4499"
        self.assertEqual(framework.host.leader(), "127.0.0.2:4499")
        client = Client(framework.site, self.reactor)
        for target in ("/state", "/tasks?command=true", "/v2/anything"):
            self.assertEqual(client.get(target).code, 299)
        self.assertEqual(framework.proxy.forwarded, [("/state", "127.0.0.2:4499"),
                                                     ("/tasks?command=true", "127.0.0.2:4499"),
                                                     ("/v2/anything", "127.0.0.2:4499")])

    def test_winning_the_election_starts_the_framework(self) -> None:
        """The framework's service starts once elected, and then answers requests itself."""
        election = FakeElection()
        framework = self.build("--http_port=0", election=election)
        framework.startService()
        self.assertEqual(election.data, f"127.0.0.1:{framework.listener.port}".encode())
        leading = framework.host.whenLeading()
        self.assertNoResult(leading)
        election.win()
        self.successResultOf(leading)
        self.assertTrue(framework.framework.running)
        state = Client(framework.site, self.reactor).get_json("/state")
        self.assertEqual(state["principal"], "probe")

    def test_losing_the_zookeeper_session_ends_the_process(self) -> None:
        """An expired session aborts at once; a disconnection aborts after the session timeout
        unless the connection comes back first."""
        steps: list[str] = []
        framework = self.build(election=FakeElection(), zk=FakeZooKeeper(steps))
        framework.startService()
        (listener,) = framework.zk.listeners
        listener(SUSPENDED)
        self.reactor.advance(3)
        listener(CONNECTED)
        self.reactor.advance(10)
        self.assertEqual(self.aborts, [])
        listener(SUSPENDED)
        self.reactor.advance(4)
        self.assertEqual(self.aborts, [("probe", "disconnected from ZooKeeper for longer than the session timeout "
                                                 "(4.0s)")])
        listener(LOST)
        self.assertEqual(self.aborts[-1], ("probe", "the ZooKeeper session expired"))

    def test_a_deposed_leader_ends_the_process(self) -> None:
        """Once the election says this instance's node is gone, the process ends (its store is fenced)."""
        election = FakeElection()
        framework = self.build(election=election, zk=FakeZooKeeper([]))
        framework.startService()
        election.win()
        self.assertEqual(self.aborts, [])
        election.deposed.callback(None)
        self.assertEqual(self.aborts, [("probe", "this instance's election node is gone: it no longer leads")])

    def test_stopping_stops_the_framework_then_leaves_the_election(self) -> None:
        """A clean stop fails the framework over, closes the store, withdraws from the election, then
        closes the session."""
        steps: list[str] = []
        election = FakeElection()

        class ClosingStore(MemoryStateStore):
            def close(self) -> defer.Deferred:
                steps.append(f"store closed, withdrawn={election.withdrawn}")
                return defer.succeed(None)

        framework = self.build(election=election, zk=FakeZooKeeper(steps), store=ClosingStore())
        framework.startService()
        election.win()
        driver = framework.framework.driver
        self.successResultOf(framework.stopService())
        self.assertEqual(driver.status, D.STOPPED)
        self.assertTrue(election.withdrawn)
        self.assertEqual(steps, ["zk start", "store closed, withdrawn=False", "zk stop"])
        self.assertFalse(framework.listener.running)
        self.assertEqual(self.aborts, [])


    def test_abdicating_ends_the_process_cleanly_after_answering(self) -> None:
        """abdicate() on the leader of a --zk election ends the process on the next reactor turn (the
        caller answers first); without --zk, or on a standby, it is refused with the reason."""
        from mesostw.interfaces import AbdicationRefused

        election = FakeElection()
        framework = self.build("--zk=zk://127.0.0.1:2181/probe", election=election, zk=FakeZooKeeper([]))
        framework.startService()
        with self.assertRaises(AbdicationRefused) as standby:
            framework.host.abdicate()
        self.assertEqual(str(standby.exception), "This probe instance does not lead")
        election.win()
        framework.host.abdicate()
        self.assertEqual(self.ended, 0)
        self.reactor.advance(0)
        self.assertEqual((self.ended, self.aborts), (1, []))

        alone = self.build()
        alone.startService()
        with self.assertRaises(AbdicationRefused) as unopposed:
            alone.host.abdicate()
        self.assertIn("runs without --zk", str(unopposed.exception))


class GroupZooKeeper:
    """Just enough of a ZooKeeper client for an election: nodes in a dict, one children watch."""

    def __init__(self) -> None:
        self.nodes: dict[str, bytes] = {"/probe/leader/state": b"", "/probe/leader/member_0000000001": b"127.0.0.1:1"}
        self.watch: Any = None

    def ensure_path(self, path: str) -> defer.Deferred:
        return defer.succeed(None)

    def create(self, path: str, data: bytes, ephemeral: bool, sequence: bool) -> defer.Deferred:
        created = f"{path}{len(self.nodes):010d}"
        self.nodes[created] = data
        return defer.succeed(created)

    def get(self, path: str) -> defer.Deferred:
        return defer.succeed((self.nodes[path], None))

    def delete(self, path: str) -> defer.Deferred:
        del self.nodes[path]
        self.changed()
        return defer.succeed(None)

    def watch_children(self, path: str, callback: Any) -> Any:
        self.watch = callback
        self.changed()

    def changed(self) -> None:
        if self.watch is not None:
            self.watch([name.rsplit("/", 1)[1] for name in self.nodes])


class GroupElectionTests(unittest.TestCase):
    def test_the_lowest_member_leads_and_other_children_do_not_count(self) -> None:
        """Behind an earlier member an instance follows it (knowing its address); once that member's
        node goes, it leads; other children of the path never count as members."""
        zk = GroupZooKeeper()
        election = zookeeper_election(zk, "/probe/leader")
        elected = election.whenElected()
        self.successResultOf(election.contend(b"127.0.0.1:2"))
        self.assertEqual(election.fence, "/probe/leader/member_0000000002")
        self.assertEqual(election.leader(), b"127.0.0.1:1")
        self.assertNoResult(elected)
        zk.delete("/probe/leader/member_0000000001")
        self.successResultOf(elected)
        self.assertTrue(election.leading)
        self.assertIsNone(election.leader())
        self.successResultOf(election.withdraw())
        self.assertEqual(sorted(zk.nodes), ["/probe/leader/state"])
        self.assertFalse(election.deposed, "withdrawing is no deposition")

    def test_a_leader_whose_node_goes_is_deposed(self) -> None:
        """A leading instance whose own node disappears (its session lives on) is told it is deposed;
        one that never led is not."""
        zk = GroupZooKeeper()
        election = zookeeper_election(zk, "/probe/leader")
        deposed = election.whenDeposed()
        self.successResultOf(election.contend(b"127.0.0.1:2"))
        zk.delete("/probe/leader/member_0000000001")
        self.assertTrue(election.leading)
        self.assertNoResult(deposed)
        zk.nodes["/probe/leader/member_0000000003"] = b"127.0.0.1:3"  # a rival behind it
        zk.changed()
        self.assertNoResult(deposed)
        zk.delete("/probe/leader/member_0000000002")
        self.successResultOf(deposed)
        self.assertTrue(election.deposed)
        self.successResultOf(election.whenDeposed())


class StandaloneStoreTests(unittest.TestCase):
    def test_work_dir_keeps_state_in_a_file(self) -> None:
        """Without --zk, --work_dir keeps the state in a file store there, across restarts."""
        work_dir = os.path.abspath(self.mktemp())
        _, config, _ = host_config(f"--work_dir={work_dir}")
        store = standalone_store(None, config, None, Unopposed())
        self.assertIsInstance(store, FileStateStore)
        self.successResultOf(store.put("framework_id", b"F1"))
        self.successResultOf(store.close())
        again = standalone_store(None, config, None, Unopposed())
        self.addCleanup(again.close)
        self.assertEqual(self.successResultOf(again.get("framework_id")), b"F1")

    def test_without_zk_or_work_dir_state_is_memory_with_a_warning(self) -> None:
        """Neither --zk nor --work_dir: a memory store, and a warning that the state will be lost."""
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        _, config, _ = host_config()
        self.assertIsInstance(standalone_store(MemoryReactorClock(), config, None, Unopposed()), MemoryStateStore)
        self.assertTrue(any("kept in memory" in e.get("log_format", "") for e in events))

