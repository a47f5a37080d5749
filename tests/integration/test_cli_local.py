"""The README's path: ``twistd mesos-local``, then the ``mesostw`` command against it."""

from __future__ import annotations

import os
import subprocess

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.helpers.processes import MESOSTW, Daemon, ProcessCluster, environment, free_port, get_json, wait_for


class LocalClusterCLITests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        holder = ProcessCluster(self, agents=0)  # for its temporary directory and cleanup
        self.base = holder.base
        self.port = free_port()
        self.master = f"127.0.0.1:{self.port}"
        # mesos-local hosts every installed framework: on free ports here, not on 4400 and 8080.
        self.local = Daemon("mesos-local", [f"--port={self.port}", "--num_slaves=2", "--resources=cpus:2;mem:1024",
                                            f"--work_dir={os.path.join(self.base, 'local')}"],
                            os.path.join(self.base, "local.log"),
                            env={"MESOS_CRON_HTTP_PORT": "0", "MESOS_SERVICE_HTTP_PORT": "0"}).start()
        holder.agents.append(self.local)
        yield wait_for(lambda: get_json(f"http://{self.master}/master/state").addCallback(
            lambda s: s["activated_slaves"] == 2), 30, what="mesos-local's two agents")

    def mesostw(self, *args: str) -> defer.Deferred:
        return threads.deferToThread(subprocess.run, [MESOSTW, *args, f"--master={self.master}"],
                                     capture_output=True, text=True, timeout=60, env=environment())

    @defer.inlineCallbacks
    def test_execute_cat_ps(self):
        """mesostw execute runs a task to TASK_FINISHED, cat shows its output, ps lists it."""
        done = yield self.mesostw("execute", "--name=hello", "--command=echo hello from $MESOS_EXECUTOR_ID")
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn("TASK_RUNNING", done.stdout)
        self.assertIn("TASK_FINISHED", done.stdout)
        cat = yield self.mesostw("cat", "hello")
        self.assertEqual((cat.returncode, cat.stdout), (0, "hello from hello\n"), cat.stderr)
        ps = yield self.mesostw("ps", "--all")
        self.assertIn("hello", ps.stdout)
        self.assertIn("TASK_FINISHED", ps.stdout)

    @defer.inlineCallbacks
    def test_execute_exit_status_follows_the_task(self):
        """A failing command makes mesostw execute exit 1, naming TASK_FAILED and the status."""
        done = yield self.mesostw("execute", "--name=fails", "--command=exit 7")
        self.assertEqual(done.returncode, 1)
        self.assertIn("TASK_FAILED", done.stdout)
        self.assertIn("status 7", done.stdout)

    @defer.inlineCallbacks
    def test_unreachable_master_is_a_clear_error(self):
        """The CLI reports an unreachable master in one line and exits non-zero."""
        result = yield threads.deferToThread(subprocess.run, [MESOSTW, "state", f"--master=127.0.0.1:{free_port()}"],
                                             capture_output=True, text=True, timeout=60, env=environment())
        self.assertEqual(result.returncode, 1)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
        self.assertIn("cannot reach", result.stderr)
