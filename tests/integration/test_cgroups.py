"""The cgroups layer against the host's real hierarchies: v1 as the agent uses it here, and v2 (the
unified mount) for grouping and killing, which is all this host delegates to it."""

from __future__ import annotations

import os
import subprocess

from twisted.internet import defer
from twisted.trial import unittest

from mesostw.agent import cgroups as cg
from tests.helpers.cgroups import remove_root, require_cgroups, unique_root
from tests.helpers.processes import wait_for


class HierarchyTests(unittest.TestCase):
    timeout = 60

    def setUp(self) -> None:
        require_cgroups()

    @defer.inlineCallbacks
    def assertKillsEverything(self, groups: cg.Cgroups) -> defer.Deferred:
        files = groups.create("c1")

        def join() -> None:
            for procs in files:
                with open(procs, "w") as f:
                    f.write(str(os.getpid()))

        shell = subprocess.Popen(["sh", "-c", "setsid sleep 4747 & nohup sleep 4748 & sleep 4749"], preexec_fn=join)
        self.addCleanup(shell.wait)
        yield wait_for(lambda: len(groups.pids("c1")) == 4, 10, what="the shell and its three sleeps")
        groups.freeze("c1")
        yield wait_for(lambda: groups.frozen("c1"), 10, what="the group frozen")
        groups.kill("c1")
        yield wait_for(lambda: not groups.pids("c1"), 10, what="the group empty")
        self.assertTrue(groups.remove("c1"))
        self.assertEqual(groups.names(), [])

    def test_v1_groups_limits_and_kill(self):
        """In v1, a container's groups take cpu and memory limits, count its processes, and freezing and
        killing empties them of everything, sessions of their own included."""
        root = unique_root()
        self.addCleanup(remove_root, root)
        groups = cg.detect(root)
        if not isinstance(groups, cg.CgroupsV1):
            raise AssertionError(f"expected cgroup v1 controllers on this host, found {groups.describe()}")
        groups.create("c1")
        groups.set_limits("c1", 0.25, 48 << 20, True)
        self.assertEqual(cg.read_int(groups.path("cpu", "c1") + "/cpu.cfs_quota_us"), 25000)
        self.assertEqual(cg.read_int(groups.path("memory", "c1") + "/memory.limit_in_bytes"), 48 << 20)
        return self.assertKillsEverything(groups)

    def test_v2_groups_and_kill(self):
        """In the unified (v2) hierarchy, a container's group holds its processes and cgroup.kill ends them all."""
        _, unified = cg.mounts()
        if unified is None:
            raise AssertionError("expected a cgroup2 mount on this host (/sys/fs/cgroup/unified)")
        root = unique_root()
        groups = cg.detect(root, unified)
        self.assertIsInstance(groups, cg.CgroupsV2)
        self.addCleanup(cg.remove_group, groups.base)
        return self.assertKillsEverything(groups)
