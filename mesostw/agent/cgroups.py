"""Control groups, v1 and v2: finding the hierarchies, making a container's groups, limits, usage, killing.

Plain blocking file operations on ``/sys/fs/cgroup`` (each a few microseconds), so the agent calls
them directly; only waiting (for a freeze, for a group to empty) is left to the caller's clock.
A container's groups live under the agent's own group of each hierarchy (``/proc/self/cgroup``:
the agent may itself be confined, and its containers must stay inside that confinement), in
``<cgroups_root>/<container_id>``.

v1 (one mount per controller, as on most hosts of Mesos's time) uses ``cpu``, ``cpuacct``,
``memory``, ``pids`` and ``freezer``; a container is killed by freezing it, sending SIGKILL to
every process in it and thawing it, so that nothing forks past the kill. v2 (one unified mount)
uses whatever controllers the host delegates (``cgroup.controllers``) and kills with
``cgroup.kill``; without controllers it still groups and kills, with no limits.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Iterable
from typing import Any

V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "freezer")
CFS_PERIOD_US = 100_000
#: The smallest quota the kernel takes.
MIN_CFS_QUOTA_US = 1000
#: cpu.shares per cpu (v1), as Mesos's CPU_SHARES_PER_CPU.
SHARES_PER_CPU = 1024
MIN_SHARES = 2
#: Mesos never sets a memory limit below this (MIN_MEMORY).
MIN_MEMORY = 32 * 1024 * 1024
USER_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class CgroupsError(Exception):
    """Cgroups are not usable as asked; the message says why."""


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def read_int(path: str, default: int = 0) -> int:
    try:
        text = read(path).strip()
    except OSError:
        return default
    if text == "max":
        return default
    try:
        return int(text)
    except ValueError:
        return default


def read_keyed(path: str) -> dict[str, int]:
    """A ``key value`` per line file (memory.stat, cpu.stat, cpuacct.stat, memory.events ...)."""
    out: dict[str, int] = {}
    try:
        text = read(path)
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


def own_groups(proc_cgroup: str = "/proc/self/cgroup") -> dict[str, str]:
    """Controller (``""`` for v2) -> this process's group path in that hierarchy."""
    groups: dict[str, str] = {}
    for line in read(proc_cgroup).splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            groups[controller] = path
    return groups


def mounts(proc_mounts: str = "/proc/mounts") -> tuple[dict[str, str], str | None]:
    """(v1 controller -> mount point, the v2 mount point or None), from the mount table."""
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in read(proc_mounts).splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        point, kind, options = fields[1], fields[2], fields[3].split(",")
        if kind == "cgroup2" and v2 is None:
            v2 = point
        elif kind == "cgroup":
            for option in options:
                if option in V1_CONTROLLERS and option not in v1:
                    v1[option] = point
    return v1, v2


def _mkdirs(path: str) -> None:
    try:
        try:
            os.mkdir(path)  # the usual case: the parent (the agent's root group) exists
        except FileNotFoundError:
            os.makedirs(path, exist_ok=True)
        except FileExistsError:
            pass
    except OSError as exc:
        raise CgroupsError(f"cannot create the cgroup {path}: {exc.strerror}") from None


def remove_group(path: str) -> bool:
    """Remove a group (empty of processes), its child groups first. True when it is gone."""
    for _ in range(2):
        try:
            os.rmdir(path)  # control files do not count: only child groups or processes keep it
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                raise
        children = [os.path.join(path, n) for n in os.listdir(path) if os.path.isdir(os.path.join(path, n))]
        if not children or not all([remove_group(child) for child in children]):
            return False
    return False


def _kill_all(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class CgroupsV1:
    """Containers' groups in the v1 hierarchies: one directory per controller."""

    version = 1

    def __init__(self, root: str, mount_points: dict[str, str], own: dict[str, str]):
        self.root = root.strip("/")
        self.controllers = tuple(c for c in V1_CONTROLLERS if c in mount_points)
        missing = {"memory", "cpu", "freezer"} - set(self.controllers)
        if missing:
            raise CgroupsError(f"cgroups v1 lacks the {', '.join(sorted(missing))} controller(s)")
        #: controller -> the directory under which containers' groups are made
        self.bases = {c: os.path.join(mount_points[c], own.get(c, "/").lstrip("/"), self.root)
                      for c in self.controllers}

    def describe(self) -> str:
        return f"cgroups v1 ({', '.join(self.controllers)}) under {self.bases['memory']}"

    def path(self, controller: str, name: str) -> str:
        return os.path.join(self.bases[controller], name)

    def create(self, name: str) -> list[str]:
        """Make the container's groups; returns the files a process writes its pid into to join them."""
        files = []
        for controller in self.controllers:
            path = self.path(controller, name)
            _mkdirs(path)
            files.append(os.path.join(path, "cgroup.procs"))
        return files

    def names(self) -> list[str]:
        """Containers with a group here (from an earlier run of the agent too)."""
        try:
            return sorted(n for n in os.listdir(self.bases["freezer"])
                          if os.path.isdir(os.path.join(self.bases["freezer"], n)))
        except FileNotFoundError:
            return []

    def exists(self, name: str) -> bool:
        return os.path.isdir(self.path("freezer", name))

    def set_limits(self, name: str, cpus: float | None, mem_bytes: int | None, enable_cfs: bool) -> None:
        if cpus:
            write(self.path("cpu", name) + "/cpu.shares", str(max(MIN_SHARES, int(cpus * SHARES_PER_CPU))))
            if enable_cfs:
                write(self.path("cpu", name) + "/cpu.cfs_period_us", str(CFS_PERIOD_US))
                write(self.path("cpu", name) + "/cpu.cfs_quota_us",
                      str(max(MIN_CFS_QUOTA_US, int(cpus * CFS_PERIOD_US))))
        if mem_bytes:
            limit = str(max(MIN_MEMORY, mem_bytes))
            memory = self.path("memory", name)
            try:
                write(memory + "/memory.limit_in_bytes", limit)
            except OSError as exc:
                if exc.errno != errno.EBUSY:  # lowering below what is used: the kernel refuses, keep the old
                    raise
            write(memory + "/memory.soft_limit_in_bytes", limit)

    def pids(self, name: str) -> list[int]:
        try:
            return [int(p) for p in read(self.path("freezer", name) + "/cgroup.procs").split()]
        except (FileNotFoundError, ValueError):
            return []

    def oom_kills(self, name: str) -> int:
        control = read_keyed(self.path("memory", name) + "/memory.oom_control")
        if "oom_kill" in control:
            return control["oom_kill"]
        return 1 if control.get("under_oom") else 0

    def freeze(self, name: str) -> None:
        write(self.path("freezer", name) + "/freezer.state", "FROZEN")

    def frozen(self, name: str) -> bool:
        try:
            return read(self.path("freezer", name) + "/freezer.state").strip() == "FROZEN"
        except FileNotFoundError:
            return True

    def kill(self, name: str) -> None:
        """SIGKILL everything in the (frozen) group, then thaw it so that the signals take effect."""
        _kill_all(self.pids(name))
        try:
            write(self.path("freezer", name) + "/freezer.state", "THAWED")
        except FileNotFoundError:
            pass

    def remove(self, name: str) -> bool:
        """Remove the container's groups once they are empty; True when all are gone."""
        return all([remove_group(self.path(c, name)) for c in self.controllers])

    def stats(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        acct = read_keyed(self.path("cpuacct", name) + "/cpuacct.stat") if "cpuacct" in self.controllers else {}
        if acct:
            out["cpus_user_time_secs"] = acct.get("user", 0) / USER_HZ
            out["cpus_system_time_secs"] = acct.get("system", 0) / USER_HZ
        cpu = read_keyed(self.path("cpu", name) + "/cpu.stat")
        if cpu:
            out["cpus_nr_periods"] = cpu.get("nr_periods", 0)
            out["cpus_nr_throttled"] = cpu.get("nr_throttled", 0)
            out["cpus_throttled_time_secs"] = cpu.get("throttled_time", 0) / 1e9
        memory = self.path("memory", name)
        stat = read_keyed(memory + "/memory.stat")
        if stat:
            out["mem_total_bytes"] = read_int(memory + "/memory.usage_in_bytes")
            out["mem_rss_bytes"] = stat.get("total_rss", stat.get("rss", 0))
            out["mem_anon_bytes"] = stat.get("total_rss", stat.get("rss", 0))
            out["mem_file_bytes"] = stat.get("total_cache", stat.get("cache", 0))
            out["mem_mapped_file_bytes"] = stat.get("total_mapped_file", stat.get("mapped_file", 0))
            out["mem_limit_bytes"] = read_int(memory + "/memory.limit_in_bytes")
        if "pids" in self.controllers:
            out["processes"] = read_int(self.path("pids", name) + "/pids.current")
        return out


class CgroupsV2:
    """Containers' groups in the unified hierarchy: one directory, with the controllers delegated to it."""

    version = 2

    def __init__(self, root: str, mount_point: str, own: dict[str, str]):
        self.root = root.strip("/")
        self.base = os.path.join(mount_point, own.get("", "/").lstrip("/"), self.root)
        _mkdirs(self.base)
        # Delegate what the host lets us (each level from our own group down); a level holding
        # processes refuses (v2's "no internal processes"), and whatever is not delegated goes unlimited.
        own_dir = os.path.join(mount_point, own.get("", "/").lstrip("/"))
        levels = [own_dir]
        for part in self.root.split("/"):
            levels.append(os.path.join(levels[-1], part))
        for level in levels:
            available = self._available(level)
            for controller in ("cpu", "memory", "pids"):
                if controller in available:
                    try:
                        write(os.path.join(level, "cgroup.subtree_control"), f"+{controller}")
                    except OSError:
                        pass
        self.controllers = tuple(c for c in ("cpu", "memory", "pids") if c in self._enabled(self.base))

    @staticmethod
    def _available(path: str) -> set[str]:
        try:
            return set(read(os.path.join(path, "cgroup.controllers")).split())
        except OSError:
            return set()

    @staticmethod
    def _enabled(path: str) -> set[str]:
        try:
            return set(read(os.path.join(path, "cgroup.subtree_control")).split())
        except OSError:
            return set()

    def describe(self) -> str:
        controllers = ", ".join(self.controllers) or "no controllers: grouping and killing only"
        return f"cgroups v2 ({controllers}) under {self.base}"

    def path(self, name: str) -> str:
        return os.path.join(self.base, name)

    def create(self, name: str) -> list[str]:
        _mkdirs(self.path(name))
        return [os.path.join(self.path(name), "cgroup.procs")]

    def names(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.base) if os.path.isdir(os.path.join(self.base, n)))
        except FileNotFoundError:
            return []

    def exists(self, name: str) -> bool:
        return os.path.isdir(self.path(name))

    def set_limits(self, name: str, cpus: float | None, mem_bytes: int | None, enable_cfs: bool) -> None:
        path = self.path(name)
        if cpus and "cpu" in self.controllers:
            # cpu.weight is 1-10000 with 100 for one share of 1024: as systemd converts shares.
            write(path + "/cpu.weight", str(min(10000, max(1, int(cpus * SHARES_PER_CPU * 100 / 1024)))))
            if enable_cfs:
                write(path + "/cpu.max", f"{max(MIN_CFS_QUOTA_US, int(cpus * CFS_PERIOD_US))} {CFS_PERIOD_US}")
        if mem_bytes and "memory" in self.controllers:
            write(path + "/memory.max", str(max(MIN_MEMORY, mem_bytes)))

    def pids(self, name: str) -> list[int]:
        try:
            return [int(p) for p in read(self.path(name) + "/cgroup.procs").split()]
        except (FileNotFoundError, ValueError):
            return []

    def oom_kills(self, name: str) -> int:
        return read_keyed(self.path(name) + "/memory.events").get("oom_kill", 0)

    def freeze(self, name: str) -> None:
        pass  # cgroup.kill needs no freeze: the kernel kills every process and every new fork

    def frozen(self, name: str) -> bool:
        return True

    def kill(self, name: str) -> None:
        try:
            write(self.path(name) + "/cgroup.kill", "1")
        except FileNotFoundError:
            return
        except OSError:  # a kernel older than 5.14: no cgroup.kill
            _kill_all(self.pids(name))

    def remove(self, name: str) -> bool:
        return remove_group(self.path(name))

    def stats(self, name: str) -> dict[str, Any]:
        path = self.path(name)
        out: dict[str, Any] = {}
        cpu = read_keyed(path + "/cpu.stat")
        if cpu:
            out["cpus_user_time_secs"] = cpu.get("user_usec", 0) / 1e6
            out["cpus_system_time_secs"] = cpu.get("system_usec", 0) / 1e6
            if "nr_periods" in cpu:
                out["cpus_nr_periods"] = cpu["nr_periods"]
                out["cpus_nr_throttled"] = cpu.get("nr_throttled", 0)
                out["cpus_throttled_time_secs"] = cpu.get("throttled_usec", 0) / 1e6
        if "memory" in self.controllers:
            stat = read_keyed(path + "/memory.stat")
            out["mem_total_bytes"] = read_int(path + "/memory.current")
            out["mem_rss_bytes"] = out["mem_anon_bytes"] = stat.get("anon", 0)
            out["mem_file_bytes"] = stat.get("file", 0)
            out["mem_mapped_file_bytes"] = stat.get("file_mapped", 0)
            limit = read_int(path + "/memory.max")
            if limit:
                out["mem_limit_bytes"] = limit
        if "pids" in self.controllers:
            out["processes"] = read_int(path + "/pids.current")
        return out


Cgroups = CgroupsV1 | CgroupsV2


def detect(root: str, hierarchy: str | None = None, proc: str = "/proc") -> Cgroups:
    """The cgroups this host offers: v1 when its memory, cpu and freezer controllers are mounted
    (hybrid hosts included), else the unified v2 hierarchy; ``hierarchy`` forces one mount point
    (a v2 mount, or the directory holding v1 controller mounts). Raises CgroupsError when neither works."""
    if os.geteuid() != 0:
        raise CgroupsError("cgroups isolation needs the agent to run as root")
    v1, v2 = mounts(os.path.join(proc, "mounts"))
    own = own_groups(os.path.join(proc, "self", "cgroup"))
    if hierarchy is not None:
        hierarchy = hierarchy.rstrip("/")
        if hierarchy == v2:
            return CgroupsV2(root, hierarchy, own)
        v1 = {c: p for c, p in v1.items() if os.path.dirname(p) == hierarchy}
    if {"memory", "cpu", "freezer"} <= set(v1):
        return CgroupsV1(root, v1, own)
    if v2 is not None and hierarchy is None:
        return CgroupsV2(root, v2, own)
    raise CgroupsError("no usable cgroup hierarchy: mount cgroup v1 (memory, cpu, freezer) or cgroup2")
