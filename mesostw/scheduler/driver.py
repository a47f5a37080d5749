"""The transport-independent half of a scheduler driver.

Turns the Mesos driver calls (``launchTasks``, ``declineOffer``...) into v1
scheduler Calls and v1 Events into the Mesos ``Scheduler`` callbacks, with
implicit acknowledgements by default. Subclasses supply the transport
(:mod:`mesostw.scheduler.pb` over Perspective Broker, :mod:`mesostw.scheduler.local`
inside the master process).
"""

from __future__ import annotations

import abc
from typing import Any, Iterable

import attrs
from twisted.application import service
from twisted.application.service import IService
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from mesostw.interfaces import IScheduler, ISchedulerDriver
from mesostw.model import scheduler_api as api
from mesostw.model.info import Filters, FrameworkInfo, MasterInfo, wrap
from mesostw.model.maintenance import InverseOffer
from mesostw.model.task import Offer, Operation, TaskInfo, TaskStatus
from mesostw.model.validation import ValidationError, b64

log = Logger()

NOT_STARTED = "DRIVER_NOT_STARTED"
RUNNING = "DRIVER_RUNNING"
ABORTED = "DRIVER_ABORTED"
STOPPED = "DRIVER_STOPPED"


def launch_lost(calls: Iterable[dict[str, Any]], framework: FrameworkInfo, message: str,
                now: float) -> list[TaskStatus]:
    """What a scheduler hears of the tasks in ACCEPT calls that never reached the master, as from Mesos's
    driver: TASK_LOST (TASK_DROPPED for a partition-aware framework), reason master disconnected."""
    from mesostw.model import task as T

    state = T.DROPPED if framework.partition_aware else T.LOST
    statuses = []
    for call in calls:
        if call.get("type") != "ACCEPT":
            continue
        for operation in call.get("accept", {}).get("operations", []):
            kind = operation.get("type")
            if kind not in ("LAUNCH", "LAUNCH_GROUP"):
                continue
            body = operation.get("launch" if kind == "LAUNCH" else "launch_group", {})
            infos = body.get("task_infos") or body.get("task_group", {}).get("tasks", [])
            for info in infos:
                agent = info.get("agent_id") or info.get("slave_id") or {}
                statuses.append(TaskStatus(info["task_id"]["value"], state, message=message,
                                           source=T.SOURCE_MASTER, reason=T.REASON_MASTER_DISCONNECTED,
                                           agent_id=agent.get("value"), timestamp=now))
    return statuses


def _task_json(task: TaskInfo | dict[str, Any]) -> dict[str, Any]:
    return task.to_json() if isinstance(task, TaskInfo) else dict(task)


def _operation_json(op: Operation | dict[str, Any]) -> dict[str, Any]:
    return op.to_json() if isinstance(op, Operation) else dict(op)


def _filters_json(filters: Filters | dict[str, Any] | None) -> dict[str, Any] | None:
    if filters is None:
        return None
    return filters.to_json() if isinstance(filters, Filters) else dict(filters)


@implementer(ISchedulerDriver, IService)
class SchedulerDriverBase(service.Service, abc.ABC):
    """Driver logic shared by every transport.

    A driver is also a Twisted service, so a framework makes it a child of its own: starting the
    service subscribes, stopping it fails over (the master keeps the framework for its
    ``failover_timeout``) and fires once the driver has let go of the master. A driver that stops or
    aborts by itself (:meth:`stop`, :meth:`abort`, an ERROR from the master) stops its service too.
    """

    def __init__(self, scheduler: IScheduler, framework: FrameworkInfo, implicit_acknowledgements: bool = True):
        self.scheduler = scheduler
        self.framework = framework
        self.implicit_acknowledgements = implicit_acknowledgements
        self.status = NOT_STARTED
        self.master_info: MasterInfo | None = None
        self._registered_once = False
        self._on_registered: defer.Deferred = defer.Deferred()
        self._on_stopped: defer.Deferred = defer.Deferred()
        self._let_go: defer.Deferred | None = None

    @property
    def framework_id(self) -> str | None:
        return self.framework.id

    def startService(self) -> None:
        super().startService()
        if self.status == NOT_STARTED:
            self.start()

    def stopService(self) -> defer.Deferred:
        self.stop(failover=True)
        return self.stopped()

    def stopped(self) -> defer.Deferred:
        """Fires once the transport has let go of the master (its service, and any children it has,
        stopped) after :meth:`stop` or :meth:`abort`."""
        if self._let_go is None:
            self._let_go = defer.maybeDeferred(super().stopService)
        return self._let_go

    # -- lifecycle (transport hooks) --------------------------------------------

    @abc.abstractmethod
    def _send(self, call: dict[str, Any]) -> None:
        """Deliver one Call to the master (the transport's job)."""

    def _subscribe_call(self) -> dict[str, Any]:
        body: dict[str, Any] = {"framework_info": self.framework.to_json()}
        return api.call(self.framework.id, "SUBSCRIBE", body)

    def start(self) -> defer.Deferred:
        """Begin registering; the Deferred fires with the framework ID once registered."""
        self.status = RUNNING
        return self._on_registered

    def join(self) -> defer.Deferred:
        """A Deferred firing with the final status when the driver stops or aborts."""
        return self._on_stopped

    def stop(self, failover: bool = False) -> str:
        """Unregister (tear the framework down) unless ``failover``; then disconnect."""
        if self.status != RUNNING:
            return self.status
        if not failover and self.framework.id:
            self._send(api.call(self.framework.id, "TEARDOWN"))
        self.status = STOPPED
        self._finish()
        return self.status

    def abort(self) -> str:
        if self.status == RUNNING:
            self.status = ABORTED
            self._finish()
        return self.status

    def _finish(self) -> None:
        """The driver stopped or aborted: the transport has flushed what it had to say."""
        if not self._on_stopped.called:
            self._on_stopped.callback(self.status)
        self.stopped()

    # -- calls -------------------------------------------------------------------

    def _call(self, kind: str, body: dict[str, Any] | None = None) -> str:
        if self.status != RUNNING or not self.framework.id:
            return self.status
        self._send(api.call(self.framework.id, kind, body))
        return self.status

    def acceptOffers(self, offerIds: Iterable[str], operations: Iterable[Any], filters: Any = None) -> str:
        body: dict[str, Any] = {"offer_ids": [wrap(i) for i in offerIds],
                                "operations": [_operation_json(op) for op in operations]}
        if filters is not None:
            body["filters"] = _filters_json(filters)
        return self._call("ACCEPT", body)

    def launchTasks(self, offerIds: Iterable[str] | str, tasks: Iterable[Any], filters: Any = None) -> str:
        if isinstance(offerIds, str):
            offerIds = [offerIds]
        operation = {"type": "LAUNCH", "launch": {"task_infos": [_task_json(t) for t in tasks]}}
        return self.acceptOffers(offerIds, [operation], filters)

    def declineOffer(self, offerId: str | Iterable[str], filters: Any = None) -> str:
        ids = [offerId] if isinstance(offerId, str) else list(offerId)
        body: dict[str, Any] = {"offer_ids": [wrap(i) for i in ids]}
        if filters is not None:
            body["filters"] = _filters_json(filters)
        return self._call("DECLINE", body)

    def acceptInverseOffers(self, inverseOfferIds: Iterable[str] | str, filters: Any = None) -> str:
        """Tell the master the framework will free what these inverse offers ask for, in time."""
        return self._inverse("ACCEPT_INVERSE_OFFERS", inverseOfferIds, filters)

    def declineInverseOffer(self, inverseOfferIds: Iterable[str] | str, filters: Any = None) -> str:
        """Tell the master the framework cannot free what these inverse offers ask for in time (pymesos's name)."""
        return self._inverse("DECLINE_INVERSE_OFFERS", inverseOfferIds, filters)

    declineInverseOffers = declineInverseOffer

    def _inverse(self, kind: str, ids: Iterable[str] | str, filters: Any) -> str:
        body: dict[str, Any] = {"inverse_offer_ids": [wrap(i) for i in ([ids] if isinstance(ids, str) else ids)]}
        if filters is not None:
            body["filters"] = _filters_json(filters)
        return self._call(kind, body)

    def reviveOffers(self) -> str:
        return self._call("REVIVE")

    def suppressOffers(self) -> str:
        return self._call("SUPPRESS")

    def killTask(self, taskId: str, agentId: str | None = None, gracePeriod: float | None = None) -> str:
        body: dict[str, Any] = {"task_id": wrap(taskId)}
        if agentId:
            body["agent_id"] = wrap(agentId)
        if gracePeriod is not None:
            body["kill_policy"] = {"grace_period": {"nanoseconds": int(gracePeriod * 1e9)}}
        return self._call("KILL", body)

    def acknowledgeStatusUpdate(self, status: TaskStatus) -> str:
        if status.uuid is None or status.agent_id is None:
            return self.status
        return self._call("ACKNOWLEDGE", {"agent_id": wrap(status.agent_id), "task_id": wrap(status.task_id),
                                          "uuid": b64(status.uuid)})

    def reconcileTasks(self, statuses: Iterable[TaskStatus | str] = ()) -> str:
        tasks = []
        for status in statuses:
            if isinstance(status, str):
                tasks.append({"task_id": wrap(status)})
            else:
                entry: dict[str, Any] = {"task_id": wrap(status.task_id)}
                if status.agent_id:
                    entry["agent_id"] = wrap(status.agent_id)
                tasks.append(entry)
        return self._call("RECONCILE", {"tasks": tasks})

    def sendFrameworkMessage(self, executorId: str, agentId: str, data: bytes) -> str:
        return self._call("MESSAGE", {"agent_id": wrap(agentId), "executor_id": wrap(executorId),
                                      "data": b64(data)})

    def shutdownExecutor(self, executorId: str, agentId: str) -> str:
        return self._call("SHUTDOWN", {"executor_id": wrap(executorId), "agent_id": wrap(agentId)})

    def requestResources(self, requests: Any = ()) -> str:
        return self._call("REQUEST", {"requests": list(requests)})

    # -- events ------------------------------------------------------------------

    def handle_events(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            if self.status != RUNNING:
                return
            try:
                self.handle_event(event)
            except ValidationError as exc:
                log.error("Malformed event from the master: {e}", e=exc)
            except Exception:
                log.failure("Scheduler callback raised")

    def handle_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        body = event.get(str(kind).lower(), {}) or {}
        if kind == "SUBSCRIBED":
            self._subscribed(body)
        elif kind == "OFFERS":
            offers = [Offer.from_json(o) for o in body.get("offers", [])]
            self.scheduler.resourceOffers(self, offers)
        elif kind == "RESCIND":
            self.scheduler.offerRescinded(self, body["offer_id"]["value"])
        elif kind == "INVERSE_OFFERS":
            # Optional callbacks (Mesos's C++ Scheduler has none; pymesos's does): a scheduler without
            # them never hears of inverse offers.
            callback = getattr(self.scheduler, "inverseOffers", None)
            if callback is not None:
                callback(self, [InverseOffer.from_json(o) for o in body.get("inverse_offers", [])])
        elif kind == "RESCIND_INVERSE_OFFER":
            callback = getattr(self.scheduler, "inverseOfferRescinded", None)
            if callback is not None:
                callback(self, body["inverse_offer_id"]["value"])
        elif kind == "UPDATE":
            status = TaskStatus.from_json(body["status"])
            self.scheduler.statusUpdate(self, status)
            if self.implicit_acknowledgements and status.uuid is not None:
                self.acknowledgeStatusUpdate(status)
        elif kind == "MESSAGE":
            import base64

            self.scheduler.frameworkMessage(self, body["executor_id"]["value"], body["agent_id"]["value"],
                                            base64.b64decode(body.get("data", "")))
        elif kind == "FAILURE":
            agent_id = body.get("agent_id", {}).get("value")
            if "executor_id" in body:
                self.scheduler.executorLost(self, body["executor_id"]["value"], agent_id, body.get("status"))
            elif agent_id:
                self.scheduler.slaveLost(self, agent_id)
        elif kind == "ERROR":
            message = body.get("message") or event.get("message", "")
            self.scheduler.error(self, message)
            self.abort()
        elif kind == "HEARTBEAT":
            pass
        else:
            log.warn("Ignoring unknown event type {kind}", kind=kind)

    def _subscribed(self, body: dict[str, Any]) -> None:
        framework_id = body["framework_id"]["value"]
        self.master_info = MasterInfo.from_json(body["master_info"])
        self.framework = attrs.evolve(self.framework, id=framework_id)
        if not self._registered_once:
            self._registered_once = True
            self.scheduler.registered(self, framework_id, self.master_info)
            if not self._on_registered.called:
                self._on_registered.callback(framework_id)
        else:
            self.scheduler.reregistered(self, self.master_info)


@implementer(IScheduler)
class Scheduler:
    """A scheduler that ignores every callback; subclass and override what you need."""

    def registered(self, driver: Any, frameworkId: str, masterInfo: MasterInfo) -> None:
        pass

    def reregistered(self, driver: Any, masterInfo: MasterInfo) -> None:
        pass

    def disconnected(self, driver: Any) -> None:
        pass

    def resourceOffers(self, driver: Any, offers: list[Offer]) -> None:
        pass

    def offerRescinded(self, driver: Any, offerId: str) -> None:
        pass

    def inverseOffers(self, driver: Any, offers: list[InverseOffer]) -> None:
        """Inverse offers: the master asks for agents' resources back (their machines are scheduled for
        maintenance); answer with ``driver.acceptInverseOffers`` or ``driver.declineInverseOffer``."""

    def inverseOfferRescinded(self, driver: Any, inverseOfferId: str) -> None:
        """An inverse offer is no longer valid."""

    def statusUpdate(self, driver: Any, status: TaskStatus) -> None:
        pass

    def frameworkMessage(self, driver: Any, executorId: str, agentId: str, data: bytes) -> None:
        pass

    def slaveLost(self, driver: Any, agentId: str) -> None:
        pass

    def executorLost(self, driver: Any, executorId: str, agentId: str, status: int | None) -> None:
        pass

    def error(self, driver: Any, message: str) -> None:
        log.error("Framework error: {message}", message=message)
