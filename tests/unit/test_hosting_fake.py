"""The test host for bundled frameworks keeps to IFrameworkHost, and drivers are services."""

from __future__ import annotations

from twisted.application import service
from zope.interface.verify import verifyObject

from mesostw.interfaces import IFrameworkHost, ISchedulerDriver, IStateStore
from mesostw.model.info import FrameworkInfo
from mesostw.scheduler import driver as D
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import Cluster, RecordingScheduler
from tests.helpers.hosting import ClusterHost


class ClusterHostTests(ClockTestCase):
    def setUp(self) -> None:
        self.cluster = Cluster(agents=1)
        self.useClock(self.cluster.clock)
        self.addCleanup(self.cluster.stop)
        self.host = ClusterHost(self.cluster, "probe", principal="probe-principal")

    def test_provides_the_interfaces(self) -> None:
        """The host, its store and the drivers it makes provide their interfaces."""
        verifyObject(IFrameworkHost, self.host)
        verifyObject(IStateStore, self.host.store)
        verifyObject(ISchedulerDriver, self.host.driver(RecordingScheduler(), FrameworkInfo(user="u", name="p")))

    def test_a_framework_may_ask_for_explicit_acknowledgements(self) -> None:
        """Updates are acknowledged by the driver unless the framework asks to acknowledge them itself."""
        info = FrameworkInfo(user="u", name="p")
        self.assertTrue(self.host.driver(RecordingScheduler(), info).implicit_acknowledgements)
        driver = self.host.driver(RecordingScheduler(), info, implicit_acknowledgements=False)
        self.assertFalse(driver.implicit_acknowledgements)

    def test_driver_as_a_child_service_subscribes_and_fails_over_on_stop(self) -> None:
        """Starting the parent subscribes the driver; stopping it leaves the framework to fail over."""
        scheduler = RecordingScheduler()
        parent = service.MultiService()
        driver = self.host.driver(scheduler, FrameworkInfo(user="u", name="p", failover_timeout=60))
        driver.setServiceParent(parent)
        parent.startService()
        self.cluster.settle()
        self.assertEqual(driver.status, D.RUNNING)
        framework = self.cluster.master.frameworks[driver.framework_id]
        self.assertEqual(framework.info.principal, "probe-principal")
        self.assertTrue(scheduler.offers)
        parent.stopService()
        self.cluster.settle()
        self.assertEqual(driver.status, D.STOPPED)
        self.assertIn(driver.framework_id, self.cluster.master.frameworks, "stopping fails over, not tears down")
        self.assertFalse(self.cluster.master.frameworks[driver.framework_id].connected)
