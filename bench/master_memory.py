"""The master's memory and its state endpoints at scale: a real master, simulated agents, real frameworks.

A ``mesos-master`` process; ``--agents`` simulated agents (:mod:`bench.simagents`: the agents' real PB
link, in ``--processes`` processes); ``--frameworks`` frameworks on the real PB scheduler driver here,
which launch ``--tasks`` long tasks spread evenly over the agents, then ``--completed`` short tasks
each, ``--round`` at a time (they finish at once and go to the framework's bounded history of completed
tasks, ``--max_completed_tasks_per_framework``). The master's resident memory (RSS) is read at each stage,
once it is quiet:

* ``bytes_per_agent``: (agents registered - the empty master) / agents;
* ``bytes_per_task``: (tasks running - agents registered) / tasks;
* ``bytes_per_completed_task``: how the RSS grows with the completed tasks kept, from the first round on
  (the least-squares slope over the readings after each round, ``rss_rounds_mb``): the heap that a
  round's messages, offers and updates need while it runs is there after the first round already, and is
  not counted as the tasks' (``completed_all_bytes``, over every round from the tasks running, counts it);
* ``state_s``, ``state_mb``: ``GET /master/state`` over loopback, to the last byte (``state_first_s``:
  to the first), once the short tasks are done (the long ones running, the short ones in the history);
  ``summary_s`` and ``snapshot_s``: ``/master/state-summary`` and ``/metrics/snapshot``;
  ``get_state_s`` and ``get_state_first_s``: the v1 operator call ``GET_STATE``, to the last and the first
  byte; ``subscribed_s``: the ``SUBSCRIBED`` record of an operator ``SUBSCRIBE``, to its last byte;
  ``tasks_page_s``: a ``/master/tasks`` page. Each is the first of ``--repeat`` reads (all of them
  on the line before, ``*_runs``, with the master's CPU seconds, ``*_cpu_runs``, and its peak RSS above
  what it held before, ``*_peak_mb``). Each read waits until the master is quiet (its allocation cycles
  and the agents' pings go on); before the first, up to ``--settle`` seconds for the short tasks'
  aftermath (their resources offered and declined on every agent, until no offer is outstanding and
  none was declined for 3 s) to end: ``settle_s``, ``settled``.
  ``summary_changed_s``: ``/master/state-summary`` (by ``curl``) right after one long task was killed, the
  fastest of ``--repeat`` (a task more each; all of them in ``summary_changed_runs``, and the read after
  each, nothing changed since, in ``summary_unchanged_runs``).
  ``rss_after_state_mb``: the RSS after those reads (their caches, the heap their answers grew).
  ``--profile FILE`` records the master with py-spy from the short tasks through the first round.

The master is not asked to collect its garbage before a reading (there is no such endpoint): Python
frees most objects as they go, and what a cycle collection would free is part of what it holds.

    python bench/master_memory.py --agents 10000 --tasks 100000
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import psutil  # noqa: E402
from twisted.internet import defer, protocol, task, threads  # noqa: E402
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool  # noqa: E402
from twisted.web.http_headers import Headers  # noqa: E402

from mesostw.model import task as T  # noqa: E402
from mesostw.model.info import FrameworkInfo  # noqa: E402
from mesostw.model.resources import Resources  # noqa: E402
from mesostw.scheduler.driver import Scheduler  # noqa: E402
from mesostw.scheduler.pb import MesosSchedulerDriver  # noqa: E402
from tests.helpers.processes import Daemon, environment, free_port, get_json, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TASK = Resources.parse("cpus:0.01;mem:8")
SUBSCRIBE = b'{"type":"SUBSCRIBE"}'


class Launcher(Scheduler):
    """Launches its share of long tasks, ``per_agent`` at most on an agent, then ``completed`` short ones
    once told to (:meth:`finish`); declines everything else for a long while."""

    def __init__(self, name: str, tasks: int, per_agent: int):
        self.name = name
        self.pending = [f"long-{name}-{i:06d}" for i in range(tasks)]
        self.per_agent = per_agent
        self.placed: dict[str, int] = {}
        self.running: set[str] = set()
        self.finished: set[str] = set()
        self.other: set[str] = set()
        #: long tasks this bench killed (to change the cluster between reads), not lost
        self.killed: set[str] = set()
        self.driver = None

    def short(self, count: int) -> None:
        done = sum(1 for task_id in self.finished if task_id.startswith("short-"))
        self.pending += [f"short-{self.name}-{i:06d}" for i in range(done, done + count)]
        if self.driver is not None:
            self.driver.reviveOffers()

    def resourceOffers(self, driver, offers):
        self.driver = driver
        for offer in offers:
            batch = []
            available = offer.resources
            room = self.per_agent - self.placed.get(offer.agent_id, 0)
            while self.pending and available.contains(TASK) and (room > 0 or self.pending[-1].startswith("short-")):
                task_id = self.pending.pop()
                if task_id.startswith("long-"):
                    room -= 1
                    self.placed[offer.agent_id] = self.placed.get(offer.agent_id, 0) + 1
                available = available - TASK
                batch.append({"name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": offer.agent_id},
                              "resources": TASK.to_json(), "command": {"value": "sleep 3600"}})
            if batch:
                driver.launchTasks([offer.id], batch, {"refuse_seconds": 1})
            else:
                driver.declineOffer(offer.id, {"refuse_seconds": 3600 if not self.pending else 1})

    def statusUpdate(self, driver, status):
        if status.state == T.RUNNING:
            self.running.add(status.task_id)
        elif status.state == T.FINISHED:
            self.running.discard(status.task_id)
            self.finished.add(status.task_id)
        elif status.state == T.KILLED and status.task_id in self.killed:
            self.running.discard(status.task_id)
        else:
            self.other.add(status.task_id)


class BodyTimer(protocol.Protocol):
    """Counts a body's bytes and when the first and the last came."""

    def __init__(self, started: float, done: defer.Deferred):
        self.started, self.done = started, done
        self.first: float | None = None
        self.size = 0

    def dataReceived(self, data: bytes) -> None:
        if self.first is None:
            self.first = time.monotonic() - self.started
        self.size += len(data)

    def connectionLost(self, reason) -> None:
        self.done.callback((self.first or 0.0, time.monotonic() - self.started, self.size))


class RecordTimer(protocol.Protocol):
    """Reads the first RecordIO record of an endless body (SUBSCRIBED), then closes the connection."""

    def __init__(self, started: float, done: defer.Deferred):
        self.started, self.done = started, done
        self.first: float | None = None
        self.buffer = bytearray()
        self.size: int | None = None

    def dataReceived(self, data: bytes) -> None:
        if self.first is None:
            self.first = time.monotonic() - self.started
        self.buffer += data
        if self.size is None and b"\n" in self.buffer:
            head, _, _ = bytes(self.buffer[:32]).partition(b"\n")
            self.size = len(head) + 1 + int(head)
        if self.size is not None and len(self.buffer) >= self.size and not self.done.called:
            self.done.callback((self.first, time.monotonic() - self.started, self.size))
            self.buffer = bytearray()
            self.transport.stopProducing()

    def connectionLost(self, reason) -> None:
        if not self.done.called:
            self.done.errback(reason)


@defer.inlineCallbacks
def timed_get(reactor, url: str, body: bytes | None = None):
    """(first byte s, last byte s, bytes) of one GET (or POST of ``body``, JSON)."""
    agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
    started = time.monotonic()
    if body is None:
        response = yield agent.request(b"GET", url.encode())
    else:
        headers = Headers({b"Content-Type": [b"application/json"], b"Accept": [b"application/json"]})
        response = yield agent.request(b"POST", url.encode(), headers, FileBodyProducer(io.BytesIO(body)))
    done: defer.Deferred = defer.Deferred()
    response.deliverBody((RecordTimer if body == SUBSCRIBE else BodyTimer)(started, done))
    first, last, size = yield done
    return first, last, size


def curl_seconds(url: str) -> float:
    """Wall seconds for ``curl`` (a client that reads as fast as loopback goes) to read all of ``url``."""
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{time_total}", url],
                         capture_output=True, text=True, check=True)
    return float(out.stdout)


def profile(path: str | None, pid: int) -> subprocess.Popen | None:
    """With ``--profile FILE``: py-spy samples the master (native frames too: the garbage collector shows
    as ``gc_collect_main``) from the short tasks through the first round of reads, into FILE (raw: flame
    graph input, one line per stack with its count)."""
    if not path:
        return None
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    started = subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "100", "--native",
                                "--format", "raw", "-o", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attaches
    return started


def stop_profile(spy: subprocess.Popen | None) -> None:
    """Stop a :func:`profile` recording (py-spy writes its file on SIGINT)."""
    if spy is not None and spy.poll() is None:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)


def master_cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def reset_peak(process: psutil.Process) -> None:
    """Start the process's peak RSS (``VmHWM``) afresh from its RSS now (Linux 4.0+)."""
    with open(f"/proc/{process.pid}/clear_refs", "w") as f:
        f.write("5")


def peak_rss(process: psutil.Process) -> int:
    """The process's peak RSS since :func:`reset_peak`, in bytes."""
    with open(f"/proc/{process.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/PID/status")


@defer.inlineCallbacks
def settled_rss(reactor, process: psutil.Process, seconds: float = 3.0, at_most: float = 60.0):
    """The process's RSS once it stopped growing for ``seconds`` (its work done; its allocation loop goes on)."""
    deadline = time.monotonic() + at_most
    last = process.memory_info().rss
    while True:
        yield task.deferLater(reactor, seconds, lambda: None)
        now = process.memory_info().rss
        if abs(now - last) < 1 << 20 or time.monotonic() > deadline:
            return now
        last = now


@defer.inlineCallbacks
def quiet(reactor, process: psutil.Process, share: float = 0.5, at_most: float = 15.0):
    """Wait until the process used less than ``share`` of a CPU over a second (its own work done: what it
    does while an answer is timed counts in the answer's CPU and wall time). A master of 10,000 agents
    never goes below a third of a CPU (its allocation cycles, the agents' pings). Returns the seconds waited,
    and whether it was quiet then (or gave up)."""
    started = time.monotonic()
    deadline = started + at_most
    while time.monotonic() < deadline:
        cpu = master_cpu(process)
        yield task.deferLater(reactor, 1.0, lambda: None)
        if master_cpu(process) - cpu < share:
            return time.monotonic() - started, True
    return time.monotonic() - started, False


@defer.inlineCallbacks
def offers_settled(reactor, url: str, still: float = 3.0, at_most: float = 180.0):
    """Wait until no offer is outstanding and none was declined for ``still`` seconds (a few allocation
    intervals: a lull between two rounds of offers is not their end). Returns the seconds waited, and
    whether they settled (or it gave up)."""
    started = time.monotonic()
    last, since = None, started
    while time.monotonic() - started < at_most:
        metrics = yield get_json(f"{url}/metrics/snapshot")
        now = (metrics["master/messages_decline_offers"], metrics["master/outstanding_offers"])
        if now != last:
            last, since = now, time.monotonic()
        elif now[1] == 0 and time.monotonic() - since >= still:
            return time.monotonic() - started, True
        yield task.deferLater(reactor, 0.5, lambda: None)
    return time.monotonic() - started, False


@defer.inlineCallbacks
def run(reactor, args):
    base = tempfile.mkdtemp(prefix="mesostw-bench-memory-")
    port = free_port()
    master = Daemon("mesos-master", [f"--port={port}", "--allocation_interval=1secs",
                                     f"--max_completed_tasks_per_framework={args.completed}"],
                    os.path.join(base, "master.log")).start()
    url = f"http://127.0.0.1:{port}"
    agents: list[subprocess.Popen] = []
    logs = []
    drivers = []
    spy = None
    try:
        yield wait_for(lambda: get_json(f"{url}/metrics/snapshot"), 60, interval=0.2, what="the master")
        process = psutil.Process(master.pid)
        empty = yield settled_rss(reactor, process, 1.0)
        per_process = -(-args.agents // args.processes)
        for index in range(args.processes):
            count = min(per_process, args.agents - index * per_process)
            if count <= 0:
                break
            log = open(os.path.join(base, f"agents-{index}.log"), "w")
            logs.append(log)
            agents.append(subprocess.Popen(
                [sys.executable, os.path.join(HERE, "simagents.py"), f"--master=127.0.0.1:{port}", f"--count={count}",
                 f"--index={index}", f"--spread={args.spread:g}", "--report=10"],
                stdout=log, stderr=subprocess.STDOUT, env=environment()))
        started = time.monotonic()

        def active():
            return get_json(f"{url}/metrics/snapshot").addCallback(
                lambda m: m["master/slaves_active"] >= args.agents)

        yield wait_for(active, 1800, interval=1.0, what="every agent registered")
        print(f"agents registered in {time.monotonic() - started:.1f}s", flush=True)
        with_agents = yield settled_rss(reactor, process)

        per_framework = args.tasks // args.frameworks
        per_agent = -(-args.tasks // args.agents)
        frameworks = [Launcher(f"f{i}", per_framework, -(-per_agent // args.frameworks) + 1)
                      for i in range(args.frameworks)]
        for framework in frameworks:
            driver = MesosSchedulerDriver(framework, FrameworkInfo(user="bench", name=framework.name),
                                          f"127.0.0.1:{port}", reactor=reactor, backoff=0.2)
            drivers.append(driver)
            driver.start()
        started = time.monotonic()
        total = per_framework * args.frameworks
        yield wait_for(lambda: sum(len(f.running) for f in frameworks) >= total, 3600, interval=1.0,
                       what="every task running")
        print(f"tasks running in {time.monotonic() - started:.1f}s", flush=True)
        with_tasks = yield settled_rss(reactor, process)

        # The short tasks before the state endpoints: what those leave behind (caches of the agents' texts, a
        # heap grown for their answers) would otherwise count as the completed tasks' (or hide them).
        spy = profile(args.profile, master.pid)
        started, short_cpu = time.monotonic(), master_cpu(process)
        rounds: list[tuple[int, int]] = []  # (completed tasks kept, RSS) after each round
        for start in range(0, args.completed, args.round):
            for framework in frameworks:
                framework.short(min(args.round, args.completed - start))
            done = min(start + args.round, args.completed) * args.frameworks
            yield wait_for(lambda done=done: sum(len(f.finished) for f in frameworks) >= done,
                           3600, interval=1.0, what=f"{done} short tasks finished")
            rounds.append((done, (yield settled_rss(reactor, process))))
        print(f"short tasks done in {time.monotonic() - started:.1f}s", flush=True)
        with_first = rounds[0][1] if rounds else with_tasks
        with_completed = rounds[-1][1] if rounds else with_tasks
        # Their aftermath: the resources they freed on every agent are offered and declined (each framework
        # filters an agent for an hour once it has nothing left to launch) until every pair is filtered, and
        # what that churns through costs full collections of the heap. Reads made meanwhile time that too.
        settle_s, settled = yield offers_settled(reactor, url, at_most=args.settle)
        quiet_s, quiet_then = yield quiet(reactor, process)
        settle_s, settled = settle_s + quiet_s, settled and quiet_then
        short_cpu = master_cpu(process) - short_cpu  # the short tasks and their aftermath, in the master
        print(f"master quiet {settle_s:.1f}s after the short tasks' RSS settled" if settled
              else f"master still busy {settle_s:.1f}s after the short tasks' RSS settled", flush=True)
        kept = args.completed * args.frameworks
        lost = sum(len(f.other) for f in frameworks)

        # /master/state and friends at this size (the long tasks running, the short ones in the history),
        # each read --repeat times in turn (the first read of each is the cold one)
        reads = {"state": (f"{url}/master/state", None), "summary": (f"{url}/master/state-summary", None),
                 "get_state": (f"{url}/api/v1", b'{"type":"GET_STATE"}'), "subscribed": (f"{url}/api/v1", SUBSCRIBE),
                 "snapshot": (f"{url}/metrics/snapshot", None),
                 "tasks_page": (f"{url}/master/tasks?limit=100&offset=1000", None)}
        timed: dict[str, list[tuple[float, float, int, float, float]]] = {name: [] for name in reads}
        for _ in range(args.repeat):
            for name, (read_url, body) in reads.items():
                yield quiet(reactor, process)
                rss = process.memory_info().rss
                reset_peak(process)
                cpu = master_cpu(process)
                first, last, size = yield timed_get(reactor, read_url, body)
                timed[name].append((first, last, size, master_cpu(process) - cpu, peak_rss(process) - rss))
            spy = stop_profile(spy)
        state_curl_s = yield threads.deferToThread(curl_seconds, f"{url}/master/state")
        # The frameworks run in this process too: curl tells what a client that only reads would see.
        summary_curl = []
        for _ in range(args.repeat):
            yield quiet(reactor, process)
            summary_curl.append((yield threads.deferToThread(curl_seconds, f"{url}/master/state-summary")))

        # The summary right after one change (a long task killed: its agent and framework show it, its
        # resources are offered and declined), then again with nothing changed since.
        summary_changed: list[tuple[float, float]] = []
        victims = sorted(frameworks[0].running)
        for index in range(args.repeat):
            victim = victims[index]
            frameworks[0].killed.add(victim)
            drivers[0].killTask(victim)
            yield wait_for(lambda victim=victim: victim not in frameworks[0].running, 60, interval=0.1,
                           what=f"{victim} killed")
            yield offers_settled(reactor, url, still=2.0, at_most=60.0)
            yield quiet(reactor, process)
            changed = yield threads.deferToThread(curl_seconds, f"{url}/master/state-summary")
            again = yield threads.deferToThread(curl_seconds, f"{url}/master/state-summary")
            summary_changed.append((changed, again))

        after_state = yield settled_rss(reactor, process)

        def runs(name: str, index: int = 1) -> str:
            return "/".join(f"{read[index]:.3f}" for read in timed[name])

        def first(name: str, index: int = 1) -> float:
            return timed[name][0][index]

        def most(name: str, index: int) -> float:
            return max(read[index] for read in timed[name])

        print(f"agents={args.agents} tasks={total} frameworks={args.frameworks} completed_kept={kept} lost={lost} "
              f"rss_empty_mb={empty / 2**20:.0f} rss_agents_mb={with_agents / 2**20:.0f} "
              f"rss_tasks_mb={with_tasks / 2**20:.0f} rss_first_round_mb={with_first / 2**20:.0f} "
              f"rss_completed_mb={with_completed / 2**20:.0f} "
              f"rss_rounds_mb={'/'.join(f'{rss / 2**20:.0f}' for _, rss in rounds)} "
              f"completed_all_bytes={(with_completed - with_tasks) / max(1, kept):.0f} "
              f"rss_after_state_mb={after_state / 2**20:.0f} settle_s={settle_s:.1f} settled={settled} "
              f"short_tasks_cpu_s={short_cpu:.1f} "
              f"state_runs={runs('state')} state_first_s={first('state', 0):.3f} state_cpu_s={first('state', 3):.2f} "
              f"state_peak_mb={most('state', 4) / 2**20:.0f} state_curl_s={state_curl_s:.2f} "
              f"summary_curl_runs={'/'.join(f'{t:.3f}' for t in summary_curl)} "
              f"summary_changed_runs={'/'.join(f'{t:.3f}' for t, _ in summary_changed)} "
              f"summary_unchanged_runs={'/'.join(f'{t:.3f}' for _, t in summary_changed)} "
              f"summary_runs={runs('summary')} snapshot_runs={runs('snapshot')} tasks_page_runs={runs('tasks_page')} "
              f"get_state_runs={runs('get_state')} get_state_first_runs={runs('get_state', 0)} "
              f"get_state_cpu_runs={runs('get_state', 3)} state_cpu_runs={runs('state', 3)} "
              f"summary_cpu_runs={runs('summary', 3)} subscribed_cpu_runs={runs('subscribed', 3)} "
              f"get_state_cpu_s={first('get_state', 3):.2f} get_state_peak_mb={most('get_state', 4) / 2**20:.0f} "
              f"get_state_mb={first('get_state', 2) / 1e6:.1f} subscribed_runs={runs('subscribed')} "
              f"subscribed_peak_mb={most('subscribed', 4) / 2**20:.0f}")
        summary_again = min(read[1] for read in timed["summary"][1:]) if args.repeat > 1 else first("summary")
        print(f"bytes_per_agent={(with_agents - empty) / args.agents:.0f} "
              f"bytes_per_task={(with_tasks - with_agents) / total:.0f} "
              f"bytes_per_completed_task={_slope(rounds):.0f} "
              f"state_s={first('state'):.2f} state_mb={first('state', 2) / 1e6:.1f} "
              f"summary_s={first('summary'):.3f} summary_again_s={summary_again:.3f} "
              f"summary_changed_s={min(t for t, _ in summary_changed):.3f} "
              f"snapshot_s={first('snapshot'):.3f} tasks_page_s={first('tasks_page'):.3f} "
              f"get_state_s={first('get_state'):.2f} get_state_first_s={first('get_state', 0):.3f} "
              f"subscribed_s={first('subscribed'):.2f}")
    finally:
        stop_profile(spy)
        for driver in drivers:
            driver.abort()
        for process_ in agents:
            if process_.poll() is None:
                process_.terminate()
        for process_ in agents:
            try:
                process_.wait(10)
            except subprocess.TimeoutExpired:
                process_.kill()
                process_.wait()
        for log in logs:
            log.close()
        master.stop()
        if args.keep:
            print(f"logs in {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


def _slope(rounds: list[tuple[int, int]]) -> float:
    """Bytes per completed task: the least-squares slope of the RSS over the tasks kept, after each round (one
    reading's noise weighs less than in a difference of two)."""
    if len(rounds) < 2:
        return float("nan")
    mean_x = sum(x for x, _ in rounds) / len(rounds)
    mean_y = sum(y for _, y in rounds) / len(rounds)
    return (sum((x - mean_x) * (y - mean_y) for x, y in rounds)
            / sum((x - mean_x) ** 2 for x, _ in rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--frameworks", type=int, default=10)
    parser.add_argument("--completed", type=int, default=5000, help="short tasks per framework (all kept)")
    parser.add_argument("--round", type=int, default=1000,
                        help="short tasks per framework at a time (bytes_per_completed_task needs two rounds at "
                             "least; nan otherwise)")
    parser.add_argument("--processes", type=int, default=8, help="processes the simulated agents are spread over")
    parser.add_argument("--spread", type=float, default=30.0, help="seconds over which the agents first connect")
    parser.add_argument("--repeat", type=int, default=3, help="reads of each state endpoint, in turn")
    parser.add_argument("--settle", type=float, default=180.0, help="seconds to wait at most, after the short "
                        "tasks, for the master to be quiet before the first read")
    parser.add_argument("--profile", metavar="FILE", help="py-spy the master from the short tasks through the "
                        "first round of reads into FILE")
    parser.add_argument("--keep", action="store_true", help="keep the logs")
    args = parser.parse_args()
    task.react(run, [args])


if __name__ == "__main__":
    main()
