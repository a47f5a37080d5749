"""Task groups on a real agent: the default executor forked by the launcher runs the group's tasks, each
in its own sandbox; one failing takes the others with it; tasks share a directory of the executor's sandbox,
and through it the executor's persistent volume; under cgroups the whole group is one container."""

from __future__ import annotations

import getpass
import os

from twisted.internet import defer, reactor
from twisted.trial import unittest

from mesostw.agent import cgroups as cg
from mesostw.model import task as T
from mesostw.model.info import FrameworkInfo
from mesostw.model.resources import Resources
from mesostw.scheduler.pb import MesosSchedulerDriver
from tests.helpers.cluster import RecordingScheduler, command_task
from tests.helpers.processes import ProcessCluster, wait_for
from tests.integration.test_containers import CgroupsCase, ContainerCase, processes_with
from tests.integration.test_reservations import PRINCIPAL, ROLE, reserved, volume

EXECUTOR = "cpus:0.1;mem:32;disk:10"


class GroupScheduler(RecordingScheduler):
    """Launches each pending task group (a list of tasks) on the next offer; declines the rest briefly."""

    def __init__(self) -> None:
        super().__init__()
        self.groups: list[list[dict]] = []

    def resourceOffers(self, driver, offers):
        self.offers.extend(offers)
        for offer in offers:
            if not self.groups:
                driver.declineOffer(offer.id, {"refuse_seconds": 0.5})
                continue
            tasks = self.groups.pop(0)
            for task in tasks:
                task["agent_id"] = {"value": offer.agent_id}
            executor = {"executor_id": {"value": f"group-{tasks[0]['task_id']['value']}"}, "type": "DEFAULT",
                        "resources": Resources.parse(EXECUTOR).to_json()}
            driver.acceptOffers([offer.id], [{"type": "LAUNCH_GROUP", "launch_group": {
                "executor": executor, "task_group": {"tasks": tasks}}}])


class GroupCase(ContainerCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.cluster = yield ProcessCluster(self, agents=1, agent_args=self.agent_args(),
                                            master_args=["--allocation_interval=0.2secs"]).start()
        self.groups = GroupScheduler()
        self.driver = MesosSchedulerDriver(self.groups, FrameworkInfo(user="root", name="groups"),
                                           self.cluster.master_address, reactor=reactor, backoff=0.2)
        self.addCleanup(lambda: self.driver.abort() and self.driver.stopped())
        self.driver.start()

    def launch_group(self, *tasks):
        self.groups.groups.append(list(tasks))
        self.driver.reviveOffers()

    def final_of(self, task_id):
        return wait_for(lambda: [u for u in self.groups.updates if u.task_id == task_id and u.terminal], 60,
                        what=f"a terminal update for {task_id}").addCallback(lambda updates: updates[-1])


class TaskGroupTests(GroupCase):
    @defer.inlineCallbacks
    def test_one_task_fails_and_the_other_is_killed(self):
        """The failing task is TASK_FAILED, the long one TASK_KILLED (nothing of it left running); each ran in
        tasks/<task id> of the executor's sandbox, where its output is."""
        self.launch_group(command_task("sleeper", "echo started; exec sleep 4646"),
                          command_task("failer", "sleep 1; exit 2"))
        failed = yield self.final_of("failer")
        killed = yield self.final_of("sleeper")
        self.assertEqual((failed.state, failed.message), (T.FAILED, "Command exited with status 2"))
        self.assertEqual(killed.state, T.KILLED)
        self.assertEqual(self.groups.states("sleeper"), [T.STARTING, T.RUNNING, T.KILLED])
        self.assertEqual(processes_with("sleep 4646"), [])
        sandboxes = [root for root, dirs, _ in os.walk(self.cluster.base) if root.endswith(os.path.join("tasks",
                                                                                                        "sleeper"))]
        self.assertEqual(len(sandboxes), 1)
        with open(os.path.join(sandboxes[0], "stdout")) as f:
            self.assertEqual(f.read(), "started\n")
        self.assertTrue(os.path.isdir(os.path.join(os.path.dirname(sandboxes[0]), "failer")))

    @defer.inlineCallbacks
    def test_kill_of_one_kills_the_group(self):
        """A scheduler's KILL of one task of a running group ends both."""
        self.launch_group(command_task("first", "exec sleep 4747"), command_task("second", "exec sleep 4748"))
        yield wait_for(lambda: T.RUNNING in self.groups.states("second"), 60, what="the group running")
        self.driver.killTask("first")
        first = yield self.final_of("first")
        second = yield self.final_of("second")
        self.assertEqual((first.state, second.state), (T.KILLED, T.KILLED))
        yield wait_for(lambda: not processes_with("sleep 474"), 10, what="the group's processes gone")

    @defer.inlineCallbacks
    def test_tasks_share_a_directory_of_the_executor_sandbox(self):
        """A PARENT sandbox path volume is one directory of the executor's sandbox for every task naming it:
        what one task writes there, the other finds at its own container_path; a finished task leaves the
        group running."""
        def shared(task, container_path):
            task["container"] = {"type": "MESOS", "volumes": [{"container_path": container_path, "mode": "RW",
                                 "source": {"type": "SANDBOX_PATH", "sandbox_path": {"type": "PARENT",
                                                                                     "path": "shared"}}}]}
            return task

        self.launch_group(shared(command_task("producer", "echo made by $MESOS_TASK_ID > out/file"), "out"),
                          shared(command_task("consumer", "exec sleep 4545"), "in"))
        finished = yield self.final_of("producer")
        self.assertEqual(finished.state, T.FINISHED)
        [sandbox] = [root for root, _, _ in os.walk(self.cluster.base)
                     if root.endswith(os.path.join("tasks", "consumer"))]
        with open(os.path.join(sandbox, "in", "file")) as f:
            self.assertEqual(f.read(), "made by producer\n")
        self.assertEqual(self.groups.states("consumer"), [T.STARTING, T.RUNNING])
        self.driver.killTask("consumer")
        self.assertEqual((yield self.final_of("consumer")).state, T.KILLED)


class CgroupsTaskGroupTests(GroupCase, CgroupsCase):
    @defer.inlineCallbacks
    def test_the_group_is_one_container(self):
        """Executor and tasks share one container, limited to their resources together, which holds every
        task's process."""
        self.launch_group(command_task("web", "exec sleep 4848", "cpus:0.2;mem:64"),
                          command_task("sidecar", "exec sleep 4849", "cpus:0.1;mem:32"))
        yield wait_for(lambda: T.RUNNING in self.groups.states("sidecar") and len(processes_with("sleep 484")) == 2,
                       60, what="the group running")
        agent_groups = cg.detect(self.cgroups_root)
        [container] = agent_groups.names()
        if isinstance(agent_groups, cg.CgroupsV1):
            self.assertEqual(cg.read_int(agent_groups.path("memory", container) + "/memory.limit_in_bytes"),
                             128 << 20)  # 32 (executor) + 64 + 32
        pids = set(agent_groups.pids(container))
        self.assertTrue(set(processes_with("sleep 484")) <= pids, (processes_with("sleep 484"), pids))
        self.driver.killTask("web")
        yield self.final_of("sidecar")


class VolumeGroupScheduler(RecordingScheduler):
    """On its first offer reserves resources for eng, creates the volume vol1 and launches a task group whose
    executor holds the volume, in one ACCEPT; declines the rest."""

    def __init__(self, tasks: list[dict]) -> None:
        super().__init__()
        self.tasks = tasks

    def resourceOffers(self, driver, offers):
        self.offers.extend(offers)
        for offer in offers:
            if not self.tasks:
                driver.declineOffer(offer.id, {"refuse_seconds": 0.5})
                continue
            tasks, self.tasks = self.tasks, []
            for task in tasks:
                task["agent_id"] = {"value": offer.agent_id}
            executor = {"executor_id": {"value": "pod"}, "type": "DEFAULT",
                        "resources": reserved("cpus:0.1;mem:32") + volume("vol1", 16)}
            driver.acceptOffers([offer.id], [
                {"type": "RESERVE", "reserve": {"resources": reserved("cpus:0.1;mem:32;disk:16")}},
                {"type": "CREATE", "create": {"volumes": volume("vol1", 16)}},
                {"type": "LAUNCH_GROUP", "launch_group": {"executor": executor, "task_group": {"tasks": tasks}}}])


class TaskGroupVolumeTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.cluster = yield ProcessCluster(self, agents=1, resources="cpus:2;mem:1024;disk:1024",
                                            master_args=["--allocation_interval=0.2secs"]).start()

    @defer.inlineCallbacks
    def test_the_group_shares_the_executors_persistent_volume(self):
        """A task group whose executor holds a persistent volume (reserved and created in the same ACCEPT):
        its task reaches the volume through a PARENT sandbox path volume and writes there; the data is in
        the volume under the agent's work_dir once the task is over."""
        task = command_task("writer", "echo from the group > shared/file")
        task["container"] = {"type": "MESOS", "volumes": [{"container_path": "shared", "mode": "RW", "source": {
            "type": "SANDBOX_PATH", "sandbox_path": {"type": "PARENT", "path": "data"}}}]}
        scheduler = VolumeGroupScheduler([task])
        # As root the agent runs the group as the framework's user: nobody, who must reach the work_dir.
        user = "nobody" if os.getuid() == 0 else getpass.getuser()
        os.chmod(self.cluster.base, 0o755)
        driver = MesosSchedulerDriver(scheduler, FrameworkInfo(user=user, name="pod", role=ROLE, principal=PRINCIPAL),
                                      self.cluster.master_address, reactor=reactor, backoff=0.2)
        self.addCleanup(lambda: driver.abort() and driver.stopped())
        driver.start()
        yield wait_for(lambda: T.FINISHED in scheduler.states("writer") or T.FAILED in scheduler.states("writer")
                       or T.ERROR in scheduler.states("writer"), 60, what="the writer to end")
        self.assertEqual(scheduler.states("writer")[-1], T.FINISHED,
                         [(u.state, u.message) for u in scheduler.updates if u.task_id == "writer"])
        [written] = [os.path.join(root, "file") for root, _, files in os.walk(self.cluster.base)
                     if "file" in files and os.path.join("volumes", "roles", ROLE, "vol1") in root]
        with open(written) as f:
            self.assertEqual(f.read(), "from the group\n")
