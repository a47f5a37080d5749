"""What only a wire has, on the cluster over the real PB adapters: connecting through the port switch,
authenticating (CRAM-MD5), refusals, backoff, resets and re-subscription.

The behaviours every transport shares run on both clusters in ``test_master.py``, ``test_agent.py`` and
``test_cluster_smoke.py``; these are the ones a direct link cannot show.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet import error
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from zope.interface.verify import verifyObject

from mesostw.auth.client import authenticate
from mesostw.auth.credentials import Credential
from mesostw.model import task as T
from mesostw.scheduler import driver as D
from mesostw.wire import connector as connector_module
from mesostw.wire.pb import ClientFactory
from mesostw.wire.preambles import EXECUTOR, PB
from mesostw.wire.switch import SETUP_TIMEOUT
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import RecordingScheduler, command_task
from tests.helpers.pbcluster import MASTER_IP, PBCluster

SECRETS = {"ops": "ops-secret", "agent": "agent-secret"}
AGENT = "cpus:2;mem:1024;disk:1024;ports:[31000-32000]"


class PBClusterTestCase(ClockTestCase):
    def make_cluster(self, **kwargs: Any) -> PBCluster:
        cluster = PBCluster(**kwargs)
        self.useClock(cluster.clock)
        self.addCleanup(cluster.stop)
        return cluster

    def credentials(self) -> str:
        """A master's --credentials file holding :data:`SECRETS`."""
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "credentials")
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"credentials": [{"principal": p, "secret": s} for p, s in SECRETS.items()]}, f)
        return path

    def exact_backoff(self) -> None:
        """Connectors wait their whole backoff rather than a random part of it, so that tests know when they dial."""
        self.patch(connector_module.random, "uniform", lambda low, high: high)

    def start_task(self, cluster: PBCluster, **info: Any) -> tuple[RecordingScheduler, Any]:
        scheduler = RecordingScheduler()
        scheduler.pending = [command_task("t1", "sleep 100")]
        scheduler, driver = cluster.framework(scheduler=scheduler, **info)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])
        return scheduler, driver


class NetworkTests(PBClusterTestCase):
    def test_hosts_are_reactors(self) -> None:
        """A host of the in-memory network provides the reactor interfaces the code under test uses."""
        cluster = self.make_cluster(agents=0)
        host = cluster.network.host("127.0.9.1")
        self.assertTrue(verifyObject(IReactorTCP, host))
        self.assertTrue(verifyObject(IReactorTime, host))

    def test_nothing_listening_refuses(self) -> None:
        """Dialling an address where nothing listens fails with ConnectionRefusedError."""
        cluster = self.make_cluster(agents=0)
        d = TCP4ClientEndpoint(cluster.network.host("127.0.9.1"), MASTER_IP, 9999).connect(
            Factory.forProtocol(Protocol))
        cluster.settle()
        self.failureResultOf(d, error.ConnectionRefusedError)

    def test_connections_carry_addresses(self) -> None:
        """Both ends of a connection see the real addresses: the master sees each agent's host."""
        cluster = self.make_cluster()
        peers = sorted(c.server_end.getPeer().host for c in cluster.network.connections)
        self.assertEqual(peers, ["127.0.1.1", "127.0.1.2"])
        for connection in cluster.network.connections:
            self.assertEqual((connection.client_end.getPeer().host, connection.client_end.getPeer().port),
                             (MASTER_IP, 5050))


class AgentConnectionTests(PBClusterTestCase):
    def test_agents_register_over_pb(self) -> None:
        """Agents dial the master's port, pass its port switch and register over their PB links."""
        cluster = self.make_cluster()
        self.assertEqual([a.state for a in cluster.agents], ["RUNNING", "RUNNING"])
        for agent in cluster.agents:
            self.assertEqual(cluster.client(agent).connector.connected_to, (MASTER_IP, 5050))
            self.assertEqual(type(cluster.master.agents[agent.id].link).__name__, "PBAgentLink")
        self.assertEqual(cluster.master.metrics["slave_registrations"], 2)

    def test_reset_agent_reconnects_after_backoff(self) -> None:
        """After a TCP reset the agent dials again after its backoff and re-registers with its ID and tasks;
        a checkpointing framework hears nothing of it."""
        self.exact_backoff()
        cluster = self.make_cluster()
        scheduler, driver = self.start_task(cluster, checkpoint=True)
        agent = cluster.agents[0]
        agent_id = agent.id
        cluster.reset(agent)
        cluster.settle()
        self.assertEqual(agent.state, "DISCONNECTED")
        self.assertFalse(cluster.master.agents[agent_id].connected)
        cluster.advance(0.9, step=0.1)
        self.assertEqual(agent.state, "DISCONNECTED")
        cluster.advance(0.1)
        self.assertEqual((agent.id, agent.state), (agent_id, "RUNNING"))
        self.assertTrue(cluster.master.agents[agent_id].connected)
        self.assertEqual(cluster.master.metrics["slave_reregistrations"], 1)
        self.assertEqual(cluster.master.frameworks[scheduler.framework_id].tasks["t1"].state, T.RUNNING)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])
        driver.killTask("t1")
        cluster.settle()
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.KILLED])

    def test_unreachable_master_is_dialled_within_the_initial_backoff(self) -> None:
        """While the master cannot be reached the agent dials again within its initial backoff (1 s), however
        long that lasts: no backoff grows while nobody answers, so a master that is back is found at once."""
        self.exact_backoff()
        cluster = self.make_cluster(agents=1)
        agent = cluster.agents[0]
        dials: list[float] = []
        connect = cluster.client(agent).connector.connect

        def counted() -> None:
            dials.append(cluster.clock.seconds())
            connect()

        self.patch(cluster.client(agent).connector, "connect", counted)
        cluster.cut(agent)
        cluster.advance(250)
        self.assertEqual(dials, [float(second) for second in range(1, 251)])
        cluster.connect(agent)
        cluster.settle()
        self.assertEqual(agent.state, "RUNNING")

    def test_refused_agent_retries(self) -> None:
        """An agent the master refuses (no cpus) is not registered; it keeps dialling with backoff."""
        self.exact_backoff()
        cluster = self.make_cluster(agents=0)
        agent = cluster.add_agent("disk:1024")
        cluster.settle()
        self.assertEqual(agent.state, "DISCONNECTED")
        self.assertEqual(cluster.master.agents, {})
        self.assertEqual(cluster.network.connections, [])
        cluster.advance(3)
        self.assertEqual(cluster.master.metrics["messages_register_slave"], 3)

    def test_agents_authenticate(self) -> None:
        """With --authenticate_agents an agent registers once it proves its credential (CRAM-MD5); without one,
        or with a wrong secret, it is refused and registered never. The master's late answers to repeated
        failures go with their connections (no timer is left behind once they are gone)."""
        self.exact_backoff()
        cluster = self.make_cluster(agents=0, credentials=self.credentials(), authenticate_agents=True)
        good = cluster.add_agent(AGENT, credential=Credential("agent", SECRETS["agent"]))
        anonymous = cluster.add_agent(AGENT, port=5052)
        wrong = cluster.add_agent(AGENT, port=5053, credential=Credential("agent", "guess"))
        cluster.advance(10)
        self.assertEqual(good.state, "RUNNING")
        self.assertEqual(list(cluster.master.agents), [good.id])
        self.assertEqual((anonymous.state, anonymous.id), ("DISCONNECTED", None))
        self.assertEqual((wrong.state, wrong.id), ("DISCONNECTED", None))
        self.assertGreaterEqual(cluster.master.metrics["authentication_failures"], 2)

    def test_not_leading_master(self) -> None:
        """A master that does not lead refuses agents; they keep dialling and register once it leads."""
        self.exact_backoff()
        cluster = self.make_cluster(agents=0)
        cluster.master.leading = False
        agent = cluster.add_agent(AGENT)
        cluster.advance(2)
        self.assertEqual(agent.state, "DISCONNECTED")
        cluster.master.leading = True
        cluster.advance(2)
        self.assertEqual(agent.state, "RUNNING")


class FrameworkConnectionTests(PBClusterTestCase):
    def test_reset_driver_resubscribes(self) -> None:
        """After a TCP reset the driver tells its scheduler it is disconnected, dials again after its backoff
        and subscribes with its framework ID: re-registered, with its tasks."""
        self.exact_backoff()
        cluster = self.make_cluster()
        scheduler, driver = self.start_task(cluster, failover_timeout=60)
        framework = cluster.master.frameworks[scheduler.framework_id]
        cluster.network.reset(driver.reactor.ip, MASTER_IP)
        cluster.settle()
        self.assertEqual(scheduler.disconnections, 1)
        self.assertFalse(framework.active)
        cluster.advance(1)
        self.assertTrue(framework.active)
        self.assertEqual((len(scheduler.registrations), len(scheduler.reregistrations)), (1, 1))
        self.assertEqual(list(framework.tasks), ["t1"])

    def test_calls_while_disconnected_arrive_later(self) -> None:
        """Calls made while the connection is down (but for offers, which do not survive it) are sent once
        the driver has subscribed again."""
        cluster = self.make_cluster()
        scheduler, driver = self.start_task(cluster, failover_timeout=60)
        cluster.cut_framework(driver)
        cluster.settle()
        driver.killTask("t1")
        driver.declineOffer(scheduler.offers[-1].id)
        cluster.advance(5)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])
        cluster.reconnect_framework(driver)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.KILLED])
        self.assertEqual(driver.refusals, [])

    def test_refused_calls_are_reported(self) -> None:
        """A call the master refuses comes back to the driver with the reason; the connection stays up."""
        cluster = self.make_cluster()
        scheduler, driver = cluster.framework()
        driver.killTask("")
        cluster.settle()
        self.assertEqual(len(driver.refusals), 1)
        self.assertIn("task_id", driver.refusals[0])
        self.assertEqual(driver.status, D.RUNNING)
        self.assertTrue(cluster.master.frameworks[scheduler.framework_id].active)

    def test_authenticated_framework(self) -> None:
        """With --authenticate_frameworks a driver with a valid credential subscribes as its principal."""
        cluster = self.make_cluster(credentials=self.credentials(), authenticate_frameworks=True)
        scheduler, driver = cluster.framework(principal="ops")
        self.assertEqual(scheduler.errors, [])
        self.assertEqual(cluster.master.frameworks[scheduler.framework_id].info.principal, "ops")

    def test_unauthenticated_framework_refused(self) -> None:
        """With --authenticate_frameworks a driver without a credential is refused with the reason and aborts."""
        cluster = self.make_cluster(credentials=self.credentials(), authenticate_frameworks=True)
        scheduler, driver = cluster.framework()
        self.assertEqual(len(scheduler.errors), 1)
        self.assertIn("not authenticated", scheduler.errors[0])
        self.assertEqual(driver.status, D.ABORTED)
        self.assertEqual(cluster.master.frameworks, {})

    def test_wrong_secret_refused(self) -> None:
        """A driver whose secret is wrong fails CRAM-MD5: refused, aborted, and counted by the master."""
        cluster = self.make_cluster(credentials=self.credentials(), authenticate_frameworks=True)
        scheduler, driver = cluster.framework(credential=Credential("ops", "guess"))
        self.assertEqual(len(scheduler.errors), 1)
        self.assertIn("authentication", scheduler.errors[0])
        self.assertEqual(driver.status, D.ABORTED)
        self.assertEqual(cluster.master.frameworks, {})
        self.assertEqual(cluster.master.metrics["authentication_failures"], 1)

    def test_not_leading_master(self) -> None:
        """A master that does not lead yet refuses the driver without aborting it; it subscribes once it leads."""
        self.exact_backoff()
        cluster = self.make_cluster(agents=0)
        cluster.master.leading = False
        scheduler, driver = cluster.framework()
        cluster.advance(2)
        self.assertEqual((scheduler.errors, scheduler.framework_id), ([], None))
        cluster.master.leading = True
        cluster.advance(4)
        self.assertEqual(scheduler.errors, [])
        self.assertIsNotNone(scheduler.framework_id)


class Silent(Protocol):
    """A client that sends its first bytes and then nothing; ``lost`` once the server dropped it."""

    def __init__(self, first: bytes) -> None:
        self.first, self.lost = first, False

    def connectionMade(self) -> None:
        self.transport.write(self.first)

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = True


class SetupDeadlineTests(PBClusterTestCase):
    """A connection that opened with a private protocol's preamble must authenticate, register or subscribe
    within the port's setup timeout (--connection_setup_timeout); then it may idle as long as it likes."""

    def silent(self, cluster: PBCluster, address: tuple[str, int], first: bytes) -> Silent:
        client = Silent(first)
        TCP4ClientEndpoint(cluster.network.host("127.0.9.9"), *address).connect(Factory.forProtocol(lambda: client))
        return client

    def pb_root(self, cluster: PBCluster, ip: str) -> Any:
        factory = ClientFactory()
        cluster.network.host(ip).connectTCP(MASTER_IP, 5050, factory)
        d = factory.getRootObject()
        cluster.settle()
        return self.successResultOf(d)

    def test_silence_after_a_preamble_is_dropped(self) -> None:
        """Connections that send the PB preamble to the master, or the executor stream's or PB's preamble to an
        agent, and then nothing, are dropped once the setup timeout passes (not before); one that sends
        nothing at all is dropped at the sniff timeout. The agent, the framework and the executor, bound at
        once, keep their connections however long they idle."""
        cluster = self.make_cluster(agents=1)
        scheduler, driver = self.start_task(cluster)
        agent_address = (cluster.host_of(cluster.agents[0]).ip, 5051)
        bound = list(cluster.network.connections)
        clients = [self.silent(cluster, (MASTER_IP, 5050), PB), self.silent(cluster, agent_address, EXECUTOR),
                   self.silent(cluster, agent_address, PB)]
        mute = self.silent(cluster, (MASTER_IP, 5050), b"")
        cluster.advance(SETUP_TIMEOUT - 1)
        self.assertTrue(mute.lost)
        self.assertEqual([c.lost for c in clients], [False] * 3)
        cluster.advance(2)
        self.assertEqual([c.lost for c in clients], [True] * 3)
        cluster.advance(10 * SETUP_TIMEOUT, step=10)
        self.assertFalse(any(connection.closed for connection in bound))
        self.assertEqual((scheduler.disconnections, cluster.agents[0].state), (0, "RUNNING"))
        (fake,) = cluster.containerizers[0].by_executor("t1")
        self.assertTrue(fake.driver.subscribed)

    def test_a_pb_client_must_authenticate_in_time(self) -> None:
        """A PB client that asks for the mechanisms but never authenticates is dropped at the setup timeout;
        one that authenticated is not."""
        cluster = self.make_cluster(agents=0, credentials=self.credentials(), authenticate_frameworks=True)
        idle, trusted = self.pb_root(cluster, "127.0.9.1"), self.pb_root(cluster, "127.0.9.2")
        lost: list[str] = []
        idle.notifyOnDisconnect(lambda _: lost.append("idle"))
        trusted.notifyOnDisconnect(lambda _: lost.append("trusted"))
        mechanisms = idle.callRemote("authenticationMechanisms")
        principal = authenticate(trusted, Credential("ops", SECRETS["ops"]))
        cluster.settle()
        self.assertEqual((self.successResultOf(mechanisms), self.successResultOf(principal)), (["CRAM-MD5"], "ops"))
        cluster.advance(SETUP_TIMEOUT + 1)
        self.assertEqual(lost, ["idle"])
        cluster.advance(10 * SETUP_TIMEOUT, step=10)
        self.assertEqual(lost, ["idle"])


class SilentPartitionTests(PBClusterTestCase):
    def test_agent_behind_silent_partition(self) -> None:
        """When nothing gets through any more (a cable pulled, no resets), the master marks the agent unreachable
        after its ping timeouts, and the agent, pinged no more, drops the connection and dials again; once the
        network is back it re-registers with its ID and its PARTITION_AWARE task is RUNNING again."""
        cluster = self.make_cluster()
        scheduler, driver = self.start_task(cluster, checkpoint=True, capabilities=frozenset({"PARTITION_AWARE"}))
        agent = cluster.agents[0]
        agent_id = agent.id
        cluster.network.partition(cluster.host_of(agent).ip, MASTER_IP, drop=True)
        cluster.advance(74)
        self.assertEqual(agent.state, "RUNNING")
        cluster.advance(30)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.UNREACHABLE])
        self.assertIn(agent_id, cluster.master.unreachable)
        self.assertEqual(agent.state, "DISCONNECTED")
        cluster.network.heal(cluster.host_of(agent).ip, MASTER_IP)
        cluster.advance(60)
        self.assertEqual((agent.id, agent.state), (agent_id, "RUNNING"))
        self.assertNotIn(agent_id, cluster.master.unreachable)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.UNREACHABLE, T.RUNNING])


class ExecutorConnectionTests(PBClusterTestCase):
    def test_executors_subscribe_over_pb(self) -> None:
        """Executors reach their agent's port from the environment it gave them and subscribe over PB."""
        cluster = self.make_cluster(agents=1)
        scheduler, driver = self.start_task(cluster)
        agent = cluster.agents[0]
        (fake,) = cluster.containerizers[0].by_executor("t1")
        self.assertEqual(fake.environment["MESOS_AGENT_ENDPOINT"], f"{cluster.host_of(agent).ip}:5051")
        self.assertTrue(fake.driver.subscribed)
        (executor,) = agent.frameworks[scheduler.framework_id].executors.values()
        self.assertEqual(type(executor.link).__name__, "PBExecutorLink")
        self.assertEqual([e["type"] for e in fake.events], ["SUBSCRIBED", "LAUNCH", "ACKNOWLEDGED"])

    def test_checkpointing_executor_resubscribes(self) -> None:
        """An executor of a checkpointing framework that loses its agent connection subscribes again, and the
        update it made meanwhile reaches the scheduler."""
        self.exact_backoff()
        cluster = self.make_cluster(agents=1)
        scheduler, driver = self.start_task(cluster, checkpoint=True)
        ip = cluster.host_of(cluster.agents[0]).ip
        (fake,) = cluster.containerizers[0].by_executor("t1")
        cluster.network.partition(ip, ip)
        cluster.settle()
        self.assertFalse(fake.driver.subscribed)
        fake.update("t1", T.FINISHED, "done while away")
        cluster.advance(0.5, step=0.5)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING])
        cluster.network.heal(ip, ip)
        cluster.advance(2)
        self.assertTrue(fake.driver.subscribed)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.FINISHED])
        self.assertEqual(scheduler.updates[-1].message, "done while away")
        self.assertEqual(cluster.master.frameworks[scheduler.framework_id].tasks, {})

    def test_executor_exits_without_its_agent(self) -> None:
        """An executor of a framework that does not checkpoint exits when it loses its agent; its task fails."""
        cluster = self.make_cluster(agents=1)
        scheduler, driver = self.start_task(cluster)
        ip = cluster.host_of(cluster.agents[0]).ip
        (fake,) = cluster.containerizers[0].by_executor("t1")
        cluster.network.reset(ip, ip)
        cluster.settle()
        self.assertTrue(fake.exited.called)
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.FAILED])
        self.assertEqual(scheduler.updates[-1].reason, T.REASON_EXECUTOR_TERMINATED)
        self.assertEqual(cluster.agents[0].frameworks, {})
