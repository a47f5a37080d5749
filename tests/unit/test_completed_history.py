"""A completed task as the master's bounded history keeps it (:meth:`Task.compact`): smaller, shown the same."""

from __future__ import annotations

import json

from twisted.trial import unittest

from mesostw.master import state_json
from mesostw.master.v1_text import task_v1_json
from mesostw.model import task as T
from mesostw.model.task import Task, TaskInfo, TaskStatus
from mesostw.model.v0 import task_json, task_model
from mesostw.operator.v1 import task_v1
from tests.helpers import bigmaster


def finished_task(executor: bool = False) -> Task:
    """A task with everything its JSON may show, and what none shows (its command's environment, data)."""
    info = {"name": "web", "task_id": {"value": "web.1"}, "agent_id": {"value": "S1"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
                          {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 31001}]}}],
            "data": "aGVsbG8=", "labels": {"labels": [{"key": "app", "value": "web"}]},
            "discovery": {"visibility": "FRAMEWORK", "name": "web"}}
    if executor:
        info["executor"] = {"executor_id": {"value": "ex"}, "command": {"value": "exec"}}
    else:
        info["command"] = {"value": "serve", "environment": {"variables": [{"name": "A", "value": "b"}]}}
    task = Task(info=TaskInfo.from_json(info), framework_id="F1", executor_id="ex" if executor else "web.1",
                user="alice")
    statuses = [
        TaskStatus("web.1", T.RUNNING, message="started", source=T.SOURCE_EXECUTOR, agent_id="S1",
                   executor_id=task.executor_id, timestamp=1.5, uuid=b"u1", data=b"payload", healthy=True),
        TaskStatus.from_json({"task_id": {"value": "web.1"}, "state": T.FINISHED, "timestamp": 2.25,
                              "agent_id": {"value": "S1"}, "uuid": "dTI=", "reason": "REASON_COMMAND_EXECUTOR_FAILED",
                              "container_status": {"network_infos": []}}),
    ]
    for status in statuses:
        task.record(status)
        task.status_update_state, task.status_update_uuid = status.state, status.uuid
    return task


class CompactTests(unittest.TestCase):
    def test_every_endpoint_shape_unchanged(self) -> None:
        """/master/state (v0, as text and as a model) and the v1 Task (as text and as a model) show a compact
        completed task exactly as they show the task it was made from, with or without an executor."""
        for executor in (False, True):
            task = finished_task(executor)
            compact = task.compact()
            for role in ("*", "web"):
                self.assertEqual(task_json(compact, role), task_json(task, role))
                self.assertEqual(task_model(compact, role), task_model(task, role))
                self.assertEqual(task_v1_json(compact, role), task_v1_json(task, role))
                self.assertEqual(task_v1(compact, role), task_v1(task, role))
            self.assertEqual(json.loads(task_v1_json(compact, "*")), task_v1(task, "*"))

    def test_drops_what_no_endpoint_shows(self) -> None:
        """The compact copy has no command, no task data and no status data; its statuses share the task's IDs."""
        task = finished_task()
        compact = task.compact()
        self.assertIsNone(compact.info.command)
        self.assertIsNone(compact.info.data)
        self.assertEqual([s.data for s in compact.statuses], [None, None])
        self.assertTrue(all(s.task_id is compact.task_id for s in compact.statuses))
        self.assertTrue(all(s.agent_id is compact.agent_id for s in compact.statuses))
        self.assertEqual(compact.statuses[1].extra, task.statuses[1].extra)
        self.assertEqual((compact.state, compact.status_update_state, compact.status_update_uuid, compact.user),
                         (T.FINISHED, T.FINISHED, b"u2", "alice"))
        self.assertIsNotNone(task.info.command)  # the live task is left as it was


class HistoryTests(unittest.TestCase):
    def test_master_keeps_compact_copies(self) -> None:
        """A task that finished and whose update was acknowledged joins its framework's history as a compact
        copy: no command, and /master/state shows it with its statuses."""
        cluster = bigmaster.build(agents=2, tasks=0, frameworks=1, completed=1)
        framework = cluster.master.frameworks[cluster.frameworks[0]]
        [done] = list(framework.completed_tasks)
        self.assertIsNone(done.info.command)
        self.assertEqual(done.state, T.FINISHED)
        shown_framework = state_json.framework_model(cluster.master, framework)
        [shown] = shown_framework["completed_tasks"]
        self.assertEqual((shown["id"], [s["state"] for s in shown["statuses"]]),
                         (done.task_id, [T.RUNNING, T.FINISHED]))
