"""Contract test: the real ``marathon`` 0.13.0 client (marathon-python) against the service
framework's API on a loopback port, following its calls one by one (spec section 3.3).

The framework runs on the in-process cluster, whose Clock a LoopingCall on the real reactor
drives (simulated time runs a few times faster than real time); the API is served over
real TCP and the blocking client runs in threads. marathon 0.13 uses ``collections.Iterable``,
gone since Python 3.10: it is patched in this process only, as ENVIRONMENT.md says.
"""

from __future__ import annotations

import collections
import collections.abc
from typing import Any

from twisted.internet import defer, reactor, task, threads
from twisted.protocols import policies
from twisted.trial import unittest
from twisted.web import server

from tests.helpers.processes import wait_for
from tests.helpers.service import ServiceHarness

if not hasattr(collections, "Iterable"):
    collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]

from marathon import MarathonApp, MarathonClient  # noqa: E402
from marathon.exceptions import ConflictError, MarathonHttpError, NotFoundError  # noqa: E402
from marathon.models import MarathonConstraint, MarathonGroup, MarathonHealthCheck  # noqa: E402
from marathon.models.events import (  # noqa: E402
    MarathonDeploymentInfo,
    MarathonDeploymentSuccess,
    MarathonEvent,
)


class MarathonClientContract(unittest.TestCase):
    timeout = 120

    def setUp(self) -> None:
        self.h = ServiceHarness(hosts=("agent-a", "agent-b")).start()
        self.site = policies.WrappingFactory(server.Site(self.h.host.router))
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        url = f"http://127.0.0.1:{self.port.getHost().port}"
        self.h.host.api_url = url
        self.pump = task.LoopingCall(self._pump)
        self.pump.start(0.01)
        self.client = MarathonClient(url, timeout=20)

    def _pump(self) -> None:
        self.h.clock.advance(0.05)
        self.h.settle()

    @defer.inlineCallbacks
    def tearDown(self) -> Any:
        self.h.stop()
        self.pump.stop()
        yield self.port.stopListening()
        self.client.session.close()
        self.client.sse_session.close()
        for wrapper in list(self.site.protocols):
            wrapper.transport.abortConnection()
        yield wait_for(lambda: not self.site.protocols, timeout=10, what="connections to close")
        yield task.deferLater(reactor, 0, lambda: None)

    def call(self, name: str, *args: Any, **kwargs: Any) -> defer.Deferred:
        return threads.deferToThread(getattr(self.client, name), *args, **kwargs)

    def settled(self, app_id: str, running: int) -> defer.Deferred:
        return wait_for(lambda: not self.h.deployments() and len(self.h.running(app_id)) == running,
                        timeout=60, what=f"{running} running tasks of {app_id}")

    @defer.inlineCallbacks
    def test_app_lifecycle(self) -> Any:
        """create, list/get with every embed, scale, restart, update, rollback, tasks, endpoints,
        kills, deployments, queue, info, leader, ping, metrics, delete: no TypeError anywhere."""
        created = yield self.call("create_app", "web", MarathonApp(
            cmd="serve", instances=2, cpus=0.1, mem=32, labels={"team": "core"},
            health_checks=[MarathonHealthCheck(protocol="TCP", interval_seconds=1, grace_period_seconds=5)],
            constraints=[MarathonConstraint("hostname", "GROUP_BY")]))
        self.assertEqual(created.id, "/web")
        self.assertEqual(len(created.deployments), 1)
        yield self.settled("/web", 2)

        embeds = dict(embed_tasks=True, embed_counts=True, embed_deployments=True, embed_readiness=True,
                      embed_last_task_failure=True, embed_failures=True, embed_task_stats=True)
        listed = yield self.call("list_apps", **embeds)
        self.assertEqual([a.id for a in listed], ["/web"])
        self.assertEqual(len(listed[0].tasks), 2)
        self.assertEqual(listed[0].task_stats.total_summary.stats.counts.running, 2)
        self.assertEqual((yield self.call("list_apps", label="team==core"))[0].id, "/web")
        app = yield self.call("get_app", "web", **embeds)
        self.assertEqual((app.tasks_running, app.tasks_healthy, app.labels), (2, 2, {"team": "core"}))
        self.assertIsNotNone(app.version_info.last_config_change_at)
        self.assertTrue(app.tasks[0].health_check_results[0].alive)

        result = yield self.call("scale_app", "web", instances=3)
        self.assertIn("deploymentId", result)
        yield self.settled("/web", 3)
        yield self.call("scale_app", "/web", delta=-1)
        yield self.settled("/web", 2)

        before = {t.id for t in (yield self.call("list_tasks", "web"))}
        result = yield self.call("restart_app", "web")
        self.assertIn("deploymentId", result)
        yield wait_for(lambda: not self.h.deployments() and not before & {i.task_id for i in self.h.running("/web")},
                       timeout=60, what="the restart")
        first_version = app.version
        current = yield self.call("get_app", "web")
        current.cmd = "serve --v2"
        result = yield self.call("update_app", "web", current)
        self.assertIn("deploymentId", result)
        yield self.settled("/web", 2)
        self.assertEqual((yield self.call("get_app", "web")).cmd, "serve --v2")
        versions = yield self.call("list_versions", "web")
        self.assertIn(first_version, versions)
        self.assertEqual((yield self.call("get_version", "web", first_version)).cmd, "serve")
        yield self.call("rollback_app", "web", first_version)
        yield self.settled("/web", 2)
        self.assertEqual((yield self.call("get_app", "web")).cmd, "serve")

        tasks = yield self.call("list_tasks", "web")
        self.assertEqual(len(tasks), 2)
        self.assertTrue(all(t.app_id == "/web" and t.started_at is not None for t in tasks))
        self.assertEqual(len((yield self.call("list_tasks"))), 2)
        endpoints = yield self.call("list_endpoints")
        self.assertEqual({e.task_port for e in endpoints}, {t.ports[0] for t in tasks})

        killed = yield self.call("kill_task", "web", tasks[0].id)
        self.assertEqual(killed.id, tasks[0].id)
        yield wait_for(lambda: tasks[0].id not in {i.task_id for i in self.h.running("/web")}
                       and len(self.h.running("/web")) == 2, timeout=60, what="the replacement")
        survivors = yield self.call("list_tasks", "web")
        self.assertTrue((yield self.call("kill_given_tasks", [survivors[0].id], scale=True)))
        yield self.settled("/web", 1)
        self.assertEqual((yield self.call("get_app", "web")).instances, 1)
        killed = yield self.call("kill_tasks", "web", scale=True)
        self.assertIn("deploymentId", killed)
        yield self.settled("/web", 0)

        self.assertEqual((yield self.call("list_queue")), [])
        self.assertEqual((yield self.call("list_deployments")), [])
        info = yield self.call("get_info")
        self.assertEqual((info.name, info.framework_id), ("marathon", self.h.state.framework_id))
        self.assertEqual(info.http_config.http_port, self.port.getHost().port)
        self.assertEqual((yield self.call("get_leader")), {"leader": f"127.0.0.1:{self.port.getHost().port}"})
        self.assertEqual((yield self.call("ping")).strip(), b"pong")
        self.assertIn("gauges", (yield self.call("get_metrics")))

        yield self.call("delete_app", "web")
        yield wait_for(lambda: not self.h.deployments(), timeout=60, what="the delete")
        with self.assertRaises(NotFoundError):
            yield self.call("get_app", "web")

    @defer.inlineCallbacks
    def test_errors_and_deployments(self) -> Any:
        """Conflicts and validation errors reach the client with Marathon's message; a stuck
        deployment is listed, rolled back, or stopped with force; the queue and delay reset parse."""
        yield self.call("create_app", "web", MarathonApp(cmd="serve", cpus=0.1, mem=32))
        with self.assertRaises(ConflictError) as conflict:
            yield self.call("create_app", "web", MarathonApp(cmd="serve", cpus=0.1, mem=32))
        self.assertEqual(conflict.exception.error_message, "An app with id [/web] already exists.")
        with self.assertRaises(MarathonHttpError) as invalid:
            yield self.call("create_app", "bad", MarathonApp(cmd="x", cpus=0.1, mem=-5))
        self.assertEqual(invalid.exception.status_code, 422)
        self.assertEqual(invalid.exception.error_details[0]["path"], "/mem")

        self.h.prober.healthy = lambda host, port: False
        yield self.call("create_app", "stuck", MarathonApp(
            cmd="serve", cpus=0.1, mem=32, instances=1,
            health_checks=[MarathonHealthCheck(protocol="HTTP", interval_seconds=1, max_consecutive_failures=0)]))
        yield wait_for(lambda: any(d.current_step == 1 for d in self.h.deployments()), timeout=30,
                       what="the scale step")
        deployments = yield self.call("list_deployments")
        stuck = [d for d in deployments if "/stuck" in d.affected_apps][0]
        self.assertEqual(stuck.current_actions[0].action, "ScaleApplication")
        self.assertEqual(stuck.steps[-1].actions[0].app, "/stuck")
        with self.assertRaises(ConflictError):
            yield self.call("scale_app", "stuck", instances=2)
        rollback = yield self.call("delete_deployment", stuck.id)
        self.assertIn("deploymentId", rollback)
        yield wait_for(lambda: "/stuck" not in self.h.state.apps and not self.h.deployments(), timeout=60,
                       what="the rollback")

        yield self.call("create_app", "stuck", MarathonApp(
            cmd="serve", cpus=0.1, mem=32,
            health_checks=[MarathonHealthCheck(protocol="HTTP", interval_seconds=1, max_consecutive_failures=0)]))
        again = [d for d in (yield self.call("list_deployments")) if "/stuck" in d.affected_apps][0]
        self.assertEqual((yield self.call("delete_deployment", again.id, force=True)), {})
        self.assertEqual((yield self.call("list_deployments")), [])

        yield self.call("create_app", "huge", MarathonApp(cmd="serve", cpus=0.1, mem=10 ** 6))
        queue = yield wait_for(lambda: self.call("list_queue", embed_last_unused_offers=True), timeout=30,
                               what="a queue entry")
        self.assertEqual((queue[0].app.id, queue[0].count), ("/huge", 1))
        yield self.call("reset_delay", "huge")

    @defer.inlineCallbacks
    def test_groups(self) -> Any:
        """create, list, get, scale and delete groups."""
        group = MarathonGroup(id="/shop", apps=[MarathonApp(id="web", cmd="serve", cpus=0.1, mem=32,
                                                            dependencies=["/shop/db"]),
                                                MarathonApp(id="db", cmd="serve", cpus=0.1, mem=32)])
        yield self.call("create_group", group)
        yield wait_for(lambda: not self.h.deployments(), timeout=60, what="the group deployment")
        groups = yield self.call("list_groups")
        self.assertEqual([g.id for g in groups], ["/shop"])
        shop = yield self.call("get_group", "shop")
        self.assertEqual(sorted(a.id for a in shop.apps), ["/shop/db", "/shop/web"])
        yield self.call("scale_group", "shop", 2)
        yield wait_for(lambda: not self.h.deployments() and len(self.h.running("/shop/web")) == 2, timeout=60,
                       what="the group scale")
        yield self.call("delete_group", "shop")
        yield wait_for(lambda: not self.h.state.apps and not self.h.deployments(), timeout=60, what="the delete")

    @defer.inlineCallbacks
    def test_event_stream(self) -> Any:
        """The client's event stream parses every event up to our app's deployment_success."""
        seen: list[MarathonEvent] = []
        ours: set[str] = set()

        def read() -> None:
            for event in self.client.event_stream():
                seen.append(event)
                if isinstance(event, MarathonDeploymentInfo) and \
                        any(a["id"] == "/web" for a in event.plan.target.apps):
                    ours.add(event.plan.id)
                if isinstance(event, MarathonDeploymentSuccess) and event.id in ours:
                    return

        reading = threads.deferToThread(read)
        yield wait_for(lambda: self.h.framework.bus.subscribers > 0, timeout=30, what="the client to attach")
        yield self.call("create_app", "web", MarathonApp(cmd="serve", cpus=0.1, mem=32))
        yield reading
        kinds = [e.event_type for e in seen]
        self.assertEqual(kinds[0], "event_stream_attached")
        for expected in ("api_post_event", "deployment_info", "status_update_event", "deployment_success"):
            self.assertIn(expected, kinds)
        self.assertTrue(all(e.timestamp for e in seen))
