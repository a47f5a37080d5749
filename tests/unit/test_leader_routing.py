"""Which master answers an HTTP request: followers and recovering leaders send clients on, leaders answer.

``/master/redirect`` and the leader-only endpoints go through one :class:`LeaderRouting`: a follower
answers 307 to the elected leader; a master elected but still recovering the registry answers 503 (as
Mesos does for leader-only endpoints before recovery ends); the leader serves, and redirects
``/master/redirect`` to itself, as Mesos does; with no leader known, 503.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.spread import pb

from mesostw import flags as flaglib
from mesostw.http.router import Router
from mesostw.master.flags import MASTER_FLAGS
from mesostw.master.http import LeaderRouting, MasterEndpoints
from mesostw.master.master import Master
from mesostw.master.registry import RegistryState
from mesostw.master.scheduler_http import SchedulerAPI
from mesostw.master.service import MasterService
from mesostw.model.info import MasterInfo
from mesostw.wire.pb import NotLeaderError
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import Cluster
from tests.helpers.web import Client, Reply

#: The master that leads when the one under test follows.
OTHER = MasterInfo("other", "10.0.0.1", 5050, "leader.example")
SUBSCRIBE = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "n"}}}


class Requests:
    """The requests every case sends: the redirect endpoints, and leader-only endpoints of both APIs."""

    def __init__(self, client: Client):
        self.client = client

    def redirect(self) -> dict[str, Reply]:
        return {path: self.client.get(path) for path in ("/master/redirect", "/redirect")}

    def leader_only(self) -> dict[str, Reply]:
        return {
            "/master/state": self.client.get("/master/state"),
            "/master/teardown": self.client.request("POST", "/master/teardown", b"frameworkId=F"),
            "/api/v1/scheduler": self.client.request("POST", "/api/v1/scheduler", json.dumps(SUBSCRIBE).encode(),
                                                     {"Content-Type": "application/json"}),
            # The operator API answers nothing on a master that does not lead, GET_HEALTH included (as Mesos).
            **{path: self.client.request("POST", path, b'{"type": "GET_HEALTH"}', {"Content-Type": "application/json"})
               for path in ("/api/v1", "/master/api/v1")},
        }


class RoutingTestCase(ClockTestCase):
    def assertRedirected(self, replies: dict[str, Reply], location: str, with_path: bool) -> None:
        """Every reply is a 307 to ``location`` (plus the request's path if ``with_path``)."""
        for path, reply in replies.items():
            self.assertEqual((path, reply.code), (path, 307), reply.body)
            self.assertEqual(reply.headers["location"], location + (path if with_path else ""))
            self.assertEqual(reply.headers["content-type"], "application/json")

    def assertUnavailable(self, replies: dict[str, Reply], message: str) -> None:
        """Every reply is a 503 whose JSON message says ``message``."""
        for path, reply in replies.items():
            self.assertEqual((path, reply.code), (path, 503), reply.body)
            self.assertIn(message, reply.json()["message"])


class LeaderRoutingTests(RoutingTestCase):
    """One standby master behind the master's endpoints and the scheduler API, told who leads."""

    def setUp(self) -> None:
        self.cluster = Cluster(agents=0)
        self.useClock(self.cluster.clock)
        self.addCleanup(self.cluster.stop)
        self.master: Master = self.cluster.standby("M2", hostname="me.example")
        self.elected: MasterInfo | None = None
        routing = LeaderRouting(self.master, lambda: self.elected)
        endpoints = MasterEndpoints(self.master, self.master.config.rendered(), routing)
        scheduler = SchedulerAPI(self.master, self.cluster.clock)
        scheduler.not_leading = routing.not_leading
        router = Router()
        endpoints.install(router)
        scheduler.install(router)
        self.requests = Requests(Client(router, self.useClock(MemoryReactorClock())))

    def test_follower_redirects_to_the_leader(self) -> None:
        """A follower answers /master/redirect with 307 to the leader's root, leader-only endpoints with 307 to
        the same path there; endpoints any master answers are answered."""
        self.elected = OTHER
        self.assertRedirected(self.requests.redirect(), "//leader.example:5050", with_path=False)
        self.assertRedirected(self.requests.leader_only(), "//leader.example:5050", with_path=True)
        self.assertEqual(self.requests.client.get("/master/health").code, 200)

    def test_recovering_leader_is_unavailable(self) -> None:
        """Elected but still recovering the registry, a master answers 503 and never names itself as leader."""
        self.elected = self.master.info
        replies = {**self.requests.redirect(), **self.requests.leader_only()}
        self.assertUnavailable(replies, "still recovering")
        self.assertFalse(any("me.example" in reply.headers.get("location", "") for reply in replies.values()))

    def test_leader_redirects_to_itself_and_serves(self) -> None:
        """Once recovered it leads: /master/redirect is a 307 to its own root and leader-only endpoints answer."""
        self.elected = self.master.info
        self.master.recover(RegistryState())
        self.assertRedirected(self.requests.redirect(), "//me.example:5050", with_path=False)
        self.assertEqual(self.requests.client.get("/master/state").json()["id"], "M2")

    def test_no_leader_is_unavailable(self) -> None:
        """With no leader known, every such request gets 503."""
        self.assertUnavailable({**self.requests.redirect(), **self.requests.leader_only()}, "No leading master")

    def test_default_routing_follows_leading(self) -> None:
        """Without an election, a master routes to itself once it leads and answers 503 before."""
        router = Router()
        MasterEndpoints(self.master, self.master.config.rendered()).install(router)
        client = Client(router, self.useClock(MemoryReactorClock()))
        self.assertEqual(client.get("/master/redirect").code, 503)
        self.master.recover(RegistryState())
        self.assertEqual(client.get("/master/redirect").headers["location"], "//me.example:5050")


class PendingRegistry:
    """A registry whose recovery ends when the test says (nothing is written here)."""

    def __init__(self) -> None:
        self.recovering: defer.Deferred = defer.Deferred()

    def recover(self) -> defer.Deferred:
        return self.recovering

    def apply(self, mutation: Any) -> defer.Deferred:
        return defer.succeed(None)


class ServiceRoutingTests(RoutingTestCase):
    """A whole MasterService with a ZooKeeper election, its detector told who leads as ZooKeeper would tell it."""

    OURS, THEIRS = "json.info_0000000002", "json.info_0000000001"

    def setUp(self) -> None:
        self.reactor = self.useClock(MemoryReactorClock())
        config = flaglib.defaults(MASTER_FLAGS, hostname="me.example", port=5050, zk="zk://127.0.0.1:2181/mesos")
        self.service = MasterService(config, reactor=self.reactor)
        self.addCleanup(self.service.master.stop)
        self.leadership = self.service.leadership
        self.registry = PendingRegistry()
        self.leadership.registry = self.registry
        self.leadership.contender.node = self.OURS
        self.requests = Requests(Client(self.service.router, self.useClock(MemoryReactorClock())))

    def elect(self, info: MasterInfo, node: str) -> None:
        """ZooKeeper reports ``node`` (holding ``info``) as the lowest member: the detector's one entry point."""
        self.leadership.detector._set(info, node)

    def test_follower_then_recovering_then_leader(self) -> None:
        """Following another master: 307 there. Elected: 503 while the registry recovers, for every
        endpoint and for PB registrations. Recovered: /master/redirect points here and the endpoints answer."""
        self.elect(OTHER, self.THEIRS)
        self.assertRedirected(self.requests.redirect(), "//leader.example:5050", with_path=False)
        self.assertRedirected(self.requests.leader_only(), "//leader.example:5050", with_path=True)

        self.elect(self.service.master.info, self.OURS)
        self.assertFalse(self.service.master.leading)
        self.assertUnavailable({**self.requests.redirect(), **self.requests.leader_only()}, "still recovering")

        self.registry.recovering.callback(RegistryState())
        self.assertTrue(self.service.master.leading)
        self.assertRedirected(self.requests.redirect(), "//me.example:5050", with_path=False)
        self.assertEqual(self.requests.client.get("/master/state").code, 200)
        self.assertIsNone(self.service.leader_pid())

    def test_standby_reads_the_registry_ahead(self) -> None:
        """While another master leads, the registry's store reads ahead (follows); elected, this master turns it
        into the writer's (leads) before it recovers the registry from it."""
        calls: list[str] = []

        class Standby:
            def follow(self) -> None:
                calls.append("follow")

            def lead(self) -> None:
                calls.append("lead")

        self.assertIs(self.leadership.standby, self.service.store)
        self.leadership.standby = Standby()
        recover = self.registry.recover
        self.registry.recover = lambda: calls.append("recover") or recover()  # type: ignore[method-assign]
        self.elect(OTHER, self.THEIRS)
        self.assertEqual(calls, ["follow"])
        self.elect(self.service.master.info, self.OURS)
        self.assertEqual(calls, ["follow", "lead", "recover"])

    def test_pb_refusals_name_the_same_leader(self) -> None:
        """PB registrations are refused naming the leader HTTP clients are sent to; an elected master that is
        still recovering does not call itself the leader."""
        self.assertEqual(self.service.leader_pid(), "unknown")
        self.elect(OTHER, self.THEIRS)
        self.assertEqual(self.service.leader_pid(), OTHER.pid)
        self.elect(self.service.master.info, self.OURS)
        self.assertEqual(self.service.leader_pid(), "this master, once it has recovered the registry")

    def test_agents_wait_for_the_recovery_of_an_elected_master(self) -> None:
        """An agent registering with a master that is elected and still recovering the registry waits and
        is registered once it is recovered (rather than refused, which would make it back off); one that went
        away meanwhile is not registered; a follower still refuses."""
        from mesostw.master.pb import MasterConnection
        from mesostw.model import internal
        from mesostw.model.info import AgentInfo
        from mesostw.model.resources import Resources
        from mesostw.wire.pb import encode
        from tests.unit.test_fuzz_boundaries import FakeBroker, FakeRemote

        master = self.service.master
        master.registry = self.registry  # registrations are written here, not to ZooKeeper
        payload = encode(internal.registration(AgentInfo("agent.example", port=5051,
                                                         resources=Resources.parse("cpus:1;mem:1024")), "1.0"))

        def connect() -> tuple[MasterConnection, FakeBroker]:
            broker = FakeBroker()
            return MasterConnection(master, broker, self.reactor, self.service.leader_pid), broker

        self.elect(OTHER, self.THEIRS)
        follower, _ = connect()
        with self.assertRaises(NotLeaderError):
            follower.remote_registerAgent(FakeRemote(), payload)

        self.elect(master.info, self.OURS)
        waiting, _ = connect()
        answers: list[Any] = []
        waiting.remote_registerAgent(FakeRemote(), payload).addBoth(answers.append)
        leaving, leaving_broker = connect()
        gone: list[Any] = []
        leaving.remote_registerAgent(FakeRemote(), payload).addBoth(gone.append)
        leaving_broker.disconnect()
        self.assertEqual((answers, gone, len(master.agents)), ([], [], 0))

        self.registry.recovering.callback(RegistryState())
        self.assertEqual(len(answers), 1)
        self.assertIsInstance(answers[0], bytes)
        self.assertEqual(len(master.agents), 1)
        self.assertEqual(waiting.agent_id, next(iter(master.agents)))
        self.assertEqual(len(gone), 1)
        self.assertTrue(gone[0].check(pb.PBConnectionLost))

    def test_registrations_are_read_before_the_recovery_ends(self) -> None:
        """An elected master still recovering the registry reads a registration as it arrives: one it cannot
        read is refused at once (not after the recovery), and the waiting agent's tasks are parsed already."""
        from mesostw.master.pb import MasterConnection
        from mesostw.model import internal
        from mesostw.model.info import AgentInfo
        from mesostw.model.resources import Resources
        from mesostw.wire.pb import RefusedError, encode
        from tests.unit.test_fuzz_boundaries import FakeBroker, FakeRemote

        master = self.service.master
        self.elect(master.info, self.OURS)
        connection = MasterConnection(master, FakeBroker(), self.reactor, self.service.leader_pid)
        with self.assertRaises(RefusedError) as refused:
            connection.remote_reregisterAgent(FakeRemote(), encode({"agent": "nonsense"}))
        self.assertIn("invalid registration", str(refused.exception))
        known = AgentInfo("agent.example", port=5051, resources=Resources.parse("cpus:1;mem:1024"), id="M-S1")
        with self.assertRaises(RefusedError):
            connection.remote_registerAgent(FakeRemote(), encode(internal.registration(known, "1.0")))
        read: list[Any] = []
        parse = internal.parse_registration
        self.patch(internal, "parse_registration", lambda data: read.append(data) or parse(data))
        connection.remote_reregisterAgent(FakeRemote(), encode(internal.registration(known, "1.0")))
        self.assertEqual(len(read), 1)
        self.assertFalse(master.leading)

    def test_frameworks_wait_for_the_recovery_of_an_elected_master(self) -> None:
        """A PB framework subscribing with a master that is elected and still recovering the registry waits and
        is subscribed once it is recovered (refused, its driver would back off and come back late); one that
        went away meanwhile is not subscribed; a follower still refuses."""
        from mesostw.master.pb import MasterConnection
        from mesostw.wire.pb import encode
        from tests.unit.test_fuzz_boundaries import FakeBroker, FakeRemote

        master = self.service.master
        master.registry = self.registry  # subscriptions are written here, not to ZooKeeper
        payload = encode(SUBSCRIBE)

        def connect() -> tuple[MasterConnection, FakeBroker]:
            broker = FakeBroker()
            return MasterConnection(master, broker, self.reactor, self.service.leader_pid), broker

        self.elect(OTHER, self.THEIRS)
        follower, _ = connect()
        with self.assertRaises(NotLeaderError):
            follower.remote_subscribe(FakeRemote(), payload)

        self.elect(master.info, self.OURS)
        waiting, _ = connect()
        scheduler = FakeRemote()
        answers: list[Any] = []
        defer.maybeDeferred(waiting.remote_subscribe, scheduler, payload).addBoth(answers.append)
        leaving, leaving_broker = connect()
        gone: list[Any] = []
        defer.maybeDeferred(leaving.remote_subscribe, FakeRemote(), payload).addBoth(gone.append)
        leaving_broker.disconnect()
        self.assertEqual((answers, gone, len(master.frameworks)), ([], [], 0))

        self.registry.recovering.callback(RegistryState())
        self.assertEqual(answers, [None])
        self.assertEqual(list(master.frameworks), [waiting.session.framework_id])
        self.assertEqual(len(gone), 1)
        self.assertTrue(gone[0].check(pb.PBConnectionLost))
        self.assertIsNone(leaving.session.framework_id)
        self.reactor.advance(0)
        self.assertEqual([event["type"] for event in scheduler.events()][:1], ["SUBSCRIBED"])


class RecoveryReleaseTests(ClockTestCase):
    """What waits for a master to lead is released a batch per reactor turn, so that the master, which leads
    already, keeps answering while a failover's agents re-register."""

    def setUp(self) -> None:
        self.cluster = Cluster(agents=0)
        self.clock = self.useClock(self.cluster.clock)
        self.addCleanup(self.cluster.stop)
        self.master: Master = self.cluster.standby("M2")
        self.addCleanup(self.master.stop)

    def turn(self) -> None:
        """One reactor turn: the calls due now run, not those they schedule (``Clock.advance`` runs both)."""
        due = [call for call in self.clock.getDelayedCalls() if call.getTime() <= self.clock.seconds()]
        for call in due:
            self.clock.calls.remove(call)
            call.func(*call.args, **call.kw)

    def test_waiters_are_released_a_batch_per_turn(self) -> None:
        """Recovered, a master fires RELEASE_BATCH waiters at once and the next batches in later turns
        (each a call at delay 0, so I/O is served between them), in the order they came."""
        from mesostw.master.master import RELEASE_BATCH

        fired: list[int] = []
        for number in range(2 * RELEASE_BATCH + 3):
            self.master.whenLeading().addCallback(lambda _, n=number: fired.append(n))
        self.master.recover(RegistryState())
        self.assertTrue(self.master.leading)
        self.assertEqual(fired, list(range(RELEASE_BATCH)))
        self.assertEqual([call.getTime() - self.clock.seconds() for call in self.clock.getDelayedCalls()
                          if call.func == self.master._release], [0])
        self.turn()
        self.assertEqual(fired, list(range(2 * RELEASE_BATCH)))
        self.turn()
        self.assertEqual(fired, list(range(2 * RELEASE_BATCH + 3)))
        self.assertEqual([call for call in self.clock.getDelayedCalls() if call.func == self.master._release], [])
        self.assertEqual(self.master.whenLeading().result, None)

    def test_stopping_cancels_the_release(self) -> None:
        """A master stopped while it releases its waiters releases no more of them."""
        from mesostw.master.master import RELEASE_BATCH

        fired: list[int] = []
        for number in range(RELEASE_BATCH + 1):
            self.master.whenLeading().addCallback(lambda _, n=number: fired.append(n))
        self.master.recover(RegistryState())
        self.master.stop()
        self.clock.advance(1)
        self.assertEqual(len(fired), RELEASE_BATCH)
