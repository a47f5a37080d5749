"""Two standalone service instances (``twistd mesos-service --zk=...``) on a real ZooKeeper, a real
master and two agents: one leads, the other proxies (event streams included) to it; when the leader
is killed (SIGKILL) the other takes over as the same framework and keeps every running instance,
launching none; ``DELETE /v2/leader`` hands leadership back to a restarted instance the same way."""

from __future__ import annotations

import os
from typing import Any

from marathon import MarathonApp
from marathon.models.events import MarathonStatusUpdateEvent
from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.helpers.processes import Daemon, ProcessCluster, free_port, get_json, wait_for
from tests.helpers.service_processes import RESOURCES, agent_ips, client, close
from tests.helpers.zookeeper import AVAILABLE, ZooKeeperEnsemble

if not AVAILABLE:
    raise RuntimeError("ZooKeeper is not installed: `make test` installs Debian's zookeeper package")


class ServiceFailoverTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.ensemble = ZooKeeperEnsemble(1)
        self.addCleanup(self.ensemble.stop)
        yield self.ensemble.start()
        self.cluster = ProcessCluster(self, agents=2, resources=RESOURCES, agent_ips=agent_ips(2))
        yield self.cluster.start()
        self.ports: dict[str, int] = {}

    def instance(self, name: str) -> Daemon:
        """A mesos-service instance (the same flags each time it is started, as under a supervisor)."""
        port = self.ports.setdefault(name, free_port())
        daemon = Daemon("mesos-service", [f"--master={self.cluster.master_address}", f"--http_port={port}",
                                          f"--zk={self.ensemble.url('/mesostw/service')}", "--zk_session_timeout=2secs",
                                          "--scale_apps_interval=1secs"],
                        os.path.join(self.cluster.base, f"{name}.log"))
        self.cluster.agents.append(daemon)  # stopped with the cluster, by PID
        return daemon.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def leads(self, name: str) -> defer.Deferred:
        """Fires with the instance's /v2/info once ``name`` leads and has registered."""
        def check() -> defer.Deferred:
            return get_json(f"{self.url(name)}/v2/info").addCallback(
                lambda info: info["elected"] and info["leader"] == f"127.0.0.1:{self.ports[name]}"
                and info["frameworkId"] and info)
        return wait_for(check, 60, what=f"{name} to lead")

    def steady(self, name: str, task_ids: set[str]) -> defer.Deferred:
        """Fires with the new leader's metrics once it runs exactly ``task_ids`` and has swept twice."""
        @defer.inlineCallbacks
        def check() -> Any:
            app = (yield get_json(f"{self.url(name)}/v2/apps/sleepy"))["app"]
            metrics = yield get_json(f"{self.url(name)}/metrics")
            running = {t["id"] for t in app["tasks"] if t["state"] == "TASK_RUNNING"}
            swept = metrics["counters"].get("service.sweeps", {}).get("count", 0) >= 2
            return running == task_ids and not app["deployments"] and swept and metrics
        return wait_for(check, 60, what=f"{name} to run the same instances")

    @defer.inlineCallbacks
    def framework_tasks(self, framework_id: str) -> Any:
        state = yield self.cluster.state()
        (framework,) = [f for f in state["frameworks"] if f["id"] == framework_id]
        return framework, {t["id"]: t["state"] for t in framework["tasks"]}

    @defer.inlineCallbacks
    def test_the_standby_takes_over_with_every_instance(self) -> Any:
        """Through the standby, the client creates an app and reads its events; killing the leader
        makes the standby lead as the same framework with the same three tasks and no new launch;
        DELETE /v2/leader then hands over to the restarted first instance, again keeping them."""
        first = self.instance("first")
        info = yield self.leads("first")
        second = self.instance("second")
        framework_id = info["frameworkId"]
        through_standby = client(self.url("second"))
        self.addCleanup(close, through_standby)
        yield wait_for(lambda: get_json(f"{self.url('second')}/v2/leader").addCallback(
            lambda leader: leader == {"leader": f"127.0.0.1:{self.ports['first']}"}), 30,
            what="the standby to forward")

        running: set[str] = set()

        def read_events() -> None:
            for event in through_standby.event_stream(event_types=["status_update_event"]):
                if isinstance(event, MarathonStatusUpdateEvent) and event.app_id == "/sleepy" \
                        and event.task_status == "TASK_RUNNING":
                    running.add(event.task_id)
                if len(running) == 3:
                    return

        reading = threads.deferToThread(read_events)
        yield wait_for(lambda: get_json(f"{self.url('first')}/metrics").addCallback(
            lambda m: m["gauges"]["service.events.subscribers"]["value"] >= 1), 30, what="the proxied stream")
        yield threads.deferToThread(through_standby.create_app, "sleepy", MarathonApp(
            cmd="exec sleep 600", instances=3, cpus=0.05, mem=16))
        yield reading
        _, tasks = yield self.framework_tasks(framework_id)
        self.assertEqual(tasks, dict.fromkeys(running, "TASK_RUNNING"))

        first.kill()
        info = yield self.leads("second")
        self.assertEqual(info["frameworkId"], framework_id)
        metrics = yield self.steady("second", running)
        self.assertEqual(metrics["counters"].get("service.tasks_launched", {}).get("count", 0), 0)
        framework, tasks = yield self.framework_tasks(framework_id)
        self.assertTrue(framework["active"])
        self.assertEqual(tasks, dict.fromkeys(running, "TASK_RUNNING"))

        self.instance("first")  # as its supervisor would
        yield wait_for(lambda: get_json(f"{self.url('first')}/v2/leader").addCallback(
            lambda leader: leader == {"leader": f"127.0.0.1:{self.ports['second']}"}), 30,
            what="the restarted instance to stand by")
        answer = yield threads.deferToThread(through_standby.delete_leader)
        self.assertEqual(answer, {"message": "Leadership abdicated"})
        yield wait_for(lambda: second.process is not None and second.process.poll() == 0, 30,
                       what="the abdicating instance to exit")
        info = yield self.leads("first")
        self.assertEqual(info["frameworkId"], framework_id)
        metrics = yield self.steady("first", running)
        self.assertEqual(metrics["counters"].get("service.tasks_launched", {}).get("count", 0), 0)
        _, tasks = yield self.framework_tasks(framework_id)
        self.assertEqual(tasks, dict.fromkeys(running, "TASK_RUNNING"))
