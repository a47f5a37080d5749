"""The cron framework end to end on real processes, driven by the real chronos-python client.

Inside ``mesos-master --frameworks=cron`` with two real agents: the client's add, update, list, search,
run and delete, a dependent job running after its parent, retries and the webhook notifier. Every task
is checked where it ran: in the master's state and in the agents' executor sandboxes.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.helpers.cron_processes import Chronos, Webhook, iso, job, master_tasks, now_ms, slot, slots_in_sandboxes
from tests.helpers.processes import ProcessCluster, free_port, get_json, wait_for


class HostedCronTests(unittest.TestCase):
    """``mesos-master --frameworks=cron`` and two agents, with a webhook receiver in the test."""

    timeout = 180

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.webhook = Webhook()
        url = self.webhook.listen(self)
        self.port = free_port()
        self.cluster = ProcessCluster(self, agents=2, master_args=[
            "--frameworks=cron", f"--cron_http_port={self.port}", "--cron_failure_retry=500",
            f"--cron_http_notification_url={url}", "--cron_mesos_framework_name=cron-test"])
        yield self.cluster.start()
        self.address = f"127.0.0.1:{self.port}"
        self.client = Chronos(self.address)
        yield wait_for(lambda: get_json(f"http://{self.address}/v1/scheduler/jobs").addCallback(lambda j: j == []),
                       30, what="the hosted cron framework to lead")

    @defer.inlineCallbacks
    def framework_id(self) -> Any:
        state = yield self.cluster.state()
        (framework,) = [f for f in state["frameworks"] if f["name"] == "cron-test"]
        return framework["id"]

    @defer.inlineCallbacks
    def test_the_chronos_client_against_the_hosted_framework(self) -> Any:
        """add, list, update, search, run (with a dependent job following its parent), a schedule's slots,
        and delete (the child takes its parent's schedule): every run is one finished task on an agent."""
        client = self.client
        yield client.add(job("extract", "R/2030-01-01T00:00:00.000Z/P1D", command="echo extract $CHRONOS_JOB_NAME"))
        yield client.add(job("load", parents=["extract"], command="echo load"))
        start = now_ms() + 3000
        yield client.add(job("tick", f"R2/{iso(start)}/PT2S"))
        self.assertEqual(sorted(j["name"] for j in (yield client.list())), ["extract", "load", "tick"])
        yield client.update(job("extract", "R/2030-01-01T00:00:00.000Z/P1D", command="echo extract $CHRONOS_JOB_NAME",
                                description="first of the chain"))
        found = yield client.search("extr")
        self.assertEqual([(j["name"], j["description"]) for j in found], [("extract", "first of the chain")])

        yield client.run("extract")
        jobs = yield client.wait_counts({"extract": (1, 0), "load": (1, 0), "tick": (2, 0)})
        self.assertEqual(jobs["tick"]["schedule"].split("/")[0], "R0")
        extract = (yield client.history("extract"))["runs"]
        load = (yield client.history("load"))["runs"]
        self.assertEqual([(r["trigger"], r["status"]) for r in extract], [("manual", "success")])
        self.assertEqual([(r["trigger"], r["status"]) for r in load], [("dependency", "success")])
        self.assertGreaterEqual(load[0]["started"], extract[0]["finished"], "the child ran after its parent ended")

        tasks = yield master_tasks(self.cluster.master_address, (yield self.framework_id()))
        by_job: dict[str, list[str]] = {}
        for task_id, state in tasks.items():
            name = slot(task_id)[0]  # type: ignore[index]
            by_job.setdefault(name, []).append(state)
        self.assertEqual(by_job, {"extract": ["TASK_FINISHED"], "load": ["TASK_FINISHED"],
                                  "tick": ["TASK_FINISHED", "TASK_FINISHED"]})
        ran = slots_in_sandboxes(self.cluster.base)
        self.assertEqual(sorted(due for (name, due), count in ran.items() if name == "tick" and count == 1),
                         [start, start + 2000])
        self.assertEqual(sum(ran.values()), 4)
        sandbox = [os.path.join(root, "stdout") for root, _, files in os.walk(self.cluster.base)
                   if "stdout" in files and "ct:" in root and ":extract:" in root]
        with open(sandbox[0]) as f:
            self.assertIn("extract extract", f.read())

        yield client.delete("extract")
        jobs = yield client.jobs()
        self.assertEqual(sorted(jobs), ["load", "tick"])
        self.assertNotIn("parents", jobs["load"])
        self.assertTrue(jobs["load"]["schedule"].endswith("/P1D"), jobs["load"]["schedule"])
        yield wait_for(lambda: any(b["event"] == "deleted" for b in self.webhook.bodies), 30, what="the notice")
        self.assertEqual(sorted((b["event"], b["job"]) for b in self.webhook.bodies),
                         [("deleted", "extract"), ("disabled", "tick")], "tick is disabled once its slots ran")

    @defer.inlineCallbacks
    def test_retries_until_success_and_the_owner_hears_of_exhausted_retries(self) -> Any:
        """A job failing twice then succeeding with retries=2 counts one success; a job failing every time
        with retries=1 runs twice, counts one error, and its owners get the webhook POST."""
        client = self.client
        counter = os.path.join(self.cluster.base, "attempts")
        flaky = f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}; test $n -ge 2"
        yield client.add(job("flaky", "R1//PT1H", command=flaky, retries=2))
        yield client.add(job("doomed", "R1//PT1H", command="exit 3", retries=1,
                             owner="ops@example.com,dev@example.com"))
        jobs = yield client.wait_counts({"flaky": (1, 0), "doomed": (0, 1)})
        self.assertEqual(jobs["doomed"]["errorsSinceLastSuccess"], 1)
        self.assertNotEqual(jobs["doomed"]["lastError"], "")

        tasks = yield master_tasks(self.cluster.master_address, (yield self.framework_id()))
        attempts = sorted((slot(t)[0], t.split(":")[2], state) for t, state in tasks.items())  # type: ignore[index]
        self.assertEqual(attempts, [("doomed", "0", "TASK_FAILED"), ("doomed", "1", "TASK_FAILED"),
                                    ("flaky", "0", "TASK_FAILED"), ("flaky", "1", "TASK_FAILED"),
                                    ("flaky", "2", "TASK_FINISHED")])
        with open(counter) as f:
            self.assertEqual(f.read().strip(), "3")
        ran = slots_in_sandboxes(self.cluster.base)
        self.assertEqual(sorted((name, runs) for (name, _), runs in ran.items()), [("doomed", 2), ("flaky", 3)])

        def failed() -> list[dict[str, Any]]:
            return sorted((b for b in self.webhook.bodies if b["event"] == "failed"), key=lambda b: b["to"])

        yield wait_for(lambda: len(failed()) == 2, 30, what="a notification per owner")
        notices = failed()
        self.assertEqual([(b["event"], b["job"], b["to"], b["retries"]) for b in notices],
                         [("failed", "doomed", "dev@example.com", "1"), ("failed", "doomed", "ops@example.com", "1")])
        self.assertIn("doomed", notices[0]["subject"])
