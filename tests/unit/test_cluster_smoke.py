"""The in-process cluster itself, over direct links and over PB: a framework's tasks run on fake executors and end
as their commands say."""

from mesostw.model import task as T
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task
from tests.helpers.pbcluster import PBCluster


class SmokeTests(ClockTestCase):
    cluster_class: type[Cluster] = Cluster

    def test_tasks_finish(self) -> None:
        """``true`` runs and finishes, ``false`` runs and fails; nothing is left on the clock once stopped."""
        cluster = self.cluster_class()
        self.useClock(cluster.clock)
        self.addCleanup(cluster.stop)
        scheduler = RecordingScheduler()
        scheduler.pending = [command_task("t1", "true"), command_task("t2", "false")]
        scheduler, driver = cluster.framework(scheduler=scheduler)
        self.assertEqual(scheduler.errors, [])
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.FINISHED])
        self.assertEqual(scheduler.states("t2"), [T.RUNNING, T.FAILED])


class PBSmokeTests(SmokeTests):
    cluster_class = PBCluster
