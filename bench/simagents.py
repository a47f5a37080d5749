"""Many simulated agents in one process, speaking the agents' real protocol to a real master.

Each simulated agent has the real agent's wire side: a :class:`~mesostw.wire.connector.Connector`
(one PB connection, opened with the PB preamble, reconnecting with the agent's backoff and
following the leader a detector names), :class:`~mesostw.agent.pb.PBMasterLink` (registration,
re-registration with its tasks and frameworks, batched status updates) and
:class:`~mesostw.agent.pb.AgentRemote` (what the master calls). Only the agent's core is simulated:
a task "runs" as soon as it is launched (TASK_RUNNING is sent at once, from the executor), a task
named ``short-...`` finishes as soon as its TASK_RUNNING is acknowledged, a kill answers
TASK_KILLED, and updates not yet acknowledged are sent again on every (re-)registration, as the
agent's status update manager does. With ``--churn`` every acknowledged TASK_RUNNING is
followed by another one (a new UUID, as a health check flapping sends), which keeps one update
per task in flight: the load of :mod:`bench.status_updates`.

The agents of one process share one detector (one ZooKeeper session per process, where real agents
have one each). The process prints ``key=value`` lines: ``registered=N`` once all its agents are
registered, then ``stats ...`` every second (registrations, re-registrations, updates sent and
acknowledged).

    python bench/simagents.py --master zk://127.0.0.1:2181/mesos --count 250 --index 0
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, task  # noqa: E402
from twisted.logger import Logger  # noqa: E402

from mesostw.agent.pb import PBMasterLink  # noqa: E402
from mesostw.detector import detector_for  # noqa: E402
from mesostw.model import task as T  # noqa: E402
from mesostw.model.info import AgentInfo, ExecutorInfo, FrameworkInfo  # noqa: E402
from mesostw.model.resources import Resources  # noqa: E402
from mesostw.model.task import Task, TaskInfo, TaskStatus, new_uuid  # noqa: E402
from mesostw.wire.connector import Connector  # noqa: E402

log = Logger()

RESOURCES = "cpus:32;mem:131072;disk:1048576;ports:[31000-32000]"
#: Tasks whose name starts with this finish once their TASK_RUNNING is acknowledged (short jobs).
SHORT = "short-"


class Counters:
    """What every agent of the process adds to."""

    def __init__(self) -> None:
        self.registered = 0
        self.registrations = 0
        self.reregistrations = 0
        self.sent = 0
        self.acknowledged = 0
        self.launched = 0
        self.removed = 0


class SimAgent:
    """The core of one simulated agent: what the master calls through :class:`AgentRemote`."""

    def __init__(self, index: int, hostname: str, resources: Resources, clock: Any, counters: Counters,
                 churn: bool = False):
        self.info = AgentInfo(hostname=hostname, port=5051, resources=resources,
                              attributes={"rack": f"r{index % 40}"})
        self.clock = clock
        self.counters = counters
        self.churn = churn
        self.link: PBMasterLink | None = None
        self.frameworks: dict[str, FrameworkInfo] = {}
        #: (framework ID, task ID) -> the task
        self.tasks: dict[tuple[str, str], Task] = {}
        #: (framework ID, task ID) -> the update waiting for its acknowledgement
        self.unacknowledged: dict[tuple[str, str], TaskStatus] = {}
        self.ever_registered = False
        self.checkpointed: Any = None

    # -- the connection -----------------------------------------------------------------

    def connected(self, root: Any) -> defer.Deferred:
        link = PBMasterLink(root, self, self.clock)  # type: ignore[arg-type]
        if self.info.id is None:
            d = link.register(self.info)
            d.addCallback(self._registered, link)
        else:
            d = link.reregister(self.info, list(self.tasks.values()), [], list(self.frameworks.values()))
            d.addCallback(lambda _: self._up(link, again=True))
        return d

    def _registered(self, result: tuple[str, Any], link: PBMasterLink) -> None:
        agent_id, _ = result
        from attrs import evolve

        self.info = evolve(self.info, id=agent_id)
        self._up(link, again=False)

    def _up(self, link: PBMasterLink, again: bool) -> None:
        self.link = link
        if again:
            self.counters.reregistrations += 1
        else:
            self.counters.registrations += 1
        if not self.ever_registered:
            self.ever_registered = True
            self.counters.registered += 1
        pending = [(framework_id, status) for (framework_id, _), status in self.unacknowledged.items()]
        if pending:
            link.statusUpdates(pending)
            self.counters.sent += len(pending)

    def lost(self) -> None:
        self.link = None

    # -- what the master calls ------------------------------------------------------------

    def _send(self, framework_id: str, task_: Task, state: str, message: str) -> None:
        status = TaskStatus(task_.task_id, state, source=T.SOURCE_EXECUTOR, agent_id=self.info.id,
                            executor_id=task_.executor_id, timestamp=self.clock.seconds(), uuid=new_uuid(),
                            message=message)
        task_.record(status, keep=2)
        task_.status_update_state = state
        task_.status_update_uuid = status.uuid
        self.unacknowledged[(framework_id, task_.task_id)] = status
        if self.link is not None:
            self.link.statusUpdates([(framework_id, status)])
            self.counters.sent += 1

    def runTasks(self, framework_info: FrameworkInfo, tasks: Iterable[TaskInfo],
                 executor: ExecutorInfo | None = None) -> None:
        framework_id = framework_info.id
        assert framework_id is not None
        self.frameworks[framework_id] = framework_info
        for info in tasks:
            made = Task(info=info, framework_id=framework_id, executor_id=info.task_id)
            self.tasks[(framework_id, info.task_id)] = made
            self.counters.launched += 1
            self._send(framework_id, made, T.RUNNING, "Command started")

    def killTask(self, framework_id: str, task_id: str, grace_period: float | None = None) -> None:
        made = self.tasks.get((framework_id, task_id))
        if made is not None and not made.terminal:
            self._send(framework_id, made, T.KILLED, "Command killed")

    def acknowledge(self, acknowledgements: Iterable[tuple[str, str, bytes]]) -> None:
        for framework_id, task_id, uuid in acknowledgements:
            key = (framework_id, task_id)
            status = self.unacknowledged.get(key)
            if status is None or status.uuid != uuid:
                continue
            del self.unacknowledged[key]
            self.counters.acknowledged += 1
            made = self.tasks.get(key)
            if made is None:
                continue
            if made.terminal:
                del self.tasks[key]
            elif made.info.name.startswith(SHORT):
                self._send(framework_id, made, T.FINISHED, "Command exited with status 0")
            elif self.churn:
                self._send(framework_id, made, T.RUNNING, "Health check changed")

    def shutdownFramework(self, framework_id: str) -> None:
        for key in [k for k in self.tasks if k[0] == framework_id]:
            del self.tasks[key]
            self.unacknowledged.pop(key, None)
        self.frameworks.pop(framework_id, None)

    def shutdownExecutor(self, framework_id: str, executor_id: str) -> None:
        self.killTask(framework_id, executor_id)

    def frameworkMessage(self, framework_id: str, executor_id: str, data: bytes) -> None:
        pass

    def checkpointResources(self, resources: Any) -> None:
        """The master's view of this agent's reservations and volumes: kept, as an agent checkpoints them."""
        self.checkpointed = resources

    def removedByMaster(self, reason: str) -> None:
        self.counters.removed += 1

    def ping(self) -> str:
        return "pong"


def source_address(index: int) -> str:
    """The loopback address agent ``index`` connects from: 127.1.0.1, 127.1.0.2, ... (250 per third byte)."""
    return f"127.1.{index // 250}.{index % 250 + 1}"


def run(reactor: Any, args: argparse.Namespace) -> defer.Deferred:
    counters = Counters()
    detector = detector_for(reactor, args.master, args.session_timeout)
    detector.startService()
    resources = Resources.parse(args.resources)
    connectors = []
    for number in range(args.count):
        index = args.index * args.count + number
        agent = SimAgent(index, f"sim-{index:05d}.example", resources, reactor, counters, churn=args.churn)
        # Each agent connects from an address of its own in 127.0.0.0/8, as agents on hosts of their own do
        # (a master limits the connections from one address).
        connector = Connector(reactor, detector.address, agent.connected, agent.lost, backoff=args.backoff,
                              max_backoff=args.backoff * 4, name=f"sim-{index}", bind=source_address(index))
        listeners = getattr(detector, "listeners", None)
        if listeners is not None:
            listeners.append(connector.follow)
        connectors.append(connector)
    # Start the connections spread over a short while, as agents booting would (and so that one
    # process does not open a thousand connections in one turn).
    for number, connector in enumerate(connectors):
        reactor.callLater(number * args.spread / max(1, len(connectors)), connector.startService)

    announced = [False]

    def report() -> None:
        if not announced[0] and counters.registered == args.count:
            announced[0] = True
            print(f"registered={counters.registered}", flush=True)
        print(f"stats registered={counters.registered} registrations={counters.registrations} "
              f"reregistrations={counters.reregistrations} launched={counters.launched} sent={counters.sent} "
              f"acknowledged={counters.acknowledged} removed={counters.removed}", flush=True)

    loop = task.LoopingCall(report)
    loop.clock = reactor
    loop.start(args.report, now=False)
    done: defer.Deferred[None] = defer.Deferred()

    def stop(*_: Any) -> None:
        reactor.callFromThread(lambda: done.called or done.callback(None))

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return done


def main() -> None:
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    level = LogLevel.levelWithName(os.environ.get("SIMAGENTS_LOG_LEVEL", "warn"))
    # Warnings and errors only (refusals, lost connections) unless SIMAGENTS_LOG_LEVEL says otherwise:
    # a thousand agents' routine lines would be noise.
    observer = FilteringLogObserver(textFileLogObserver(sys.stderr),
                                    [LogLevelFilterPredicate(defaultLogLevel=level)])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", required=True, help="host:port or zk://...")
    parser.add_argument("--count", type=int, default=100, help="agents in this process")
    parser.add_argument("--index", type=int, default=0, help="this process's number (names its agents)")
    parser.add_argument("--resources", default=RESOURCES)
    parser.add_argument("--churn", action="store_true", help="follow every acknowledged TASK_RUNNING by another")
    parser.add_argument("--session_timeout", type=float, default=10.0)
    parser.add_argument("--backoff", type=float, default=1.0, help="the agents' reconnection backoff")
    parser.add_argument("--spread", type=float, default=2.0, help="seconds over which the agents connect")
    parser.add_argument("--report", type=float, default=1.0, help="seconds between stats lines")
    args = parser.parse_args()
    task.react(lambda reactor: run(reactor, args))


if __name__ == "__main__":
    main()
