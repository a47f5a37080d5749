"""An agent cut off its master by a network partition (namespaces, a bridge, iptables), then healed.

The master and the agent are real daemons, each in a network namespace of its own (see
tests/helpers/netns.py for the safety rules this follows); the partition drops packets both ways,
silently, as a broken switch would. Mesos 1.1+'s semantics: past its ping timeouts the agent is
unreachable (TASK_UNREACHABLE for partition-aware frameworks, TASK_LOST otherwise); when it comes
back, partition-aware tasks go on (TASK_RUNNING again) and the others are killed.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import psutil
from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from mesostw.model import task as T
from mesostw.model.info import FrameworkInfo
from mesostw.scheduler.pb import MesosSchedulerDriver
from tests.helpers.cluster import command_task
from tests.helpers.netns import NamespacedReactor, Network, get_json
from tests.helpers.processes import Daemon, kill_processes_under, wait_for
from tests.integration.test_core_cluster import LaunchingScheduler

PING = ["--agent_ping_timeout=0.5secs", "--max_agent_ping_timeouts=4"]


def sleeper(marker: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "name", "cmdline", "status"]):
        try:
            if (proc.info["name"] == "sleep" and proc.info["status"] != psutil.STATUS_ZOMBIE
                    and marker in " ".join(proc.info["cmdline"] or ())):
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


class PartitionTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.base = os.path.realpath(tempfile.mkdtemp(prefix="mesostw-partition-"))
        self.network = Network()
        self.addCleanup(self.stop)
        self.network.start()
        self.master_ip = self.network.host("m", 1)
        self.agent_ip = self.network.host("a", 2)
        self.master = Daemon("mesos-master", ["--ip=" + self.master_ip, "--port=5050", "--allocation_interval=0.2secs",
                                              *PING], os.path.join(self.base, "master.log"),
                             prefix=self.network.exec_prefix("m")).start()
        self.agent = Daemon("mesos-slave", ["--ip=" + self.agent_ip, "--port=5051", f"--master={self.master_ip}:5050",
                                            f"--work_dir={os.path.join(self.base, 'agent')}",
                                            "--resources=cpus:2;mem:1024;disk:1024", *PING],
                            os.path.join(self.base, "agent.log"), prefix=self.network.exec_prefix("a")).start()
        yield wait_for(lambda: self.agents_active() == [True], 60, what="the agent registered")

    def stop(self):
        for daemon in (getattr(self, "agent", None), getattr(self, "master", None)):
            if daemon is not None:
                daemon.stop()
        kill_processes_under(self.base)
        self.network.stop()
        if not os.environ.get("MESOSTW_KEEP_TEST_DIRS"):
            shutil.rmtree(self.base, ignore_errors=True)

    def state(self):
        return get_json(self.network.hosts["m"], self.master_ip, 5050, "/master/state")

    def agents_active(self):
        return [a["active"] for a in self.state()["slaves"]]

    def framework(self, scheduler, name, **info):
        inside = NamespacedReactor(reactor, self.network.hosts["m"])  # the framework's host is the master's
        driver = MesosSchedulerDriver(scheduler, FrameworkInfo(user="root", name=name, checkpoint=True,
                                                               failover_timeout=600.0, **info),
                                      f"{self.master_ip}:5050", reactor=inside, backoff=0.2)
        self.addCleanup(lambda: driver.abort() and driver.stopped())
        driver.start()
        return driver

    @defer.inlineCallbacks
    def test_partitioned_agent_comes_back_with_its_partition_aware_tasks(self):
        """Cut off past its ping timeouts, the agent's partition-aware task is TASK_UNREACHABLE and the other
        TASK_LOST; once healed the agent re-registers, the partition-aware task is TASK_RUNNING again in the
        same process, and the other task's process is killed."""
        aware, plain = LaunchingScheduler(), LaunchingScheduler()
        aware.pending = [command_task("aware", "sleep 5151", "cpus:0.2;mem:32")]
        plain.pending = [command_task("plain", "sleep 5252", "cpus:0.2;mem:32")]
        self.framework(aware, "aware", capabilities=frozenset({"PARTITION_AWARE"}))
        self.framework(plain, "plain")
        yield wait_for(lambda: T.RUNNING in aware.states("aware") and T.RUNNING in plain.states("plain"), 60,
                       what="both tasks running")
        yield wait_for(lambda: sleeper("sleep 5151") and sleeper("sleep 5252"), 30, what="their processes")
        [aware_pid], [plain_pid] = sleeper("sleep 5151"), sleeper("sleep 5252")

        yield threads.deferToThread(self.network.cut, "a", self.master_ip)
        yield wait_for(lambda: T.UNREACHABLE in aware.states("aware") and T.LOST in plain.states("plain"), 60,
                       what="the agent's tasks unreachable and lost")
        self.assertEqual([u.reason for u in aware.updates if u.state == T.UNREACHABLE], [T.REASON_AGENT_REMOVED])

        yield threads.deferToThread(self.network.heal, "a")
        yield wait_for(lambda: self.agents_active() == [True], 90, what="the agent back after healing")
        yield wait_for(lambda: aware.states("aware")[-1] == T.RUNNING, 30, what="the partition-aware task running")
        yield wait_for(lambda: not sleeper("sleep 5252"), 30, what="the other task killed")
        self.assertEqual(sleeper("sleep 5151"), [aware_pid])
        self.assertFalse(psutil.pid_exists(plain_pid) and psutil.Process(plain_pid).status() != psutil.STATUS_ZOMBIE)
        state = self.state()
        [framework] = [f for f in state["frameworks"] if f["name"] == "aware"]
        self.assertEqual([(t["id"], t["state"]) for t in framework["tasks"]], [("aware", T.RUNNING)])

    @defer.inlineCallbacks
    def test_agent_restarted_during_a_partition_recovers_its_tasks_once_healed(self):
        """An agent killed with SIGKILL and restarted while cut off keeps its executors; once the partition
        heals it re-registers under the same ID and its partition-aware task is TASK_RUNNING again, in the
        same process."""
        aware = LaunchingScheduler()
        aware.pending = [command_task("survivor", "sleep 5353", "cpus:0.2;mem:32")]
        self.framework(aware, "aware", capabilities=frozenset({"PARTITION_AWARE"}))
        yield wait_for(lambda: T.RUNNING in aware.states("survivor"), 60, what="the task running")
        yield wait_for(lambda: sleeper("sleep 5353"), 30, what="its process")
        [pid] = sleeper("sleep 5353")
        [agent_id] = [a["id"] for a in self.state()["slaves"]]

        yield threads.deferToThread(self.network.cut, "a", self.master_ip)
        yield wait_for(lambda: T.UNREACHABLE in aware.states("survivor"), 60, what="the task unreachable")
        self.agent.kill()
        self.agent.process.wait()
        self.agent.start()
        yield wait_for(lambda: get_json(self.network.hosts["a"], self.agent_ip, 5051, "/state"), 60,
                       what="the restarted agent answering")
        yield threads.deferToThread(self.network.heal, "a")
        yield wait_for(lambda: [(a["id"], a["active"]) for a in self.state()["slaves"]] == [(agent_id, True)], 90,
                       what="the agent back under its ID")
        yield wait_for(lambda: aware.states("survivor")[-1] == T.RUNNING, 30, what="the task running again")
        self.assertEqual(sleeper("sleep 5353"), [pid])
