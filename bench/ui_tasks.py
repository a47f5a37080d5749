"""The web UI with many tasks, in headless Chromium: first-load size, time to show the tasks page,
to filter, to sort, and to apply a burst of task updates.

A small server serves the UI (from the package) and a master's SUBSCRIBE stream whose SUBSCRIBED
holds ``--tasks`` tasks on ``--agents`` agents; nothing else runs. Prints ``key=value`` pairs on the last line:
``first_load_bytes`` (everything the page fetched, as sent), ``first_load_gzip_bytes``,
``render_ms`` (navigation to the table showing every task), ``filter_ms``, ``sort_ms``, ``updates_ms``
(100 TASK_UPDATED events applied and shown), ``dom_rows`` (rows in the DOM).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import reactor  # noqa: E402
from twisted.web import server  # noqa: E402

from mesostw.http.router import Response, Router  # noqa: E402
from mesostw.ui import Assets, WebUI  # noqa: E402
from tests.helpers.browser import start_browser  # noqa: E402

STATES = ["TASK_RUNNING"] * 6 + ["TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_STAGING"]


def snapshot(tasks: int, agents: int) -> bytes:
    resources = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 64}},
                 {"name": "mem", "type": "SCALAR", "scalar": {"value": 262144}}]
    state = {
        "get_agents": {"agents": [{"agent_info": {"id": {"value": f"S{i}"}, "hostname": f"host{i}", "port": 5051,
                                                  "resources": resources}, "total_resources": resources,
                                   "active": True, "pid": f"slave(1)@host{i}:5051"} for i in range(agents)]},
        "get_frameworks": {"frameworks": [{"framework_info": {"id": {"value": "F0"}, "name": "bench"},
                                           "active": True}]},
        "get_tasks": {"tasks": [{"task_id": {"value": f"task-{i}"}, "name": f"bench task {i}",
                                 "framework_id": {"value": "F0"}, "agent_id": {"value": f"S{i % agents}"},
                                 "state": STATES[i % len(STATES)],
                                 "statuses": [{"state": STATES[i % len(STATES)], "timestamp": 1.7e9 + i,
                                               "uuid": f"u{i}"}]} for i in range(tasks)]},
    }
    body = json.dumps({"type": "SUBSCRIBED", "subscribed": {"get_state": state, "heartbeat_interval_seconds": 15}})
    return body.encode()


def serve(tasks: int, agents: int) -> int:
    router = Router()
    WebUI(lambda: {"daemon": "master", "cluster": True, "version": "bench", "frameworks": {},
                   "authentication": {"readonly": False, "readwrite": False}}).install(router)
    record = snapshot(tasks, agents)
    streams: list[Any] = []

    def api(request: server.Request) -> Any:
        call = json.loads(request.content.read())
        if call["type"] == "SUBSCRIBE":
            request.setHeader("Content-Type", "application/json")
            request.write(b"%d\n%s" % (len(record), record))
            streams.append(request)
            return server.NOT_DONE_YET
        return {"type": call["type"]}

    router.route("/api/v1", api, methods=("POST",), max_body=1024)
    router.route("/metrics/snapshot", lambda request: Response(b"{}", 200, {"Content-Type": "application/json"}))
    port = reactor.listenTCP(0, server.Site(router), interface="127.0.0.1")
    return port.getHost().port


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--agents", type=int, default=100)
    args = parser.parse_args()
    port = serve(args.tasks, args.agents)
    thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True)
    thread.start()
    browser = start_browser()
    try:
        browser.open(f"http://127.0.0.1:{port}/#/tasks")
        browser.wait("return document.querySelector('[data-table=tasks] .range')?.textContent"
                     ".endsWith(' of ' + arguments[0])",
                     args.tasks, timeout=120, what="every task in the table")
        render_ms = browser.run("return performance.now();")
        sizes = browser.run("""
            const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]
              .filter((e) => !e.name.includes('/api/v1') && !e.name.includes('/metrics'));
            return entries.reduce((sum, e) => sum + e.transferSize, 0);""")
        filter_ms = browser.run("""
            const input = document.querySelector('input[name=q]');
            const t0 = performance.now();
            input.value = 'task 99';
            input.dispatchEvent(new Event('input'));
            const t1 = performance.now();
            input.value = '';
            input.dispatchEvent(new Event('input'));
            return t1 - t0;""")
        sort_ms = browser.run("""
            const th = [...document.querySelectorAll('[data-table=tasks] th')].find((el) => el.textContent === 'Name');
            const t0 = performance.now();
            th.click();
            return performance.now() - t0;""")
        updates_ms = browser.run_async("""
            const done = arguments[arguments.length - 1];
            const {applyEvent} = await import('./ui/js/cluster.js');
            const feed = window.mesostw.feed;
            const t0 = performance.now();
            for (let i = 0; i < 100; i += 1) {
              applyEvent(feed.state, {type: 'TASK_UPDATED', task_updated: {framework_id: {value: 'F0'},
                state: 'TASK_FINISHED', status: {task_id: {value: 'task-' + i}, state: 'TASK_FINISHED',
                timestamp: 1.8e9, uuid: 'x' + i}}});
              feed.changed();
            }
            requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t0)));""")
        rows = browser.run("return document.querySelectorAll('[data-table=tasks] tbody tr').length;")
        shot = browser.screenshot("bench-10000-tasks")
    finally:
        browser.quit()
        reactor.callFromThread(reactor.stop)
        thread.join(5)
    print(f"screenshot: {shot}")
    print(f"tasks={args.tasks} first_load_bytes={sizes} first_load_gzip_bytes={Assets().size(gzipped=True)} "
          f"assets_bytes={Assets().size()} render_ms={render_ms:.0f} filter_ms={filter_ms:.1f} sort_ms={sort_ms:.1f} "
          f"updates_ms={updates_ms:.1f} dom_rows={rows}")


if __name__ == "__main__":
    main()
