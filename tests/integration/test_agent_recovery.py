"""Agents that come back: an agent killed with SIGKILL and restarted on its --work_dir recovers its
executors and tasks (Mesos's agent recovery), and agents find a restarted master at once. The tasks'
executors are the native command executor (whose reconnection and re-sent updates this exercises).

Real twistd processes on loopback, real executors; the frameworks are PB drivers in this process.
"""

from __future__ import annotations

import os
import signal
import time

import psutil
from twisted.internet import defer, reactor
from twisted.trial import unittest

from mesostw.model import task as T
from mesostw.model.info import FrameworkInfo
from mesostw.scheduler.pb import MesosSchedulerDriver
from tests.helpers.cgroups import remove_root, require_cgroups, unique_root
from tests.helpers.cluster import command_task
from tests.helpers.processes import Daemon, ProcessCluster, free_port, wait_for
from tests.integration.test_core_cluster import LaunchingScheduler

PARTITION_AWARE = frozenset({"PARTITION_AWARE"})


def task_processes(base: str, name: str = "sleep") -> dict[str, int]:
    """Task ID -> PID of its command (a process called ``name`` whose working directory is its sandbox)."""
    pids = {}
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            if proc.info["name"] != name:
                continue
            cwd = proc.cwd()
        except psutil.Error:
            continue
        if not cwd.startswith(base + os.sep) or "executors" not in cwd:
            continue
        parts = cwd.split(os.sep)
        pids[parts[parts.index("executors") + 1]] = proc.pid
    return pids


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class RecoveryCase(unittest.TestCase):
    timeout = 180
    agent_args: list[str] = []

    @defer.inlineCallbacks
    def setUp(self):
        self.cluster = yield ProcessCluster(self, agents=1, agent_args=self.agent_args,
                                            master_args=["--allocation_interval=0.2secs"]).start()
        self.agent = self.cluster.agents[0]

    def framework(self, scheduler, name, **info):
        driver = MesosSchedulerDriver(scheduler, FrameworkInfo(user="root", name=name, **info),
                                      self.cluster.master_address, reactor=reactor, backoff=0.2)
        self.addCleanup(lambda: driver.abort() and driver.stopped())
        driver.start()
        return driver

    def agents(self):
        return self.cluster.state().addCallback(lambda s: [(a["id"], a["active"]) for a in s["slaves"]])

    def restart_agent(self, *extra: str) -> None:
        self.agent.kill(signal.SIGKILL)
        self.agent.process.wait()
        self.agent.args = [a for a in self.agent.args if not a.startswith("--recover=")] + list(extra)
        self.agent.start()

    def assertNoTracebacks(self, daemon: Daemon) -> None:
        log = daemon.log()
        self.assertNotIn("Traceback", log)
        self.assertNotIn("Unhandled error", log)


class AgentRestartTests(RecoveryCase):
    @defer.inlineCallbacks
    def test_restart_keeps_checkpointed_tasks_running(self):
        """After kill -9 and a restart on the same --work_dir the agent keeps its ID (listed once), its
        checkpointing framework's tasks run on in the same processes with no terminal or unreachable update,
        an update made while it was down arrives, its executors obey again; a non-checkpointing framework's
        task is killed; and the master logs no traceback for the agent it lost."""
        flag = os.path.join(self.cluster.base, "finish-now")
        keeper = LaunchingScheduler()
        ids = [f"keep-{i}" for i in range(3)]
        keeper.pending = [command_task(t, "sleep 600", "cpus:0.2;mem:32") for t in ids]
        keeper.pending.append(command_task("finisher", f"while [ ! -e {flag} ]; do sleep 0.1; done; exit 0",
                                           "cpus:0.2;mem:32"))
        keeper_driver = self.framework(keeper, "keeper", checkpoint=True, capabilities=PARTITION_AWARE,
                                       failover_timeout=600.0)
        plain = LaunchingScheduler()
        plain.pending = [command_task("plain", "sleep 600", "cpus:0.2;mem:32")]
        self.framework(plain, "plain")
        yield wait_for(lambda: all(T.RUNNING in keeper.states(t) for t in [*ids, "finisher"])
                       and T.RUNNING in plain.states("plain"), 60, what="tasks running")
        yield wait_for(lambda: len(task_processes(self.cluster.base)) == 4, 30, what="four sleeping tasks")
        before = task_processes(self.cluster.base)
        [(agent_id, _)] = yield self.agents()
        seen = len(keeper.updates)
        # plain command tasks: the native command executor (the agent's default when it is built)
        executors = yield self.cluster.command_executors()
        self.assertEqual(executors, {"native": 5, "python": 0})

        self.restart_agent()
        restarted = time.monotonic()
        open(flag, "w").close()  # the task ends while its agent is away: its executor holds the update
        yield wait_for(lambda: self.agents().addCallback(lambda a: a == [(agent_id, True)]), 60,
                       what="the agent back under its ID")
        back_after = time.monotonic() - restarted
        yield wait_for(lambda: T.FINISHED in keeper.states("finisher"), 30, what="the update held while away")
        yield wait_for(lambda: not alive(before["plain"]), 30, what="the non-checkpointing task killed")

        after = keeper.updates[seen:]
        self.assertEqual([(u.task_id, u.state) for u in after if u.task_id != "finisher"], [])
        self.assertEqual({t: before[t] for t in ids}, {t: p for t, p in task_processes(self.cluster.base).items()
                                                       if t in ids})
        self.assertTrue(all(alive(before[t]) for t in ids))
        self.assertEqual(plain.states("plain")[-1], T.LOST)

        keeper_driver.killTask(ids[0])
        yield wait_for(lambda: T.KILLED in keeper.states(ids[0]), 30, what="a recovered task killed")
        self.assertFalse(alive(before[ids[0]]))
        state = yield self.cluster.state()
        self.assertEqual(len(state["slaves"]), 1)
        self.assertNoTracebacks(self.cluster.master)
        print(f"\nagent restarted with 4 running tasks: back under its ID {back_after:.2f}s after the restart")

    @defer.inlineCallbacks
    def test_recover_cleanup_kills_everything(self):
        """--recover=cleanup kills the executors an earlier run left, reports their tasks gone (the agent
        restarted), and keeps the agent's ID."""
        keeper = LaunchingScheduler()
        keeper.pending = [command_task("doomed", "sleep 600", "cpus:0.2;mem:32")]
        self.framework(keeper, "keeper", checkpoint=True, capabilities=PARTITION_AWARE, failover_timeout=600.0)
        yield wait_for(lambda: T.RUNNING in keeper.states("doomed"), 60, what="the task running")
        yield wait_for(lambda: "doomed" in task_processes(self.cluster.base), 30, what="its process")
        pid = task_processes(self.cluster.base)["doomed"]
        [(agent_id, _)] = yield self.agents()
        self.restart_agent("--recover=cleanup")
        yield wait_for(lambda: keeper.states("doomed")[-1] == T.GONE, 60, what="the task gone")
        final = [u for u in keeper.updates if u.task_id == "doomed"][-1]
        self.assertEqual(final.reason, T.REASON_AGENT_RESTARTED)
        self.assertFalse(alive(pid))
        self.assertEqual((yield self.agents()), [(agent_id, True)])


class DamagedCheckpointTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def test_strict_refuses_a_damaged_checkpoint_and_lenient_starts(self):
        """With --strict (the default) an agent whose checkpoint cannot be read whole exits 1 saying what is
        wrong; with --strict=false it recovers what it can and registers."""
        from mesostw.store import Put
        from mesostw.store.files import FileStateStore

        cluster = yield ProcessCluster(self, agents=0).start()
        daemon = cluster.agent_daemon(0)
        work_dir = next(a.split("=", 1)[1] for a in daemon.args if a.startswith("--work_dir="))
        store = FileStateStore(os.path.join(work_dir, "meta", "checkpoint"))
        self.successResultOf(store.commit([Put("containers/garbled", b"{not json")]))
        self.successResultOf(store.close())
        cluster.agents.append(daemon.start())
        yield wait_for(lambda: not daemon.alive(), 60, what="the strict agent to exit")
        self.assertEqual(daemon.process.returncode, 1)
        self.assertIn("cannot recover the checkpoint whole: containers/garbled", daemon.log())
        daemon.args.append("--strict=false")
        daemon.start()
        yield cluster.wait_agents(1)
        self.assertIn("skipped: containers/garbled", daemon.log())


class CgroupsAgentRestartTests(AgentRestartTests):
    """The same, with every executor in cgroups of its own: recovery takes the groups back too."""

    def setUp(self):
        require_cgroups()
        root = unique_root()
        self.addCleanup(remove_root, root)
        self.agent_args = ["--isolation=cgroups", f"--cgroups_root={root}"]
        self.cgroups_root = root
        return super().setUp()

    @defer.inlineCallbacks
    def test_orphan_cgroups_are_destroyed(self):
        """Cgroups under the agent's root that no checkpointed container owns (a crash between creating them
        and checkpointing) are destroyed when the agent restarts, with whatever runs in them."""
        from mesostw.agent import cgroups as cg

        groups = cg.detect(self.cgroups_root)
        files = groups.create("orphan")
        import subprocess

        def join():
            for procs in files:
                with open(procs, "w") as f:
                    f.write(str(os.getpid()))

        stray = subprocess.Popen(["sleep", "4646"], preexec_fn=join)
        self.addCleanup(stray.wait)
        self.restart_agent()
        yield wait_for(lambda: stray.poll() is not None, 30, what="the orphan's process killed")
        yield wait_for(lambda: groups.names() == [], 30, what="the orphan's groups removed")


class MasterRestartTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def test_agent_is_back_at_once_after_a_master_restart(self):
        """An agent whose master was down for a while re-registers within a few seconds of the master's
        restart, however long its reconnection attempts went unanswered (no backoff grows while
        nobody listens)."""
        cluster = ProcessCluster(self, agents=1, agent_args=["--registration_backoff_factor=2secs"])
        cluster.master.args.append(f"--work_dir={os.path.join(cluster.base, 'master')}")
        yield cluster.start()
        agent = cluster.agents[0]
        cluster.master.kill(signal.SIGKILL)
        cluster.master.process.wait()
        # Long enough that a backoff doubling on every refused connection would have reached 16-32 s.
        yield wait_for(lambda: agent.log().count("cannot connect") >= 5, 60, what="refused reconnections")
        cluster.master.start()
        yield wait_for(lambda: cluster.state(), 30, what="the master answering")
        up = time.monotonic()
        yield cluster.wait_agents(1, timeout=6.0)
        print(f"\nagent re-registered {time.monotonic() - up:.2f}s after the restarted master answered")


__all__ = ["RecoveryCase", "alive", "free_port", "task_processes"]
