"""What the operator API's event stream costs the launch path: CPU per task of the in-process cluster
(master, agents, fake executors, a framework on the local driver) with 0, 1 and 10 SUBSCRIBE streams.

Each subscriber is the real one (an HTTP/1.1 response on a Site, events encoded as RecordIO) over an
in-memory transport that throws the bytes away. The best of several rounds is kept (the machine is
shared); the last line gives microseconds per task for each count and the ratios to none.

    python bench/operator_events.py --tasks 500 --rounds 7
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet.address import IPv4Address  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402
from twisted.web import server  # noqa: E402

from mesostw.http.router import Router  # noqa: E402
from mesostw.master.operator_api import MasterOperatorAPI  # noqa: E402
from mesostw.model import task as T  # noqa: E402
from mesostw.verbosity import Verbosity  # noqa: E402
from tests.helpers.cluster import Cluster, RecordingScheduler, command_task  # noqa: E402


class Discarding(StringTransport):
    """A connection whose peer reads everything at once: the bytes are counted and dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.received = 0

    def write(self, data: bytes) -> None:
        self.received += len(data)

    def writeSequence(self, data: list[bytes]) -> None:
        self.received += sum(len(d) for d in data)


def subscribe(site: server.Site) -> Discarding:
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = Discarding()
    channel.makeConnection(transport)
    body = b'{"type": "SUBSCRIBE"}'
    channel.dataReceived(b"POST /api/v1 HTTP/1.1\r\nHost: m\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    return transport


def round_us(tasks: int, subscribers: int) -> tuple[float, int]:
    """CPU microseconds per task, and the bytes the subscribers received, for one round."""
    cluster = Cluster()
    router = Router()
    MasterOperatorAPI(cluster.master, {}, verbosity=Verbosity()).install(router)
    site = server.Site(router, reactor=cluster.clock)
    transports = [subscribe(site) for _ in range(subscribers)]
    scheduler = RecordingScheduler()
    scheduler.pending = [command_task(f"t{i}", "true", "cpus:0.001;mem:1") for i in range(tasks)]
    start = time.process_time()
    cluster.framework(scheduler=scheduler)
    elapsed = time.process_time() - start
    finished = sum(1 for update in scheduler.updates if update.state == T.FINISHED)
    if finished != tasks:
        raise SystemExit(f"{finished} of {tasks} tasks finished")
    if subscribers and len(cluster.master.events) != subscribers:
        raise SystemExit("a subscriber was dropped")
    cluster.stop()
    return 1e6 * elapsed / tasks, sum(t.received for t in transports)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    round_us(100, 1)  # warm up imports and caches
    best: dict[int, float] = {}
    received: dict[int, int] = {}
    for _ in range(args.rounds):
        for count in (0, 1, 10):
            us, sent = round_us(args.tasks, count)
            best[count] = min(best.get(count, us), us)
            received[count] = sent
    print(f"tasks={args.tasks} rounds={args.rounds} bytes_per_task_per_subscriber="
          f"{received[1] / args.tasks:.0f}")
    print(f"us_per_task_0={best[0]:.0f} us_per_task_1={best[1]:.0f} us_per_task_10={best[10]:.0f} "
          f"ratio_1={best[1] / best[0]:.3f} ratio_10={best[10] / best[0]:.3f}")


if __name__ == "__main__":
    main()
