"""The service framework end to end: ``twistd mesos-master --frameworks=service`` with two real agents
on distinct hostnames (127.0.0.1 and 127.0.0.2), driven by the real ``marathon`` client.

Apps run real processes (a small HTTP server on ``$HOST:$PORT0``) that the framework health-checks
over HTTP; rolling restarts are sampled through the API while they run, each sample counting the
running instances it lists that answer HTTP at that moment.
"""

from __future__ import annotations

import math
import subprocess
from typing import Any

from marathon import MarathonApp
from marathon.exceptions import ConflictError
from marathon.models import MarathonConstraint, MarathonHealthCheck
from marathon.models.app import MarathonUpgradeStrategy
from marathon.models.events import MarathonHealthStatusChangedEvent, MarathonStatusUpdateEvent
from twisted.internet import defer, threads
from twisted.trial import unittest

# (the helper patches collections.Iterable back for marathon 0.13, which encodes with it)
from tests.helpers.processes import MESOSTW, environment, free_port, get_json, wait_for
from tests.helpers.service_processes import HTTP_SERVER, client, close, service_cluster, serving


def http_app(instances: int, **fields: Any) -> MarathonApp:
    """An app of small HTTP servers, health-checked over HTTP every second. The checks forgive a loaded
    machine (5 s to answer, 10 misses in a row): these tests are about deployments, not about
    replacing instances that answer slowly, which would make the capacity samples lie."""
    return MarathonApp(cmd=HTTP_SERVER, instances=instances, cpus=0.05, mem=32,
                       health_checks=[MarathonHealthCheck(protocol="HTTP", path="/", interval_seconds=1,
                                                          timeout_seconds=5, grace_period_seconds=30,
                                                          max_consecutive_failures=10)], **fields)


class ServiceInTheMasterTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.api_port = free_port()
        self.cluster = service_cluster(self, self.api_port, master_args=["--service_scale_apps_interval=1secs"])
        yield self.cluster.start()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.marathon = client(self.url)
        self.addCleanup(close, self.marathon)
        yield wait_for(lambda: get_json(f"{self.url}/v2/info").addCallback(lambda i: i["frameworkId"]), 30,
                       what="the service framework to register")

    def call(self, name: str, *args: Any, **kwargs: Any) -> defer.Deferred:
        return threads.deferToThread(getattr(self.marathon, name), *args, **kwargs)

    def settled(self, app_id: str, healthy: int, timeout: float = 60) -> defer.Deferred:
        """Fires with the app once no deployment runs and ``healthy`` of its instances are healthy."""
        def check() -> defer.Deferred:
            def done(pair: Any) -> Any:
                app, deployments = pair
                return not deployments and app.tasks_healthy == healthy and app.tasks_running == healthy and app
            return threads.deferToThread(lambda: (self.marathon.get_app(app_id, embed_counts=True),
                                                  self.marathon.list_deployments())).addCallback(done)
        return wait_for(check, timeout, interval=0.2, what=f"{healthy} healthy instances of {app_id}")

    def mesostw(self, *args: str) -> defer.Deferred:
        return threads.deferToThread(subprocess.run, [MESOSTW, "apps", *args, f"--url={self.url}"],
                                     capture_output=True, text=True, timeout=60, env=environment())

    @defer.inlineCallbacks
    def test_health_checked_apps_on_two_hosts(self) -> Any:
        """An app of HTTP servers with a UNIQUE hostname constraint runs one healthy instance on each
        agent, which the client's event stream reports; a third instance cannot be placed and the
        queue says which constraint refuses it; the master shows the tasks under the app's name;
        the CLI lists the app; deleting it stops every task."""
        seen: list[Any] = []

        def read_events() -> None:
            for event in self.marathon.event_stream():
                seen.append(event)
                healthy = {e.task_id for e in seen if isinstance(e, MarathonHealthStatusChangedEvent)
                           and e.app_id == "/web" and e.alive}
                if len(healthy) == 2:
                    return

        reading = threads.deferToThread(read_events)
        yield wait_for(lambda: seen, 30, what="the event stream to attach")
        created = yield self.call("create_app", "web", http_app(2, constraints=[
            MarathonConstraint("hostname", "UNIQUE")]))
        self.assertEqual(created.id, "/web")
        yield self.settled("/web", 2)
        yield reading
        self.assertEqual(seen[0].event_type, "event_stream_attached")
        self.assertIn("TASK_RUNNING", {e.task_status for e in seen if isinstance(e, MarathonStatusUpdateEvent)})

        tasks = yield self.call("list_tasks", "web")
        self.assertEqual(sorted(t.host for t in tasks), ["127.0.0.1", "127.0.0.2"])
        for marathon_task in tasks:
            self.assertTrue(marathon_task.health_check_results[0].alive)
            self.assertTrue((yield threads.deferToThread(serving, marathon_task.host, marathon_task.ports[0])))

        yield self.call("scale_app", "web", instances=3)
        queue = yield wait_for(lambda: self.call("list_queue").addCallback(
            lambda q: [i for i in q if i.app.id == "/web" and i.count == 1
                       and "hostname" in (i.processed_offers_summary or {}).get("why", "")]), 30,
            what="the third instance to wait for a host")
        self.assertIn("UNIQUE", queue[0].processed_offers_summary["why"])
        with self.assertRaises(ConflictError):
            yield self.call("scale_app", "web", instances=2)
        yield self.call("scale_app", "web", instances=2, force=True)
        yield self.settled("/web", 2)

        state = yield self.cluster.state()
        (framework,) = [f for f in state["frameworks"] if f["name"] == "marathon"]
        self.assertEqual(framework["webui_url"], self.url)
        running = {t["id"]: t for t in framework["tasks"]}
        self.assertEqual(set(running), {t.id for t in tasks})
        for task_id, mesos_task in running.items():
            self.assertTrue(task_id.startswith("web."), task_id)
            self.assertEqual(mesos_task["name"], "web")
            self.assertEqual(mesos_task["state"], "TASK_RUNNING")

        listed = yield self.mesostw("list")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn("/web", listed.stdout)

        yield self.call("delete_app", "web")
        yield wait_for(lambda: self.cluster.state().addCallback(
            lambda s: not [t for f in s["frameworks"] for t in f["tasks"]]), 30, what="the tasks to stop")
        self.assertEqual((yield self.call("list_apps")), [])

    @defer.inlineCallbacks
    def test_rolling_restart_keeps_the_minimum_health_capacity(self) -> Any:
        """Restarting four HTTP servers with minimumHealthCapacity 0.75 and maximumOverCapacity 0.25
        replaces every instance while, in every sample, at least three instances serve and at most five
        exist; killing one with ``scale`` leaves three."""
        strategy = {"minimum_health_capacity": 0.75, "maximum_over_capacity": 0.25}
        yield self.call("create_app", "roll", http_app(4, upgrade_strategy=MarathonUpgradeStrategy(**strategy)))
        yield self.settled("/roll", 4)
        before = {t.id for t in (yield self.call("list_tasks", "roll"))}

        def sample() -> tuple[int, int, bool]:
            """(instances serving, instances in all, whether the restart is over)."""
            app = self.marathon.get_app("roll", embed_tasks=True)
            live = [t for t in app.tasks if t.state in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING")]
            # Every running instance is asked, not only those healthy when the API answered: one that the
            # framework saw become healthy a moment later may already have let it kill an old one.
            up = sum(1 for t in live if t.state == "TASK_RUNNING" and serving(t.host, t.ports[0]))
            over = not app.deployments and not before & {t.id for t in app.tasks} and up == 4
            return up, len(live), over

        yield self.call("restart_app", "roll")
        samples: list[tuple[int, int, bool]] = []

        def restarted() -> defer.Deferred:
            return threads.deferToThread(sample).addCallback(lambda s: samples.append(s) or s[2])

        yield wait_for(restarted, 90, interval=0.1, what="the rolling restart")
        self.assertGreater(len(samples), 5)
        minimum = math.ceil(4 * 0.75)
        self.assertGreaterEqual(min(up for up, _, _ in samples), minimum, samples)
        self.assertLessEqual(max(live for _, live, _ in samples), math.floor(4 * 1.25), samples)

        survivors = yield self.call("list_tasks", "roll")
        self.assertTrue((yield self.call("kill_given_tasks", [survivors[0].id], scale=True)))
        app = yield self.settled("/roll", 3)
        self.assertEqual(app.instances, 3)
        self.assertNotIn(survivors[0].id, {t.id for t in (yield self.call("list_tasks", "roll"))})

    @defer.inlineCallbacks
    def test_a_failing_app_backs_off(self) -> Any:
        """A command that exits 1 is relaunched with a growing delay, which /v2/queue shows, and
        its last failure is on the app."""
        yield self.call("create_app", "crash", MarathonApp(cmd="exit 1", instances=1, cpus=0.05, mem=16,
                                                           backoff_seconds=1, backoff_factor=2,
                                                           max_launch_delay_seconds=60))
        item = yield wait_for(lambda: self.call("list_queue").addCallback(
            lambda q: [i for i in q if i.app.id == "/crash" and i.delay.time_left_seconds >= 2]), 60,
            what="a backoff delay of 2 seconds or more")
        self.assertFalse(item[0].delay.overdue)
        app = yield self.call("get_app", "crash", embed_last_task_failure=True)
        failure = app.last_task_failure
        self.assertEqual((failure.state, failure.message), ("TASK_FAILED", "Command exited with status 1"))
        self.assertIn(failure.host, ("127.0.0.1", "127.0.0.2"))
        yield self.call("delete_app", "crash")
        yield wait_for(lambda: self.call("list_queue").addCallback(lambda q: not q), 30, what="an empty queue")

    @defer.inlineCallbacks
    def test_health_checks_run_by_the_agents(self) -> Any:
        """A MESOS_HTTP check, run by each task's executor on its agent, makes HTTP servers healthy; a
        COMMAND check that keeps failing gets its task killed by the executor, which the app's last
        failure reports, and the task is replaced."""
        yield self.call("create_app", "agent-checked", MarathonApp(
            cmd=HTTP_SERVER, instances=2, cpus=0.05, mem=32,
            health_checks=[MarathonHealthCheck(protocol="MESOS_HTTP", path="/", interval_seconds=1, timeout_seconds=1,
                                               grace_period_seconds=30, delay_seconds=0)]))
        yield self.settled("/agent-checked", 2)
        tasks = yield self.call("list_tasks", "agent-checked")
        self.assertTrue(all(t.health_check_results[0].alive for t in tasks))
        state = yield self.cluster.state()
        checks = [t["health_check"] for f in state["frameworks"] for t in f["tasks"]]
        self.assertEqual([(c["type"], c["http"]["path"]) for c in checks], [("HTTP", "/")] * 2)

        yield self.call("create_app", "sick", MarathonApp(
            cmd="exec sleep 600", instances=1, cpus=0.05, mem=16, backoff_seconds=1,
            health_checks=[MarathonHealthCheck(protocol="COMMAND", command="exit 1", interval_seconds=1,
                                               grace_period_seconds=0, max_consecutive_failures=2,
                                               delay_seconds=0)]))
        app = yield wait_for(lambda: self.call("get_app", "sick", embed_last_task_failure=True).addCallback(
            lambda a: a.last_task_failure is not None and a), 60, what="the executor to kill the sick task")
        failure = app.last_task_failure
        self.assertEqual(failure.state, "TASK_KILLED")
        self.assertIn("consecutive failed health checks", failure.message)
        yield wait_for(lambda: self.call("list_tasks", "sick").addCallback(
            lambda ts: [t for t in ts if t.id != failure.task_id]), 30, what="a replacement")
