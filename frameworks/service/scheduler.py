"""The Mesos scheduler of the service framework: callbacks handed to the runtime."""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from frameworks.service.runtime import Runtime
from mesostw.interfaces import IScheduler
from mesostw.model.info import MasterInfo
from mesostw.model.task import Offer, TaskStatus

log = Logger()


@implementer(IScheduler)
class ServiceScheduler:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.errors: list[str] = []

    def registered(self, driver: Any, frameworkId: str, masterInfo: MasterInfo) -> None:
        log.info("Registered as framework {id} with master {master}", id=frameworkId, master=masterInfo.pid)
        self.runtime.registered_as(frameworkId)

    def reregistered(self, driver: Any, masterInfo: MasterInfo) -> None:
        log.info("Registered again with master {master}", master=masterInfo.pid)
        self.runtime.reregistered()

    def disconnected(self, driver: Any) -> None:
        self.runtime.disconnected()

    def resourceOffers(self, driver: Any, offers: list[Offer]) -> None:
        self.runtime.resource_offers(offers)

    def offerRescinded(self, driver: Any, offerId: str) -> None:
        pass

    def statusUpdate(self, driver: Any, status: TaskStatus) -> None:
        self.runtime.status_update(status)

    def frameworkMessage(self, driver: Any, executorId: str, agentId: str, data: bytes) -> None:
        import base64

        self.runtime.bus.publish("framework_message_event", slaveId=agentId, executorId=executorId,
                                 message=base64.b64encode(data).decode())

    def slaveLost(self, driver: Any, agentId: str) -> None:
        log.info("Agent {agent} lost", agent=agentId)

    def executorLost(self, driver: Any, executorId: str, agentId: str, status: Any) -> None:
        pass

    def error(self, driver: Any, message: str) -> None:
        self.errors.append(message)
        log.error("The master refused the framework: {message}", message=message)
