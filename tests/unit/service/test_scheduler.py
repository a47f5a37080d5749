"""The service framework end to end on the in-process cluster: launching, backoff, rolling restarts
under capacity bounds, constraints across agents, health kills, readiness, kills, recovery."""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from frameworks.service.planner import bounds
from mesostw.model import task as T
from tests.helpers.service import ServiceHarness, add_agent

SMALL = {"cpus": 0.1, "mem": 32}


def app(app_id: str, instances: int = 1, **fields: Any) -> dict[str, Any]:
    return {"id": app_id, "cmd": "serve", "instances": instances, **SMALL, **fields}


class Base(unittest.TestCase):
    hosts: tuple[str, ...] = ("agent-a", "agent-b")

    def setUp(self) -> None:
        self.h = ServiceHarness(hosts=self.hosts).start()
        self.addCleanup(self.h.stop)

    def at(self, host: str, port: int) -> Any:
        """The live instance listening on ``host:port``."""
        for instance in self.h.state.instances:
            if instance.host == host and port in instance.ports and not instance.gone:
                return instance
        return None

    def healthy_after(self, seconds: float) -> None:
        """Probes pass once an instance has run ``seconds``."""
        def rule(host: str, port: int) -> bool:
            for instance in self.h.state.instances:
                if instance.host == host and port in instance.ports and instance.started_at is not None:
                    return self.h.clock.seconds() - instance.started_at >= seconds
            return False
        self.h.prober.healthy = rule

    def task_info(self, task_id: str) -> Any:
        for containerizer in self.h.cluster.containerizers:
            for executor in containerizer.executors.values():
                if task_id in executor.running:
                    return executor.running[task_id]
        raise AssertionError(f"no executor runs {task_id}")


class LaunchTests(Base):
    def test_app_reaches_its_instances(self) -> None:
        """An app of 3 gets 3 running tasks; its deployment ends; the API counts them."""
        self.h.create(app("web", 3))
        self.h.until(lambda: len(self.h.running("/web")) == 3 and not self.h.deployments())
        info = self.h.get("/v2/apps/web")["app"]
        self.assertEqual((info["tasksRunning"], info["tasksStaged"], info["deployments"]), (3, 0, []))
        self.assertEqual(len(info["tasks"]), 3)
        self.assertEqual(len(self.h.cluster.master.frameworks), 1)
        master_tasks = next(iter(self.h.cluster.master.frameworks.values())).tasks
        self.assertEqual(set(master_tasks), {t["id"] for t in info["tasks"]})

    def test_environment_ports_labels_and_user(self) -> None:
        """Tasks get $PORT0..n, $PORT, $HOST, the app's env and labels, and run as the app's user."""
        self.h.create(app("web", 1, env={"MODE": "prod"}, labels={"tier": "front"}, user="www",
                          portDefinitions=[{"port": 0, "name": "http"}, {"port": 0}]))
        self.h.until(lambda: len(self.h.running("/web")) == 1)
        instance = self.h.running("/web")[0]
        info = self.task_info(instance.task_id)
        env = info.command.environment
        self.assertEqual([env["PORT0"], env["PORT1"]], [str(p) for p in instance.ports])
        self.assertEqual((env["PORT"], env["HOST"], env["MODE"]), (str(instance.ports[0]), instance.host, "prod"))
        self.assertEqual(env["PORT_HTTP"], str(instance.ports[0]))
        self.assertEqual(info.command.user, "www")
        self.assertEqual(info.extra["labels"], {"labels": [{"key": "tier", "value": "front"}]})
        self.assertEqual(instance.service_ports, self.h.state.apps["/web"].service_ports)

    def test_offers_are_suppressed_when_nothing_waits(self) -> None:
        """Once everything runs the framework suppresses offers, and revives for a new app."""
        self.h.create(app("web", 2))
        self.h.until(lambda: not self.h.deployments())
        framework = next(iter(self.h.cluster.master.frameworks.values()))
        self.h.advance(2)
        self.assertTrue(framework.suppressed)
        self.h.create(app("more", 1))
        self.h.until(lambda: len(self.h.running("/more")) == 1)

    def test_scale_up_and_down_with_kill_selection(self) -> None:
        """Scaling changes only the count; scale-down kills the youngest first by default."""
        self.h.create(app("web", 2))
        self.h.until(lambda: len(self.h.running("/web")) == 2)
        first = {i.task_id for i in self.h.running("/web")}
        self.h.advance(5)
        reply = self.h.call("PUT", "/v2/apps/web", {"instances": 4})
        self.assertEqual(reply.code, 200)
        self.h.until(lambda: len(self.h.running("/web")) == 4 and not self.h.deployments())
        self.assertTrue(first <= {i.task_id for i in self.h.running("/web")}, "a scale is no restart")
        self.h.call("PUT", "/v2/apps/web", {"instances": 2})
        self.h.until(lambda: len(self.h.instances("/web")) == 2 and not self.h.deployments())
        self.assertEqual({i.task_id for i in self.h.running("/web")}, first, "the youngest went first")

    def test_launch_timeout_retries(self) -> None:
        """A task that never starts is killed after the launch timeout and launched again."""
        for containerizer in self.h.cluster.containerizers:
            containerizer.subscribe = False
        self.h.create(app("slow", 1))
        self.h.advance(2)
        stuck = self.h.instances("/slow")
        self.assertEqual([i.state for i in stuck], [T.STAGING])
        for containerizer in self.h.cluster.containerizers:
            containerizer.subscribe = True
        self.h.until(lambda: len(self.h.running("/slow")) == 1, limit=400, step=5)
        self.assertNotEqual(self.h.running("/slow")[0].task_id, stuck[0].task_id)


class BackoffTests(Base):
    def test_failing_app_backs_off(self) -> None:
        """Each failure doubles the wait before the next launch; /v2/queue shows the delay and
        the app its last failure; resetting the delay launches at once."""
        self.h.create(app("bad", 1, cmd="exit 1", backoffSeconds=2, backoffFactor=2, maxLaunchDelaySeconds=20))
        launches = []
        seen = 0
        for _ in range(40):
            self.h.advance(1)
            count = self.h.framework.runtime.metrics["tasks_launched"]
            if count != seen:
                launches.append(self.h.clock.seconds())
                seen = count
        gaps = [round(b - a) for a, b in zip(launches, launches[1:], strict=False)]
        self.assertEqual(gaps[:4], [2, 4, 8, 16])
        queue = self.h.get("/v2/queue")["queue"]
        self.assertEqual(queue[0]["app"]["id"], "/bad")
        self.assertGreater(queue[0]["delay"]["timeLeftSeconds"], 0)
        self.assertIn("backoff", queue[0]["processedOffersSummary"]["why"])
        failure = self.h.get("/v2/apps/bad")["app"]["lastTaskFailure"]
        self.assertEqual((failure["state"], failure["message"]), ("TASK_FAILED", "Command exited with status 1"))
        before = self.h.framework.runtime.metrics["tasks_launched"]
        self.assertEqual(self.h.call("DELETE", "/v2/queue//bad/delay").code, 204)
        self.h.advance(1)
        self.assertGreater(self.h.framework.runtime.metrics["tasks_launched"], before)

    def test_new_version_resets_the_delay(self) -> None:
        """Fixing the command starts the new version without waiting for the old delay."""
        self.h.create(app("bad", 1, cmd="exit 1", backoffSeconds=100))
        self.h.advance(3)
        self.assertEqual(self.h.framework.runtime.metrics["tasks_launched"], 1)
        self.h.call("PUT", "/v2/apps/bad", {"cmd": "serve"})
        self.h.until(lambda: len(self.h.running("/bad")) == 1, limit=10)


class RollingRestartTests(Base):
    def sample_restart(self, instances: int, mhc: float, moc: float, change: dict[str, Any]) -> tuple[int, int]:
        self.healthy_after(2)
        self.h.create(app("web", instances, healthChecks=[{"intervalSeconds": 1, "gracePeriodSeconds": 30}],
                          upgradeStrategy={"minimumHealthCapacity": mhc, "maximumOverCapacity": moc}))
        self.h.until(lambda: not self.h.deployments())
        old = {i.task_id for i in self.h.running("/web")}
        reply = self.h.call("PUT", "/v2/apps/web", change)
        self.assertEqual(reply.code, 200)
        least, most = instances, 0
        waited = 0.0
        while self.h.deployments():
            self.h.clock.advance(0.25)
            self.h.settle()
            live = self.h.instances("/web")
            least = min(least, sum(1 for i in live if i.available(1, False)))
            most = max(most, len(live))
            waited += 0.25
            self.assertLess(waited, 300, self.h.get("/v2/deployments?embed=status"))
        new = {i.task_id for i in self.h.running("/web")}
        self.assertEqual(len(new), instances)
        self.assertFalse(old & new, "every instance was replaced")
        return least, most

    def test_restart_never_drops_below_minimum_health_capacity(self) -> None:
        """10 instances at 0.9/0.1: at every sample at least 9 serve and at most 11 exist."""
        least, most = self.sample_restart(10, 0.9, 0.1, {"cmd": "serve --v2"})
        self.assertEqual((least, most), bounds(10, 0.9, 0.1))

    def test_full_capacity_restart_goes_one_by_one(self) -> None:
        """1.0/0.0 keeps all 4 serving by starting one extra at a time."""
        least, most = self.sample_restart(4, 1.0, 0.0, {"env": {"V": "2"}})
        self.assertEqual((least, most), (4, 5))

    def test_restart_endpoint_replaces_everything(self) -> None:
        """POST /restart is a rolling restart of an unchanged definition."""
        self.h.create(app("web", 3, upgradeStrategy={"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}))
        self.h.until(lambda: not self.h.deployments())
        old = {i.task_id for i in self.h.running("/web")}
        reply = self.h.call("POST", "/v2/apps/web/restart")
        self.assertEqual(reply.code, 200)
        self.assertIn("marathon-deployment-id", reply.headers)
        self.h.until(lambda: not self.h.deployments())
        self.assertFalse(old & {i.task_id for i in self.h.running("/web")})


class ConstraintTests(Base):
    hosts = ("agent-a", "agent-b", "agent-c")

    def test_unique_hostname_spreads_and_explains(self) -> None:
        """UNIQUE hostname puts one instance per agent; a fourth waits and the API says why;
        a new agent takes it."""
        self.h.create(app("web", 4, constraints=[["hostname", "UNIQUE"]]))
        self.h.until(lambda: len(self.h.running("/web")) == 3, limit=30)
        self.h.advance(5)
        self.assertEqual(sorted(i.host for i in self.h.running("/web")), ["agent-a", "agent-b", "agent-c"])
        queue = self.h.get("/v2/queue")["queue"]
        self.assertEqual(queue[0]["count"], 1)
        summary = {r["reason"]: r["declined"] for r in queue[0]["processedOffersSummary"]["rejectSummaryLastOffers"]}
        self.assertGreater(summary["UnfulfilledConstraint"], 0)
        status = self.h.get("/v2/deployments?embed=status")[0]["status"]["/web"]
        self.assertIn("hostname:UNIQUE", status)
        add_agent(self.h.cluster, "agent-d", port=5060)
        self.h.until(lambda: len(self.h.running("/web")) == 4, limit=200)
        self.assertEqual(len({i.host for i in self.h.running("/web")}), 4)

    def test_attribute_constraints(self) -> None:
        """LIKE on an attribute places only on matching agents."""
        h = ServiceHarness(hosts=("x", "y"), attributes={"x": {"rack": "r1"}, "y": {"rack": "r2"}}).start()
        self.addCleanup(h.stop)
        h.create(app("db", 2, constraints=[["rack", "LIKE", "r2"]]))
        h.until(lambda: len(h.running("/db")) == 2)
        self.assertEqual({i.host for i in h.running("/db")}, {"y"})


class HealthTests(Base):
    def test_failing_instance_is_killed_and_replaced(self) -> None:
        """After maxConsecutiveFailures the instance is killed (counted as a failure) and replaced."""
        self.h.create(app("web", 1, healthChecks=[{"protocol": "TCP", "intervalSeconds": 1,
                                                   "gracePeriodSeconds": 1, "maxConsecutiveFailures": 2}]))
        self.h.until(lambda: self.h.get("/v2/apps/web")["app"]["tasksHealthy"] == 1)
        sick = self.h.running("/web")[0]
        self.h.prober.healthy = lambda host, port: self.at(host, port) is not sick
        self.h.until(lambda: any(i.task_id != sick.task_id for i in self.h.running("/web"))
                     and self.h.state.instances.get(sick.task_id) is None, limit=30)
        self.assertEqual(self.h.framework.runtime.metrics["unhealthy_kills"], 1)
        results = self.h.get("/v2/apps/web")["app"]["tasks"][0]["healthCheckResults"]
        self.assertTrue(results[0]["alive"])

    def test_counts_follow_health(self) -> None:
        """tasksHealthy and tasksUnhealthy count instances with results; none before the first."""
        self.h.prober.healthy = lambda host, port: False
        self.h.create(app("web", 2, healthChecks=[{"protocol": "HTTP", "intervalSeconds": 1,
                                                   "gracePeriodSeconds": 5, "maxConsecutiveFailures": 0}]))
        self.h.advance(2)
        info = self.h.get("/v2/apps/web")["app"]
        self.assertEqual((info["tasksRunning"], info["tasksHealthy"], info["tasksUnhealthy"]), (2, 0, 0))
        self.h.advance(5)
        info = self.h.get("/v2/apps/web")["app"]
        self.assertEqual((info["tasksHealthy"], info["tasksUnhealthy"]), (0, 2))
        self.assertIn("failing health checks", self.h.get("/v2/deployments?embed=status")[0]["status"]["/web"])

    def test_agent_side_checks_go_in_the_task_and_their_results_count(self) -> None:
        """A COMMAND check goes to the agent as the task's health_check, in Mesos's shape with the app's
        timing, and is not probed from here; the health its executor reports makes the instance healthy
        (ending the deployment), then unhealthy without a kill from here (a reconciliation repeating
        the last health is no new failure); the executor's TASK_KILLED is a failure, and the instance
        is replaced."""
        self.h.create(app("web", 1, healthChecks=[{"protocol": "COMMAND", "command": {"value": "check $PORT0"},
                                                   "intervalSeconds": 2, "delaySeconds": 0, "gracePeriodSeconds": 5,
                                                   "maxConsecutiveFailures": 2}]))
        self.h.until(lambda: len(self.h.running("/web")) == 1)
        (instance,) = self.h.running("/web")
        executor = self.h.executor_of(instance.task_id)
        self.assertEqual(executor.running[instance.task_id].extra["health_check"], {
            "type": "COMMAND", "command": {"shell": True, "value": "check $PORT0"}, "delay_seconds": 0.0,
            "interval_seconds": 2.0, "timeout_seconds": 20.0, "consecutive_failures": 2, "grace_period_seconds": 5.0})
        self.h.advance(10)
        self.assertEqual(self.h.prober.calls, [])
        self.assertEqual(len(self.h.deployments()), 1)

        self.h.report_health(instance.task_id, True)
        self.assertEqual(self.h.get("/v2/apps/web")["app"]["tasksHealthy"], 1)
        self.h.until(lambda: not self.h.deployments())
        for _ in range(2):
            self.h.report_health(instance.task_id, False, "COMMAND health check exited with status 1")
        (task,) = self.h.get("/v2/apps/web")["app"]["tasks"]
        result = task["healthCheckResults"][0]
        self.assertEqual((result["alive"], result["consecutiveFailures"], result["lastFailureCause"]),
                         (False, 2, "COMMAND health check exited with status 1"))
        self.assertFalse(instance.killing)
        self.h.framework.runtime.reconcile()  # the master repeats the last health: not a new failure
        self.h.settle()
        self.assertEqual(instance.health[0].consecutive_failures, 2)

        executor.update(instance.task_id, "TASK_KILLED", "Task killed after 2 consecutive failed health checks",
                        healthy=False, reason="REASON_TASK_HEALTH_CHECK_STATUS_UPDATED")
        self.h.until(lambda: [i.task_id for i in self.h.running("/web")] not in ([], [instance.task_id]))
        failure = self.h.get("/v2/apps/web?embed=app.lastTaskFailure")["app"]["lastTaskFailure"]
        self.assertEqual((failure["taskId"], failure["state"]), (instance.task_id, "TASK_KILLED"))

    def test_mesos_http_checks_name_the_host_port(self) -> None:
        """A MESOS_HTTP check on portIndex 0 becomes an HTTP health_check on the task's first host port."""
        self.h.create(app("web", 1, portDefinitions=[{"port": 0}, {"port": 0}],
                          healthChecks=[{"protocol": "MESOS_HTTP", "portIndex": 1, "path": "/health"}]))
        self.h.until(lambda: len(self.h.running("/web")) == 1)
        (instance,) = self.h.running("/web")
        check = self.h.executor_of(instance.task_id).running[instance.task_id].extra["health_check"]
        self.assertEqual((check["type"], check["http"], check["delay_seconds"]),
                         ("HTTP", {"scheme": "http", "port": instance.ports[1], "path": "/health"}, 15.0))

    def test_readiness_gates_the_deployment(self) -> None:
        """A deployment waits for the readiness check, not only for running tasks."""
        ready = {"now": False}
        self.h.prober.healthy = lambda host, port: ready["now"]
        self.h.create(app("web", 1, portDefinitions=[{"port": 0, "name": "http-api"}],
                          readinessChecks=[{"intervalSeconds": 2, "timeoutSeconds": 1}]))
        self.h.advance(5)
        self.assertEqual(len(self.h.running("/web")), 1)
        self.assertEqual(len(self.h.deployments()), 1)
        action = self.h.get("/v2/deployments")[0]["currentActions"][0]
        self.assertEqual([r["ready"] for r in action["readinessCheckResults"]], [False])
        ready["now"] = True
        self.h.until(lambda: not self.h.deployments(), limit=10)


class KillTests(Base):
    def test_kill_without_scale_is_replaced(self) -> None:
        """A task killed through the API is replaced by a new one."""
        self.h.create(app("web", 2))
        self.h.until(lambda: len(self.h.running("/web")) == 2)
        victim = self.h.running("/web")[0].task_id
        reply = self.h.call("DELETE", f"/v2/apps/web/tasks/{victim}")
        self.assertEqual(reply.json()["task"]["id"], victim)
        self.h.until(lambda: len(self.h.running("/web")) == 2 and victim not in
                     {i.task_id for i in self.h.running("/web")})

    def test_kill_with_scale_shrinks_the_app(self) -> None:
        """Killing with scale=true removes exactly those tasks and lowers instances."""
        self.h.create(app("web", 3))
        self.h.until(lambda: len(self.h.running("/web")) == 3 and not self.h.deployments())
        victims = [i.task_id for i in self.h.running("/web")[:2]]
        reply = self.h.call("POST", "/v2/tasks/delete?scale=True", {"ids": victims})
        self.assertEqual(reply.code, 200)
        self.assertIn("deploymentId", reply.json())
        self.h.until(lambda: not self.h.deployments() and len(self.h.instances("/web")) == 1)
        self.assertEqual(self.h.state.apps["/web"].instances, 1)
        self.assertNotIn(self.h.running("/web")[0].task_id, victims)

    def test_kill_by_host(self) -> None:
        """DELETE /v2/apps/{id}/tasks?host= kills only that host's tasks."""
        self.h.create(app("web", 4, constraints=[["hostname", "MAX_PER", "2"]]))
        self.h.until(lambda: len(self.h.running("/web")) == 4)
        reply = self.h.call("DELETE", "/v2/apps/web/tasks?host=agent-a&scale=true")
        self.assertEqual(reply.code, 200)
        self.h.until(lambda: not self.h.deployments())
        self.assertEqual({i.host for i in self.h.instances("/web")}, {"agent-b"})

    def test_delete_app_stops_everything(self) -> None:
        """Deleting an app kills its tasks; it is gone from the API at once."""
        self.h.create(app("web", 2))
        self.h.until(lambda: len(self.h.running("/web")) == 2)
        self.assertEqual(self.h.call("DELETE", "/v2/apps/web").code, 200)
        self.assertEqual(self.h.call("GET", "/v2/apps/web").code, 404)
        self.h.until(lambda: not self.h.instances("/web") and not self.h.deployments())
        self.assertEqual(sum(len(f.tasks) for f in self.h.cluster.master.frameworks.values()), 0)


class RecoveryTests(Base):
    def restart_framework(self) -> ServiceHarness:
        self.h.stop()
        again = ServiceHarness(cluster=self.h.cluster, store=self.h.store).start()
        self.addCleanup(again.stop)
        return again

    def test_new_leader_keeps_instances(self) -> None:
        """A framework restarted on the same store re-registers with its ID and keeps every
        task: none lost, none duplicated."""
        self.h.create(app("web", 4))
        self.h.until(lambda: len(self.h.running("/web")) == 4 and not self.h.deployments())
        before = {i.task_id for i in self.h.running("/web")}
        framework_id = self.h.state.framework_id
        again = self.restart_framework()
        again.advance(15)
        self.assertEqual({i.task_id for i in again.running("/web")}, before)
        self.assertEqual(again.state.framework_id, framework_id)
        self.assertEqual(list(again.cluster.master.frameworks), [framework_id])
        self.assertEqual(set(again.cluster.master.frameworks[framework_id].tasks), before)

    def test_deployment_resumes_after_failover(self) -> None:
        """A scale-up interrupted by a failover finishes under the new leader."""
        self.h.create(app("web", 2))
        self.h.until(lambda: not self.h.deployments())
        for containerizer in self.h.cluster.containerizers:
            containerizer.subscribe = False
        self.h.call("PUT", "/v2/apps/web", {"instances": 4})
        self.h.advance(1)
        self.assertEqual(len(self.h.deployments()), 1)
        for containerizer in self.h.cluster.containerizers:
            containerizer.subscribe = True
        again = self.restart_framework()
        self.assertEqual(len(again.deployments()), 1)
        again.until(lambda: not again.deployments() and len(again.running("/web")) == 4, limit=400, step=5)
        self.assertEqual(len(again.instances("/web")), 4)

    def test_kills_decided_before_a_failover_are_sent_again(self) -> None:
        """An instance recorded as being stopped when the leader died is killed by the next one."""
        import json

        self.h.create(app("web", 3))
        self.h.until(lambda: len(self.h.running("/web")) == 3 and not self.h.deployments())
        victim = self.h.running("/web")[0].task_id
        self.h.stop()
        key = f"frameworks/service/instances/{victim}"
        record = json.loads(self.successResultOf(self.h.store.get(key)))
        record.update(goal="stopped", killReason="scaled down")
        self.successResultOf(self.h.store.put(key, json.dumps(record).encode()))
        again = ServiceHarness(cluster=self.h.cluster, store=self.h.store).start()
        self.addCleanup(again.stop)
        again.until(lambda: victim not in {i.task_id for i in again.instances("/web")}
                    and len(again.running("/web")) == 3)
        framework = next(iter(again.cluster.master.frameworks.values()))
        self.assertNotIn(victim, framework.tasks)

    def test_the_last_task_failure_survives_a_failover_and_goes_with_its_app(self) -> None:
        """lastTaskFailure is stored: a new leader shows it; deleting the app deletes it too."""
        self.h.create(app("crash", 1, cmd="exit 3"))
        self.h.until(lambda: "/crash" in self.h.state.failures)
        failure = self.h.get("/v2/apps/crash?embed=app.lastTaskFailure")["app"]["lastTaskFailure"]
        self.assertEqual((failure["state"], failure["message"]), ("TASK_FAILED", "Command exited with status 3"))
        self.h.call("PUT", "/v2/apps/crash?force=true", {"instances": 0})
        self.h.until(lambda: not self.h.deployments() and not self.h.instances("/crash"))
        failure = self.h.get("/v2/apps/crash?embed=app.lastTaskFailure")["app"]["lastTaskFailure"]
        again = self.restart_framework()
        shown = again.get("/v2/apps/crash?embed=app.lastTaskFailure")["app"]["lastTaskFailure"]
        self.assertEqual(shown["taskId"], failure["taskId"])
        again.call("DELETE", "/v2/apps/crash?force=true")
        again.until(lambda: not again.deployments())
        self.assertIsNone(self.successResultOf(again.store.get("frameworks/service/failures/crash")))

    def test_unknown_tasks_are_killed(self) -> None:
        """A task the master holds for the framework but the store does not know is killed."""
        self.h.create(app("web", 2))
        self.h.until(lambda: len(self.h.running("/web")) == 2 and not self.h.deployments())
        stray = self.h.running("/web")[0].task_id
        self.successResultOf(self.h.store.delete(f"frameworks/service/instances/{stray}"))
        again = self.restart_framework()
        again.advance(10)
        self.assertNotIn(stray, {i.task_id for i in again.running("/web")})
        self.assertEqual(len(again.running("/web")), 2)
        framework = next(iter(again.cluster.master.frameworks.values()))
        self.assertNotIn(stray, framework.tasks)


class UnreachableTests(Base):
    def test_lost_agent_is_replaced(self) -> None:
        """When an agent goes unreachable its instances are replaced elsewhere."""
        self.h.create(app("web", 2, constraints=[["hostname", "UNIQUE"]]))
        self.h.until(lambda: len(self.h.running("/web")) == 2)
        add_agent(self.h.cluster, "agent-c", port=5070)
        lost = next(a for a in self.h.cluster.agents if a.info.hostname == "agent-a")
        self.h.cluster.cut(lost)
        self.h.until(lambda: sorted(i.host for i in self.h.running("/web")) == ["agent-b", "agent-c"],
                     limit=300, step=5)


    def test_unreachable_instances_are_replaced_then_expunged(self) -> None:
        """An unreachable instance is replaced after inactiveAfterSeconds and forgotten (in memory and
        in the store) after expungeAfterSeconds."""
        self.h.create(app("web", 2, constraints=[["hostname", "UNIQUE"]],
                          unreachableStrategy={"inactiveAfterSeconds": 10, "expungeAfterSeconds": 30}))
        self.h.until(lambda: len(self.h.running("/web")) == 2)
        add_agent(self.h.cluster, "agent-c", port=5070)
        (stranded,) = [i for i in self.h.running("/web") if i.host == "agent-a"]
        self.h.cluster.cut(next(a for a in self.h.cluster.agents if a.info.hostname == "agent-a"))
        self.h.until(lambda: stranded.unreachable_since is not None, limit=300, step=5)
        states = {t["id"]: t["state"] for t in self.h.get("/v2/apps/web/tasks")["tasks"]}
        self.assertEqual(states[stranded.task_id], "TASK_UNREACHABLE")
        self.h.until(lambda: sorted(i.host for i in self.h.running("/web")) == ["agent-b", "agent-c"], limit=30)
        self.assertIs(self.h.state.instances.get(stranded.task_id), stranded)
        self.h.until(lambda: self.h.state.instances.get(stranded.task_id) is None, limit=60)
        key = f"frameworks/service/instances/{stranded.task_id}"
        self.assertIsNone(self.successResultOf(self.h.store.get(key)))
        self.assertEqual(len(self.h.running("/web")), 2)


class DependencyTests(Base):
    def test_dependents_wait_for_their_dependencies(self) -> None:
        """An app is not launched before the apps it depends on are healthy."""
        healthy = {"db": False}
        self.h.prober.healthy = lambda host, port: healthy["db"]
        reply = self.h.call("POST", "/v2/groups", {"id": "/shop", "apps": [
            app("db", 1, healthChecks=[{"protocol": "TCP", "intervalSeconds": 1, "maxConsecutiveFailures": 0}]),
            app("web", 2, dependencies=["db"])]})
        self.assertEqual(reply.code, 201)
        self.h.advance(5)
        self.assertEqual(len(self.h.running("/shop/db")), 1)
        self.assertEqual(self.h.instances("/shop/web"), [], "web waits for a healthy db")
        healthy["db"] = True
        self.h.until(lambda: len(self.h.running("/shop/web")) == 2 and not self.h.deployments())

    def test_delete_overrides_a_stuck_deployment(self) -> None:
        """DELETE /v2/apps/{id} forces by default: a stuck deployment does not block it."""
        self.h.prober.healthy = lambda host, port: False
        self.h.create(app("web", 1, healthChecks=[{"intervalSeconds": 1, "maxConsecutiveFailures": 0}]))
        self.h.advance(3)
        self.assertEqual(self.h.call("DELETE", "/v2/apps/web").code, 200)
        self.h.until(lambda: not self.h.deployments() and not self.h.instances("/web"))

    def test_bulk_update(self) -> None:
        """PUT /v2/apps changes several apps in one deployment (creating the unknown ones)."""
        self.h.create(app("a", 1))
        self.h.until(lambda: not self.h.deployments())
        reply = self.h.call("PUT", "/v2/apps", [{"id": "a", "instances": 2}, app("b", 1)])
        self.assertEqual(reply.code, 200)
        (deployment,) = self.h.get("/v2/deployments")
        self.assertEqual(deployment["affectedApps"], ["/a", "/b"])
        self.h.until(lambda: len(self.h.running("/a")) == 2 and len(self.h.running("/b")) == 1)
        self.assertEqual(self.h.state.apps["/a"].spec["cmd"], "serve", "a partial update by default")
