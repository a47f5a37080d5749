"""Chronos job JSON: defaults, validation (every error at once), and the JSON a GET returns."""

from __future__ import annotations

from twisted.trial import unittest

from frameworks.cron.jobs import Counters, Defaults, Fetch, JobInvalid, parse_job

DEFAULTS = Defaults()


def errors(body: object, kind: str | None = "iso8601") -> list[str]:
    try:
        parse_job(body, DEFAULTS, kind)
    except JobInvalid as exc:
        return exc.errors
    raise AssertionError("accepted")


class ParseTests(unittest.TestCase):
    def test_chronos_defaults(self) -> None:
        """A minimal job gets Chronos's defaults; 0 resources mean the flag defaults; no schedule is R1 now."""
        job, counters = parse_job({"name": "a", "command": "true", "cpus": 0}, DEFAULTS, "iso8601")
        self.assertEqual((job.shell, job.retries, job.cpus, job.mem, job.disk, job.run_as_user, job.epsilon),
                         (True, 2, 0.1, 128.0, 256.0, "root", "PT60S"))
        self.assertEqual((job.schedule, job.parents, counters), ("R1//PT24H", None, {}))

    def test_every_field(self) -> None:
        """Every Chronos field is read into the job."""
        job, counters = parse_job({
            "name": "full.job-1", "command": "run", "shell": False, "arguments": ["run", "-v"], "retries": 0,
            "owner": "a@x, b@y", "ownerName": "A", "description": "d", "cpus": 2, "mem": 64, "disk": 10,
            "disabled": True, "softError": True, "dataProcessingJobType": True, "concurrent": True,
            "highPriority": True, "runAsUser": "batch", "fetch": [{"uri": "http://x/a", "executable": True}],
            "environmentVariables": [{"name": "A", "value": "1"}], "constraints": [["rack", "LIKE", "r[12]"]],
            "maxCompletionTime": 30, "epsilon": "PT5M", "async": True, "schedule": "0 3 * * *",
            "scheduleTimeZone": "Europe/Paris", "successCount": 4, "lastSuccess": "2024-01-01T00:00:00.000Z",
        }, DEFAULTS, "iso8601")
        self.assertEqual(job.owners, ["a@x", "b@y"])
        self.assertEqual((job.shell, job.arguments, job.cpus, job.run_as_user), (False, ("run", "-v"), 2.0, "batch"))
        self.assertEqual(job.fetch, (Fetch("http://x/a", executable=True),))
        self.assertEqual((job.environment, job.constraints), ((("A", "1"),), (("rack", "LIKE", "r[12]"),)))
        self.assertEqual((job.epsilon_ms, job.is_async, job.schedule_time_zone), (300_000, True, "Europe/Paris"))
        self.assertEqual(counters, {"successCount": 4, "lastSuccess": "2024-01-01T00:00:00.000Z"})

    def test_every_error_at_once(self) -> None:
        """Each bad field is named; the whole list comes back in one answer."""
        found = errors({"name": "no spaces", "retries": "two", "cpus": -1, "shell": "maybe", "uris": ["a"],
                        "fetch": [{"uri": "b"}], "constraints": [["rack", "NEAR", "x"]], "epsilon": "P1M",
                        "environmentVariables": [{"value": "1"}], "schedule": "R/soon/P1D",
                        "container": {"type": "DOCKER", "image": "x"}, "lastError": "yesterday"})
        for field in ("name", "retries", "cpus", "shell", "fetch", "constraints", "epsilon", "environmentVariables",
                      "schedule", "container", "lastError"):
            self.assertTrue(any(e.startswith(field + ":") for e in found), (field, found))

    def test_schedule_and_parents_rules(self) -> None:
        """Not both; a dependent job needs parents; the endpoint decides which one is wanted."""
        self.assertIn("not both", errors({"name": "a", "schedule": "R//P1D", "parents": ["b"]})[0])
        self.assertIn("post it to /dependency", errors({"name": "a", "parents": ["b"]}, "iso8601")[0])
        self.assertIn("at least one parent", errors({"name": "a", "parents": []}, "dependency")[0])
        self.assertIn("JSON object", errors([1, 2])[0])
        job, _ = parse_job({"name": "a", "parents": ["b", "b", "c"]}, DEFAULTS, "dependency")
        self.assertEqual(job.parents, ("b", "c"))

    def test_a_get_posted_back_is_accepted(self) -> None:
        """GET mirrors uris into fetch; posting that back is not 'both uris and fetch'."""
        job, _ = parse_job({"name": "a", "uris": ["http://x/a"]}, DEFAULTS, "iso8601")
        shown = job.to_json(Counters(), mirror=True)
        self.assertEqual((shown["uris"], shown["fetch"][0]["uri"]), (["http://x/a"], "http://x/a"))
        again, _ = parse_job(shown, DEFAULTS, "iso8601")
        self.assertEqual(again.fetch, (Fetch("http://x/a"),))


class OutputTests(unittest.TestCase):
    def test_field_order_and_shape(self) -> None:
        """Chronos's serializer order, extensions before the schedule, schedule and zone last."""
        job, _ = parse_job({"name": "a", "command": "true", "schedule": "R/2024-01-01T00:00:00Z/PT1H"},
                           DEFAULTS, "iso8601")
        shown = job.to_json(Counters(success_count=2, last_success="2024-01-01T01:00:00.000Z"), next_run="x")
        self.assertEqual(list(shown)[:6], ["name", "command", "shell", "executor", "executorFlags", "taskInfoData"])
        self.assertEqual(list(shown)[-4:], ["missedCount", "nextRun", "schedule", "scheduleTimeZone"])
        self.assertEqual((shown["successCount"], shown["lastSuccess"], shown["nextRun"]),
                         (2, "2024-01-01T01:00:00.000Z", "x"))
        dependent, _ = parse_job({"name": "b", "parents": ["a"]}, DEFAULTS, "dependency")
        self.assertEqual(list(dependent.to_json(Counters()))[-1], "parents")

    def test_last_state(self) -> None:
        """fresh before any run; success or failure by the later of lastSuccess and lastError."""
        self.assertEqual(Counters().last_state(), "fresh")
        self.assertEqual(Counters(last_error="2024-01-01T00:00:00Z").last_state(), "failure")
        self.assertEqual(Counters(last_success="2024-01-02T00:00:00Z", last_error="2024-01-01T00:00:00Z")
                         .last_state(), "success")
