"""Containers on real agents: nothing of a task outlives it, limits from its resources, the fetcher.

Each class runs an agent with one isolation. The cgroups classes use the host's real cgroups (each
agent under a root of its own, removed afterwards) and fail, saying why, on a host without them.
"""

from __future__ import annotations

import io
import json
import os
import signal
import tarfile
import zipfile

import psutil
from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web import pages, resource, server

from mesostw.agent import cgroups as cg
from mesostw.model import task as T
from mesostw.model.info import FrameworkInfo
from mesostw.scheduler.pb import MesosSchedulerDriver
from tests.helpers.cgroups import remove_root, require_cgroups, unique_root
from tests.helpers.cluster import command_task
from tests.helpers.processes import ProcessCluster, get_json, wait_for
from tests.integration.test_core_cluster import LaunchingScheduler


def processes_with(marker: str, name: str = "sleep") -> list[int]:
    """PIDs of the live ``name`` processes whose command line holds ``marker`` (not the shells running them)."""
    pids = []
    for proc in psutil.process_iter(["pid", "name", "cmdline", "status"]):
        try:
            if proc.info["name"] != name or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if marker in " ".join(proc.info["cmdline"] or ()):
                pids.append(proc.pid)
        except psutil.Error:
            continue
    return pids


def executor_of(base: str, task_id: str) -> int | None:
    """PID of the command executor running ``task_id`` (forked from the launcher, or the native one it
    spawns, in its sandbox)."""
    for proc in psutil.process_iter(["pid", "cmdline", "name"]):
        try:
            if "mesostw.executor.zygote" not in " ".join(proc.info["cmdline"] or ()) \
                    and proc.info["name"] != "mesos-executor":
                continue
            cwd = proc.cwd()
        except psutil.Error:
            continue
        if cwd.startswith(base) and f"{os.sep}executors{os.sep}{task_id}{os.sep}" in cwd + os.sep:
            return proc.pid
    return None


class ContainerCase(unittest.TestCase):
    timeout = 120
    isolation = "posix"

    def agent_args(self) -> list[str]:
        return [f"--isolation={self.isolation}"]

    @defer.inlineCallbacks
    def setUp(self):
        self.cluster = yield ProcessCluster(self, agents=1, agent_args=self.agent_args(),
                                            master_args=["--allocation_interval=0.2secs"]).start()
        self.scheduler = LaunchingScheduler()
        self.driver = MesosSchedulerDriver(self.scheduler, FrameworkInfo(user="root", name="containers"),
                                           self.cluster.master_address, reactor=reactor, backoff=0.2)
        self.addCleanup(lambda: self.driver.abort() and self.driver.stopped())
        self.driver.start()

    def launch(self, task_id: str, command: str, resources: str = "cpus:0.2;mem:32", **extra):
        task = command_task(task_id, command, resources)
        task["command"].update(extra)
        self.scheduler.pending.append(task)
        self.driver.reviveOffers()

    def final(self, task_id: str):
        return wait_for(lambda: [u for u in self.scheduler.updates if u.task_id == task_id and u.terminal], 60,
                        what=f"a terminal update for {task_id}").addCallback(lambda updates: updates[-1])

    def running(self, task_id: str):
        return wait_for(lambda: T.RUNNING in self.scheduler.states(task_id), 60, what=f"{task_id} running")

    @defer.inlineCallbacks
    def statistics(self):
        state = yield self.cluster.state()
        agent = state["slaves"][0]
        return (yield get_json(f"http://127.0.0.1:{agent['port']}/monitor/statistics"))


class ContainedTaskBehaviour:
    """What holds under every isolation: a task's processes all end with it."""

    @defer.inlineCallbacks
    def test_killed_executor_takes_its_task_along(self: ContainerCase):
        """SIGKILL to a command executor fails its task, and by the time the framework hears it the
        task's own process is gone too (the master frees what nothing uses any more)."""
        self.launch("orphaned", "sleep 4242")
        yield self.running("orphaned")
        yield wait_for(lambda: processes_with("sleep 4242"), 30, what="the task's process")
        [task_pid] = processes_with("sleep 4242")
        executor = executor_of(self.cluster.base, "orphaned")
        self.assertIsNotNone(executor)
        seen: list[bool] = []
        self.scheduler.statusUpdate = _observe(self.scheduler.statusUpdate, lambda: seen.append(
            psutil.pid_exists(task_pid) and psutil.Process(task_pid).status() != psutil.STATUS_ZOMBIE))
        os.kill(executor, signal.SIGKILL)
        final = yield self.final("orphaned")
        self.assertEqual((final.state, final.reason), (T.FAILED, T.REASON_EXECUTOR_TERMINATED))
        self.assertEqual(seen[-1], False, "the task's process outlived its executor's terminal update")
        self.assertEqual(processes_with("sleep 4242"), [])

    @defer.inlineCallbacks
    def test_daemons_in_new_sessions_end_with_their_task(self: ContainerCase):
        """Children that leave the task's session (setsid, nohup ... &) are killed with it: on a kill, and
        when the command itself finishes."""
        self.launch("daemonizer", "setsid sleep 4343 & nohup setsid sleep 4344 >/dev/null 2>&1 & sleep 600")
        self.launch("leaver", "setsid sleep 4345 & sleep 0.5; exit 0")
        yield self.running("daemonizer")
        yield wait_for(lambda: len(processes_with("sleep 434")) >= 2, 30, what="the daemons")
        self.driver.killTask("daemonizer")
        final = yield self.final("daemonizer")
        self.assertEqual(final.state, T.KILLED)
        self.assertEqual(processes_with("sleep 4343") + processes_with("sleep 4344"), [])
        final = yield self.final("leaver")
        self.assertEqual(final.state, T.FINISHED)
        yield wait_for(lambda: not processes_with("sleep 4345"), 10, what="the finished task's daemon gone")


def _observe(callback, before):
    def wrapped(driver, status):
        if status.terminal:
            before()
        return callback(driver, status)

    return wrapped


class PosixContainerTests(ContainedTaskBehaviour, ContainerCase):
    isolation = "posix"


def launcher_maps(base: str) -> str:
    """The memory map of the agent's launcher (the one process running mesostw.executor.zygote whose
    parent is an agent of the cluster under ``base``)."""
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if "mesostw.executor.zygote" not in " ".join(proc.info["cmdline"] or ()):
                continue
            parent = proc.parent()
            if parent is None or base not in " ".join(parent.cmdline()):
                continue
            with open(f"/proc/{proc.pid}/maps") as f:
                return f.read()
        except (psutil.Error, OSError):
            continue
    raise AssertionError("no launcher found")


class LauncherPreloadTests(ContainerCase):
    @defer.inlineCallbacks
    def test_health_checked_task_as_another_user(self):
        """A task with a health check, run as nobody (who may not read the interpreter's library), is
        checked: its executor imported the health checks while still root. The launcher itself loaded
        neither them nor TLS for it (so that every other executor it forks stays small)."""
        task = command_task("checked", "sleep 600", "cpus:0.2;mem:32")
        task["command"]["user"] = "nobody"
        task["health_check"] = {
            "type": "COMMAND", "command": {"value": "test $(id -u) = $(id -u nobody)"},
            "interval_seconds": 0.2, "delay_seconds": 0, "grace_period_seconds": 5, "consecutive_failures": 3}
        self.scheduler.pending.append(task)
        self.driver.reviveOffers()
        yield wait_for(lambda: [u for u in self.scheduler.updates if u.task_id == "checked" and u.healthy], 60,
                       what="a healthy update")
        self.assertEqual([u for u in self.scheduler.updates if u.task_id == "checked" and u.terminal], [])
        maps = launcher_maps(self.cluster.base)
        self.assertNotIn("_ssl", maps)
        self.assertIn("_json", maps)  # the control: what every executor uses is there
        self.driver.killTask("checked")
        final = yield self.final("checked")
        self.assertEqual(final.state, T.KILLED)


class CgroupsCase(ContainerCase):
    isolation = "cgroups,disk/du"

    def agent_args(self) -> list[str]:
        require_cgroups()
        self.cgroups_root = unique_root()
        self.addCleanup(remove_root, self.cgroups_root)
        return [f"--isolation={self.isolation}", f"--cgroups_root={self.cgroups_root}",
                "--container_disk_watch_interval=0.2secs"]


class CgroupsContainerTests(ContainedTaskBehaviour, CgroupsCase):
    @defer.inlineCallbacks
    def test_limits_come_from_the_task_and_statistics_from_its_cgroups(self):
        """A task's cpus and mem (plus the command executor's 0.1 cpus and 32 MB) become its container's
        cpu shares, CFS quota and memory limit; /monitor/statistics reads the container's cgroups."""
        self.launch("sized", "sleep 600", "cpus:0.5;mem:96")
        yield self.running("sized")
        agent_groups = cg.detect(self.cgroups_root)
        [container] = agent_groups.names()
        if isinstance(agent_groups, cg.CgroupsV1):
            self.assertEqual(cg.read_int(agent_groups.path("memory", container) + "/memory.limit_in_bytes"),
                             128 << 20)
            self.assertEqual(cg.read_int(agent_groups.path("cpu", container) + "/cpu.shares"), int(0.6 * 1024))
            self.assertEqual(cg.read_int(agent_groups.path("cpu", container) + "/cpu.cfs_quota_us"), 60000)
        stats = yield wait_for(lambda: self.statistics().addCallback(
            lambda s: s and "mem_total_bytes" in s[0]["statistics"] and s), 30, what="cgroup statistics")
        statistics = stats[0]["statistics"]
        self.assertEqual(stats[0]["executor_id"], "sized")
        self.assertEqual(statistics["mem_limit_bytes"], 128 << 20)
        self.assertAlmostEqual(statistics["cpus_limit"], 0.6)
        self.assertGreater(statistics["mem_total_bytes"], 0)
        self.assertGreaterEqual(statistics["processes"], 2)  # the executor and its command at least

    @defer.inlineCallbacks
    def test_task_over_its_memory_fails_for_it(self):
        """A task that allocates past its memory is OOM-killed in its container and fails with
        REASON_CONTAINER_LIMITATION_MEMORY."""
        self.launch("hungry", "/usr/bin/python3 -c 'b = bytearray(400 << 20); import time; time.sleep(60)'",
                    "cpus:0.2;mem:32")
        final = yield self.final("hungry")
        self.assertEqual((final.state, final.reason), (T.FAILED, T.REASON_CONTAINER_LIMITATION_MEMORY))
        self.assertIn("Memory limit exceeded", final.message)

    @defer.inlineCallbacks
    def test_sandbox_over_its_disk_fails(self):
        """With disk/du, a task whose sandbox outgrows its disk fails with REASON_CONTAINER_LIMITATION_DISK."""
        self.launch("filler", "head -c 8000000 /dev/zero > big; sleep 600", "cpus:0.2;mem:32;disk:2")
        final = yield self.final("filler")
        self.assertEqual((final.state, final.reason), (T.FAILED, T.REASON_CONTAINER_LIMITATION_DISK))


class FetcherTests(ContainerCase):
    """CommandInfo.uris fetched into the sandbox before the task starts."""

    def serve(self, files: dict[str, bytes]) -> str:
        port = reactor.listenTCP(0, server.Site(_Files(files)), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return f"http://127.0.0.1:{port.getHost().port}"

    @defer.inlineCallbacks
    def test_uris_are_fetched_extracted_and_made_executable(self):
        """http and file URIs land in the sandbox before the command runs: archives extracted,
        executables marked, output_file honoured, cached ones served from the cache the second time."""
        tarball, zipped = io.BytesIO(), io.BytesIO()
        with tarfile.open(fileobj=tarball, mode="w:gz") as tar:
            data = b"hello\n"
            info = tarfile.TarInfo("data/hello.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        with zipfile.ZipFile(zipped, "w") as bundle:
            bundle.writestr("zipped/inner.txt", "inner\n")
        url = self.serve({"bundle.tar.gz": tarball.getvalue(), "more.zip": zipped.getvalue(),
                          "tool.sh": b"#!/bin/sh\necho fetched-and-ran\n"})
        local = os.path.join(self.cluster.base, "local.json")
        with open(local, "w") as f:
            json.dump({"ok": True}, f)
        uris = [{"value": f"{url}/bundle.tar.gz", "cache": True}, {"value": f"{url}/more.zip"},
                {"value": f"{url}/tool.sh", "executable": True},
                {"value": f"file://{local}", "output_file": "conf/settings.json"}]
        check = ("test -f data/hello.txt && test -f zipped/inner.txt && test -x tool.sh && ./tool.sh "
                 "&& test -f conf/settings.json")
        for task_id in ("fetching", "cached"):
            self.launch(task_id, check, uris=uris)
            final = yield self.final(task_id)
            self.assertEqual(final.state, T.FINISHED, final.message)
        cache = os.path.join(self.cluster.base, "agent0", "fetch")
        self.assertEqual(len([n for n in os.listdir(cache) if not n.startswith("tmp")]), 1)

    @defer.inlineCallbacks
    def test_failed_fetch_fails_the_launch_with_the_reason(self):
        """A URI that cannot be fetched fails the task with REASON_CONTAINER_LAUNCH_FAILED, naming the URI
        and what went wrong; the command never runs."""
        url = self.serve({"present.txt": b"x"})
        marker = os.path.join(self.cluster.base, "ran")
        self.launch("unfetchable", f"touch {marker}", uris=[{"value": f"{url}/absent.tar.gz"}])
        final = yield self.final("unfetchable")
        self.assertEqual((final.state, final.reason), (T.FAILED, T.REASON_CONTAINER_LAUNCH_FAILED))
        self.assertIn(f"Failed to fetch '{url}/absent.tar.gz'", final.message)
        self.assertIn("404", final.message)
        self.assertFalse(os.path.exists(marker))


class _Files(resource.Resource):
    """Serves fixed bytes by name (404 for anything else)."""

    def __init__(self, files: dict[str, bytes]):
        super().__init__()
        self.files = files

    def getChild(self, name: bytes, request):
        data = self.files.get(name.decode())
        return pages.notFound() if data is None else _Bytes(data)


class _Bytes(resource.Resource):
    isLeaf = True

    def __init__(self, data: bytes):
        super().__init__()
        self.data = data

    def render_GET(self, request) -> bytes:
        return self.data
