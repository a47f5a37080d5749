from twisted.trial import unittest

from tests.helpers.cluster import Cluster, RecordingScheduler, command_task
from mesostw.model import task as T


class SmokeTests(unittest.TestCase):
    def test_tasks_finish(self):
        cluster = Cluster()
        self.addCleanup(cluster.stop)
        scheduler = RecordingScheduler()
        scheduler.pending = [command_task("t1", "true"), command_task("t2", "false")]
        scheduler, driver = cluster.framework(scheduler=scheduler)
        print(scheduler.offers, scheduler.errors, [a.state for a in cluster.agents])
        self.assertEqual(scheduler.states("t1"), [T.RUNNING, T.FINISHED])
        self.assertEqual(scheduler.states("t2"), [T.RUNNING, T.FAILED])
