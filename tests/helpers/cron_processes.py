"""The cron framework as real processes: the chronos-python client, a webhook receiver, and what a run left
behind (the master's view of its tasks, the executors' sandboxes on the agents).

Slots are read back from task IDs (``ct:<due ms>:<launch>:<job>:<arguments>``): every launch of a slot
has its own task ID, so one executor sandbox per slot means the slot reached an agent exactly once.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Any

import chronos
from twisted.internet import defer, reactor, threads
from twisted.web import resource, server

from frameworks.cron.calendar import format_ms
from frameworks.cron.runs import parse_task_id
from tests.helpers.processes import get_json, http, wait_for


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int) -> str:
    return format_ms(ms)


def job(name: str, schedule: str | None = None, command: str = "true", **fields: Any) -> dict[str, Any]:
    """A job as chronos-python posts it (``schedule`` None for a dependent job)."""
    body: dict[str, Any] = {"name": name, "command": command, "owner": "ops@example.com", "disabled": False,
                            "cpus": 0.05, "mem": 16, "disk": 1}
    if schedule is not None:
        body["schedule"] = schedule
    body.update(fields)
    return body


class Chronos:
    """chronos-python's client on a cron API, its blocking calls made in a thread."""

    def __init__(self, address: str):
        self.address = address
        self.client = chronos.connect(address)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        return lambda *args: threads.deferToThread(method, *args)

    def jobs(self) -> defer.Deferred:
        """{name: job} as listed."""
        return self.list().addCallback(lambda jobs: {j["name"]: j for j in jobs})

    def history(self, name: str) -> defer.Deferred:
        return get_json(f"http://{self.address}/v1/scheduler/job/history/{name}")

    def wait_counts(self, counts: dict[str, tuple[int, int]], timeout: float = 60.0) -> defer.Deferred:
        """Until each job's (successCount, errorCount) is as given; fires with the jobs."""
        def reached(jobs: dict[str, Any]) -> Any:
            shown = {name: (jobs[name]["successCount"], jobs[name]["errorCount"]) for name in counts if name in jobs}
            return jobs if shown == counts else None

        return wait_for(lambda: self.jobs().addCallback(reached), timeout, interval=0.2,
                        what=f"job counts {counts}")


class Webhook(resource.Resource):
    """Receives the notifier's POSTs on a loopback port; ``bodies`` holds their JSON."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[dict[str, Any]] = []
        self.port: Any = None

    def render_POST(self, request: server.Request) -> bytes:
        self.bodies.append(json.loads(request.content.read()))
        return b"{}"

    def listen(self, testcase: Any) -> str:
        """Listen on a free loopback port (stopped by the test's cleanup); the URL to give the framework."""
        self.port = reactor.listenTCP(0, server.Site(self), interface="127.0.0.1")
        testcase.addCleanup(self.port.stopListening)
        return f"http://127.0.0.1:{self.port.getHost().port}/notify"


def slot(task_id: str) -> tuple[str, int] | None:
    """(job, due ms) of one of the framework's task IDs."""
    parsed = parse_task_id(task_id)
    return (parsed[2], parsed[0]) if parsed is not None else None


def sandboxes(base: str) -> Counter[str]:
    """Task ID -> how many executor runs it had on the agents whose work directories are below ``base``
    (a command task's executor is named after its task)."""
    found: Counter[str] = Counter()
    for root, directories, _ in os.walk(base):
        if os.path.basename(os.path.dirname(root)) == "executors" and "runs" in directories:
            runs = [r for r in os.listdir(os.path.join(root, "runs")) if r != "latest"]
            found[os.path.basename(root)] += len(runs)
            directories[:] = []
    return found


def slots_in_sandboxes(base: str) -> Counter[tuple[str, int]]:
    """(job, due) -> how many executor runs its tasks had, over every agent below ``base``."""
    found: Counter[tuple[str, int]] = Counter()
    for task_id, runs in sandboxes(base).items():
        key = slot(task_id)
        if key is not None:
            found[key] += runs
    return found


@defer.inlineCallbacks
def master_tasks(master: str, framework_id: str) -> Any:
    """{task ID: state} of the framework's tasks, live and completed, as the master at ``master`` knows them."""
    state = yield get_json(f"http://{master}/master/state")
    tasks: dict[str, str] = {}
    for framework in state["frameworks"]:
        if framework["id"] == framework_id:
            for task in [*framework["tasks"], *framework["completed_tasks"]]:
                tasks[task["id"]] = task["state"]
    return tasks


@defer.inlineCallbacks
def post(address: str, body: dict[str, Any], path: str = "/v1/scheduler/iso8601") -> Any:
    """POST one job with the plain HTTP client (the instances' own API, no retries); fires with the code."""
    code, data, _ = yield http("POST", f"http://{address}{path}", json.dumps(body).encode(),
                               {"Content-Type": "application/json"})
    if code != 204:
        raise AssertionError(f"POST {path} answered {code}: {data[:300]!r}")
    return code
