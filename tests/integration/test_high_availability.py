"""Three masters elected through a real three-server ZooKeeper ensemble; failover keeps every task."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time

import psutil
from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from mesostw.model import task as T
from mesostw.model.info import FrameworkInfo
from mesostw.scheduler.pb import MesosSchedulerDriver
from tests.helpers.cluster import command_task
from tests.helpers.processes import MESOSTW, Daemon, environment, free_port, get_json, kill_processes_under, wait_for
from tests.helpers.zookeeper import AVAILABLE, ZooKeeperEnsemble
from tests.integration.test_core_cluster import LaunchingScheduler

SESSION = 3.0

if not AVAILABLE:
    raise RuntimeError("ZooKeeper is not installed: `make test` installs Debian's zookeeper package")


class HACluster:
    """An ensemble, masters contending in it, agents following the leader."""

    def __init__(self, testcase):
        self.base = os.path.realpath(tempfile.mkdtemp(prefix="mesostw-ha-"))
        self.zk = ZooKeeperEnsemble(3)
        self.masters: dict[int, Daemon] = {}
        self.agents: list[Daemon] = []
        testcase.addCleanup(self.stop)

    @property
    def url(self) -> str:
        return self.zk.url("/mesos")

    def start_master(self) -> int:
        port = free_port()
        self.masters[port] = Daemon("mesos-master", [
            f"--port={port}", f"--zk={self.url}", "--quorum=2", f"--zk_session_timeout={SESSION:g}secs",
            "--allocation_interval=0.2secs"], os.path.join(self.base, f"master-{port}.log")).start()
        return port

    def start_agent(self, index: int) -> Daemon:
        daemon = Daemon("mesos-slave", [f"--master={self.url}", f"--port={free_port()}",
                                        f"--work_dir={os.path.join(self.base, f'agent{index}')}",
                                        "--resources=cpus:4;mem:4096;disk:4096",
                                        f"--zk_session_timeout={SESSION:g}secs"],
                        os.path.join(self.base, f"agent{index}.log")).start()
        self.agents.append(daemon)
        return daemon

    def elected(self, port: int) -> defer.Deferred:
        d = get_json(f"http://127.0.0.1:{port}/metrics/snapshot")
        return d.addCallback(lambda m: m["master/elected"] == 1.0)

    @defer.inlineCallbacks
    def leader(self, exclude: set[int] = frozenset()) -> int | None:
        for port, daemon in self.masters.items():
            if port in exclude or not daemon.alive():
                continue
            try:
                if (yield self.elected(port)):
                    return port
            except Exception:  # noqa: BLE001 - a master not answering is not the leader
                continue
        return None

    def wait_leader(self, exclude: set[int] = frozenset(), timeout: float = 30) -> defer.Deferred:
        return wait_for(lambda: self.leader(exclude), timeout, interval=0.1, what="an elected master")

    def state(self, port: int) -> defer.Deferred:
        return get_json(f"http://127.0.0.1:{port}/master/state")

    def stop(self) -> None:
        for daemon in [*self.agents, *self.masters.values()]:
            daemon.kill(signal.SIGCONT)
            daemon.stop()
        kill_processes_under(self.base)
        self.zk.stop()
        if not os.environ.get("MESOSTW_KEEP_TEST_DIRS"):
            shutil.rmtree(self.base, ignore_errors=True)


def task_pids(base: str) -> dict[str, int]:
    """Task ID -> PID of the task's command, found by its sandbox (its working directory)."""
    pids = {}
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            cwd = proc.cwd()
            if not cwd.startswith(base) or proc.name() != "sleep":
                continue
        except psutil.Error:
            continue
        parts = cwd.split(os.sep)
        pids[parts[parts.index("executors") + 1]] = proc.pid
    return pids


class HighAvailabilityTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.cluster = HACluster(self)
        yield self.cluster.zk.start()

    def framework(self, scheduler):
        driver = MesosSchedulerDriver(scheduler, FrameworkInfo(user="root", name="ha", checkpoint=True,
                                                               failover_timeout=3600.0),
                                      self.cluster.url, reactor=reactor, backoff=0.2)
        self.addCleanup(lambda: driver.abort() and driver.stopped())
        driver.start()
        return driver

    @defer.inlineCallbacks
    def test_leader_failover_keeps_tasks_running(self):
        """Killing the leading master elects another; agents and the framework follow with the same tasks."""
        cluster = self.cluster
        for _ in range(3):
            cluster.start_master()
        leader = yield cluster.wait_leader()
        for index in range(2):
            cluster.start_agent(index)
        yield wait_for(lambda: cluster.state(leader).addCallback(lambda s: s["activated_slaves"] == 2), 30,
                       what="two agents on the leader")
        scheduler = LaunchingScheduler()
        ids = [f"long-{i}" for i in range(4)]
        scheduler.pending = [command_task(t, "sleep 600", "cpus:0.5;mem:32") for t in ids]
        driver = self.framework(scheduler)
        yield wait_for(lambda: all(T.RUNNING in scheduler.states(t) for t in ids), 60, what="tasks running")
        yield wait_for(lambda: len(task_pids(cluster.base)) == 4, 30, what="four task processes")
        before = task_pids(cluster.base)
        framework_id = scheduler.framework_id

        killed_at = time.monotonic()
        cluster.masters[leader].kill(signal.SIGKILL)
        new_leader = yield cluster.wait_leader(exclude={leader}, timeout=SESSION + 20)
        elected_after = time.monotonic() - killed_at

        def recovered(state):
            frameworks = {f["id"]: f for f in state["frameworks"]}
            framework = frameworks.get(framework_id)
            return (state["activated_slaves"] == 2 and framework is not None and framework["connected"]
                    and {t["id"] for t in framework["tasks"] if t["state"] == T.RUNNING} == set(ids))

        yield wait_for(lambda: cluster.state(new_leader).addCallback(recovered), 30,
                       what="agents and framework back with their tasks")
        recovered_after = time.monotonic() - killed_at
        self.assertEqual(task_pids(cluster.base), before)

        seen = len(scheduler.updates)
        driver.reconcileTasks([])
        yield wait_for(lambda: len(scheduler.updates) >= seen + 4, 30, what="reconciliation")
        self.assertEqual({u.task_id: u.state for u in scheduler.updates[seen:]}, {t: T.RUNNING for t in ids})

        scheduler.pending = [command_task("after-failover", "true")]
        driver.reviveOffers()
        yield wait_for(lambda: scheduler.states("after-failover")[-1:] == [T.FINISHED], 60,
                       what="a new task after failover")
        print(f"\nfailover: new leader elected {elected_after:.2f}s after kill -9, agents and framework "
              f"re-registered with all tasks {recovered_after:.2f}s after (session timeout {SESSION:g}s)")

    @defer.inlineCallbacks
    def test_losing_one_zookeeper_server_changes_nothing(self):
        """With one ZooKeeper server of three killed, the same master leads and tasks still run."""
        cluster = self.cluster
        ports = [cluster.start_master() for _ in range(2)]
        leader = yield cluster.wait_leader()
        cluster.start_agent(0)
        yield wait_for(lambda: cluster.state(leader).addCallback(lambda s: s["activated_slaves"] == 1), 30,
                       what="the agent")
        victim = yield threads.deferToThread(cluster.zk.leader)
        victim.stop()
        scheduler = LaunchingScheduler()
        scheduler.pending = [command_task("during-outage", "true")]
        self.framework(scheduler)
        yield wait_for(lambda: scheduler.states("during-outage")[-1:] == [T.FINISHED], 60,
                       what="a task with a ZooKeeper server down")
        still = yield cluster.leader()
        self.assertEqual(still, leader)
        self.assertTrue(all(cluster.masters[p].alive() for p in ports))

    @defer.inlineCallbacks
    def test_leader_that_loses_its_session_steps_down(self):
        """A leader frozen past its session timeout is replaced, and exits when it wakes."""
        cluster = self.cluster
        for _ in range(2):
            cluster.start_master()
        leader = yield cluster.wait_leader()
        frozen = cluster.masters[leader]
        frozen.kill(signal.SIGSTOP)
        new_leader = yield cluster.wait_leader(exclude={leader}, timeout=SESSION + 20)
        self.assertNotEqual(new_leader, leader)
        frozen.kill(signal.SIGCONT)
        yield wait_for(lambda: not frozen.alive(), 30, what="the deposed leader to exit")
        self.assertEqual(frozen.process.returncode, 1)
        self.assertIn("aborting", frozen.log())
        self.assertEqual((yield cluster.leader()), new_leader)

    @defer.inlineCallbacks
    def test_agent_started_before_any_master_registers_once_one_is_elected(self):
        """An agent with --master=zk://... waits for an election, then registers."""
        cluster = self.cluster
        agent = cluster.start_agent(0)
        yield wait_for(lambda: "No master is leading" in agent.log(), 30, what="the agent to watch the election")
        self.assertTrue(agent.alive())
        port = cluster.start_master()
        yield cluster.wait_leader()
        yield wait_for(lambda: cluster.state(port).addCallback(lambda s: s["activated_slaves"] == 1), 30,
                       what="the agent to register")

    @defer.inlineCallbacks
    def test_execute_follows_the_leader_through_a_failover(self):
        """`mesostw execute --master=zk://...` subscribes again with the new leader after the old one is
        killed: its task, started before the failover and ending after it, is reported, and it exits 0."""
        cluster = self.cluster
        for _ in range(2):
            cluster.start_master()
        leader = yield cluster.wait_leader()
        cluster.start_agent(0)
        yield wait_for(lambda: cluster.state(leader).addCallback(lambda s: s["activated_slaves"] == 1), 30,
                       what="the agent")
        go = os.path.join(cluster.base, "go")
        output = os.path.join(cluster.base, "execute.out")
        with open(output, "wb") as out:
            command = subprocess.Popen([MESOSTW, "execute", f"--master={cluster.url}", "--name", "waiter",
                                        "--command", f"while [ ! -e {go} ]; do sleep 0.1; done"],
                                       stdout=out, stderr=subprocess.STDOUT, env=environment())

        def stop_command():
            if command.poll() is None:
                command.kill()
            command.wait()

        self.addCleanup(stop_command)

        def printed(text):
            with open(output, errors="replace") as f:
                return text in f.read()

        yield wait_for(lambda: printed("TASK_RUNNING"), 60, what="the task running")
        cluster.masters[leader].kill(signal.SIGKILL)
        new_leader = yield cluster.wait_leader(exclude={leader}, timeout=SESSION + 20)

        def subscribed(state):
            return any(f["name"] == "mesostw-execute" and f["connected"] for f in state["frameworks"])

        yield wait_for(lambda: cluster.state(new_leader).addCallback(subscribed), 30,
                       what="mesostw execute subscribed with the new leader")
        open(go, "w").close()
        yield wait_for(lambda: command.poll() is not None, 30, what="mesostw execute to exit")
        self.assertTrue(printed("Received status update TASK_FINISHED for task 'waiter'"))
        self.assertEqual(command.returncode, 0)
