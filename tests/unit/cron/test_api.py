"""Chronos's REST API: paths on both prefixes, methods, status codes, bodies and content types."""

from __future__ import annotations

import base64
import json
from typing import Any

from twisted.internet import defer

from frameworks.cron import plugin
from mesostw import flags as flaglib
from tests.helpers.clocktest import ClockTestCase
from tests.helpers.cron import CronOnACluster, job
from tests.helpers.hosting import ClusterHost
from tests.helpers.web import Client


class APITests(ClockTestCase):
    def setUp(self) -> None:
        self.cron = CronOnACluster(self)
        self.client = self.cron.client

    def send(self, method: str, path: str, body: Any = None) -> Any:
        raw = json.dumps(body).encode() if body is not None else b""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        return self.client.request(method, path, raw, headers)

    def test_add_get_list_update_delete(self) -> None:
        """POST iso8601 and dependency answer 204 with no body; GET shows Chronos's fields; DELETE 204."""
        reply = self.send("POST", "/v1/scheduler/iso8601", job("a"))
        self.assertEqual((reply.code, reply.body), (204, b""))
        self.assertEqual(self.send("POST", "/v1/scheduler/dependency", job("b", None, parents=["a"])).code, 204)
        shown = self.client.get_json("/v1/scheduler/job/a")
        for key, value in {"name": "a", "command": "true", "shell": True, "retries": 2, "cpus": 0.1, "mem": 128.0,
                           "disk": 256.0, "successCount": 0, "errorCount": 0, "lastSuccess": "", "lastError": "",
                           "errorsSinceLastSuccess": 0, "disabled": False, "concurrent": False, "runAsUser": "root",
                           "fetch": [], "uris": [], "scheduleTimeZone": "", "epsilon": "PT60S"}.items():
            self.assertEqual(shown[key], value, key)
        self.assertEqual(list(shown)[-2:], ["schedule", "scheduleTimeZone"])
        listed = self.client.get_json("/v1/scheduler/jobs")
        self.assertEqual([j["name"] for j in listed], ["a", "b"])
        self.assertEqual(listed[1]["parents"], ["a"])
        self.assertNotIn("schedule", listed[1])
        self.assertEqual(self.send("POST", "/v1/scheduler/iso8601", job("a", command="echo hi")).code, 204)
        self.assertEqual(self.client.get_json("/v1/scheduler/job/a")["command"], "echo hi")
        self.assertEqual(self.send("DELETE", "/v1/scheduler/job/a").code, 204)
        self.assertEqual(self.client.get_json("/v1/scheduler/job/b")["schedule"], "R/2024-05-01T12:01:00.000Z/PT1M")

    def test_errors_are_400_with_status_and_message(self) -> None:
        """Bad jobs, unknown jobs, bad JSON and missing parents: 400 {"status": "Bad Request", "message"}."""
        cases = [
            ("POST", "/v1/scheduler/iso8601", job("x", schedule="R/not a date/P1D")),
            ("POST", "/v1/scheduler/iso8601", {"name": "bad name", "command": "true"}),
            ("POST", "/v1/scheduler/dependency", job("y", None, parents=["ghost"])),
            ("GET", "/v1/scheduler/job/ghost", None),
            ("PUT", "/v1/scheduler/job/ghost", None),
            ("DELETE", "/v1/scheduler/job/ghost", None),
            ("DELETE", "/v1/scheduler/task/kill/ghost", None),
            ("GET", "/v1/scheduler/job/stat/ghost", None),
        ]
        for method, path, body in cases:
            reply = self.send(method, path, body)
            self.assertEqual(reply.code, 400, (method, path))
            self.assertEqual(reply.json()["status"], "Bad Request")
            self.assertTrue(reply.json()["message"])
        reply = self.client.request("POST", "/v1/scheduler/iso8601", b"{nope", {"Content-Type": "application/json"})
        self.assertEqual(reply.code, 400)
        self.assertIn("not JSON", reply.json()["message"])

    def test_both_prefixes_and_their_methods(self) -> None:
        """/scheduler (2.x) takes PUT to add jobs; /v1/scheduler (3.x) only POST (405 otherwise)."""
        self.assertEqual(self.send("PUT", "/scheduler/iso8601", job("legacy")).code, 204)
        self.assertEqual(self.send("PUT", "/v1/scheduler/iso8601", job("modern")).code, 405)
        self.assertEqual(self.client.get_json("/scheduler/job/legacy")["name"], "legacy")
        self.assertEqual([j["name"] for j in self.client.get_json("/v1/scheduler/jobs")], ["legacy"])

    def test_search(self) -> None:
        """name AND command (case-insensitive), any ORs them, limit defaults to 10, offset skips."""
        for n in range(15):
            self.send("POST", "/v1/scheduler/iso8601", job(f"etl-{n:02d}", command=f"run --part {n}"))
        self.send("POST", "/v1/scheduler/iso8601", job("report", command="make REPORT"))
        names = lambda q: [j["name"] for j in self.client.get_json(f"/v1/scheduler/jobs/search?{q}")]  # noqa: E731
        self.assertEqual(len(names("name=etl")), 10)
        self.assertEqual(names("name=ETL&limit=3&offset=12"), ["etl-12", "etl-13", "etl-14"])
        self.assertEqual(names("command=report"), ["report"])
        self.assertEqual(names("name=etl&command=part%201"), ["etl-01", "etl-10", "etl-11", "etl-12", "etl-13",
                                                               "etl-14"])
        self.assertEqual(names("any=report&limit=50"), ["report"])
        self.assertEqual(self.client.request("GET", "/v1/scheduler/jobs/search?limit=x").code, 400)

    def test_run_kill_success_and_graph(self) -> None:
        """Manual run 204, kill 204, success as text, the graph as CSV and DOT text."""
        self.send("POST", "/v1/scheduler/iso8601", job("a", schedule="R/2024-06-01T00:00:00Z/P1D"))
        self.send("POST", "/v1/scheduler/dependency", job("b", None, parents=["a"]))
        self.assertEqual(self.send("PUT", "/v1/scheduler/job/a?arguments=--now").code, 204)
        self.cron.advance(2)
        reply = self.send("PUT", "/v1/scheduler/job/success/a")
        self.assertEqual((reply.code, reply.body), (200, b"marked job a as successful: true"))
        self.assertEqual(self.send("PUT", "/v1/scheduler/job/success/nope").body,
                         b"marked job nope as successful: false")
        self.assertEqual(self.send("DELETE", "/v1/scheduler/task/kill/a").code, 204)
        self.cron.advance(1)
        csv = self.client.get("/v1/scheduler/graph/csv")
        self.assertTrue(csv.headers["content-type"].startswith("text/plain"))
        self.assertEqual(csv.body.decode().splitlines(), ["node,a,success,idle", "node,b,success,idle", "link,a,b"])
        dot = self.client.get("/scheduler/graph/dot")
        self.assertTrue(dot.body.startswith(b"digraph G {"))

    def test_stats_history_and_summary(self) -> None:
        """job/stat has a histogram and the task history; stats/{pct} ranks jobs; history has run details."""
        self.send("POST", "/v1/scheduler/iso8601", job("a"))
        self.cron.advance(65)
        stat = self.client.get_json("/v1/scheduler/job/stat/a")
        self.assertEqual(stat["histogram"]["count"], 1)
        self.assertEqual(stat["taskStatHistory"][0]["status"], "TASK_FINISHED")
        self.assertEqual(self.client.get_json("/v1/scheduler/stats/99thPercentile")[0]["jobNameLabel"], "a")
        self.assertEqual(self.client.get_json("/v1/scheduler/stats/nonsense"), [])
        runs = self.client.get_json("/v1/scheduler/job/history/a")["runs"]
        self.assertEqual((runs[0]["status"], runs[0]["due"]), ("success", "2024-05-01T12:01:00.000Z"))
        self.assertIn("latenessSeconds", runs[0])
        summary = self.client.get_json("/v1/scheduler/jobs/summary")["jobs"]
        self.assertEqual(summary, [{"name": "a", "status": "success", "state": "idle",
                                    "schedule": "R/2024-05-01T12:02:00.000Z/PT1M", "parents": [],
                                    "disabled": False}])

    def test_data_processing_progress(self) -> None:
        """POST .../task/{id}/progress adds to a running task's count (204 once written); job/stat shows it
        after the run; an unknown task, a bad count or a job that does not track data is a 400."""
        self.send("POST", "/v1/scheduler/iso8601", job("etl", "R1//PT1H", command="sleep 1000",
                                                       dataProcessingJobType=True))
        self.cron.advance(2)
        [task_id] = self.cron.launched("etl")
        path = f"/v1/scheduler/job/etl/task/{task_id}/progress"
        self.assertEqual(self.send("POST", path, {"numAdditionalElementsProcessed": 40}).code, 204)
        self.assertEqual(self.send("POST", path, {"numAdditionalElementsProcessed": 2}).code, 204)
        self.assertEqual(self.send("DELETE", "/v1/scheduler/task/kill/etl").code, 204)
        self.cron.advance(2)
        [entry] = self.client.get_json("/v1/scheduler/job/stat/etl")["taskStatHistory"]
        self.assertEqual(entry["numElementsProcessed"], 42)
        self.send("POST", "/v1/scheduler/iso8601", job("plain"))
        refused = (("/v1/scheduler/job/etl/task/ct:1:0:etl:/progress", {"numAdditionalElementsProcessed": 1}),
                   (path, {"numAdditionalElementsProcessed": "many"}),
                   (f"/v1/scheduler/job/plain/task/{task_id}/progress", {"numAdditionalElementsProcessed": 1}))
        for where, body in refused:
            reply = self.send("POST", where, body)
            self.assertEqual(reply.code, 400, where)
            self.assertIn("message", json.loads(reply.body))

    def test_ping_leader_and_metrics(self) -> None:
        """/ping is pong; /leader names this instance; /metrics is JSON, or Prometheus text when asked."""
        self.assertEqual(self.client.get("/ping").body, b"pong")
        self.assertEqual(self.client.get_json("/v1/scheduler/leader"), {"leader": "127.0.0.1:4400"})
        self.send("POST", "/v1/scheduler/iso8601", job("a"))
        self.cron.advance(65)
        metrics = self.client.get_json("/metrics")
        self.assertEqual(metrics["gauges"]["chronos.jobs"]["value"], 1)
        self.assertEqual(metrics["counters"]["chronos.runs_succeeded"]["count"], 1)
        text = self.client.request("GET", "/metrics", headers={"Accept": "text/plain;version=0.0.4"})
        self.assertIn(b'chronos_runs_total{outcome="succeeded"} 1.0', text.body)
        self.assertIn(b"chronos_lateness_seconds_count 1.0", text.body)
        self.assertEqual(self.client.get("/metrics/prometheus").body, text.body)

    def test_http_credentials(self) -> None:
        """--http_credentials: 401 with a Basic challenge without them, served with them; /ping is open."""
        cron = CronOnACluster(self, http_credentials="ops:secret,ci:token")
        reply = cron.client.get("/v1/scheduler/jobs")
        self.assertEqual((reply.code, reply.headers["www-authenticate"]), (401, 'Basic realm="Chronos"'))
        good = "Basic " + base64.b64encode(b"ci:token").decode()
        bad = "Basic " + base64.b64encode(b"ci:nope").decode()
        self.assertEqual(cron.client.request("GET", "/v1/scheduler/jobs", headers={"Authorization": good}).code, 200)
        self.assertEqual(cron.client.request("GET", "/v1/scheduler/jobs", headers={"Authorization": bad}).code, 401)
        self.assertEqual(cron.client.get("/ping").code, 200)

    def test_not_ready_answers_503(self) -> None:
        """Before the framework has recovered its state (not yet leading), the API says so."""
        host = ClusterHost(self.cron.cluster, "cron")
        host.whenLeading = defer.Deferred  # never leads
        service = plugin.makeService(host, flaglib.defaults(plugin.FLAGS))
        service.startService()
        self.addCleanup(service.stopService)
        reply = Client(host.router, self.cron.cluster.clock).get("/v1/scheduler/jobs")
        self.assertEqual(reply.code, 503)
        self.assertEqual(reply.json()["status"], "Service Unavailable")

    def test_bad_flags_are_refused_all_at_once(self) -> None:
        """makeService lists every bad flag value."""
        config = flaglib.defaults(plugin.FLAGS, mesos_task_cpu=0.0, http_notification_url="ftp://x",
                                  job_history_limit=0)
        with self.assertRaises(ValueError) as caught:
            plugin.makeService(ClusterHost(self.cron.cluster, "cron"), config)
        self.assertEqual(str(caught.exception).count("--"), 3)
