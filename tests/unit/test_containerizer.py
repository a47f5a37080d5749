"""The containerizer on a Clock, with a fake launcher, isolators and containment: a container ends whole.

What is checked here is the order of a container's life (prepare, launch into the prepared cgroups,
isolate, watch, destroy, clean up, then wait fires) and what reaches the agent (a Termination with
the limitation that ended it). The real processes and cgroups are the integration tests' business.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from zope.interface import implementer
from zope.interface.verify import verifyObject

from mesostw.agent.containerizer import Containerizer
from mesostw.agent.containers import ContainerRecord, Limitation, Termination
from mesostw.agent.fetcher import FetchError
from mesostw.agent.isolation import CgroupsIsolator, DiskIsolator, PosixContainment, PosixIsolator, check_isolation
from mesostw.interfaces import IContainerizer, IIsolator
from mesostw.model import task as T
from mesostw.model.info import CommandInfo, ExecutorInfo, FrameworkInfo
from mesostw.model.resources import Resources
from tests.helpers.clocktest import ClockTestCase

FRAMEWORK = FrameworkInfo(user="root", name="f", id="F1")
EXECUTOR = ExecutorInfo("E1", framework_id="F1", command=CommandInfo("./run", uris=({"value": "http://h/x"},)))
RESOURCES = Resources.parse("cpus:0.5;mem:64;disk:10")


class FakeLauncher:
    def __init__(self) -> None:
        self.launched: list[dict[str, Any]] = []
        self.exits: dict[int, defer.Deferred] = {}
        self.watched: list[int] = []
        self.next_pid = 100

    def launch(self, mode, argv, env, cwd, stdout, stderr, user=None, cgroups=None) -> defer.Deferred:
        self.next_pid += 1
        self.launched.append({"mode": mode, "argv": argv, "cgroups": cgroups, "pid": self.next_pid})
        self.exits[self.next_pid] = defer.Deferred()
        return defer.succeed(self.next_pid)

    def wait(self, pid: int) -> defer.Deferred:
        return self.exits[pid]

    def watch(self, pid: int, started: float | None) -> defer.Deferred:
        self.watched.append(pid)
        self.exits[pid] = defer.Deferred()
        return self.exits[pid]


@implementer(IIsolator)
class RecordingIsolator:
    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.limited: dict[str, Limitation] = {}

    def recover(self, records: Any) -> None:
        self.calls.append(("recover", *sorted(r.container_id for r in records)))

    def prepare(self, container_id: str, directory: str, resources: Resources) -> dict[str, Any]:
        self.calls.append(("prepare", container_id))
        return {"cgroups": [f"/cg/{container_id}/cgroup.procs"]}

    def isolate(self, container_id: str, pid: int) -> None:
        self.calls.append(("isolate", container_id, str(pid)))

    def update(self, container_id: str, resources: Resources) -> None:
        self.calls.append(("update", container_id, str(resources)))

    def usage(self, container_id: str) -> dict[str, Any]:
        return {"mem_total_bytes": 42}

    def limitation(self, container_id: str) -> Limitation | None:
        return self.limited.get(container_id)

    def cleanup(self, container_id: str) -> None:
        self.calls.append(("cleanup", container_id))


class FakeContainment:
    """Kills by ending the executor's wait when it is asked to; ``pending`` holds kills not yet done."""

    def __init__(self, launcher: FakeLauncher) -> None:
        self.launcher = launcher
        self.kills: list[tuple[str, int | None]] = []
        #: containers whose executor is ours to end (the others' pids may be anyone's)
        self.live: set[str] = {"c1"}

    def kill(self, container_id: str, pid: int | None, started: float | None = None) -> defer.Deferred:
        self.kills.append((container_id, pid))
        if pid is not None and pid in self.launcher.exits and not self.launcher.exits[pid].called \
                and container_id in self.live:
            self.launcher.exits[pid].callback(9)
        return defer.succeed(None)


class FakeFetcher:
    def __init__(self) -> None:
        self.fetched: list[tuple[Any, str]] = []
        self.failure: Exception | None = None

    def fetch(self, uris: Any, directory: str, user: str | None) -> defer.Deferred:
        self.fetched.append((uris, directory))
        return defer.fail(self.failure) if self.failure else defer.succeed(None)


class ContainerizerTests(ClockTestCase):
    def setUp(self) -> None:
        self.clock = self.makeClock()
        self.launcher = FakeLauncher()
        self.isolator = RecordingIsolator()
        self.containment = FakeContainment(self.launcher)
        self.fetcher = FakeFetcher()
        self.containerizer = Containerizer(self.launcher, [self.isolator], self.containment, self.clock,  # type: ignore[arg-type]
                                           self.fetcher)
        self.addCleanup(self.containerizer.stop)
        self.sandbox = self.mktemp()

    def launch(self, container_id: str = "c1") -> int:
        return self.successResultOf(self.containerizer.launch(container_id, EXECUTOR, FRAMEWORK, self.sandbox, {},
                                                              None, RESOURCES))

    def test_provides_the_interfaces(self) -> None:
        """The containerizer and every isolator pass verifyObject."""
        self.assertTrue(verifyObject(IContainerizer, self.containerizer))
        for isolator in (PosixIsolator(), DiskIsolator(self.clock), self.isolator):
            self.assertTrue(verifyObject(IIsolator, isolator))

    def test_launch_fetches_prepares_and_joins_the_cgroups(self) -> None:
        """A launch fetches the URIs into the sandbox, prepares every isolator, and starts the executor
        inside the cgroups they made; the container's record names its pid."""
        pid = self.launch()
        self.assertEqual(self.fetcher.fetched, [(EXECUTOR.command.uris, self.sandbox)])
        self.assertEqual(self.launcher.launched[0]["cgroups"], ["/cg/c1/cgroup.procs"])
        self.assertEqual(self.isolator.calls, [("prepare", "c1"), ("isolate", "c1", str(pid))])
        record = self.containerizer.record("c1")
        self.assertEqual((record.pid, record.executor_id, record.resources), (pid, "E1", RESOURCES))

    def test_failed_fetch_fails_the_launch_and_cleans_up(self) -> None:
        """A failed fetch fails the launch with its reason, starts nothing and leaves no container."""
        self.fetcher.failure = FetchError("Failed to fetch 'http://h/x': HTTP 404 Not Found")
        failure = self.failureResultOf(self.containerizer.launch("c1", EXECUTOR, FRAMEWORK, self.sandbox, {}, None,
                                                                 RESOURCES), FetchError)
        self.assertIn("404", failure.getErrorMessage())
        self.assertEqual(self.launcher.launched, [])
        self.assertEqual(self.containerizer.containers, {})
        self.assertEqual(self.isolator.calls, [("cleanup", "c1")])

    def test_executor_exit_destroys_the_rest_then_wait_fires(self) -> None:
        """When the executor exits, whatever is left of its container is killed and the isolators clean
        up before wait() fires with the executor's status."""
        pid = self.launch()
        waited = self.containerizer.wait("c1")
        self.launcher.exits[pid].callback(0)
        self.assertEqual(self.containment.kills, [("c1", pid)])
        self.assertEqual(self.successResultOf(waited), Termination(0, None))
        self.assertEqual(self.isolator.calls[-1], ("cleanup", "c1"))
        self.assertEqual(self.containerizer.containers, {})

    def test_limitation_destroys_the_container(self) -> None:
        """A limitation an isolator reports (checked every second) destroys the container, and wait()
        carries it."""
        pid = self.launch()
        waited = self.containerizer.wait("c1")
        limit = Limitation(T.REASON_CONTAINER_LIMITATION_MEMORY, "Memory limit exceeded")
        self.clock.advance(1.0)
        self.assertNoResult(waited)
        self.isolator.limited["c1"] = limit
        self.clock.advance(1.0)
        self.assertEqual(self.successResultOf(waited), Termination(9, limit))
        self.assertEqual(self.containment.kills, [("c1", pid)])

    def test_destroy_and_update(self) -> None:
        """update() reaches the isolators; destroy() fires once the container is gone; both are quiet for
        unknown containers."""
        self.launch()
        bigger = RESOURCES + Resources.parse("mem:64")
        self.containerizer.update("c1", bigger)
        self.assertIn(("update", "c1", str(bigger)), self.isolator.calls)
        self.successResultOf(self.containerizer.destroy("c1"))
        self.assertEqual(self.containerizer.usage("c1").keys(), {"timestamp"})
        self.successResultOf(self.containerizer.destroy("unknown"))
        self.containerizer.update("unknown", bigger)

    def test_recover_watches_survivors_and_ends_the_dead(self) -> None:
        """recover() watches containers whose executor still runs (as the same process), ends the others at
        once, and reports only the former alive."""
        import os
        import time

        import psutil

        me = ContainerRecord("alive", "F1", "E1", self.sandbox, os.getpid(), psutil.Process().create_time())
        reused = ContainerRecord("reused", "F1", "E2", self.sandbox, os.getpid(), time.time() - 10_000)
        alive = self.successResultOf(self.containerizer.recover([me, reused]))
        self.assertEqual(alive, {"alive"})
        self.assertEqual(self.launcher.watched, [os.getpid()])
        self.assertEqual(self.successResultOf(self.containerizer.wait("reused")), Termination(None, None))
        self.assertIn(("recover", "alive"), self.isolator.calls)
        self.launcher.exits[os.getpid()].callback(None)
        self.assertEqual(self.containerizer.containers, {})


class IsolatorTests(ClockTestCase):
    def test_disk_quota(self) -> None:
        """disk/du measures a sandbox every interval and reports it over its disk (when enforcing)."""
        clock = self.makeClock()
        sizes = {"/s": 3 * 1024 * 1024}
        isolator = DiskIsolator(clock, interval=5.0, enforce=True, measure=lambda path: defer.succeed(sizes[path]))
        isolator.prepare("c1", "/s", Resources.parse("disk:2"))
        self.assertIsNone(isolator.limitation("c1"))
        clock.advance(5.0)
        limitation = isolator.limitation("c1")
        self.assertEqual(limitation.reason, T.REASON_CONTAINER_LIMITATION_DISK)
        self.assertEqual(isolator.usage("c1"), {"disk_used_bytes": 3 << 20, "disk_limit_bytes": 2 << 20})
        isolator.update("c1", Resources.parse("disk:4"))
        self.assertIsNone(isolator.limitation("c1"))
        isolator.cleanup("c1")

    def test_cgroups_isolator_limits_and_oom(self) -> None:
        """The cgroups isolator sets limits from resources and turns an OOM kill into a memory limitation."""
        groups = _FakeGroups()
        isolator = CgroupsIsolator(groups, self.makeClock(), enable_cfs=True)  # type: ignore[arg-type]
        settings = isolator.prepare("c1", "/s", Resources.parse("cpus:0.6;mem:96"))
        self.assertEqual(settings, {"cgroups": ["/cg/c1"]})
        self.assertEqual(groups.limits["c1"], (0.6, 96 << 20, True))
        self.assertIsNone(isolator.limitation("c1"))
        groups.ooms["c1"] = 1
        self.assertEqual(isolator.limitation("c1").reason, T.REASON_CONTAINER_LIMITATION_MEMORY)
        self.assertEqual(isolator.usage("c1")["mem_limit_bytes"], 96 << 20)

    def test_posix_containment_leaves_a_reused_pid_alone(self) -> None:
        """The executor's pid, once used by another process (after an agent restart), names nothing of the
        container: that process and its session are not the container's to kill."""
        import os

        import psutil

        containment = PosixContainment(self.makeClock())
        me, started = os.getpid(), psutil.Process().create_time()
        self.assertIn(me, containment.pids("c1", me, started))
        self.assertEqual(containment.pids("c1", me, started - 1000), [])

    def test_posix_containment_kills_containers_together(self) -> None:
        """Containers killed within KILL_POLL of a pass over the host's processes wait for the next pass,
        which kills what is left of every one of them; after a quiet spell a kill is made at once."""
        import subprocess
        import sys

        from mesostw.agent import isolation
        from mesostw.agent.containers import start_time
        from mesostw.agent.isolation import KILL_POLL

        passes: list[set[int]] = []

        def sessions_of(sessions: set[int]) -> dict[int, list[int]]:
            passes.append(set(sessions))
            return real_sessions_of(sessions)

        real_sessions_of = isolation.sessions_of
        self.patch(isolation, "sessions_of", sessions_of)
        clock = self.makeClock()
        containment = PosixContainment(clock)
        ended = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
        ended.wait()
        first = containment.kill("c0", ended.pid, None)
        self.assertTrue(first.called, "a kill after a quiet spell is made at once")
        sleepers = [subprocess.Popen(["sleep", "60"], start_new_session=True) for _ in range(2)]
        for sleeper in sleepers:
            self.addCleanup(sleeper.kill)
            self.addCleanup(sleeper.wait)
        kills = [containment.kill(f"c{i}", p.pid, start_time(p.pid)) for i, p in enumerate(sleepers, 1)]
        self.assertEqual(passes, [{ended.pid}], "no pass yet for the two killed together")
        clock.advance(KILL_POLL)
        self.assertEqual(passes[1:], [{p.pid for p in sleepers}])
        self.assertEqual([p.wait(10) for p in sleepers], [-9, -9], "one pass killed both")
        clock.advance(KILL_POLL)
        self.assertEqual([d.called for d in kills], [True, True])
        self.assertEqual(containment.killing, {})

    def test_isolation_names(self) -> None:
        """--isolation takes posix or cgroups (or Mesos's names for them) and disk/du, not a mix."""
        for good in ("posix", "cgroups", "cgroups,disk/du", "cgroups/cpu,cgroups/mem", "posix/cpu,posix/mem,disk/du"):
            self.assertEqual(check_isolation(good), good)
        for bad, words in (("docker", "unknown isolator"), ("posix,cgroups", "not both"), ("", "no isolator")):
            with self.assertRaises(ValueError) as raised:
                check_isolation(bad)
            self.assertIn(words, str(raised.exception))


class _FakeGroups:
    def __init__(self) -> None:
        self.limits: dict[str, tuple[Any, ...]] = {}
        self.ooms: dict[str, int] = {}

    def create(self, name: str) -> list[str]:
        return [f"/cg/{name}"]

    def set_limits(self, name: str, cpus: Any, mem: Any, cfs: bool) -> None:
        self.limits[name] = (cpus, mem, cfs)

    def oom_kills(self, name: str) -> int:
        return self.ooms.get(name, 0)

    def stats(self, name: str) -> dict[str, Any]:
        return {"mem_total_bytes": 1}
