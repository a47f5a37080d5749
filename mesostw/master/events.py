"""The master's operator events: what its components report for the v1 operator API's ``SUBSCRIBE``.

The components call :class:`MasterEvents` where Mesos's master notifies its subscribers
(``src/master/master.cpp``): the :class:`~mesostw.master.tasks.TaskTracker` when a task becomes known
(TASK_ADDED) or takes a new state (TASK_UPDATED), the :class:`~mesostw.master.agents.AgentManager`
when an agent is admitted (AGENT_ADDED) or leaves (AGENT_REMOVED: unregistered, unreachable or gone),
the :class:`~mesostw.master.frameworks.FrameworkManager` when a framework subscribes or is recovered
(FRAMEWORK_ADDED) or subscribes again (FRAMEWORK_UPDATED), and the master when it removes one
(FRAMEWORK_REMOVED, after its tasks' updates).

Each event is built once, as JSON, and only when someone subscribes: without subscribers a report
costs one attribute test, so the launch path does not pay for the feature. Every subscriber (an
:class:`EventSink`) sees an event only as its ``view_*`` ACLs allow (:func:`visible`): task events
need ``view_tasks`` and ``view_frameworks``, framework events ``view_frameworks``, and an agent's
resources are cut to the roles it may view. Pure: the transport is in :mod:`mesostw.master.event_stream`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

from twisted.logger import Logger

from mesostw.master import v1_json
from mesostw.model.info import FrameworkInfo, wrap
from mesostw.model.task import Task, TaskStatus
from mesostw.operator.approvers import Approvers
from mesostw.operator.v1 import status_v1

if TYPE_CHECKING:
    from mesostw.master.master import Master
    from mesostw.master.records import AgentRecord, FrameworkRecord

log = Logger()

#: Mesos's ``--max_operator_event_stream_subscribers`` default.
MAX_SUBSCRIBERS = 1000

TASK_ADDED, TASK_UPDATED = "TASK_ADDED", "TASK_UPDATED"
AGENT_ADDED, AGENT_REMOVED = "AGENT_ADDED", "AGENT_REMOVED"
FRAMEWORK_ADDED, FRAMEWORK_UPDATED, FRAMEWORK_REMOVED = "FRAMEWORK_ADDED", "FRAMEWORK_UPDATED", "FRAMEWORK_REMOVED"
SUBSCRIBED, HEARTBEAT = "SUBSCRIBED", "HEARTBEAT"


class OperatorEvent:
    """One event: its JSON ``data``, the task and framework its visibility depends on, and its encoding
    (made once, shared by every subscriber that sees the event unchanged)."""

    __slots__ = ("type", "data", "task", "framework", "_encoded")

    def __init__(self, data: dict[str, Any], task: Task | None = None, framework: FrameworkInfo | None = None):
        self.type: str = data["type"]
        self.data = data
        self.task = task
        self.framework = framework
        self._encoded: bytes | None = None

    def encoded(self) -> bytes:
        """The event as compact JSON bytes."""
        if self._encoded is None:
            self._encoded = json.dumps(self.data, separators=(",", ":")).encode("utf-8")
        return self._encoded


class EventSink(Protocol):
    """A subscriber as the master sees it: what it may view, and where its events go."""

    approvers: Approvers

    def send(self, event: OperatorEvent) -> None:
        """Take one event (never blocking; a sink that cannot keep up closes itself)."""

    def close(self, reason: str) -> None:
        """End the subscription (the sink then unsubscribes)."""


def visible(event: OperatorEvent, approvers: Approvers) -> OperatorEvent | None:
    """``event`` as a subscriber with ``approvers`` may see it: itself, a filtered copy, or None."""
    if approvers.everything:
        return event
    kind = event.type
    if kind in (TASK_ADDED, TASK_UPDATED):
        framework, task = event.framework, event.task
        if framework is None or task is None:
            return None
        return event if approvers.view_framework(framework) and approvers.view_task(task, framework) else None
    if kind in (FRAMEWORK_ADDED, FRAMEWORK_UPDATED, FRAMEWORK_REMOVED):
        return event if event.framework is not None and approvers.view_framework(event.framework) else None
    if kind == AGENT_ADDED:
        agent = dict(event.data["agent_added"]["agent"])
        for key in ("total_resources", "allocated_resources", "offered_resources"):
            if key in agent:
                agent[key] = approvers.resources(agent[key])
        info = dict(agent["agent_info"])
        if "resources" in info:
            info["resources"] = approvers.resources(info["resources"])
        agent["agent_info"] = info
        return OperatorEvent({"type": AGENT_ADDED, "agent_added": {"agent": agent}})
    return event


class MasterEvents:
    """The subscribers of one master and the reports its components make.

    At most ``max_subscribers`` stay subscribed: a new one beyond that closes the oldest, as Mesos does.
    """

    def __init__(self, master: Master | None, max_subscribers: int = MAX_SUBSCRIBERS):
        self._master = master
        self.max_subscribers = max_subscribers
        self._sinks: list[EventSink] = []
        #: False while nobody subscribes: the components' reports then cost this test only
        self.active = False

    def __len__(self) -> int:
        return len(self._sinks)

    def subscribe(self, sink: EventSink) -> None:
        """Send every event from now on to ``sink`` (as its approvers allow)."""
        self._sinks.append(sink)
        self.active = True
        while len(self._sinks) > self.max_subscribers:
            oldest = self._sinks.pop(0)
            log.info("Reached the maximum of {n} operator event subscribers; closing the oldest",
                     n=self.max_subscribers)
            oldest.close(f"more than {self.max_subscribers} subscribers; the oldest is closed")

    def unsubscribe(self, sink: EventSink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)
        self.active = bool(self._sinks)

    def close_all(self, reason: str) -> None:
        """End every subscription (the master stops)."""
        for sink in list(self._sinks):
            sink.close(reason)
        self._sinks.clear()
        self.active = False

    def publish(self, event: OperatorEvent) -> None:
        """Send ``event`` to every subscriber allowed to see it; a subscriber that fails is closed."""
        for sink in tuple(self._sinks):
            shown = visible(event, sink.approvers)
            if shown is None:
                continue
            try:
                sink.send(shown)
            except Exception:  # noqa: BLE001 - one broken subscriber must not stop the master's flow
                log.failure("Closing an operator event subscriber that failed to take {type}", type=event.type)
                self.unsubscribe(sink)
                sink.close("failed to take an event")

    # -- the components' reports -----------------------------------------------------------

    def _framework_info(self, framework_id: str) -> FrameworkInfo | None:
        master = self._master
        assert master is not None, "a master's components report to the master's events"
        record = master.frameworks.get(framework_id) or master.completed.get(framework_id)
        return record.info if record is not None else None

    def taskAdded(self, task: Task) -> None:
        """A task became known: launched, or reported by an agent that (re-)registered."""
        if not self.active:
            return
        framework = self._framework_info(task.framework_id)
        data = {"type": TASK_ADDED, "task_added": {"task": v1_json.task_event_v1(task, framework)}}
        self.publish(OperatorEvent(data, task, framework))

    def taskUpdated(self, task: Task, status: TaskStatus) -> None:
        """A task took a new state (``task.state``), as ``status`` says."""
        if not self.active:
            return
        framework = self._framework_info(task.framework_id)
        data = {"type": TASK_UPDATED, "task_updated": {"framework_id": wrap(task.framework_id),
                                                       "status": status_v1(status), "state": task.state}}
        self.publish(OperatorEvent(data, task, framework))

    def agentAdded(self, agent: AgentRecord) -> None:
        """An agent was admitted: new, back from unreachable, or back after a master failover."""
        if not self.active:
            return
        assert self._master is not None
        self.publish(OperatorEvent({"type": AGENT_ADDED, "agent_added": {"agent": v1_json.agent_v1(self._master,
                                                                                                   agent)}}))

    def agentRemoved(self, agent_id: str) -> None:
        """An agent left the registered ones: it unregistered, became unreachable, or was marked gone."""
        if not self.active:
            return
        self.publish(OperatorEvent({"type": AGENT_REMOVED, "agent_removed": {"agent_id": wrap(agent_id)}}))

    def frameworkAdded(self, framework: FrameworkRecord) -> None:
        """A framework became known: it subscribed, or the registry or an agent told of it."""
        if self.active:
            self._framework_event(FRAMEWORK_ADDED, framework)

    def frameworkUpdated(self, framework: FrameworkRecord) -> None:
        """A known framework subscribed again (failover, reconnection, or back after a master failover)."""
        if self.active:
            self._framework_event(FRAMEWORK_UPDATED, framework)

    def _framework_event(self, kind: str, framework: FrameworkRecord) -> None:
        assert self._master is not None
        body = {"framework": v1_json.framework_v1(self._master, framework, event=True)}
        self.publish(OperatorEvent({"type": kind, kind.lower(): body}, framework=framework.info))

    def frameworkRemoved(self, info: FrameworkInfo) -> None:
        """A framework was removed (torn down, or its failover timeout passed)."""
        if not self.active:
            return
        self.publish(OperatorEvent({"type": FRAMEWORK_REMOVED, "framework_removed": {"framework_info": info.to_json()}},
                                   framework=info))
