"""The PB scheduler driver is an ordinary Twisted service: its detector and connector are its children."""

from __future__ import annotations

from twisted.application import service
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest

from mesostw.model.info import FrameworkInfo
from mesostw.scheduler import driver as D
from mesostw.scheduler.pb import MesosSchedulerDriver
from tests.helpers.cluster import RecordingScheduler


class PBDriverServiceTests(unittest.TestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.scheduler = RecordingScheduler()
        self.driver = MesosSchedulerDriver(self.scheduler, FrameworkInfo(user="nobody", name="svc"), "127.0.0.1:5050",
                                           reactor=self.reactor)

    def test_children(self) -> None:
        """The detector and the connector are named children of the driver."""
        self.assertEqual(sorted(child.name for child in self.driver), ["detector", "scheduler"])
        self.assertIs(self.driver.getServiceNamed("scheduler"), self.driver.connector)

    def test_starts_and_stops_with_its_parent(self) -> None:
        """As a child service it connects when its parent starts and fails over when it stops; the stop
        fires once the connection is let go, and leaves no timer behind."""
        parent = service.MultiService()
        self.driver.setServiceParent(parent)
        parent.startService()
        self.assertEqual(self.driver.status, D.RUNNING)
        self.assertTrue(all(child.running for child in self.driver))
        self.assertEqual([(host, port) for host, port, *_ in self.reactor.tcpClients], [("127.0.0.1", 5050)])
        stopped: list[object] = []
        parent.stopService().addCallback(stopped.append)
        self.assertEqual(len(stopped), 1)
        self.assertEqual(self.driver.status, D.STOPPED)
        self.assertFalse(self.driver.running or any(child.running for child in self.driver))
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_start_is_start_service(self) -> None:
        """start() outside a service tree starts the children too; stop() stops them at once."""
        self.driver.start()
        self.assertTrue(self.driver.running and all(child.running for child in self.driver))
        self.driver.stop()
        self.assertFalse(self.driver.running or any(child.running for child in self.driver))
        self.assertEqual(self.successResultOf(self.driver.join()), D.STOPPED)
        self.successResultOf(self.driver.stopped())

    def test_error_from_master_aborts_and_stops(self) -> None:
        """An ERROR event aborts the driver and stops its service there and then, not on a later turn."""
        self.driver.startService()
        self.driver.handle_events([{"type": "ERROR", "error": {"message": "Framework failed over"}}])
        self.assertEqual(self.scheduler.errors, ["Framework failed over"])
        self.assertEqual(self.driver.status, D.ABORTED)
        self.assertFalse(self.driver.running or any(child.running for child in self.driver))
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.successResultOf(self.driver.stopService())


def launch(task_id: str, payload: str = "") -> dict:
    return {"name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": "S1"},
            "resources": [], "command": {"value": "true", "environment": {"variables": [
                {"name": "PAD", "value": payload}]}}}


class UnsentLaunchTests(unittest.TestCase):
    """Launches that never leave for the master are reported lost, as Mesos's driver reports them."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.scheduler = RecordingScheduler()
        info = FrameworkInfo(user="nobody", name="svc", id="F1")
        self.driver = MesosSchedulerDriver(self.scheduler, info, "127.0.0.1:5050", reactor=self.reactor)
        self.driver.startService()
        self.addCleanup(self.driver.stopService)

    def test_launching_while_disconnected_reports_the_tasks_lost(self) -> None:
        """Without a connection the launch is dropped (offers do not survive one) and each of its tasks
        comes back as TASK_LOST from the master, reason master disconnected, on a later turn."""
        self.driver.launchTasks(["O1"], [launch("t1"), launch("t2")])
        self.assertEqual(self.scheduler.updates, [])
        self.reactor.advance(0)
        self.assertEqual([(s.task_id, s.state, s.source, s.reason, s.agent_id) for s in self.scheduler.updates],
                         [(t, "TASK_LOST", "SOURCE_MASTER", "REASON_MASTER_DISCONNECTED", "S1") for t in ("t1", "t2")])
        self.assertEqual(self.scheduler.updates[0].message, "Master disconnected")
        self.driver.declineOffer("O2")
        self.driver.reviveOffers()
        self.reactor.advance(0)
        self.assertEqual(len(self.scheduler.updates), 2, "only launches are reported")

    def test_a_call_the_transport_refuses_at_once_is_reported_lost_and_the_rest_still_goes(self) -> None:
        """A payload the transport refuses before sending anything (Banana cannot encode it) is reported
        lost, task by task; the calls batched in other payloads are sent. Large payloads go in pieces."""
        from twisted.spread.banana import BananaError

        from mesostw.wire.pb import MAX_PAYLOAD, Batcher, decode

        sent: list[list[dict]] = []

        def send(payload: bytes | list[bytes]) -> None:
            whole = b"".join(payload) if isinstance(payload, list) else payload
            if b'"O1"' in whole:
                raise BananaError("cannot encode")
            sent.append(decode(payload))

        self.driver._batch = Batcher(self.reactor, send, self.driver._unsent)
        self.driver.launchTasks(["O1"], [launch(f"lost{n}", "x" * 2000) for n in range(400)])
        self.driver.launchTasks(["O2"], [launch(f"big{n}", "x" * 2000) for n in range(400)])
        self.driver.reviveOffers()
        self.reactor.advance(0)
        calls = [call for payload in sent for call in payload]
        self.assertEqual([c["type"] for c in calls], ["ACCEPT", "REVIVE"])
        self.assertEqual(calls[0]["accept"]["offer_ids"], [{"value": "O2"}])
        self.assertGreater(len(str(calls[0])), MAX_PAYLOAD, "a payload over the limit went in pieces")
        self.reactor.advance(0)
        self.assertEqual(sorted(s.task_id for s in self.scheduler.updates), sorted(f"lost{n}" for n in range(400)))
        self.assertTrue(all(s.state == "TASK_LOST" and s.message == "cannot encode" for s in self.scheduler.updates))
