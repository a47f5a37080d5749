"""The third-party pymesos client against real processes over the v1 HTTP APIs."""

from __future__ import annotations

import base64
import os
import sys
import threading

from pymesos import MesosSchedulerDriver, Scheduler
from twisted.internet import defer
from twisted.trial import unittest

from tests.helpers.processes import ProcessCluster, get_json, http, wait_for

EXECUTOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs", "pymesos_executor.py")


def resources(cpus: float = 0.1, mem: float = 32) -> list[dict]:
    return [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}}]


class PyMesosScheduler(Scheduler):
    """Launches queued tasks on offers; records updates (pymesos calls from its own thread)."""

    def __init__(self, tasks: list[dict]):
        self.lock = threading.Lock()
        self.queue = list(tasks)
        self.updates: list[dict] = []
        self.framework_id = None
        self.errors: list[str] = []

    def registered(self, driver, framework_id, master_info):
        self.framework_id = framework_id["value"]

    def resourceOffers(self, driver, offers):
        with self.lock:
            for offer in offers:
                batch, self.queue = self.queue, []
                if not batch:
                    driver.declineOffer(offer["id"], filters={"refuse_seconds": 1})
                    continue
                for task in batch:
                    task["agent_id"] = offer["agent_id"]
                driver.launchTasks(offer["id"], batch)

    def statusUpdate(self, driver, update):
        with self.lock:
            self.updates.append(update)

    def error(self, driver, message):
        self.errors.append(message)

    def states(self, task_id: str) -> list[str]:
        with self.lock:
            return [u["state"] for u in self.updates if u["task_id"]["value"] == task_id]

    def finished(self, *task_ids: str) -> bool:
        return all(s and s[-1] in ("TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR")
                   for s in map(self.states, task_ids))


def command_task(task_id: str, command: str) -> dict:
    return {"name": task_id, "task_id": {"value": task_id}, "resources": resources(), "command": {"value": command}}


class PyMesosTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.cluster = yield ProcessCluster(self, agents=1).start()

    def start(self, scheduler: PyMesosScheduler, **framework) -> MesosSchedulerDriver:
        info = {"user": "root", "name": "pymesos-test", "hostname": "127.0.0.1", **framework}
        driver = MesosSchedulerDriver(scheduler, info, self.cluster.master_address)
        driver.start()

        def stop():
            driver.stop()
            driver.join()

        self.addCleanup(stop)
        return driver

    @defer.inlineCallbacks
    def retired(self, framework_id: str, count: int):
        """Wait until the master has retired ``count`` acknowledged tasks of the framework."""
        def check(state):
            framework = next((f for f in state["frameworks"] if f["id"] == framework_id), None)
            return framework is not None and not framework["tasks"] and len(framework["completed_tasks"]) == count \
                and framework

        framework = yield wait_for(lambda: self.cluster.state().addCallback(check), 30, what="acknowledged tasks")
        return framework

    @defer.inlineCallbacks
    def test_command_tasks_finish_and_are_acknowledged(self):
        """pymesos launches command tasks that all finish; its acknowledgements retire them on the master."""
        ids = ["cmd-1", "cmd-2", "cmd-3"]
        scheduler = PyMesosScheduler([command_task(t, "echo from $MESOS_EXECUTOR_ID") for t in ids])
        self.start(scheduler)
        yield wait_for(lambda: scheduler.finished(*ids), 60, what="pymesos tasks to finish")
        for task_id in ids:
            self.assertEqual(scheduler.states(task_id), ["TASK_RUNNING", "TASK_FINISHED"])
        framework = yield self.retired(scheduler.framework_id, 3)
        self.assertEqual({t["state"] for t in framework["completed_tasks"]}, {"TASK_FINISHED"})

    @defer.inlineCallbacks
    def test_custom_executor_runs_tasks(self):
        """Tasks with an ExecutorInfo run under a pymesos custom executor and finish."""
        executor = {"executor_id": {"value": "writer"}, "name": "writer",
                    "command": {"value": f"{sys.executable} {EXECUTOR}"}, "resources": resources(0.1, 64)}
        tasks = []
        for name in ("alpha", "beta"):
            tasks.append({"name": name, "task_id": {"value": name}, "resources": resources(),
                          "executor": executor, "data": base64.b64encode(name.upper().encode()).decode()})
        scheduler = PyMesosScheduler(tasks)
        self.start(scheduler)
        yield wait_for(lambda: scheduler.finished("alpha", "beta"), 60, what="custom executor tasks")
        self.assertEqual(scheduler.states("alpha")[-1], "TASK_FINISHED")
        self.assertEqual(scheduler.states("beta")[-1], "TASK_FINISHED")
        yield self.retired(scheduler.framework_id, 2)
        agent = (yield self.cluster.state())["slaves"][0]
        agent_state = yield get_json(f"http://127.0.0.1:{agent['port']}/slave(1)/state")
        executor_state = agent_state["frameworks"][0]["executors"][0]
        self.assertEqual(executor_state["id"], "writer")
        read = yield get_json(f"http://127.0.0.1:{agent['port']}/files/read?offset=0&path="
                              f"{executor_state['directory']}/beta")
        self.assertEqual(read["data"], "BETA")

    @defer.inlineCallbacks
    def test_reconciliation_round_trip(self):
        """Explicit reconciliation answers a running task's state and TASK_LOST for an unknown one."""
        scheduler = PyMesosScheduler([command_task("long", "sleep 600")])
        driver = self.start(scheduler)
        yield wait_for(lambda: "TASK_RUNNING" in scheduler.states("long"), 60, what="TASK_RUNNING")
        seen = len(scheduler.updates)
        driver.reconcileTasks([{"task_id": {"value": "long"}}, {"task_id": {"value": "ghost"}}])
        yield wait_for(lambda: len(scheduler.updates) >= seen + 2, 30, what="reconciliation answers")
        answers = {u["task_id"]["value"]: u for u in scheduler.updates[seen:]}
        self.assertEqual(answers["long"]["state"], "TASK_RUNNING")
        self.assertEqual(answers["long"]["reason"], "REASON_RECONCILIATION")
        self.assertNotIn("uuid", answers["long"])
        self.assertEqual(answers["ghost"]["state"], "TASK_LOST")
        seen = len(scheduler.updates)
        driver.reconcileTasks([])
        yield wait_for(lambda: len(scheduler.updates) >= seen + 1, 30, what="implicit reconciliation")
        self.assertEqual(scheduler.updates[seen]["task_id"]["value"], "long")

    @defer.inlineCallbacks
    def test_operator_teardown_kills_the_frameworks_tasks(self):
        """POST /master/teardown removes a pymesos framework and kills its running task."""
        scheduler = PyMesosScheduler([command_task("victim", "sleep 600")])
        self.start(scheduler, failover_timeout=3600)
        yield wait_for(lambda: "TASK_RUNNING" in scheduler.states("victim"), 60, what="TASK_RUNNING")
        code, body, _ = yield http("POST", self.cluster.url("/master/teardown"),
                                   f"frameworkId={scheduler.framework_id}".encode(),
                                   {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(code, 200, body)
        state = yield self.cluster.state()
        self.assertEqual(state["frameworks"], [])
        self.assertEqual(state["completed_frameworks"][0]["id"], scheduler.framework_id)
        agent = state["slaves"][0]

        def no_executors(agent_state):
            return not any(f["executors"] for f in agent_state["frameworks"])

        yield wait_for(lambda: get_json(f"http://127.0.0.1:{agent['port']}/slave(1)/state").addCallback(
            no_executors), 30, what="the task to be killed on the agent")
        code, body, _ = yield http("POST", self.cluster.url("/master/teardown"), b"frameworkId=nope",
                                   {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(code, 400)
