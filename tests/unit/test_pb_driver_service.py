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
