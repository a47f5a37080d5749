"""What this machine has: cpus, memory, disk and ports, as Mesos's agent computes them."""

from __future__ import annotations

import os

import psutil

from mesostw.model.resources import Resources, named_in, to_millis

MB = 1024 * 1024
GB = 1024 * MB
DEFAULT_PORTS = ((31000, 32000),)


def probe(work_dir: str, given: str | None = None, default_role: str = "*") -> Resources:
    """The agent's resources: ``given`` (``--resources``) plus probed values for what it omits.

    Defaults follow Mesos: all cores; total memory less 1 GB (half if under
    2 GB); disk of the work_dir's filesystem less 5 GB (half if under 10 GB);
    ports 31000-32000.
    """
    explicit = Resources.parse(given, default_role) if given else Resources()
    names = named_in(given) if given else set()
    items: dict = {}
    if "cpus" not in names:
        items[("cpus", default_role)] = to_millis(float(psutil.cpu_count() or 1))
    if "mem" not in names:
        total = psutil.virtual_memory().total
        mem = total - GB if total >= 2 * GB else total // 2
        items[("mem", default_role)] = to_millis(mem // MB)
    if "disk" not in names:
        path = work_dir
        while not os.path.exists(path):
            path = os.path.dirname(path) or "/"
        total = psutil.disk_usage(path).total
        disk = total - 5 * GB if total >= 10 * GB else total // 2
        items[("disk", default_role)] = to_millis(disk // MB)
    if "ports" not in names:
        items[("ports", default_role)] = DEFAULT_PORTS
    return explicit + Resources(items)


def missing_essentials(resources: Resources) -> str | None:
    """Why an agent with these resources cannot be offered, or None."""
    scalars = resources.scalars()
    lacking = [name for name in ("cpus", "mem") if scalars.get(name, 0) <= 0]
    if lacking:
        return f"the agent has no {' and no '.join(lacking)} to offer; give some with --resources"
    return None
