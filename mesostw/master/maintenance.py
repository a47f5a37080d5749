"""Maintenance: the cluster's schedule, machines going down and coming up, and the inverse offers sent
to frameworks with resources on machines about to go (``mesos:docs/maintenance.md``).

A machine listed in the schedule is DRAINING: offers of its agents carry the window's unavailability,
and frameworks using its agents get inverse offers, whose answers operators read in the maintenance
status. START_MAINTENANCE takes machines DOWN: their agents are removed (their tasks end as for an
agent marked gone: TASK_LOST, or TASK_GONE_BY_OPERATOR for partition-aware frameworks) and may not
register while the machine is down. STOP_MAINTENANCE brings them UP again and out of the schedule.
Everything is in the registry before it takes effect.

An agent runs on a machine when every field the machine names matches it: its hostname (not
case-sensitive) and its IP address (its hostname when that is an address, else the address its
master connection comes from). Unlike Mesos, which compares
both fields and so never matches a machine named by its hostname alone, a machine named by one field
is every agent matching that field.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from mesostw.master.frameworks import FrameworkManager
from mesostw.master.inverse_offers import InverseOfferBook
from mesostw.master.offers import OfferBook
from mesostw.master.records import AgentRecord
from mesostw.master.registry import Mutation, UpdateMaintenance, machine_key
from mesostw.master.tasks import TaskTracker
from mesostw.model import scheduler_api as api
from mesostw.model.info import Filters, wrap
from mesostw.model.maintenance import (
    DOWN,
    DRAINING,
    UP,
    InverseOffer,
    MachineID,
    Schedule,
    Unavailability,
    nanos,
)
from mesostw.model.task import Offer
from mesostw.model.validation import ValidationError

log = Logger()

Key = tuple[str, str]
#: What frameworks and agents are told when a machine goes down.
DOWN_MESSAGE = "Operator initiated 'Machine DOWN'"


class MaintenanceRefused(Exception):
    """A maintenance change is invalid; the message says why (a 400)."""


def agent_ip(hostname: str, link: Any) -> str | None:
    """An agent's IP address: its hostname when that is an address (mesostw agents advertise their IP as
    their hostname unless given one), else the address its connection comes from (None when unknown)."""
    try:
        return str(ipaddress.IPv4Address(hostname))
    except ValueError:
        return getattr(link, "ip", None)


def agent_address(record: AgentRecord) -> tuple[str, str | None]:
    """An agent's hostname and IP address."""
    return record.info.hostname, agent_ip(record.info.hostname, record.link)


class Maintenance:
    """The schedule, the machines that are down, the inverse offers and their answers; the only code that
    changes them.

    ``persist(mutation)`` makes a change durable; ``agents()`` gives the registered agents;
    ``remove_agent(agent_id, message)`` removes one whose machine went down (a Deferred);
    ``rescind_offer(offer)`` withdraws a regular offer; ``request_allocation()`` asks for an allocation.
    """

    def __init__(self, clock: Any, master_id: str, persist: Callable[[Mutation], defer.Deferred],
                 agents: Callable[[], Mapping[str, AgentRecord]], frameworks: FrameworkManager, tasks: TaskTracker,
                 offers: OfferBook, remove_agent: Callable[[str, str], defer.Deferred],
                 rescind_offer: Callable[[Offer], None], request_allocation: Callable[[], None]):
        self._clock = clock
        self._persist = persist
        self._agents = agents
        self._frameworks = frameworks
        self._tasks = tasks
        self._offers = offers
        self._remove_agent = remove_agent
        self._rescind_offer = rescind_offer
        self._request_allocation = request_allocation
        self.schedule = Schedule()
        #: machine key -> MachineID of the machines that are down
        self.down: dict[Key, MachineID] = {}
        #: machine key -> framework ID -> (ACCEPT or DECLINE, when): the latest answers to inverse offers
        self.statuses: dict[Key, dict[str, tuple[str, float]]] = {}
        self.inverse = InverseOfferBook(master_id)
        self._scheduled: dict[Key, tuple[MachineID, Unavailability]] = {}

    # -- machines ----------------------------------------------------------------------------

    def recover(self, schedule: Mapping[str, Any], down: Mapping[str, Mapping[str, Any]]) -> None:
        """What the registry holds (a newly elected master's)."""
        try:
            self._set_schedule(Schedule.from_json(dict(schedule)) if schedule else Schedule())
        except ValidationError as exc:
            log.error("Ignoring the unreadable maintenance schedule in the registry: {e}", e=exc)
        for entry in down.values():
            try:
                machine = MachineID.from_json(dict(entry))
            except ValidationError as exc:
                log.error("Ignoring an unreadable machine down in the registry: {e}", e=exc)
                continue
            self.down[machine.key] = machine

    def _set_schedule(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self._scheduled = schedule.machines()

    def machine_of(self, hostname: str, ip: str | None) -> Key | None:
        """The scheduled machine an agent at ``hostname``/``ip`` runs on, or None."""
        for key, (machine, _) in self._scheduled.items():
            if machine.matches(hostname, ip):
                return key
        return None

    def mode(self, key: Key) -> str:
        if key in self.down:
            return DOWN
        return DRAINING if key in self._scheduled else UP

    def is_down(self, hostname: str, ip: str | None) -> bool:
        """Whether an agent at ``hostname``/``ip`` runs on a machine that is down (it may not register)."""
        return any(machine.matches(hostname, ip) for machine in self.down.values())

    def unavailability(self, record: AgentRecord) -> Unavailability | None:
        """When an agent's machine is scheduled to go away (for its offers and inverse offers)."""
        if not self._scheduled:
            return None
        key = self.machine_of(*agent_address(record))
        if key is None or key in self.down:
            return None
        return self._scheduled[key][1]

    # -- changes -------------------------------------------------------------------------------

    def update_schedule(self, schedule: Schedule) -> defer.Deferred:
        """Replace the schedule: machines listed are DRAINING, those no longer listed UP (machines that are
        down must stay listed). Offers of agents whose unavailability changes are rescinded, to be made
        again with it; inverse offers for machines no longer listed are rescinded."""
        listed = schedule.machines()
        missing = [machine for key, machine in sorted(self.down.items()) if key not in listed]
        if missing:
            return defer.fail(MaintenanceRefused(
                f"Machine '{missing[0]}' is deactivated (DOWN) and cannot be removed from the schedule"))
        before = {agent_id: self.unavailability(record) for agent_id, record in self._agents().items()}
        d = self._persist(UpdateMaintenance(schedule.to_json()))
        d.addCallback(lambda _: self._scheduled_now(schedule, before))
        return d

    def _scheduled_now(self, schedule: Schedule, before: Mapping[str, Unavailability | None]) -> None:
        self._set_schedule(schedule)
        self.statuses = {key: answers for key, answers in self.statuses.items() if key in self._scheduled}
        log.info("The maintenance schedule now lists {n} machines", n=len(self._scheduled))
        for agent_id, record in self._agents().items():
            now = self.unavailability(record)
            if now == before.get(agent_id):
                continue
            for offer in self._offers.on_agent(agent_id):
                self._rescind_offer(offer)
            if now is None:
                self._rescind_inverse(self.inverse.forget_agent(agent_id))
        self._request_allocation()

    def start(self, machines: list[MachineID]) -> defer.Deferred:
        """START_MAINTENANCE: DRAINING machines go DOWN; their agents are removed."""
        for machine in machines:
            if machine.key not in self._scheduled:
                return defer.fail(MaintenanceRefused(f"Machine '{machine}' is not part of a maintenance schedule"))
            if machine.key in self.down:
                return defer.fail(MaintenanceRefused(
                    f"Machine '{machine}' is not in DRAINING mode and cannot be brought down"))
        d = self._persist(UpdateMaintenance(down={machine_key(m.to_json()): m.to_json() for m in machines}))
        d.addCallback(lambda _: self._down(machines))
        return d

    def _down(self, machines: list[MachineID]) -> defer.Deferred:
        removals = []
        for machine in machines:
            self.down[machine.key] = machine
            log.info("Machine {m} is DOWN", m=str(machine))
            for agent_id, record in list(self._agents().items()):
                if machine.matches(*agent_address(record)):
                    self._rescind_inverse(self.inverse.forget_agent(agent_id))
                    removals.append(self._remove_agent(agent_id, DOWN_MESSAGE))
        return defer.gatherResults(removals, consumeErrors=True).addCallback(lambda _: None)

    def stop(self, machines: list[MachineID]) -> defer.Deferred:
        """STOP_MAINTENANCE: DOWN machines come UP and leave the schedule; their agents may register."""
        for machine in machines:
            if machine.key not in self._scheduled:
                return defer.fail(MaintenanceRefused(f"Machine '{machine}' is not part of a maintenance schedule"))
            if machine.key not in self.down:
                return defer.fail(MaintenanceRefused(
                    f"Machine '{machine}' is not in DOWN mode and cannot be brought up"))
        keys = {machine.key for machine in machines}
        schedule = self.schedule.without(keys)
        d = self._persist(UpdateMaintenance(schedule.to_json(), {machine_key(m.to_json()): None for m in machines}))
        d.addCallback(lambda _: self._up(schedule, keys))
        return d

    def _up(self, schedule: Schedule, keys: set[Key]) -> None:
        for key in keys:
            machine = self.down.pop(key, None)
            self.statuses.pop(key, None)
            log.info("Machine {m} is UP", m=str(machine))
        self._set_schedule(schedule)

    # -- inverse offers --------------------------------------------------------------------------

    def send_inverse_offers(self) -> int:
        """Ask every framework with resources on an agent of a DRAINING machine for them back, unless it was
        asked already or asked not to be for a while; returns how many inverse offers went out. Inverse
        offers of agents and frameworks that went away are dropped first."""
        records = self._agents()
        for offer in list(self.inverse):
            framework = self._frameworks.get(offer.framework_id)
            if offer.agent_id not in records:
                self.inverse.remove(offer)
                if framework is not None:
                    framework.send(api.rescind_inverse_offer_event(offer.id))
            elif framework is None or not framework.connected:
                self.inverse.remove(offer)
        if not self._scheduled:
            return 0
        now = self._clock.seconds()
        batches: dict[str, list[InverseOffer]] = {}
        for agent_id, record in records.items():
            unavailability = self.unavailability(record)
            if unavailability is None or not record.connected:
                continue
            users = set(self._tasks.usage_on(agent_id)) | {o.framework_id for o in self._offers.on_agent(agent_id)}
            for framework_id in sorted(users):
                framework = self._frameworks.get(framework_id)
                if framework is None or not framework.connected or not framework.active:
                    continue
                if self.inverse.wanted(framework_id, agent_id, now):
                    offer = self.inverse.make(framework_id, agent_id, unavailability, record.info.hostname,
                                              record.info.port)
                    batches.setdefault(framework_id, []).append(offer)
        for framework_id, offers in batches.items():
            self._frameworks.send(framework_id, api.inverse_offers_event(offers))
        return sum(len(offers) for offers in batches.values())

    def answer(self, framework_id: str, inverse_offer_ids: Iterable[str], status: str, filters: Filters) -> None:
        """A framework accepted or declined inverse offers (IDs no longer valid are ignored, as Mesos)."""
        now = self._clock.seconds()
        for inverse_offer_id in inverse_offer_ids:
            offer = self.inverse.answer(inverse_offer_id, framework_id, filters, now)
            if offer is None:
                log.warn("Ignoring the answer of framework {f} to inverse offer {id}: it is no longer valid",
                         f=framework_id, id=inverse_offer_id)
                continue
            record = self._agents().get(offer.agent_id)
            key = self.machine_of(*agent_address(record)) if record is not None else None
            if key is not None:
                self.statuses.setdefault(key, {})[framework_id] = (status, now)

    def _rescind_inverse(self, offers: list[InverseOffer]) -> None:
        for offer in offers:
            self._frameworks.send(offer.framework_id, api.rescind_inverse_offer_event(offer.id))

    # -- reporting ---------------------------------------------------------------------------------

    def status_json(self) -> dict[str, Any]:
        """A ``ClusterStatus``: the DRAINING machines with the latest answers to their inverse offers, and the
        DOWN ones."""
        draining = []
        for key, (machine, _) in sorted(self._scheduled.items()):
            if key in self.down:
                continue
            answers = [{"status": status, "framework_id": wrap(framework_id), "timestamp": {"nanoseconds": nanos(at)}}
                       for framework_id, (status, at) in sorted(self.statuses.get(key, {}).items())]
            draining.append({"id": machine.to_json(), "statuses": answers})
        return {"draining_machines": draining, "down_machines": [m.to_json() for _, m in sorted(self.down.items())]}

    def machine_infos(self) -> list[dict[str, Any]]:
        """A MachineInfo of every machine not UP (``/master/state``'s ``machines``... for the CLI)."""
        return [{"id": machine.to_json(), "mode": self.mode(key), "unavailability": unavailability.to_json()}
                for key, (machine, unavailability) in sorted(self._scheduled.items())]
