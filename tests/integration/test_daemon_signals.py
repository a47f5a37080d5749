"""Operators stop daemons with Ctrl-C or SIGTERM: the daemon exits with status 0, without a traceback,
whatever number of signals arrive, and its log holds no factory chatter."""

from __future__ import annotations

import os
import signal
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.helpers.processes import Daemon, ProcessCluster, free_port, get_json, wait_for

#: Lines a clean daemon log never holds.
NOISE = ("Traceback", "Unhandled Error", "ReactorNotRunning", "Starting factory", "Stopping factory")


class SignalTests(unittest.TestCase):
    timeout = 120

    def setUp(self) -> None:
        self.cluster = ProcessCluster(self, agents=0)  # a temporary directory, and every daemon stopped at the end

    def daemon(self, plugin: str, *args: str) -> Daemon:
        name = f"{plugin}-{len(self.cluster.agents)}"
        daemon = Daemon(plugin, list(args), os.path.join(self.cluster.base, f"{name}.log"), interruptible=True)
        self.cluster.agents.append(daemon)
        return daemon.start()

    def local(self) -> tuple[Daemon, str]:
        port = free_port()
        daemon = self.daemon("mesos-local", f"--port={port}", "--num_slaves=1", "--resources=cpus:1;mem:256",
                             f"--work_dir={os.path.join(self.cluster.base, f'local-{port}')}")
        return daemon, f"http://127.0.0.1:{port}"

    def agents_registered(self, url: str, count: int) -> defer.Deferred:
        return wait_for(lambda: get_json(f"{url}/master/state").addCallback(lambda s: s["activated_slaves"] == count),
                        30, what=f"{count} registered agent(s)")

    @defer.inlineCallbacks
    def assertExitsCleanly(self, daemon: Daemon, *signums: int) -> Any:
        """After ``signums`` (sent back to back), the daemon exits 0 and its log is free of noise."""
        for signum in signums:
            daemon.kill(signum)
        yield wait_for(lambda: not daemon.alive(), 30, what=f"{daemon.plugin} to exit")
        assert daemon.process is not None
        log = daemon.log()
        self.assertEqual(daemon.process.returncode, 0, log[-3000:])
        self.assertEqual([line for line in log.splitlines() if any(noise in line for noise in NOISE)], [])
        self.assertIn("shutting down", log)

    @defer.inlineCallbacks
    def test_local_ctrl_c(self) -> Any:
        """Ctrl-C (SIGINT) stops mesos-local: exit status 0, no traceback, no factory lines."""
        daemon, url = self.local()
        yield self.agents_registered(url, 1)
        yield self.assertExitsCleanly(daemon, signal.SIGINT)

    @defer.inlineCallbacks
    def test_local_signals_twice(self) -> Any:
        """SIGTERM then SIGINT (a supervisor, then an impatient operator) stop mesos-local once, cleanly."""
        daemon, url = self.local()
        yield self.agents_registered(url, 1)
        yield self.assertExitsCleanly(daemon, signal.SIGTERM, signal.SIGINT)

    @defer.inlineCallbacks
    def test_master_and_agent(self) -> Any:
        """mesos-slave stops cleanly on SIGTERM, mesos-master on SIGINT."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        master = self.daemon("mesos-master", f"--port={port}", f"--work_dir={os.path.join(self.cluster.base, 'm')}")
        agent = self.daemon("mesos-slave", f"--master=127.0.0.1:{port}", f"--port={free_port()}",
                            "--resources=cpus:1;mem:256", f"--work_dir={os.path.join(self.cluster.base, 'a')}")
        yield self.agents_registered(url, 1)
        yield self.assertExitsCleanly(agent, signal.SIGTERM)
        yield self.assertExitsCleanly(master, signal.SIGINT)
