"""Task launch throughput: a master and K agents as real processes, N trivial tasks.

Measures tasks/second from submission of the first task to the acknowledged
TASK_FINISHED of the last, and, in the same run, how fast this machine spawns
and reaps the same N processes (``/bin/sh -c true``) directly, just before and
just after the cluster's run (their mean: the machine's other load changes). The
ratio of the two says how much of the raw rate the cluster keeps.

Each agent advertises what this machine has (its CPUs and memory), so that N
tasks do not fit in one offer, and the framework spreads what it launches over
the offers it holds: the tasks land on every agent. The CPU each kind of
process spent per task (master, agents, their launchers, executors with their
tasks, the framework) says where the time goes; so do the page faults per task of the agents, their
launchers and the executors (a forked executor's cost is mostly pages copied on write).

    python bench/launch_throughput.py --tasks 1000 --agents 2 [--groups K] [--isolation cgroups] [--work-dir DIR]
        [--native-command-executor false]

The last line names the command executor that ran the tasks (``executor=native``, ``python``, or
both joined by ``+``), as the agents count them (``slave/command_executors_*`` in their metrics).

With ``--groups K`` the tasks go as K task groups (``LAUNCH_GROUP``), each run by one default
executor, as Mesos runs many small tasks: one executor process per group instead of per task.

The agents' work directories (sandboxes, checkpoints) go under ``--work-dir``: by default a RAM
disk (``/dev/shm``) when there is one, as the raw spawns touch no disk either; a shared disk's
metadata latency (each sandbox creates six inodes) is measured by pointing it at that disk.
The last line names the file system (``work_fs=``).

With ``--isolation cgroups`` every task runs in cgroups of its own (the agents share one
``--cgroups_root``, removed afterwards), to measure what containment costs on the launch path.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import psutil  # noqa: E402
from twisted.internet import defer, task  # noqa: E402

from mesostw.model import task as T  # noqa: E402
from mesostw.model.info import FrameworkInfo  # noqa: E402
from mesostw.model.resources import Resources  # noqa: E402
from mesostw.scheduler.driver import Scheduler  # noqa: E402
from mesostw.scheduler.pb import MesosSchedulerDriver  # noqa: E402
from tests.helpers.processes import ProcessCluster, wait_for  # noqa: E402

TASK = Resources.parse("cpus:0.01;mem:1")
#: What the default executor of a task group takes (as Mesos's default executor's overhead).
GROUP_EXECUTOR = Resources.parse("cpus:0.1;mem:32;disk:10")


def file_system(path: str) -> str:
    """The type of the file system ``path`` is on (the longest mount point above it)."""
    path, best, kind = os.path.realpath(path), "", "unknown"
    for partition in psutil.disk_partitions(all=True):
        mount = partition.mountpoint
        if (path == mount or path.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best):
            best, kind = mount, partition.fstype
    return kind


def raw_spawn_rate(count: int) -> float:
    """Spawn and reap ``count`` shells running ``true``, one after another."""
    env = dict(os.environ)
    start = time.perf_counter()
    for _ in range(count):
        pid = os.posix_spawn("/bin/sh", ["sh", "-c", "true"], env)
        os.waitpid(pid, 0)
    return count / (time.perf_counter() - start)


class Submitter(Scheduler):
    """Launches every pending task on the offers it gets, as many per offer as fit."""

    def __init__(self, count: int):
        self.pending = [f"bench-{i}" for i in range(count)]
        self.finished: set[str] = set()
        self.failed: list[str] = []
        self.first_launch: float | None = None
        #: agent ID -> how many tasks were launched there
        self.placed: dict[str, int] = {}
        self.last_finish: float | None = None

    def task(self, task_id: str, agent_id: str) -> dict:
        self.placed[agent_id] = self.placed.get(agent_id, 0) + 1
        return {"name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": agent_id},
                "resources": TASK.to_json(), "command": {"value": "true"}}

    def resourceOffers(self, driver, offers):
        for index, offer in enumerate(offers):
            # An even share of what is pending for each offer still to go: spread over the agents.
            share = -(-len(self.pending) // (len(offers) - index))
            available, batch = offer.resources, []
            while self.pending and len(batch) < share and available.contains(TASK):
                available = available - TASK
                batch.append(self.task(self.pending.pop(), offer.agent_id))
            if batch:
                if self.first_launch is None:
                    self.first_launch = time.perf_counter()
                driver.launchTasks([offer.id], batch, {"refuse_seconds": 0.01})
            else:
                driver.declineOffer(offer.id, {"refuse_seconds": 60})

    def statusUpdate(self, driver, status):
        if status.state == T.FINISHED:
            self.finished.add(status.task_id)
            self.last_finish = time.perf_counter()
        elif status.terminal:
            self.failed.append(f"{status.task_id}: {status.state} {status.message}")


class GroupSubmitter(Submitter):
    """Launches the tasks as ``groups`` task groups (LAUNCH_GROUP), each in one default executor."""

    def __init__(self, count: int, groups: int):
        super().__init__(count)
        size = -(-count // groups)
        ids = self.pending
        self.groups = [ids[i:i + size] for i in range(0, count, size)]
        self.pending = []

    def resourceOffers(self, driver, offers):
        for index, offer in enumerate(offers):
            share = -(-len(self.groups) // (len(offers) - index))
            available, operations = offer.resources, []
            while self.groups and len(operations) < share:
                group = self.groups[-1]
                needed = GROUP_EXECUTOR
                for _ in group:
                    needed = needed + TASK
                if not available.contains(needed):
                    break
                self.groups.pop()
                available = available - needed
                executor = {"executor_id": {"value": f"group-{group[0]}"}, "type": "DEFAULT",
                            "resources": GROUP_EXECUTOR.to_json()}
                operations.append({"type": "LAUNCH_GROUP", "launch_group": {
                    "executor": executor, "task_group": {"tasks": [self.task(t, offer.agent_id) for t in group]}}})
            if operations:
                if self.first_launch is None:
                    self.first_launch = time.perf_counter()
                driver.acceptOffers([offer.id], operations, {"refuse_seconds": 0.01})
            else:
                driver.declineOffer(offer.id, {"refuse_seconds": 60})


def cpu_by_kind(cluster) -> dict[str, float]:
    """CPU seconds used so far by the master, the agents, their launchers, every executor (with its
    task) reaped, and this process (the framework): a measure of each one's work per task that the
    machine's other load barely changes."""
    def own(times) -> float:
        return times.user + times.system

    out = {"master": own(psutil.Process(cluster.master.pid).cpu_times()), "agent": 0.0, "launcher": 0.0,
           "executor": 0.0, "framework": own(psutil.Process().cpu_times())}
    for daemon in cluster.agents:
        agent = psutil.Process(daemon.pid)
        out["agent"] += own(agent.cpu_times())
        for launcher in agent.children():
            times = launcher.cpu_times()
            out["launcher"] += own(times)
            out["executor"] += times.children_user + times.children_system
    return out


def faults_by_kind(cluster) -> dict[str, int]:
    """Minor page faults so far of the agents, their launchers, and every executor (with its task)
    reaped: a forked executor's cost is mostly the pages it and its launcher copy on write."""
    def stat(pid: int) -> list[str]:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()

    out = {"agent": 0, "launcher": 0, "executor": 0}
    for daemon in cluster.agents:
        out["agent"] += int(stat(daemon.pid)[7])  # minflt
        for launcher in psutil.Process(daemon.pid).children():
            fields = stat(launcher.pid)
            out["launcher"] += int(fields[7])
            out["executor"] += int(fields[8])  # cminflt: the children it reaped, theirs included
    return out


def executors_reaped(cluster) -> bool:
    return all(not launcher.children() for daemon in cluster.agents
               for launcher in psutil.Process(daemon.pid).children())


class _Case:
    """Enough of a TestCase for ProcessCluster."""

    def __init__(self):
        self.cleanups = []

    def addCleanup(self, fn, *args):
        self.cleanups.append((fn, args))

    def cleanup(self):
        return defer.DeferredList([defer.maybeDeferred(fn, *args) for fn, args in reversed(self.cleanups)])


@defer.inlineCallbacks
def run(reactor, options):
    case = _Case()
    raw_before = raw_spawn_rate(options.tasks)
    # What a real machine has: every agent runs on this one.
    memory_mb = psutil.virtual_memory().total // (1024 * 1024)
    resources = f"cpus:{options.cpus or os.cpu_count() or 1};mem:{memory_mb};disk:1024"
    agent_args = [f"--isolation={options.isolation}", f"--native_command_executor={options.native_command_executor}"]
    if options.isolation.startswith("cgroups"):
        from tests.helpers.cgroups import remove_root, require_cgroups, unique_root

        require_cgroups()
        root = unique_root()
        agent_args.append(f"--cgroups_root={root}")
        case.addCleanup(remove_root, root)
    try:
        cluster = yield ProcessCluster(case, agents=options.agents, resources=resources, agent_args=agent_args).start()
        submitter = GroupSubmitter(options.tasks, options.groups) if options.groups else Submitter(options.tasks)
        framework = FrameworkInfo(user="root", name="bench", checkpoint=options.checkpoint)
        driver = MesosSchedulerDriver(submitter, framework, cluster.master_address, reactor=reactor)
        cpu_before, faults_before = cpu_by_kind(cluster), faults_by_kind(cluster)
        driver.start()
        yield wait_for(lambda: len(submitter.finished) + len(submitter.failed) >= options.tasks, options.timeout,
                       interval=0.01, what="all tasks to finish")
        yield wait_for(lambda: executors_reaped(cluster), 60, what="every executor reaped")
        cpu_after, faults_after = cpu_by_kind(cluster), faults_by_kind(cluster)
        cpu_ms = {kind: (cpu_after[kind] - cpu_before[kind]) * 1000 / options.tasks for kind in cpu_after}
        faults = {kind: (faults_after[kind] - faults_before[kind]) / options.tasks for kind in faults_after}
        executors = yield cluster.command_executors()
        driver.stop()
        yield driver.stopped()
        elapsed = submitter.last_finish - submitter.first_launch
        tasks_per_s = len(submitter.finished) / elapsed
        lost = options.tasks - len(submitter.finished)
        print(f"tasks={options.tasks} agents={options.agents} finished={len(submitter.finished)} lost_or_failed={lost}"
              f" per_agent={sorted(submitter.placed.values())}")
        print("cpu ms per task: " + " ".join(f"{kind}={ms:.2f}" for kind, ms in cpu_ms.items())
              + f" total={sum(cpu_ms.values()):.2f}")
        print("page faults per task: " + " ".join(f"{kind}={count:.0f}" for kind, count in faults.items()))
        if submitter.failed:
            print("failures:", *submitter.failed[:5], sep="\n  ")
    finally:
        yield case.cleanup()
    raw_after = raw_spawn_rate(options.tasks)
    raw = (raw_before + raw_after) / 2
    print(f"cluster: {elapsed:.2f}s for {options.tasks} tasks; raw spawn+reap: {raw_before:.1f}/s before, "
          f"{raw_after:.1f}/s after")
    agent_side = cpu_ms["agent"] + cpu_ms["launcher"] + cpu_ms["executor"]
    # which command executor ran the tasks (as the agents counted them)
    executor = "+".join(kind for kind, count in executors.items() if count) or "none"
    print(f"isolation={options.isolation} checkpoint={int(options.checkpoint)} groups={options.groups} "
          f"executor={executor} "
          f"work_fs={file_system(tempfile.gettempdir())} agents_used={len(submitter.placed)} "
          f"agent_cpu_ms_per_task={agent_side:.2f} cpu_ms_per_task={sum(cpu_ms.values()):.2f} "
          f"tasks_per_s={tasks_per_s:.1f} raw_spawn_per_s={raw:.1f} ratio={tasks_per_s / raw:.3f} lost={lost}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=200, help="number of tasks (N)")
    parser.add_argument("--agents", type=int, default=2, help="number of agent processes (K)")
    parser.add_argument("--timeout", type=float, default=600, help="give up after this many seconds")
    parser.add_argument("--groups", type=int, default=0,
                        help="launch the tasks as this many task groups (LAUNCH_GROUP, one default executor "
                             "each) instead of one command executor per task")
    parser.add_argument("--cpus", type=float, default=None,
                        help="the CPUs each agent advertises (default: this machine's)")
    parser.add_argument("--isolation", default="posix", help="the agents' --isolation (posix, cgroups, ...)")
    parser.add_argument("--native-command-executor", choices=("true", "false"), default="true",
                        help="the agents' --native_command_executor: false runs every task's command executor in "
                             "Python")
    parser.add_argument("--checkpoint", action="store_true",
                        help="a checkpointing framework: every task and update is made durable before it goes on")
    parser.add_argument("--work-dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                        help="where the cluster's work directories go (default: /dev/shm when present, "
                             "else the system's temporary directory)")
    options = parser.parse_args()
    if options.groups:
        size = -(-options.tasks // options.groups)
        cpus = options.cpus or os.cpu_count() or 1
        needed = GROUP_EXECUTOR.scalar("cpus") + size * TASK.scalar("cpus")
        if options.groups < 0 or needed > cpus:
            parser.error(f"a group of {size} tasks needs {needed:g} CPUs, more than an agent's {cpus:g}: "
                         f"use more groups (or --cpus)")
    if options.work_dir:
        tempfile.tempdir = options.work_dir
    task.react(lambda reactor: run(reactor, options))


if __name__ == "__main__":
    main()
