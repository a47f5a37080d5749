"""Persistent volumes on the agent: where they live, how sandboxes see them, and the agent's
checkpointed resources (what it is given, checkpoints, recovers and announces)."""

from __future__ import annotations

import os
import pwd
from typing import Any

from mesostw.agent.checkpoint import Checkpointer
from mesostw.agent.containerizer import Containerizer
from mesostw.agent.volumes import VolumeError, Volumes, volume_path
from mesostw.model.info import CommandInfo, ExecutorInfo, FrameworkInfo
from mesostw.model.resources import EMPTY, Resources
from tests.helpers.clocktest import ClockTestCase
from tests.unit.test_agent_recovery import RecoveryTestCase, _SlowStore
from tests.unit.test_containerizer import FakeContainment, FakeFetcher, FakeLauncher, RecordingIsolator
from tests.unit.test_reservations import reserved, volume


class VolumesTests(ClockTestCase):
    def setUp(self) -> None:
        self.work_dir = os.path.abspath(self.mktemp())
        self.volumes = Volumes(self.work_dir)
        self.sandbox = os.path.abspath(self.mktemp())
        os.makedirs(self.sandbox)

    def test_layout(self) -> None:
        """A volume lives under volumes/roles/<role>/<id>, a hierarchical role's '/' written as a space."""
        self.assertEqual(volume_path("/w", "eng/web", "db"), "/w/volumes/roles/eng web/db")
        [key] = volume("db", 1, role="eng").keys()
        self.assertEqual(self.volumes.path(key), os.path.join(self.work_dir, "volumes", "roles", "eng", "db"))

    def test_sync_makes_and_removes_volumes(self) -> None:
        """Created volumes get their directories; destroyed ones lose them with their data, unless a
        container still uses them."""
        a, b = volume("a", 1), volume("b", 1)
        self.volumes.sync(EMPTY, a + b + reserved("cpus:1"))
        paths = {name: self.volumes.path(next(iter(v.keys()))) for name, v in (("a", a), ("b", b))}
        self.assertTrue(all(os.path.isdir(p) for p in paths.values()))
        with open(os.path.join(paths["a"], "data"), "w") as f:
            f.write("kept")
        self.volumes.sync(a + b, b, in_use={paths["b"]})
        self.assertFalse(os.path.exists(paths["a"]))
        self.volumes.sync(b, EMPTY, in_use={paths["b"]})
        self.assertTrue(os.path.isdir(paths["b"]))
        self.volumes.sync(b, EMPTY)
        self.assertFalse(os.path.exists(paths["b"]))

    def test_link_into_the_sandbox(self) -> None:
        """Every volume of a container's resources appears at its container path (nested paths too), once;
        other resources are ignored."""
        resources = volume("a", 1, path="data") + volume("b", 1, path="deep/er") + reserved("cpus:1")
        self.volumes.link(self.sandbox, resources)
        self.volumes.link(self.sandbox, resources)
        for name, path in (("a", "data"), ("b", "deep/er")):
            target = os.path.join(self.sandbox, path)
            self.assertEqual(os.readlink(target), volume_path(self.work_dir, "eng", name))
            self.assertTrue(os.path.isdir(target))

    def test_link_refuses(self) -> None:
        """A container path that exists already, or that leaves the sandbox, is refused."""
        open(os.path.join(self.sandbox, "taken"), "w").close()
        self.assertRaises(VolumeError, self.volumes.link, self.sandbox, volume("a", 1, path="taken"))
        self.assertRaises(VolumeError, self.volumes.link, self.sandbox, volume("b", 1, path="../out"))
        self.assertRaises(VolumeError, self.volumes.link, self.sandbox, volume("c", 1, path="/abs"))

    def test_volume_goes_to_the_sandbox_owner(self) -> None:
        """A volume is given to the owner of the sandbox that uses it (when the agent may give it), so that
        the task's user can write it; a root-owned sandbox changes nothing."""
        nobody = pwd.getpwnam("nobody")
        if os.getuid() == 0:
            os.chown(self.sandbox, nobody.pw_uid, nobody.pw_gid)
        self.volumes.link(self.sandbox, volume("a", 1))
        owner = os.stat(volume_path(self.work_dir, "eng", "a")).st_uid
        self.assertEqual(owner, nobody.pw_uid if os.getuid() == 0 else os.getuid())


class ContainerizerVolumeTests(ClockTestCase):
    def setUp(self) -> None:
        self.clock = self.makeClock()
        launcher = FakeLauncher()
        self.work_dir = os.path.abspath(self.mktemp())
        self.containerizer = Containerizer(launcher, [RecordingIsolator()], FakeContainment(launcher),  # type: ignore[arg-type]
                                           self.clock, FakeFetcher(), volumes=Volumes(self.work_dir))
        self.addCleanup(self.containerizer.stop)
        self.sandbox = os.path.abspath(self.mktemp())
        self.executor = ExecutorInfo("E1", framework_id="F1", command=CommandInfo("./run"))
        self.framework = FrameworkInfo(user="root", name="f", id="F1")

    def launch(self, resources: Resources) -> Any:
        return self.containerizer.launch("c1", self.executor, self.framework, self.sandbox, {}, None, resources)

    def test_launch_and_update_link_volumes(self) -> None:
        """A container's volumes are in its sandbox when its executor starts; a task given to it later
        brings its own."""
        self.successResultOf(self.launch(reserved("cpus:1") + volume("a", 1)))
        self.assertTrue(os.path.islink(os.path.join(self.sandbox, "data")))
        self.containerizer.update("c1", reserved("cpus:1") + volume("a", 1) + volume("b", 1, path="more"))
        self.assertTrue(os.path.islink(os.path.join(self.sandbox, "more")))

    def test_a_volume_that_cannot_be_linked_fails_the_launch(self) -> None:
        """A launch whose volume cannot appear in the sandbox fails, naming the volume."""
        failure = self.failureResultOf(self.launch(volume("a", 1, path="../escape")), VolumeError)
        self.assertIn("volume a", failure.getErrorMessage())


class AgentCheckpointedResourcesTests(RecoveryTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.agent.volumes = Volumes(os.path.abspath(self.mktemp()))

    def test_checkpointed_and_volumes_made(self) -> None:
        """What the master gives the agent is checkpointed, becomes part of its total, and its volumes are
        made; resources its --resources cannot hold are ignored."""
        given = reserved("cpus:1;disk:64") + volume("v", 64)
        self.agent.checkpointResources(given)
        self.cluster.settle()
        self.assertEqual(self.checkpoint().resources, given)
        self.assertEqual(self.agent.total.scalars(), Resources.parse("cpus:2;mem:1024;disk:1024").scalars())
        self.assertEqual(self.agent.total.checkpointed(), given)
        self.assertTrue(os.path.isdir(self.agent.volumes.path(next(iter(volume("v", 64).keys())))))
        self.agent.checkpointResources(reserved("cpus:50"))
        self.cluster.settle()
        self.assertEqual(self.agent.checkpointed, given)
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_taken_only_once_on_disk(self) -> None:
        """The agent shows given resources in its total, and makes their volumes, only once the checkpoint
        holding them is durable: an agent killed before then has shown nothing it would not recover."""
        store = _SlowStore()
        self.agent.checkpointer = Checkpointer(store)
        given = reserved("cpus:1;disk:64") + volume("v", 64)
        self.agent.checkpointResources(given)
        self.agent.checkpointResources(given)
        path = self.agent.volumes.path(next(iter(volume("v", 64).keys())))
        self.assertEqual(self.agent.checkpointed, EMPTY)
        self.assertEqual(self.agent.total.checkpointed(), EMPTY)
        self.assertFalse(os.path.exists(path))
        store.release(1)
        self.assertEqual(store.waiting, [])
        self.assertEqual(self.agent.total.checkpointed(), given)
        self.assertTrue(os.path.isdir(path))

    def test_recovered_and_announced_after_a_restart(self) -> None:
        """A restarted agent recovers its checkpointed resources and announces them in its total when it
        re-registers, so that a master that does not know them learns them."""
        given = reserved("cpus:1")
        self.agent.checkpointResources(given)
        self.cluster.settle()
        self.cluster.master.agent_resources.known.clear()
        agent = self.restart()
        self.assertEqual(agent.checkpointed, given)
        self.assertEqual(self.cluster.master.agents[agent.id].checkpointed, given)
        self.assertEqual(self.cluster.master.agents[agent.id].info.resources, agent.info.resources)

    def test_checkpoint_keeps_resources_when_forgetting_the_rest(self) -> None:
        """forget_all (a checkpoint that cannot be read whole) keeps the checkpointed resources."""
        self.agent.checkpointResources(reserved("cpus:1"))
        self.cluster.settle()
        checkpointer = Checkpointer(self.store)
        checkpointer.forget_all()
        self.assertEqual(self.checkpoint().resources, reserved("cpus:1"))
