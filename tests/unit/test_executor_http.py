"""The v1 executor HTTP API (``/api/v1/executor``) over real HTTP/1.1 parsing, against an in-process cluster.

The agent's fake containerizer starts executors that stay silent; the test then
plays the executor over HTTP: it subscribes, receives LAUNCH on the open RecordIO
stream and sends UPDATE and MESSAGE calls on connections of their own.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from mesostw.agent.executor_http import ExecutorAPI, HTTPExecutorLink
from mesostw.agent.state import REGISTERING, RUNNING, TERMINATED
from mesostw.model import task as T
from tests.helpers.cluster import RecordingScheduler, command_task
from tests.unit.test_scheduler_http import JSON, Exchange, HTTPTestCase

PATH = "/api/v1/executor"


class MessageRecordingScheduler(RecordingScheduler):
    """Also keeps the framework messages executors send."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[tuple[str, str, bytes]] = []

    def frameworkMessage(self, driver: Any, executorId: str, agentId: str, data: bytes) -> None:
        self.messages.append((executorId, agentId, data))


def new_uuid() -> str:
    return base64.b64encode(uuid.uuid4().bytes).decode()


def status(task_id: str = "t1", state: str = T.RUNNING, uuid_text: str | None = None,
           **extra: Any) -> dict[str, Any]:
    out = {"task_id": {"value": task_id}, "state": state, "source": "SOURCE_EXECUTOR", "timestamp": 1.0, **extra}
    if uuid_text is not None:
        out["uuid"] = uuid_text
    return out


class ExecutorAPITestCase(HTTPTestCase):
    """One agent whose executors do not subscribe by themselves; a framework has launched task t1 there."""

    def setUp(self) -> None:
        self.start()
        self.agent = self.cluster.agents[0]
        self.containerizer = self.cluster.containerizers[0]
        self.containerizer.subscribe = False
        self.api = ExecutorAPI(self.agent)
        self.api.install(self.router)
        self.scheduler = MessageRecordingScheduler()
        self.scheduler.pending = [command_task("t1", "sleep 1000")]
        self.scheduler, self.driver = self.cluster.framework("exec-test", self.scheduler)
        self.framework_id = self.scheduler.framework_id
        self.executor = self.agent.frameworks[self.framework_id].executors["t1"]

    def open(self, method: str, body: Any = b"", path: str = PATH, headers: dict[str, str] | None = None,
             content_type: str | None = JSON) -> Exchange:
        """As the executor it names would send it: with that executor's secret (unless the test gives
        an Authorization header of its own)."""
        headers = dict(headers or {})
        if isinstance(body, dict) and "Authorization" not in headers:
            secret = self.secret_of(body)
            if secret is not None:
                headers["Authorization"] = f"Bearer {secret}"
        return super().open(method, body, path, headers, content_type)

    def secret_of(self, call: dict[str, Any]) -> str | None:
        """The secret the agent gave the executor ``call`` names (None when it knows no such executor)."""
        framework_id = (call.get("framework_id") or {}).get("value")
        executor_id = (call.get("executor_id") or {}).get("value")
        framework = self.agent.frameworks.get(framework_id)
        executor = framework.executors.get(executor_id) if framework is not None else None
        if executor is None:
            return None
        return self.agent.executor_secrets.secret(framework_id, executor_id, executor.container_id)

    def envelope(self, kind: str, body: dict[str, Any] | None = None, executor_id: str = "t1",
                 framework_id: str | None = None) -> dict[str, Any]:
        call: dict[str, Any] = {"type": kind, "framework_id": {"value": framework_id or self.framework_id},
                                "executor_id": {"value": executor_id}}
        if body is not None:
            call[kind.lower()] = body
        return call

    def subscribe(self, executor_id: str = "t1", updates: list[dict[str, Any]] | None = None,
                  tasks: list[dict[str, Any]] | None = None, framework_id: str | None = None) -> Exchange:
        body = {"unacknowledged_tasks": tasks or [], "unacknowledged_updates": [{"status": s} for s in updates or []]}
        stream = self.open("POST", self.envelope("SUBSCRIBE", body, executor_id, framework_id), path=PATH,
                           headers={"Accept": JSON})
        self.assertEqual(stream.code, 200, stream.body)
        self.assertEqual(stream.headers["content-type"], JSON)
        return stream

    def call(self, kind: str, body: dict[str, Any] | None = None, **kwargs: Any) -> Exchange:
        return self.request("POST", self.envelope(kind, body, **kwargs), path=PATH)

    def update(self, state: str = T.RUNNING, uuid_text: str | None = None, task_id: str = "t1") -> Exchange:
        return self.call("UPDATE", {"status": status(task_id, state, uuid_text)})

    def accepted(self, exchange: Exchange) -> None:
        self.assertEqual(exchange.code, 202, exchange.body)
        self.assertEqual(exchange.body, b"")


# -- the order of checks and the refusals ------------------------------------------------------------------


class RequestChecksTests(ExecutorAPITestCase):
    def test_routes(self) -> None:
        """install() serves /api/v1/executor and /slave(1)/api/v1/executor."""
        self.assertEqual(self.router.routes(), ["/api/v1/executor", "/slave(1)/api/v1/executor"])

    def test_get_is_405_with_allow(self) -> None:
        """Methods other than POST get 405 with Allow: POST."""
        for method in ("GET", "PUT"):
            reply = self.request(method, self.envelope("HEARTBEAT"), path=PATH)
            self.assertRefused(reply, 405, method)
            self.assertEqual(reply.headers["allow"], "POST")

    def test_missing_content_type_is_400(self) -> None:
        """A call without Content-Type gets 400."""
        self.assertRefused(self.request("POST", b"{}", path=PATH, content_type=None), 400, "Content-Type")

    def test_protobuf_is_415(self) -> None:
        """application/x-protobuf gets 415 saying that only JSON is supported."""
        reply = self.request("POST", b"\x08\x01", path=PATH, content_type="application/x-protobuf")
        self.assertIn("not supported", self.assertRefused(reply, 415, "application/json"))

    def test_other_content_type_is_415(self) -> None:
        """Other media types get 415."""
        reply = self.request("POST", self.envelope("HEARTBEAT"), path=PATH, content_type="text/plain")
        self.assertRefused(reply, 415, "Content-Type")

    def test_subscribe_accept_without_json_is_406(self) -> None:
        """A SUBSCRIBE whose Accept excludes JSON gets 406 and leaves the executor registering."""
        reply = self.request("POST", self.envelope("SUBSCRIBE", {}), path=PATH, headers={"Accept": "text/html"})
        self.assertRefused(reply, 406, "Accept")
        self.assertEqual(self.executor.state, REGISTERING)

    def test_accept_only_matters_for_subscribe(self) -> None:
        """As Mesos: calls answered 202 without a body do not check Accept."""
        self.subscribe()
        reply = self.request("POST", self.envelope("UPDATE", {"status": status(uuid_text=new_uuid())}), path=PATH,
                             headers={"Accept": "text/html"})
        self.accepted(reply)

    def test_malformed_json_is_400(self) -> None:
        """A body that is not JSON gets 400 with a readable message."""
        self.assertRefused(self.request("POST", b"{nope", path=PATH), 400, "not valid JSON")

    def test_ids_are_required(self) -> None:
        """Every call must name its framework and executor; both problems are listed."""
        reply = self.request("POST", {"type": "HEARTBEAT"}, path=PATH)
        self.assertRefused(reply, 400, "framework_id is required", "executor_id is required")

    def test_unknown_type_is_400(self) -> None:
        """An unknown call type gets 400."""
        self.assertRefused(self.call("LAUNCH_ROCKETS"), 400, "LAUNCH_ROCKETS")

    def test_heartbeat_is_202(self) -> None:
        """HEARTBEAT is answered 202 at once."""
        self.accepted(self.call("HEARTBEAT"))

    def test_update_without_uuid_is_400(self) -> None:
        """An UPDATE must carry a uuid."""
        self.subscribe()
        self.assertRefused(self.update(), 400, "uuid")

    def test_update_with_bad_state_is_400(self) -> None:
        """An UPDATE's state must be a TaskState name."""
        self.subscribe()
        self.assertRefused(self.update(state="TASK_DANCING", uuid_text=new_uuid()), 400, "state")

    def test_update_for_unknown_task_is_400(self) -> None:
        """An UPDATE for a task the executor does not run gets 400 and reaches nobody."""
        self.subscribe()
        self.assertRefused(self.update(uuid_text=new_uuid(), task_id="ghost"), 400, "ghost")
        self.cluster.settle()
        self.assertEqual(self.scheduler.states("ghost"), [])

    def test_update_for_unknown_executor_is_400(self) -> None:
        """An UPDATE naming an executor the agent does not know gets 400."""
        self.assertRefused(self.call("UPDATE", {"status": status(uuid_text=new_uuid())}, executor_id="nope"),
                           400, "nope")

    def test_message_for_unknown_framework_is_400(self) -> None:
        """A MESSAGE naming a framework the agent does not know gets 400 and is not forwarded."""
        reply = self.call("MESSAGE", {"data": base64.b64encode(b"x").decode()}, framework_id="other")
        self.assertRefused(reply, 400, "other")
        self.cluster.settle()
        self.assertEqual(self.scheduler.messages, [])

    def test_message_for_unknown_executor_is_400(self) -> None:
        """A MESSAGE naming an executor the agent does not know gets 400 and is not forwarded."""
        reply = self.call("MESSAGE", {"data": base64.b64encode(b"x").decode()}, executor_id="impostor")
        self.assertRefused(reply, 400, "impostor")
        self.cluster.settle()
        self.assertEqual(self.scheduler.messages, [])

    def test_calls_before_subscribe_are_403(self) -> None:
        """As Mesos: an executor still registering may not send UPDATE or MESSAGE."""
        self.assertRefused(self.update(uuid_text=new_uuid()), 403, "not subscribed")
        self.assertRefused(self.call("MESSAGE", {"data": ""}), 403, "not subscribed")
        self.cluster.settle()
        self.assertEqual(self.scheduler.states("t1"), [])


# -- the event stream and the calls ------------------------------------------------------------------------


class SubscribeTests(ExecutorAPITestCase):
    def test_launching_executor_is_registering(self) -> None:
        """With a silent containerizer the launched task waits in its executor's queue."""
        self.assertEqual(self.executor.state, REGISTERING)
        self.assertEqual(list(self.executor.queued), ["t1"])
        self.assertEqual(self.containerizer.by_executor("t1")[0].events, [])

    def test_subscribed_then_launch(self) -> None:
        """SUBSCRIBE gets a chunked stream: SUBSCRIBED (executor, framework, agent, container), then LAUNCH."""
        stream = self.subscribe()
        self.assertFalse(stream.ended)
        self.assertEqual(stream.headers["transfer-encoding"], "chunked")
        self.assertEqual(stream.types(), ["SUBSCRIBED", "LAUNCH"])
        subscribed = stream.events[0]["subscribed"]
        self.assertEqual(subscribed["executor_info"]["executor_id"], {"value": "t1"})
        self.assertEqual(subscribed["framework_info"]["id"], {"value": self.framework_id})
        self.assertEqual(subscribed["framework_info"]["name"], "exec-test")
        self.assertEqual(subscribed["agent_info"]["id"], {"value": self.agent.id})
        self.assertEqual(subscribed["agent_info"]["hostname"], "127.0.0.1")
        self.assertEqual(subscribed["agent_info"]["port"], 5051)
        self.assertEqual(subscribed["container_id"], {"value": self.executor.container_id})
        task = stream.events[1]["launch"]["task"]
        self.assertEqual(task["task_id"], {"value": "t1"})
        self.assertEqual(task["command"]["value"], "sleep 1000")
        self.assertEqual(self.executor.state, RUNNING)
        self.assertIsInstance(self.executor.link, HTTPExecutorLink)
        self.assertEqual(self.executor.queued, {})
        self.assertIn("t1", self.executor.launched)
        self.assertIsNone(self.executor.registration_timer)

    def test_slave_prefixed_path(self) -> None:
        """/slave(1)/api/v1/executor is the same endpoint."""
        body = {"unacknowledged_tasks": [], "unacknowledged_updates": []}
        stream = self.open("POST", self.envelope("SUBSCRIBE", body), path="/slave(1)/api/v1/executor")
        self.assertEqual(stream.types(), ["SUBSCRIBED", "LAUNCH"])

    def test_update_is_acknowledged_and_forwarded(self) -> None:
        """UPDATE answers 202; ACKNOWLEDGED with the same uuid arrives on the stream; the scheduler gets it."""
        stream = self.subscribe()
        uuid_text = new_uuid()
        self.accepted(self.update(T.RUNNING, uuid_text))
        (acked,) = stream.of_type("ACKNOWLEDGED")
        self.assertEqual(acked["acknowledged"], {"task_id": {"value": "t1"}, "uuid": uuid_text})
        self.cluster.settle()
        (update,) = [u for u in self.scheduler.updates if u.task_id == "t1"]
        self.assertEqual(update.state, T.RUNNING)
        self.assertEqual(update.uuid, base64.b64decode(uuid_text))
        self.assertEqual(update.agent_id, self.agent.id)
        self.assertEqual(update.executor_id, "t1")
        master_task = self.cluster.master.frameworks[self.framework_id].tasks["t1"]
        self.assertEqual(master_task.state, T.RUNNING)

    def test_terminal_update_ends_the_task(self) -> None:
        """RUNNING then FINISHED over HTTP: both reach the scheduler in order and the task is done."""
        stream = self.subscribe()
        self.accepted(self.update(T.RUNNING, new_uuid()))
        self.accepted(self.update(T.FINISHED, new_uuid()))
        self.assertEqual(len(stream.of_type("ACKNOWLEDGED")), 2)
        self.cluster.settle()
        self.assertEqual(self.scheduler.states("t1"), [T.RUNNING, T.FINISHED])
        self.assertNotIn("t1", self.cluster.master.frameworks[self.framework_id].tasks)

    def test_duplicate_update_is_not_forwarded_twice(self) -> None:
        """The same UPDATE (same uuid) sent twice reaches the scheduler once."""
        self.subscribe()
        uuid_text = new_uuid()
        self.accepted(self.update(T.RUNNING, uuid_text))
        self.accepted(self.update(T.RUNNING, uuid_text))
        self.cluster.settle()
        self.assertEqual(self.scheduler.states("t1"), [T.RUNNING])

    def test_message_reaches_scheduler(self) -> None:
        """MESSAGE answers 202 and reaches the scheduler as a framework message."""
        self.subscribe()
        self.accepted(self.call("MESSAGE", {"data": base64.b64encode(b"hello scheduler").decode()}))
        self.cluster.settle()
        self.assertEqual(self.scheduler.messages, [("t1", self.agent.id, b"hello scheduler")])

    def test_framework_message_arrives_on_stream(self) -> None:
        """A scheduler's framework message arrives as a MESSAGE event."""
        stream = self.subscribe()
        self.driver.sendFrameworkMessage("t1", self.agent.id, b"to the executor")
        self.cluster.settle()
        (message,) = stream.of_type("MESSAGE")
        self.assertEqual(base64.b64decode(message["message"]["data"]), b"to the executor")

    def test_unknown_executor_gets_error_and_stream_ends(self) -> None:
        """SUBSCRIBE for an executor the agent does not know gets an ERROR event and the stream ends."""
        stream = self.open("POST", self.envelope("SUBSCRIBE", {}, executor_id="nope"), path=PATH)
        self.assertEqual(stream.code, 200)
        self.assertTrue(stream.ended)
        self.assertEqual(stream.types(), ["ERROR"])
        self.assertIn("nope", stream.events[0]["error"]["message"])
        self.assertEqual(self.executor.state, REGISTERING)

    def test_unknown_framework_gets_error_and_stream_ends(self) -> None:
        """SUBSCRIBE for a framework the agent does not know gets an ERROR event and the stream ends."""
        stream = self.open("POST", self.envelope("SUBSCRIBE", {}, framework_id="other"), path=PATH)
        self.assertTrue(stream.ended)
        self.assertEqual(stream.types(), ["ERROR"])

    def test_kill_arrives_as_event(self) -> None:
        """A KILL from the scheduler arrives as a KILL event; the executor's TASK_KILLED reaches the scheduler."""
        stream = self.subscribe()
        self.accepted(self.update(T.RUNNING, new_uuid()))
        self.driver.killTask("t1")
        self.cluster.settle()
        (kill,) = stream.of_type("KILL")
        self.assertEqual(kill["kill"]["task_id"], {"value": "t1"})
        self.accepted(self.update(T.KILLED, new_uuid()))
        self.cluster.settle()
        self.assertEqual(self.scheduler.states("t1"), [T.RUNNING, T.KILLED])

    def test_shutdown_arrives_and_stream_ends_when_executor_exits(self) -> None:
        """SHUTDOWN arrives as an event; when the executor is gone the agent ends the stream."""
        stream = self.subscribe()
        self.accepted(self.update(T.RUNNING, new_uuid()))
        self.agent.shutdownExecutor(self.framework_id, "t1")
        self.cluster.settle()
        self.assertEqual(stream.types()[-1], "SHUTDOWN")
        self.assertFalse(stream.ended)
        self.cluster.advance(self.cluster.agent_config.executor_shutdown_grace_period)
        self.assertTrue(stream.ended)
        self.assertEqual(self.executor.state, TERMINATED)
        self.assertEqual(self.scheduler.states("t1"), [T.RUNNING, T.KILLED])

    def test_closing_stream_marks_executor_disconnected(self) -> None:
        """When the executor's connection closes, the agent forgets its link; the executor stays."""
        stream = self.subscribe()
        self.assertIsNotNone(self.executor.link)
        stream.drop()
        self.cluster.settle()
        self.assertIsNone(self.executor.link)
        self.assertEqual(self.executor.state, RUNNING)
        # with no link, a kill cannot be delivered: the agent shuts the executor down instead
        self.driver.killTask("t1")
        self.cluster.settle()
        self.assertEqual(self.executor.state, TERMINATED)

    def test_resubscribe_replaces_old_stream(self) -> None:
        """A second SUBSCRIBE of the same executor ends the first stream; events go to the second."""
        first = self.subscribe()
        second = self.subscribe()
        self.assertTrue(first.ended)
        self.assertEqual(second.types(), ["SUBSCRIBED"])
        self.assertFalse(second.ended)
        self.driver.killTask("t1")
        self.cluster.settle()
        self.assertEqual(len(second.of_type("KILL")), 1)
        self.assertEqual(first.of_type("KILL"), [])

    def test_resubscribe_redelivers_unacknowledged_updates(self) -> None:
        """Updates listed in a new SUBSCRIBE's unacknowledged_updates are taken in and acknowledged."""
        first = self.subscribe()
        first.drop()
        self.cluster.settle()
        lost = new_uuid()
        second = self.subscribe(updates=[status("t1", T.RUNNING, lost)])
        self.assertEqual(second.types(), ["SUBSCRIBED", "ACKNOWLEDGED"])
        self.assertEqual(second.events[1]["acknowledged"]["uuid"], lost)
        self.cluster.settle()
        self.assertEqual(self.scheduler.states("t1"), [T.RUNNING])
        self.assertEqual(self.scheduler.updates[-1].uuid, base64.b64decode(lost))

    def test_resubscribe_with_already_known_update(self) -> None:
        """Re-sending an update the agent already has is acknowledged again but not forwarded twice."""
        self.subscribe()
        known = new_uuid()
        self.accepted(self.update(T.RUNNING, known))
        second = self.subscribe(updates=[status("t1", T.RUNNING, known)])
        self.assertEqual([e["acknowledged"]["uuid"] for e in second.of_type("ACKNOWLEDGED")], [known])
        self.cluster.settle()
        self.assertEqual(self.scheduler.states("t1"), [T.RUNNING])

    def test_registration_timeout_without_subscribe(self) -> None:
        """An executor that never subscribes is destroyed after the registration timeout; its task fails."""
        self.cluster.advance(self.cluster.agent_config.executor_registration_timeout, step=10)
        self.assertEqual(self.executor.state, TERMINATED)
        self.assertEqual(self.scheduler.states("t1"), [T.FAILED])
        self.assertEqual(self.scheduler.updates[-1].reason, T.REASON_EXECUTOR_REGISTRATION_TIMEOUT)
        stream = self.open("POST", self.envelope("SUBSCRIBE", {}), path=PATH)
        self.assertEqual(stream.types(), ["ERROR"])
        self.assertTrue(stream.ended)
