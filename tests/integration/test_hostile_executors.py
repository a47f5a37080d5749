"""Issue 12, item 1: nobody but an executor speaks for it, on any of the agent's executor transports.

Mallory holds valid credentials of her own and runs tasks on the same agent as Alice; she can read
the cluster's state, so she knows Alice's framework and executor IDs. She forges status updates
and subscribes as Alice's executor over HTTP and over the RecordIO executor stream.
"""

from __future__ import annotations

import base64
import json
import os
import uuid

from twisted.internet import defer, threads
from twisted.trial import unittest

from mesostw.wire.preambles import EXECUTOR as EXECUTOR_PREAMBLE
from tests.helpers.processes import http, wait_for
from tests.integration.hostile import HostileCluster, raw_exchange

JSON = "application/json"


def call(kind: str, framework_id: str, executor_id: str, body: dict | None = None) -> dict:
    out = {"type": kind, "framework_id": {"value": framework_id}, "executor_id": {"value": executor_id}}
    if body is not None:
        out[kind.lower()] = body
    return out


def finished(task_id: str) -> dict:
    return {"status": {"task_id": {"value": task_id}, "state": "TASK_FINISHED", "source": "SOURCE_EXECUTOR",
                       "uuid": base64.b64encode(uuid.uuid4().bytes).decode(), "message": "forged"}}


class ExecutorImpersonationTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.cluster = yield HostileCluster(self).start()
        self.alice, self.executor = yield self.cluster.running_task(self, "alice", "alice-task")
        self.framework_id = self.alice.framework_id

    def post_executor_call(self, body: dict, headers: dict | None = None) -> defer.Deferred:
        return http("POST", self.cluster.agent_url("/api/v1/executor"), json.dumps(body).encode(),
                    {"Content-Type": JSON, "Accept": JSON, **(headers or {})})

    @defer.inlineCallbacks
    def assert_alice_task_intact(self):
        """Alice's task is still running, and her real executor still answers: killing the task gives
        TASK_KILLED (not the TASK_FAILED of an executor that lost its agent)."""
        task = yield self.cluster.master_task("alice-task")
        self.assertEqual(task["state"], "TASK_RUNNING")
        self.alice.driver.killTask("alice-task")
        yield wait_for(lambda: self.alice.states("alice-task")[-1:] in (["TASK_KILLED"], ["TASK_FAILED"]), 60,
                       what="alice's task to end")
        self.assertEqual(self.alice.states("alice-task"), ["TASK_RUNNING", "TASK_KILLED"])

    @defer.inlineCallbacks
    def test_forged_update_over_http_is_refused(self):
        """A TASK_FINISHED for Alice's running task, posted without a secret or with the secret of
        Mallory's own executor, is refused with 401: the master never frees Alice's resources."""
        mallory, own = yield self.cluster.running_task(
            self, "mallory", "mallory-task", "echo -n $MESOS_EXECUTOR_AUTHENTICATION_TOKEN > token; sleep 300")
        self.assertEqual(open(os.path.join(own["directory"], "token")).read(), "",
                         "the command executor must not hand its secret to the task")
        forged = call("UPDATE", self.framework_id, "alice-task", finished("alice-task"))
        code, body, headers = yield self.post_executor_call(forged)
        self.assertEqual(code, 401, body)
        self.assertIn(b"Bearer", headers.getRawHeaders(b"www-authenticate")[0])
        for secret in ("guess", base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")):
            code, body, _ = yield self.post_executor_call(forged, {"Authorization": f"Bearer {secret}"})
            self.assertEqual(code, 401, body)
        yield self.assert_alice_task_intact()

    @defer.inlineCallbacks
    def test_custom_executor_secret_does_not_open_another_executor(self):
        """A custom executor's own secret (which it does get) speaks for it alone, not for Alice's."""
        from tests.integration.test_core_cluster import LaunchingScheduler

        scheduler = LaunchingScheduler()
        executor = {"executor_id": {"value": "mallory-executor"}, "name": "x",
                    "command": {"value": "echo -n $MESOS_EXECUTOR_AUTHENTICATION_TOKEN > token; sleep 300"},
                    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                                  {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]}
        scheduler.pending = [{"name": "m", "task_id": {"value": "m"}, "agent_id": {"value": ""},
                              "resources": executor["resources"], "executor": executor}]
        self.cluster.framework(self, scheduler, "mallory")
        state = yield wait_for(self._executor_state("mallory-executor"), 60, what="mallory's executor")
        token_file = os.path.join(state["directory"], "token")
        yield wait_for(lambda: os.path.exists(token_file) and os.path.getsize(token_file), 30, what="the token")
        with open(token_file) as f:
            stolen = f.read()
        forged = call("UPDATE", self.framework_id, "alice-task", finished("alice-task"))
        code, body, _ = yield self.post_executor_call(forged, {"Authorization": f"Bearer {stolen}"})
        self.assertEqual(code, 401, body)
        subscribe = call("SUBSCRIBE", self.framework_id, "alice-task", {"unacknowledged_tasks": []})
        code, body, _ = yield self.post_executor_call(subscribe, {"Authorization": f"Bearer {stolen}"})
        self.assertEqual(code, 401, body)
        yield self.assert_alice_task_intact()

    def _executor_state(self, executor_id):
        def find():
            return self.cluster.agent_state().addCallback(
                lambda s: next((e for f in s["frameworks"] for e in f["executors"] if e["id"] == executor_id), None))
        return find

    @defer.inlineCallbacks
    def test_subscribing_as_another_executor_is_refused_on_every_transport(self):
        """SUBSCRIBE as Alice's executor over HTTP and over the RecordIO stream, without the secret or with a
        wrong one, binds nothing: the stream gets ERROR and is closed, and the real executor keeps its task."""
        subscribe = call("SUBSCRIBE", self.framework_id, "alice-task", {"unacknowledged_tasks": []})
        code, body, _ = yield self.post_executor_call(subscribe)
        self.assertEqual(code, 401, body)
        for token in (None, "wrong"):
            record = dict(subscribe, **({"token": token} if token is not None else {}))
            payload = json.dumps(record).encode()
            answer = yield threads.deferToThread(raw_exchange, self.cluster.agent_address,
                                                 EXECUTOR_PREAMBLE + str(len(payload)).encode() + b"\n" + payload)
            self.assertIn(b'"ERROR"', answer)
            self.assertIn(b"executor secret", answer)
            self.assertNotIn(b"SUBSCRIBED", answer)
        yield self.assert_alice_task_intact()
