"""Real cgroups for integration tests: check the host has them, give each agent its own root, remove it after.

Tests that need cgroups fail loudly (with the reason) where the host lacks them: CI runs as root on
hosts like the development ones, so a missing facility is a broken host, not a reason to skip.
"""

from __future__ import annotations

import os
import signal
import uuid

from twisted.internet import defer

from mesostw.agent import cgroups as cg
from tests.helpers.processes import wait_for


def require_cgroups() -> cg.Cgroups:
    """The host's cgroups (as an agent would detect them), or an AssertionError saying what is missing."""
    probe = f"mesostw-probe-{uuid.uuid4().hex[:8]}"
    try:
        groups = cg.detect(probe)
    except (cg.CgroupsError, OSError) as exc:
        raise AssertionError(f"these tests need cgroups (root, cgroup v1 memory/cpu/freezer or cgroup2): {exc}"
                             ) from None
    for base in _bases(groups):
        cg.remove_group(base)  # nothing was made in it
    return groups


def unique_root() -> str:
    return f"mesostw-test-{uuid.uuid4().hex[:10]}"


def _bases(groups: cg.Cgroups) -> list[str]:
    return list(groups.bases.values()) if isinstance(groups, cg.CgroupsV1) else [groups.base]


def remove_root(root: str) -> defer.Deferred:
    """Kill whatever is left in the groups under ``root`` (an agent's --cgroups_root) and remove them all."""
    groups = cg.detect(root)
    bases = _bases(groups)
    for base in bases:
        for directory, _, _ in os.walk(base, topdown=False):
            try:
                with open(os.path.join(directory, "cgroup.procs")) as f:
                    pids = [int(p) for p in f.read().split()]
            except (OSError, ValueError):
                pids = []
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if os.path.exists(os.path.join(directory, "freezer.state")):
                try:
                    with open(os.path.join(directory, "freezer.state"), "w") as f:
                        f.write("THAWED")
                except OSError:
                    pass

    def removed() -> bool:
        return all(cg.remove_group(base) for base in bases)

    return wait_for(removed, 30, interval=0.02, what=f"the cgroups under {root} removed")
