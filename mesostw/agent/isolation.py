"""Isolators (Mesos's ``--isolation``) and how a container's processes are found and killed.

Each isolator provides :class:`mesostw.interfaces.IIsolator`; the containerizer calls every one at
each step of a container's life. The containment (``posix``: the executor's process tree and
session; ``cgroups``: its groups, frozen and killed whole) is what ``destroy`` uses, so that no
process of a container outlives it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, threads
from twisted.logger import Logger
from zope.interface import implementer

from mesostw.agent import cgroups as cg
from mesostw.agent.containers import Limitation, process_tree, same_process, session_members, sessions_of
from mesostw.interfaces import IIsolator
from mesostw.model import task as T
from mesostw.model.resources import Resources

log = Logger()

#: How often a container being killed is checked again, and for how long before it is reported stuck.
KILL_POLL = 0.01
KILL_WARN_AFTER = 30.0
MB = 1024 * 1024


def _poll(clock: Any, done: Callable[[], bool], what: str, step: Callable[[], None] | None = None) -> defer.Deferred:
    """Fires once ``done()`` holds, checking every :data:`KILL_POLL` seconds (``step`` runs before each check)."""
    finished: defer.Deferred[None] = defer.Deferred()
    started = clock.seconds()
    warned = [False]

    def check() -> None:
        try:
            if step is not None:
                step()
            if done():
                finished.callback(None)
                return
        except OSError as exc:
            log.warn("{what}: {e}", what=what, e=exc)
        if not warned[0] and clock.seconds() - started > KILL_WARN_AFTER:
            warned[0] = True
            log.warn("{what} is taking more than {s:g}s", what=what, s=KILL_WARN_AFTER)
        clock.callLater(KILL_POLL if clock.seconds() - started < 1 else 0.25, check)

    check()
    return finished


class _Kill:
    """A container being killed: its executor, when the kill began, and who waits for its end."""

    __slots__ = ("pid", "started", "since", "done", "warned")

    def __init__(self, pid: int, started: float | None, since: float):
        self.pid, self.started, self.since = pid, started, since
        self.done: defer.Deferred[None] = defer.Deferred()
        self.warned = False


class PosixContainment:
    """A container is its executor's process tree and session (what leaves both escapes, as in Mesos).

    Finding a session's processes takes a pass over every process on the host. The containers killed
    together (many short tasks end together) share one pass: a kill that comes within
    :data:`KILL_POLL` of the last pass waits for the next one, at most :data:`KILL_POLL` later, which
    checks every container then being killed; after a quiet spell a kill is checked at once.
    """

    name = "posix"

    def __init__(self, clock: Any):
        self.clock = clock
        #: container ID -> its kill, until nothing of the container is left
        self.killing: dict[str, _Kill] = {}
        self._last_pass: float | None = None
        self._next_pass: Any = None

    def pids(self, container_id: str, pid: int | None, started: float | None = None,
             sessions: dict[int, list[int]] | None = None) -> list[int]:
        """The executor's tree (while ``pid`` is still the executor that started at ``started``) and
        session (from ``sessions``, what :func:`sessions_of` found, else looked up). A pid now used by
        another process names neither: that process is left alone."""
        if pid is None:
            return []
        if same_process(pid, started):
            members = {p.pid for p in process_tree(pid)}
        elif same_process(pid, None):
            return []  # reused: its session, if it leads one, is someone else's
        else:
            members = set()
        members.update(sessions.get(pid, []) if sessions is not None else session_members(pid))
        return sorted(members)

    def kill(self, container_id: str, pid: int | None, started: float | None = None) -> defer.Deferred:
        """SIGKILL every process of the container until none is left; fires then."""
        if pid is None:
            return defer.succeed(None)
        current = self.killing.get(container_id)
        if current is None:
            current = self.killing[container_id] = _Kill(pid, started, self.clock.seconds())
            self._schedule()
        out: defer.Deferred[None] = defer.Deferred()

        def relay(result: Any) -> Any:
            out.callback(None)
            return result

        current.done.addBoth(relay)
        return out

    def _schedule(self) -> None:
        if self._next_pass is not None and self._next_pass.active():
            return
        now = self.clock.seconds()
        if self._last_pass is None or now - self._last_pass >= KILL_POLL:
            self._pass()
            return
        young = any(now - kill.since < 1 for kill in self.killing.values())
        delay = max(0.0, self._last_pass + (KILL_POLL if young else 0.25) - now)
        self._next_pass = self.clock.callLater(delay, self._pass)

    def _pass(self) -> None:
        """One pass over the host's processes for every container being killed: SIGKILL what is left of
        each; a container with nothing left is done."""
        self._next_pass = None
        self._last_pass = now = self.clock.seconds()
        kills = list(self.killing.items())
        try:
            sessions = sessions_of({kill.pid for _, kill in kills})
        except OSError as exc:
            log.warn("Listing processes: {e}", e=exc)
            sessions = None
        done = []
        for container_id, kill in kills:
            try:
                members = [p for p in self.pids(container_id, kill.pid, kill.started, sessions)
                           if same_process(p, None)] if sessions is not None else [kill.pid]
                for member in members:
                    try:
                        os.kill(member, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            except OSError as exc:
                log.warn("killing container {id}: {e}", id=container_id, e=exc)
                members = [kill.pid]
            if not members:
                done.append((container_id, kill))
            elif not kill.warned and now - kill.since > KILL_WARN_AFTER:
                kill.warned = True
                log.warn("killing container {id} is taking more than {s:g}s", id=container_id, s=KILL_WARN_AFTER)
        for container_id, _ in done:
            del self.killing[container_id]
        for _, kill in done:
            kill.done.callback(None)
        if self.killing:
            self._schedule()


@implementer(IIsolator)
class PosixIsolator:
    """``posix/cpu,posix/mem``: no limits, usage from the process tree (psutil)."""

    name = "posix/cpu,posix/mem"

    def __init__(self) -> None:
        self.pids: dict[str, int] = {}
        self.resources: dict[str, Resources] = {}

    def recover(self, containers: Any) -> None:
        for record in containers:
            if record.pid is not None:
                self.pids[record.container_id] = record.pid
            self.resources[record.container_id] = record.resources

    def prepare(self, container_id: str, directory: str, resources: Resources) -> dict[str, Any]:
        self.resources[container_id] = resources
        return {}

    def isolate(self, container_id: str, pid: int) -> None:
        self.pids[container_id] = pid

    def update(self, container_id: str, resources: Resources) -> None:
        self.resources[container_id] = resources

    def usage(self, container_id: str) -> dict[str, Any]:
        stats: dict[str, Any] = _limits(self.resources.get(container_id))
        pid = self.pids.get(container_id)
        if pid is None:
            return stats
        user = system = 0.0
        rss = processes = 0
        for proc in process_tree(pid):
            try:
                times = proc.cpu_times()
                user += times.user + times.children_user
                system += times.system + times.children_system
                rss += proc.memory_info().rss
                processes += 1
            except Exception:  # noqa: BLE001 - psutil.Error: the process ended meanwhile
                continue
        stats.update(cpus_user_time_secs=user, cpus_system_time_secs=system, mem_rss_bytes=rss, processes=processes)
        return stats

    def limitation(self, container_id: str) -> Limitation | None:
        return None

    def cleanup(self, container_id: str) -> None:
        self.pids.pop(container_id, None)
        self.resources.pop(container_id, None)


def _limits(resources: Resources | None) -> dict[str, Any]:
    if resources is None:
        return {}
    out: dict[str, Any] = {}
    if resources.scalar("cpus"):
        out["cpus_limit"] = resources.scalar("cpus")
    if resources.scalar("mem"):
        out["mem_limit_bytes"] = int(resources.scalar("mem") * MB)
    return out


@implementer(IIsolator)
class CgroupsIsolator:
    """``cgroups/cpu,cgroups/mem,cgroups/pids,cgroups/freezer`` (v1), or the same in one v2 group.

    cpu shares (and a CFS quota with ``enable_cfs``) and a memory limit from the container's
    resources; an OOM kill in the container is a ``REASON_CONTAINER_LIMITATION_MEMORY`` limitation.
    Also the containment: killing freezes the groups, kills every process and thaws them.
    """

    def __init__(self, groups: cg.Cgroups, clock: Any, enable_cfs: bool = True):
        self.groups = groups
        self.clock = clock
        self.enable_cfs = enable_cfs
        self.resources: dict[str, Resources] = {}
        self.name = "cgroups/cpu,cgroups/mem,cgroups/pids,cgroups/freezer"

    # -- IIsolator ---------------------------------------------------------------------------

    def recover(self, containers: Any) -> None:
        for record in containers:
            self.resources[record.container_id] = record.resources

    def orphans(self, known: set[str]) -> list[str]:
        """Groups under this agent's root that no known container owns (left by an earlier run)."""
        return [name for name in self.groups.names() if name not in known]

    def prepare(self, container_id: str, directory: str, resources: Resources) -> dict[str, Any]:
        files = self.groups.create(container_id)
        self.update(container_id, resources)
        return {"cgroups": files}

    def isolate(self, container_id: str, pid: int) -> None:
        pass  # the launcher's child joined the groups before it became the executor

    def update(self, container_id: str, resources: Resources) -> None:
        self.resources[container_id] = resources
        mem = resources.scalar("mem")
        self.groups.set_limits(container_id, resources.scalar("cpus") or None,
                               int(mem * MB) if mem else None, self.enable_cfs)

    def usage(self, container_id: str) -> dict[str, Any]:
        stats = _limits(self.resources.get(container_id))
        stats.update(self.groups.stats(container_id))
        return stats

    def limitation(self, container_id: str) -> Limitation | None:
        if self.groups.oom_kills(container_id) <= 0:
            return None
        mem = (self.resources.get(container_id) or Resources()).scalar("mem")
        return Limitation(T.REASON_CONTAINER_LIMITATION_MEMORY,
                          f"Memory limit exceeded: the container's {mem:g} MB were not enough (OOM killed)")

    def cleanup(self, container_id: str) -> None:
        self.resources.pop(container_id, None)

    # -- containment ---------------------------------------------------------------------------

    def pids(self, container_id: str, pid: int | None, started: float | None = None) -> list[int]:
        return self.groups.pids(container_id)

    def kill(self, container_id: str, pid: int | None, started: float | None = None) -> defer.Deferred:
        """Freeze, kill, thaw; fires once the groups are empty and removed."""
        groups = self.groups
        if not groups.exists(container_id):
            return defer.succeed(None)
        what = f"destroying container {container_id}"
        if not groups.pids(container_id):
            return _poll(self.clock, lambda: groups.remove(container_id), what)
        groups.freeze(container_id)
        d = _poll(self.clock, lambda: groups.frozen(container_id), what)
        d.addCallback(lambda _: groups.kill(container_id))
        d.addCallback(lambda _: _poll(self.clock, lambda: not groups.pids(container_id), what,
                                      lambda: groups.kill(container_id)))
        d.addCallback(lambda _: _poll(self.clock, lambda: groups.remove(container_id), what))
        return d


@implementer(IIsolator)
class DiskIsolator:
    """``disk/du``: measures each sandbox every ``interval`` seconds (in a thread) and, with
    ``enforce``, reports a container that uses more than its disk as a disk limitation."""

    name = "disk/du"

    def __init__(self, clock: Any, interval: float = 15.0, enforce: bool = True,
                 measure: Callable[[str], defer.Deferred] | None = None):
        self.clock = clock
        self.interval = interval
        self.enforce = enforce
        self.measure = measure or (lambda path: threads.deferToThread(du, path))
        self.directories: dict[str, str] = {}
        self.limits: dict[str, float] = {}
        self.used: dict[str, int] = {}
        self._timers: dict[str, Any] = {}

    def recover(self, containers: Any) -> None:
        for record in containers:
            self.prepare(record.container_id, record.directory, record.resources)

    def prepare(self, container_id: str, directory: str, resources: Resources) -> dict[str, Any]:
        self.directories[container_id] = directory
        self.update(container_id, resources)
        self._timers[container_id] = self.clock.callLater(self.interval, self._check, container_id)
        return {}

    def isolate(self, container_id: str, pid: int) -> None:
        pass

    def update(self, container_id: str, resources: Resources) -> None:
        self.limits[container_id] = resources.scalar("disk")

    def _check(self, container_id: str) -> None:
        directory = self.directories.get(container_id)
        if directory is None:
            return
        self._timers[container_id] = None
        d = self.measure(directory)

        def measured(used: int) -> None:
            if container_id in self.directories:
                self.used[container_id] = used
                self._timers[container_id] = self.clock.callLater(self.interval, self._check, container_id)

        d.addCallbacks(measured, lambda f: log.warn("Cannot measure {d}: {e}", d=directory, e=f.getErrorMessage()))

    def usage(self, container_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if container_id in self.used:
            out["disk_used_bytes"] = self.used[container_id]
        if self.limits.get(container_id):
            out["disk_limit_bytes"] = int(self.limits[container_id] * MB)
        return out

    def limitation(self, container_id: str) -> Limitation | None:
        limit = self.limits.get(container_id)
        used = self.used.get(container_id)
        if not self.enforce or not limit or used is None or used <= limit * MB:
            return None
        return Limitation(T.REASON_CONTAINER_LIMITATION_DISK,
                          f"Disk usage ({used / MB:.1f} MB) exceeds the sandbox's quota ({limit:g} MB)")

    def cleanup(self, container_id: str) -> None:
        timer = self._timers.pop(container_id, None)
        if timer is not None and timer.active():
            timer.cancel()
        for table in (self.directories, self.limits, self.used):
            table.pop(container_id, None)

    def stop(self) -> None:
        for container_id in list(self._timers):
            self.cleanup(container_id)


def du(path: str) -> int:
    """Bytes a directory tree takes on disk (``du``: allocated blocks, hard links counted once)."""
    total, seen = 0, set()
    for root, dirs, files in os.walk(path, onerror=lambda e: None):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def build(isolation: str, clock: Any, cgroups_root: str = "mesostw", cgroups_hierarchy: str | None = None,
          enable_cfs: bool = True, disk_interval: float = 15.0, enforce_disk: bool = True,
          ) -> tuple[list[Any], Any]:
    """The isolators and the containment an ``--isolation`` value asks for.

    ``posix`` and ``cgroups`` name the two families (Mesos's ``posix/cpu,posix/mem`` and
    ``cgroups/cpu,cgroups/mem``, also accepted); ``disk/du`` adds sandbox disk checks. Raises
    :class:`mesostw.agent.cgroups.CgroupsError` when cgroups are asked for and the host has none usable.
    """
    names = {n.strip() for n in isolation.split(",") if n.strip()}
    wants_cgroups = "cgroups" in names or any(n.startswith("cgroups/") for n in names)
    isolators: list[Any] = []
    containment: Any
    if wants_cgroups:
        isolator = CgroupsIsolator(cg.detect(cgroups_root, cgroups_hierarchy), clock, enable_cfs)
        isolators.append(isolator)
        containment = isolator
    else:
        isolators.append(PosixIsolator())
        containment = PosixContainment(clock)
    if "disk/du" in names:
        isolators.append(DiskIsolator(clock, disk_interval, enforce_disk))
    return isolators, containment


KNOWN = ("posix", "cgroups", "posix/cpu", "posix/mem", "cgroups/cpu", "cgroups/mem", "cgroups/pids",
         "cgroups/freezer", "disk/du", "filesystem/posix")


def check_isolation(text: str) -> str:
    """The ``--isolation`` value if every name in it is known; ValueError otherwise."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise ValueError(f"unknown isolator(s) {', '.join(unknown)}; known: {', '.join(KNOWN)}")
    if not names:
        raise ValueError("no isolator named")
    families = {"cgroups" if n.startswith("cgroups") else "posix" for n in names if n.startswith(("posix", "cgroups"))}
    if len(families) > 1:
        raise ValueError("choose posix or cgroups isolation, not both")
    return text
