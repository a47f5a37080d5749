"""The REST API through an HTTP client on the router: Marathon's codes, shapes, headers and the
marathon-python 0.13 key whitelists."""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from tests.helpers.service import ServiceHarness

#: marathon-python 0.13's accepted keys (spec section 3.1.4).
APP_KEYS = {"acceptedResourceRoles", "args", "backoffFactor", "backoffSeconds", "cmd", "constraints", "container",
            "cpus", "dependencies", "deployments", "disk", "env", "executor", "fetch", "gpus", "healthChecks", "id",
            "instances", "ipAddress", "killSelection", "labels", "lastTaskFailure", "maxLaunchDelaySeconds", "mem",
            "networks", "portDefinitions", "ports", "readinessCheckResults", "readinessChecks", "requirePorts",
            "residency", "role", "secrets", "storeUrls", "taskKillGracePeriodSeconds", "taskRateLimit", "taskStats",
            "tasks", "tasksHealthy", "tasksRunning", "tasksStaged", "tasksUnhealthy", "unreachableStrategy",
            "upgradeStrategy", "uris", "user", "version", "versionInfo"}
TASK_KEYS = {"appId", "healthCheckResults", "host", "id", "ipAddresses", "localVolumes", "ports", "region", "role",
             "servicePorts", "slaveId", "stagedAt", "startedAt", "state", "version", "zone"}
DEPLOYMENT_KEYS = {"affectedApps", "affectedPods", "currentActions", "currentStep", "id", "steps", "totalSteps",
                   "version"}
QUEUE_KEYS = {"app", "count", "delay", "lastUnusedOffers", "overdue", "processedOffersSummary", "since"}
GROUP_KEYS = {"apps", "dependencies", "groups", "id", "pods", "version"}
INFO_KEYS = {"buildref", "elected", "event_subscriber", "frameworkId", "http_config", "leader", "marathon_config",
             "name", "version", "zookeeper_config"}
MARATHON_CONFIG_KEYS = {
    "access_control_allow_origin", "checkpoint", "decline_offer_duration", "default_network_name", "env_vars_prefix",
    "executor", "failover_timeout", "features", "framework_name", "ha", "hostname", "launch_token",
    "launch_token_refresh_interval", "leader_proxy_connection_timeout_ms", "leader_proxy_read_timeout_ms",
    "local_port_max", "local_port_min", "maintenance_mode", "marathon_store_timeout", "master",
    "max_instances_per_offer", "mesos_bridge_name", "mesos_heartbeat_failure_threshold", "mesos_heartbeat_interval",
    "mesos_leader_ui_url", "mesos_role", "mesos_user", "min_revive_offers_interval", "new_group_enforce_role",
    "offer_matching_timeout", "on_elected_prepare_timeout", "reconciliation_initial_delay", "reconciliation_interval",
    "revive_offers_for_new_apps", "revive_offers_repetitions", "scale_apps_initial_delay", "scale_apps_interval",
    "store_cache", "task_launch_confirm_timeout", "task_launch_timeout", "task_lost_expunge_initial_delay",
    "task_lost_expunge_interval", "task_reservation_timeout", "webui_url"}
TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


def app(app_id: str, instances: int = 1, **fields: Any) -> dict[str, Any]:
    return {"id": app_id, "cmd": "serve", "instances": instances, "cpus": 0.1, "mem": 32, **fields}


class ApiBase(unittest.TestCase):
    def setUp(self) -> None:
        self.h = ServiceHarness().start()
        self.addCleanup(self.h.stop)

    def settled(self) -> None:
        self.h.until(lambda: not self.h.deployments())


class AppsApiTests(ApiBase):
    def test_create_answers_201_with_the_app(self) -> None:
        """POST /v2/apps: 201, Location, deployment header, the bare app with counts and deployments."""
        reply = self.h.create(app("web", 2))
        body = reply.json()
        self.assertEqual(reply.headers["location"], "/v2/apps/web")
        self.assertEqual(body["deployments"], [{"id": reply.headers["marathon-deployment-id"]}])
        self.assertEqual((body["id"], body["tasksRunning"], body["tasksStaged"]), ("/web", 0, 0))
        self.assertLessEqual(set(body), APP_KEYS)
        self.assertRegex(body["version"], TIMESTAMP)
        self.assertNotEqual(body["portDefinitions"][0]["port"], 0, "a real service port is assigned")

    def test_duplicate_and_invalid(self) -> None:
        """409 for an existing id; 422 with details for invalid fields; 400 for broken JSON."""
        self.h.create(app("web"))
        reply = self.h.call("POST", "/v2/apps", app("web"))
        self.assertEqual((reply.code, reply.json()["message"]), (409, "An app with id [/web] already exists."))
        reply = self.h.call("POST", "/v2/apps", {"id": "x", "cmd": "y", "mem": -1,
                                                 "upgradeStrategy": {"maximumOverCapacity": 2}})
        self.assertEqual(reply.code, 422)
        self.assertEqual(reply.headers["content-type"], "application/json")
        details = {d["path"]: d["errors"] for d in reply.json()["details"]}
        self.assertEqual(details["/upgradeStrategy/maximumOverCapacity"], ["is greater than 1"])
        self.assertIn("/mem", details)
        reply = self.h.call("POST", "/v2/apps", b"{nope")
        self.assertEqual((reply.code, reply.json()["message"]), (400, "Invalid JSON"))

    def test_get_list_and_filters(self) -> None:
        """GET one wraps it in "app" and embeds tasks; the list filters by cmd, id and labels."""
        self.h.create(app("prod/web", 1, labels={"tier": "front", "env": "prod"}))
        self.h.create(app("prod/db", 1, cmd="postgres", labels={"tier": "back"}))
        self.settled()
        one = self.h.get("/v2/apps//prod/web")["app"]
        self.assertEqual(len(one["tasks"]), 1)
        self.assertLessEqual(set(one), APP_KEYS)
        self.assertLessEqual(set(one["tasks"][0]), TASK_KEYS)
        self.assertRegex(one["tasks"][0]["startedAt"], TIMESTAMP)
        ids = lambda query: [a["id"] for a in self.h.get(f"/v2/apps{query}")["apps"]]  # noqa: E731
        self.assertEqual(ids(""), ["/prod/db", "/prod/web"])
        self.assertEqual(ids("?cmd=postgres"), ["/prod/db"])
        self.assertEqual(ids("?id=web"), ["/prod/web"])
        self.assertEqual(ids("?label=tier==front"), ["/prod/web"])
        self.assertEqual(ids("?label=tier!=front"), ["/prod/db"])
        self.assertEqual(ids("?label=tier%20in%20(front,back),env"), ["/prod/web"])
        self.assertEqual(ids("?label=env"), ["/prod/web"])
        self.assertEqual(self.h.call("GET", "/v2/apps?label=a%20b%20c").code, 400)
        group = self.h.get("/v2/apps/prod/*")
        self.assertEqual([a["id"] for a in group["*"]], ["/prod/db", "/prod/web"])
        self.assertEqual(self.h.call("GET", "/v2/apps/nope").json(), {"message": "App '/nope' does not exist"})

    def test_embeds(self) -> None:
        """embed=apps.tasks (marathon-lb) and app.taskStats/lastTaskFailure/readiness add those fields."""
        self.h.create(app("web", 2))
        self.settled()
        listed = self.h.get("/v2/apps?embed=apps.tasks&embed=apps.taskStats")["apps"][0]
        self.assertEqual(len(listed["tasks"]), 2)
        self.assertEqual(listed["taskStats"]["totalSummary"]["stats"]["counts"]["running"], 2)
        plain = self.h.get("/v2/apps")["apps"][0]
        self.assertNotIn("tasks", plain)
        self.assertIn("tasksRunning", plain)
        ready = self.h.get("/v2/apps/web?embed=app.readiness")["app"]
        self.assertEqual(ready["readinessCheckResults"], [])

    def test_partial_and_full_update(self) -> None:
        """PUT merges by default; partialUpdate=false replaces; read-only fields are ignored."""
        self.h.create(app("web", 1, env={"A": "1"}, labels={"x": "y"}))
        self.settled()
        current = self.h.get("/v2/apps/web")["app"]
        reply = self.h.call("PUT", "/v2/apps//web?force=False", {"env": {"A": "2"}})
        self.assertEqual(reply.code, 200)
        self.assertEqual(set(reply.json()), {"deploymentId", "version"})
        self.assertEqual(reply.headers["marathon-deployment-id"], reply.json()["deploymentId"])
        updated = self.h.get("/v2/apps/web")["app"]
        self.assertEqual((updated["env"], updated["labels"]), ({"A": "2"}, {"x": "y"}))
        self.settled()
        echo = dict(self.h.get("/v2/apps/web")["app"])
        echo.pop("version")
        self.assertEqual(self.h.call("PUT", "/v2/apps/web", echo).code, 200, "a GET body can be PUT back")
        self.settled()
        full = self.h.call("PUT", "/v2/apps/web?partialUpdate=false", {"cmd": "other", "instances": 1})
        self.assertEqual(full.code, 200)
        self.assertEqual(self.h.get("/v2/apps/web")["app"]["labels"], {})
        self.assertNotEqual(current["version"], self.h.get("/v2/apps/web")["app"]["version"])

    def test_put_creates_and_patch_merges(self) -> None:
        """PUT on an unknown id creates the app (201); PATCH always merges."""
        reply = self.h.call("PUT", "/v2/apps/new", app("new"))
        self.assertEqual(reply.code, 201)
        self.settled()
        self.assertEqual(self.h.call("PATCH", "/v2/apps/new", {"instances": 2}).code, 200)
        self.assertEqual(self.h.get("/v2/apps/new")["app"]["cmd"], "serve")

    def test_versions_and_rollback(self) -> None:
        """Every change is a version; a body of only {"version"} rolls back to it."""
        self.h.create(app("web", 1, cmd="v1"))
        self.settled()
        first = self.h.get("/v2/apps/web")["app"]["version"]
        self.h.call("PUT", "/v2/apps/web", {"cmd": "v2"})
        self.settled()
        versions = self.h.get("/v2/apps/web/versions")["versions"]
        self.assertEqual(len(versions), 2)
        self.assertEqual(versions[-1], first, "newest first")
        self.assertEqual(self.h.get(f"/v2/apps/web/versions/{first}")["cmd"], "v1")
        self.assertEqual(self.h.call("GET", "/v2/apps/web/versions/2000-01-01T00:00:00.000Z").code, 404)
        self.assertEqual(self.h.call("PUT", "/v2/apps/web", {"version": first}).code, 200)
        self.assertEqual(self.h.get("/v2/apps/web")["app"]["cmd"], "v1")
        self.assertEqual(self.h.call("PUT", "/v2/apps/web", {"version": "1999-01-01T00:00:00.000Z"}).code, 404)

    def test_booleans(self) -> None:
        """Query booleans are case-insensitive; anything else is a 400."""
        self.h.create(app("web"))
        self.assertEqual(self.h.call("POST", "/v2/apps/web/restart?force=TRUE").code, 200)
        reply = self.h.call("POST", "/v2/apps/web/restart?force=yes")
        self.assertEqual(reply.code, 400)
        self.assertIn("force", reply.json()["message"])

    def test_deployment_lock_and_force(self) -> None:
        """A change to an app under deployment is a 409 naming the deployment; force overrides it."""
        self.h.prober.healthy = lambda host, port: False
        self.h.create(app("web", 1, healthChecks=[{"intervalSeconds": 1, "maxConsecutiveFailures": 0}]))
        blocking = self.h.get("/v2/deployments")[0]["id"]
        reply = self.h.call("PUT", "/v2/apps/web", {"cmd": "again"})
        self.assertEqual(reply.code, 409)
        self.assertEqual(reply.json()["deployments"], [{"id": blocking}])
        self.assertEqual(self.h.call("PUT", "/v2/apps/web?force=true", {"cmd": "again"}).code, 200)
        self.assertNotIn(blocking, [d["id"] for d in self.h.get("/v2/deployments")])

    def test_delete(self) -> None:
        """DELETE answers a deployment and the app is gone; a second DELETE is a 404."""
        self.h.create(app("web"))
        reply = self.h.call("DELETE", "/v2/apps/web")
        self.assertEqual(reply.code, 200)
        self.assertIn("deploymentId", reply.json())
        self.assertEqual(self.h.call("DELETE", "/v2/apps/web").code, 404)


class TasksApiTests(ApiBase):
    def test_tasks_json_text_and_status(self) -> None:
        """GET /v2/tasks lists tasks, filters by status, and has the tab-separated text form."""
        self.h.create(app("web", 2))
        self.settled()
        tasks = self.h.get("/v2/tasks")["tasks"]
        self.assertEqual(len(tasks), 2)
        self.assertEqual(len(self.h.get("/v2/tasks?status=running")["tasks"]), 2)
        self.assertEqual(len(self.h.get("/v2/tasks?status[]=staging")["tasks"]), 0)
        self.assertEqual(self.h.call("GET", "/v2/tasks?status=sleepy").code, 400)
        text = self.h.call("GET", "/v2/tasks", headers={"Accept": "text/plain"})
        self.assertTrue(text.headers["content-type"].startswith("text/plain"))
        line = text.body.decode().strip().split("\t")
        service_port = self.h.state.apps["/web"].service_ports[0]
        self.assertEqual(line[:2], ["web", str(service_port)])
        self.assertEqual(sorted(line[2:]), sorted(f"{t['host']}:{t['ports'][0]}" for t in tasks))

    def test_bulk_kill_refuses_unknown_ids(self) -> None:
        """POST /v2/tasks/delete with an unknown id is a 400 and kills nothing."""
        self.h.create(app("web", 1))
        self.settled()
        known = self.h.running("/web")[0].task_id
        reply = self.h.call("POST", "/v2/tasks/delete", {"ids": [known, "nope.1"]})
        self.assertEqual(reply.code, 400)
        self.assertFalse(self.h.running("/web")[0].killing)
        reply = self.h.call("POST", "/v2/tasks/delete?scale=False", {"ids": [known]})
        self.assertEqual((reply.code, reply.json()["tasks"][0]["id"]), (200, known))


class DeploymentsApiTests(ApiBase):
    def stuck(self) -> str:
        self.h.prober.healthy = lambda host, port: False
        self.h.create(app("web", 2, healthChecks=[{"intervalSeconds": 1, "maxConsecutiveFailures": 0}]))
        self.h.advance(2)
        return str(self.h.get("/v2/deployments")[0]["id"])

    def test_listing_shape(self) -> None:
        """Deployments list steps and current actions with marathon-python's keys only; the status
        of a stuck one is there on request."""
        self.stuck()
        listed = self.h.get("/v2/deployments")
        self.assertLessEqual(set(listed[0]), DEPLOYMENT_KEYS)
        self.assertEqual(listed[0]["currentActions"][0]["action"], "ScaleApplication")
        self.assertEqual((listed[0]["currentStep"], listed[0]["totalSteps"]), (2, 2))
        status = self.h.get("/v2/deployments?embed=status")[0]["status"]["/web"]
        self.assertIn("not yet healthy", status)

    def test_rollback(self) -> None:
        """DELETE rolls back with a new deployment (the app goes away here, as it was new)."""
        deployment = self.stuck()
        reply = self.h.call("DELETE", f"/v2/deployments/{deployment}")
        self.assertEqual(reply.code, 200)
        self.assertNotEqual(reply.json()["deploymentId"], deployment)
        self.assertEqual(self.h.call("GET", "/v2/apps/web").code, 404)
        self.h.until(lambda: not self.h.deployments() and not self.h.instances("/web"))

    def test_force_stop(self) -> None:
        """DELETE ?force=true stops the deployment (202) and leaves the app as it is."""
        deployment = self.stuck()
        reply = self.h.call("DELETE", f"/v2/deployments/{deployment}?force=true")
        self.assertEqual((reply.code, reply.body), (202, b""))
        self.assertEqual(self.h.get("/v2/deployments"), [])
        self.assertEqual(self.h.get("/v2/apps/web")["app"]["instances"], 2)
        self.assertEqual(self.h.call("DELETE", f"/v2/deployments/{deployment}").json()["message"],
                         f"DeploymentPlan {deployment} does not exist")

    def test_queue(self) -> None:
        """/v2/queue lists apps waiting to launch, with the delay and the offer summary."""
        self.h.create(app("huge", 1, mem=1_000_000))
        self.h.advance(3)
        queue = self.h.get("/v2/queue?embed=lastUnusedOffers")["queue"]
        self.assertEqual(len(queue), 1)
        item = queue[0]
        self.assertLessEqual(set(item), QUEUE_KEYS)
        self.assertEqual(item["count"], 1)
        self.assertIn("InsufficientMemory", item["processedOffersSummary"]["why"])
        self.assertEqual(item["lastUnusedOffers"][0]["reason"], ["InsufficientMemory"])
        self.assertLessEqual(set(item["app"]), APP_KEYS)


class GroupsApiTests(ApiBase):
    def test_nested_create_and_dependency_order(self) -> None:
        """POST /v2/groups creates nested apps; dependencies order the deployment's steps."""
        body = {"id": "/shop", "apps": [app("web", 1, dependencies=["/shop/db"])],
                "groups": [{"id": "db", "apps": [app("main")]}]}
        reply = self.h.call("POST", "/v2/groups", body)
        self.assertEqual(reply.code, 201)
        steps = self.h.get("/v2/deployments")[0]["steps"]
        self.assertEqual([[a["app"] for a in s["actions"]] for s in steps],
                         [["/shop/db/main", "/shop/web"], ["/shop/db/main"], ["/shop/web"]])
        self.settled()
        root = self.h.get("/v2/groups")
        self.assertLessEqual(set(root), GROUP_KEYS)
        shop = root["groups"][0]
        self.assertEqual((shop["id"], [a["id"] for a in shop["apps"]]), ("/shop", ["/shop/web"]))
        self.assertEqual(shop["groups"][0]["apps"][0]["id"], "/shop/db/main")
        self.assertEqual(self.h.call("POST", "/v2/groups", body).code, 409)

    def test_cycles_are_refused(self) -> None:
        """Apps depending on each other are a 422."""
        body = {"id": "/c", "apps": [app("a", dependencies=["b"]), app("b", dependencies=["a"])]}
        reply = self.h.call("POST", "/v2/groups", body)
        self.assertEqual(reply.code, 422)
        self.assertIn("cyclic", reply.json()["details"][0]["errors"][0])

    def test_scale_by_update_and_delete(self) -> None:
        """scaleBy multiplies instances; a PUT listing apps replaces the level; DELETE removes all."""
        self.h.call("POST", "/v2/groups", {"id": "/g", "apps": [app("a", 1), app("b", 2)]})
        self.settled()
        self.assertEqual(self.h.call("PUT", "/v2/groups/g", {"scaleBy": 2}).code, 200)
        self.assertEqual([self.h.state.apps[a].instances for a in ("/g/a", "/g/b")], [2, 4])
        self.settled()
        self.assertEqual(self.h.call("PUT", "/v2/groups/g", {"apps": [app("a", 1)]}).code, 200)
        self.assertNotIn("/g/b", self.h.state.apps)
        self.settled()
        self.assertEqual(self.h.call("DELETE", "/v2/groups/g").code, 200)
        self.assertEqual(self.h.call("GET", "/v2/groups/g").code, 404)
        self.assertEqual(self.h.state.apps, {})


    def test_group_versions_and_rollback(self) -> None:
        """Every change keeps a root group version; a group lists those it existed in, newest first;
        PUT {"version"} brings the group back as it was (apps removed since return, with their
        instances), as one deployment; an unknown version is a 404."""
        self.h.call("POST", "/v2/groups", {"id": "/g", "apps": [app("a", 1), app("b", 2)]})
        self.settled()
        self.h.call("PUT", "/v2/groups/g", {"scaleBy": 2})
        self.settled()
        self.h.call("PUT", "/v2/groups/g", {"apps": [app("a", 1)]})
        self.settled()
        self.h.call("POST", "/v2/apps", app("/other/x"))
        self.settled()
        versions = self.h.get("/v2/groups/g/versions")
        self.assertEqual(len(versions), 4)
        self.assertEqual(versions, sorted(versions, reverse=True))
        self.assertEqual(len(self.h.get("/v2/groups/other/versions")), 1)
        self.assertEqual(self.h.get("/v2/groups/versions")[0], self.h.get("/v2/groups")["version"])

        first = versions[-1]
        reply = self.h.call("PUT", "/v2/groups/g", {"version": first})
        self.assertEqual(reply.code, 200, reply.body)
        self.assertIn("deploymentId", reply.json())
        self.settled()
        self.assertEqual({a: self.h.state.apps[a].instances for a in ("/g/a", "/g/b")}, {"/g/a": 1, "/g/b": 2})
        self.h.until(lambda: len(self.h.running("/g/b")) == 2)
        self.assertIn("/other/x", self.h.state.apps)
        self.assertEqual(self.h.call("PUT", "/v2/groups/g", {"version": "2001-01-01T00:00:00.000Z"}).code, 404)

    def test_group_versions_are_pruned_and_survive_a_restart(self) -> None:
        """At most zk_max_versions group versions are kept; the versions of a deleted app go with the
        last group version naming it; a new leader knows the same group versions."""
        self.h.stop()
        self.h = ServiceHarness(zk_max_versions=3).start()
        self.addCleanup(self.h.stop)
        self.h.create(app("gone"))
        self.settled()
        self.h.call("DELETE", "/v2/apps/gone")
        self.settled()
        versions_of_gone = self.successResultOf(self.h.store.children("frameworks/service/versions/gone"))
        self.assertEqual(len(versions_of_gone), 1)
        for index in range(3):
            self.h.create(app(f"app{index}"))
            self.settled()
        kept = self.h.get("/v2/groups/versions")
        self.assertEqual(len(kept), 3)
        self.assertEqual(self.successResultOf(self.h.store.children("frameworks/service/versions/gone")), [])
        again = ServiceHarness(cluster=self.h.cluster, store=self.h.store).start()
        self.h.stop()
        self.addCleanup(again.stop)
        self.assertEqual(again.get("/v2/groups/versions"), kept)


class MiscApiTests(ApiBase):
    def test_info(self) -> None:
        """/v2/info has the three config objects and only whitelisted keys."""
        info = self.h.get("/v2/info")
        self.assertLessEqual(set(info), INFO_KEYS)
        self.assertLessEqual(set(info["marathon_config"]), MARATHON_CONFIG_KEYS)
        for key in ("marathon_config", "zookeeper_config", "http_config"):
            self.assertIsInstance(info[key], dict)
        self.assertEqual((info["name"], info["elected"], info["leader"]), ("marathon", True, "127.0.0.1:8080"))
        self.assertEqual(info["frameworkId"], self.h.state.framework_id)
        self.assertGreaterEqual(tuple(map(int, info["version"].split("."))), (0, 11, 0))

    def test_leader_ping_metrics(self) -> None:
        """/v2/leader, /ping (text), /metrics (JSON and Prometheus), /v2/eventSubscriptions."""
        self.assertEqual(self.h.get("/v2/leader"), {"leader": "127.0.0.1:8080"})
        ping = self.h.call("GET", "/ping")
        self.assertEqual((ping.code, ping.body, ping.headers["content-type"][:10]), (200, b"pong", "text/plain"))
        self.h.create(app("web"))
        self.settled()
        metrics = self.h.get("/metrics")
        self.assertEqual(metrics["gauges"]["service.apps"]["value"], 1)
        self.assertGreaterEqual(metrics["counters"]["service.tasks_launched"]["count"], 1)
        text = self.h.call("GET", "/metrics/prometheus").body.decode()
        self.assertIn("marathon_apps 1.0", text)
        self.assertEqual(self.h.get("/v2/eventSubscriptions"), {"callbackUrls": []})

    def test_abdication_goes_to_the_host(self) -> None:
        """DELETE /v2/leader asks the host to abdicate and answers Marathon's message; where the host
        refuses, 400 with its reason."""
        reply = self.h.call("DELETE", "/v2/leader")
        self.assertEqual((reply.code, reply.json()), (200, {"message": "Leadership abdicated"}))
        self.assertEqual(self.h.host.abdications, 1)
        self.h.host.refuse_abdication = "no other instance"
        reply = self.h.call("DELETE", "/v2/leader")
        self.assertEqual((reply.code, reply.json()), (400, {"message": "no other instance"}))
        self.assertEqual(self.h.host.abdications, 1)

    def test_not_ready_before_leading(self) -> None:
        """Before the framework has recovered, the API answers 503."""
        idle = ServiceHarness(cluster=self.h.cluster)
        reply = idle.call("GET", "/v2/apps")
        self.assertEqual(reply.code, 503)
        self.assertIn("not ready", reply.json()["message"])


class AuthTests(unittest.TestCase):
    def test_basic_auth(self) -> None:
        """With http_credentials every call but /ping needs HTTP Basic; a wrong one is a 401 with
        a challenge and Marathon's message."""
        import base64

        h = ServiceHarness(http_credentials="ops:secret").start()
        self.addCleanup(h.stop)
        self.assertEqual(h.call("GET", "/ping").code, 200)
        refused = h.call("GET", "/v2/apps")
        self.assertEqual((refused.code, refused.json()["message"]), (401, "Invalid username or password."))
        self.assertIn("Basic", refused.headers["www-authenticate"])
        wrong = base64.b64encode(b"ops:nope").decode()
        self.assertEqual(h.call("GET", "/v2/apps", headers={"Authorization": f"Basic {wrong}"}).code, 401)
        right = base64.b64encode(b"ops:secret").decode()
        self.assertEqual(h.call("GET", "/v2/apps", headers={"Authorization": f"Basic {right}"}).code, 200)


class StoreFailureTests(unittest.TestCase):
    def test_refused_write_changes_nothing(self) -> None:
        """When the store refuses a write (the leader was deposed), the API answers 503 and the
        change is not applied."""
        fenced = {"held": True}
        from mesostw.store.memory import MemoryStateStore

        h = ServiceHarness(store=MemoryStateStore(fence=lambda: fenced["held"])).start()
        self.addCleanup(h.stop)
        fenced["held"] = False
        reply = h.call("POST", "/v2/apps", app("web"))
        self.assertEqual(reply.code, 503)
        self.assertIn("could not be stored", reply.json()["message"])
        self.assertEqual(h.state.apps, {})
        self.assertEqual(h.state.deployments, {})
