"""The master's durable state: admitted agents, live framework IDs, weights.

Everything a new leading master needs to know to take over is here (Mesos's
registry); the rest is rebuilt from agents and frameworks as they come back.
A change is durable when :meth:`Registry.apply` fires, and the master
acknowledges nothing before that. The registry is a set of mutations over an
:class:`~mesostw.interfaces.IStateStore`: in memory (tests, ``--registry=in_memory``),
files under ``--work_dir``, or ZooKeeper with ``--zk``, where its layout under
``<zk path>/registry`` is ``agents/<id>`` (AgentInfo JSON), ``unreachable/<id>``
(time), ``owners/<id>`` (the principal that registered the agent), ``frameworks/<id>``
(FrameworkInfo JSON), ``removed/<id>`` (time), ``weights`` (JSON), ``gone/<id>`` (time) for
agents an operator marked gone, ``quotas/<role>`` (QuotaConfig JSON), ``maintenance/schedule`` (the
maintenance Schedule JSON), ``maintenance/down/<machine>`` (MachineID JSON of machines that are down),
``agent_states/<id>`` (``{"deactivated", "drain_info"}`` of agents an operator deactivated or drains) and
``resources/<id>`` (a JSON array of Resources): an agent's checkpointed resources, its dynamic
reservations and persistent volumes, as operations last left them (none for an agent no operation
changed: its own checkpoint then tells). One value per item keeps each write small, whatever the
cluster's size.
"""

from __future__ import annotations

import errno
import json
import os
from collections import OrderedDict
from typing import Any
from urllib.parse import unquote

import attrs
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from mesostw.interfaces import IRegistry
from mesostw.store import Delete, Operation, Put, StoreError, StoreFenced, dump
from mesostw.store.memory import MemoryStateStore

log = Logger()

#: How many removed framework IDs are remembered (so that they cannot come back).
MAX_REMOVED_FRAMEWORKS = 1000

#: Mutations committed together at most (a ZooKeeper transaction must stay far below its 1 MB limit).
MAX_BATCH = 64

SECTIONS = ("agents", "unreachable", "frameworks", "removed", "owners", "resources")

__all__ = ["IRegistry", "Registry", "InMemoryRegistry", "RegistryError", "RegistryState", "Mutation",
           "AdmitAgent", "MarkUnreachable", "RemoveAgent", "AddFramework", "RemoveFramework", "SetWeights",
           "MarkGone", "SetQuotas", "UpdateMaintenance", "SetAgentState", "CheckpointResources"]


class RegistryError(StoreError):
    """The registry could not be read or written; for ZooKeeper, possibly fenced off."""


@attrs.define
class RegistryState:
    #: agent ID -> its AgentInfo JSON without the ID (see :func:`without_id`)
    agents: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    unreachable: dict[str, float] = attrs.field(factory=dict)
    frameworks: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    removed_frameworks: OrderedDict[str, float] = attrs.field(factory=OrderedDict)
    weights: dict[str, float] = attrs.field(factory=dict)
    #: agent ID -> the principal that registered it (agents admitted without one have none here)
    owners: dict[str, str] = attrs.field(factory=dict)
    #: agent ID -> when an operator marked it gone (it may never come back)
    gone: dict[str, float] = attrs.field(factory=dict, kw_only=True)
    #: role -> its QuotaConfig (JSON); roles without quota have none here
    quotas: dict[str, dict[str, Any]] = attrs.field(factory=dict, kw_only=True)
    #: the maintenance Schedule (JSON; {} when there is none)
    schedule: dict[str, Any] = attrs.field(factory=dict, kw_only=True)
    #: machine key (see :func:`machine_key`) -> MachineID JSON of the machines that are down
    down_machines: dict[str, dict[str, Any]] = attrs.field(factory=dict, kw_only=True)
    #: agent ID -> {"deactivated": bool, "drain_info": DrainInfo JSON} of agents deactivated or drained
    agent_states: dict[str, dict[str, Any]] = attrs.field(factory=dict, kw_only=True)
    #: agent ID -> its checkpointed resources (v1 Resource JSON) since an operation changed them
    resources: dict[str, list[Any]] = attrs.field(factory=dict, kw_only=True)

    def to_json(self) -> dict[str, Any]:
        return {"agents": self.agents, "unreachable": self.unreachable, "frameworks": self.frameworks,
                "removed_frameworks": dict(self.removed_frameworks), "weights": self.weights, "owners": self.owners,
                "gone": self.gone, "quotas": self.quotas, "schedule": self.schedule,
                "down_machines": self.down_machines, "agent_states": self.agent_states,
                "resources": self.resources}

    def copy(self) -> RegistryState:
        """A copy that mutations of this one do not change (they replace values, never edit them)."""
        return attrs.evolve(self, agents=dict(self.agents), unreachable=dict(self.unreachable),
                            frameworks=dict(self.frameworks), removed_frameworks=OrderedDict(self.removed_frameworks),
                            weights=dict(self.weights), owners=dict(self.owners), gone=dict(self.gone),
                            quotas=dict(self.quotas), down_machines=dict(self.down_machines),
                            agent_states=dict(self.agent_states), resources=dict(self.resources))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RegistryState:
        if not isinstance(data, dict):
            raise ValueError(f"a registry must be a JSON object, not {type(data).__name__}")
        agents = {agent_id: without_id(info) if isinstance(info, dict) else info
                  for agent_id, info in dict(data.get("agents", {})).items()}
        return cls(agents, dict(data.get("unreachable", {})),
                   dict(data.get("frameworks", {})), OrderedDict(data.get("removed_frameworks", {})),
                   dict(data.get("weights", {})), dict(data.get("owners", {})), gone=dict(data.get("gone", {})),
                   quotas=dict(data.get("quotas", {})), schedule=dict(data.get("schedule", {})),
                   down_machines=dict(data.get("down_machines", {})),
                   agent_states=dict(data.get("agent_states", {})),
                   resources=dict(data.get("resources", {})))


# -- mutations ---------------------------------------------------------------------------

def without_id(info: dict[str, Any]) -> dict[str, Any]:
    """An agent's registry entry as held in memory: its AgentInfo JSON without ``"id"`` (the entry's key is
    the ID; ten thousand ``{"value": ...}`` wrappers would say it again). The store's copy has it."""
    if "id" not in info:
        return info
    return {name: value for name, value in info.items() if name != "id"}


def with_id(agent_id: str, info: dict[str, Any]) -> dict[str, Any]:
    """An agent's registry entry as the store holds it (and Mesos's registry): its AgentInfo JSON with its ID."""
    return {**info, "id": {"value": agent_id}}


@attrs.frozen
class AdmitAgent:
    """An agent joins (or re-joins after being unreachable); ``principal`` is the one it authenticated
    as, which owns its ID from then on (None: it did not authenticate, and the ID's owner is kept).
    ``info`` is its AgentInfo JSON, kept without its ID (see :func:`without_id`)."""

    agent_id: str
    info: dict[str, Any] = attrs.field(converter=without_id)
    principal: str | None = None

    def __call__(self, state: RegistryState) -> None:
        state.agents[self.agent_id] = self.info
        state.unreachable.pop(self.agent_id, None)
        if self.principal is not None:
            state.owners[self.agent_id] = self.principal


@attrs.frozen
class MarkUnreachable:
    agent_id: str
    time: float

    def __call__(self, state: RegistryState) -> None:
        state.agents.pop(self.agent_id, None)
        state.unreachable[self.agent_id] = self.time


@attrs.frozen
class RemoveAgent:
    agent_id: str

    def __call__(self, state: RegistryState) -> None:
        state.agents.pop(self.agent_id, None)
        state.unreachable.pop(self.agent_id, None)
        state.owners.pop(self.agent_id, None)
        state.resources.pop(self.agent_id, None)


@attrs.frozen
class MarkGone:
    """An operator marked an agent gone: it is no longer admitted nor unreachable, and never comes back."""

    agent_id: str
    time: float

    def __call__(self, state: RegistryState) -> None:
        state.agents.pop(self.agent_id, None)
        state.unreachable.pop(self.agent_id, None)
        state.owners.pop(self.agent_id, None)
        state.resources.pop(self.agent_id, None)
        state.gone[self.agent_id] = self.time


@attrs.frozen
class CheckpointResources:
    """An operation (RESERVE, UNRESERVE, CREATE, DESTROY) left an agent with these checkpointed
    resources (v1 Resource JSON); they outlive its unreachability, not its removal."""

    agent_id: str
    resources: list[Any]

    def __call__(self, state: RegistryState) -> None:
        state.resources[self.agent_id] = self.resources


@attrs.frozen
class AddFramework:
    """A framework registered (or changed its FrameworkInfo)."""

    framework_id: str
    info: dict[str, Any]

    def __call__(self, state: RegistryState) -> None:
        state.frameworks[self.framework_id] = self.info


@attrs.frozen
class RemoveFramework:
    framework_id: str
    time: float

    def __call__(self, state: RegistryState) -> None:
        state.frameworks.pop(self.framework_id, None)
        state.removed_frameworks[self.framework_id] = self.time
        while len(state.removed_frameworks) > MAX_REMOVED_FRAMEWORKS:
            state.removed_frameworks.popitem(last=False)


@attrs.frozen
class SetWeights:
    weights: dict[str, float]

    def __call__(self, state: RegistryState) -> None:
        state.weights.update(self.weights)


@attrs.frozen
class SetQuotas:
    """Roles' quotas change together (UPDATE_QUOTA is all or nothing): role -> QuotaConfig JSON, or None
    for a role whose quota is removed."""

    quotas: dict[str, dict[str, Any] | None]

    def __call__(self, state: RegistryState) -> None:
        for role, config in self.quotas.items():
            if config is None:
                state.quotas.pop(role, None)
            else:
                state.quotas[role] = config


def machine_key(machine: dict[str, Any]) -> str:
    """The registry's name of a machine (MachineID JSON): its hostname in lower case and its IP."""
    return f"{str(machine.get('hostname', '')).lower()}|{machine.get('ip', '')}"


@attrs.frozen
class UpdateMaintenance:
    """The maintenance schedule changes (``schedule``, when given, replaces it) and machines go down or come up
    (``down``: machine key -> MachineID JSON, or None for one that is up again), all at once."""

    schedule: dict[str, Any] | None = None
    down: dict[str, dict[str, Any] | None] = attrs.field(factory=dict)

    def __call__(self, state: RegistryState) -> None:
        if self.schedule is not None:
            state.schedule = self.schedule
        for machine, entry in self.down.items():
            if entry is None:
                state.down_machines.pop(machine, None)
            else:
                state.down_machines[machine] = entry


@attrs.frozen
class SetAgentState:
    """An operator deactivated, reactivated or drains an agent: its state, or None when it has none left."""

    agent_id: str
    state: dict[str, Any] | None

    def __call__(self, state: RegistryState) -> None:
        if self.state is None:
            state.agent_states.pop(self.agent_id, None)
        else:
            state.agent_states[self.agent_id] = self.state


Mutation = (AdmitAgent | MarkUnreachable | RemoveAgent | AddFramework | RemoveFramework | SetWeights | MarkGone
            | SetQuotas | UpdateMaintenance | SetAgentState | CheckpointResources)


# -- the registry over a store -----------------------------------------------------------------

def key(identifier: str) -> str:
    """An ID as one path segment: unchanged unless it holds '/' or '%' or is '', '.' or '..' (so
    that no ID can name a section or escape it)."""
    escaped = identifier.replace("%", "%25").replace("/", "%2F")
    if escaped in ("", ".", ".."):
        return escaped.replace(".", "%2E") or "%"
    return escaped


def identifier(segment: str) -> str:
    """The ID a path segment made by :func:`key` stands for."""
    return "" if segment == "%" else unquote(segment)


def operations(state: RegistryState, mutation: Mutation) -> list[Operation]:
    """The store writes that make ``mutation`` of ``state`` durable (call before it changes ``state``)."""
    if isinstance(mutation, AdmitAgent):
        admitted: list[Operation] = [Put(f"agents/{key(mutation.agent_id)}",
                                         dump(with_id(mutation.agent_id, mutation.info))),
                                     Delete(f"unreachable/{key(mutation.agent_id)}")]
        if mutation.principal is not None:
            admitted.append(Put(f"owners/{key(mutation.agent_id)}", dump(mutation.principal)))
        return admitted
    if isinstance(mutation, MarkUnreachable):
        return [Delete(f"agents/{key(mutation.agent_id)}"),
                Put(f"unreachable/{key(mutation.agent_id)}", dump(mutation.time))]
    if isinstance(mutation, RemoveAgent):
        return [Delete(f"agents/{key(mutation.agent_id)}"), Delete(f"unreachable/{key(mutation.agent_id)}"),
                Delete(f"owners/{key(mutation.agent_id)}"), Delete(f"resources/{key(mutation.agent_id)}")]
    if isinstance(mutation, AddFramework):
        return [Put(f"frameworks/{key(mutation.framework_id)}", dump(mutation.info))]
    if isinstance(mutation, RemoveFramework):
        ops: list[Operation] = [Delete(f"frameworks/{key(mutation.framework_id)}")]
        # The oldest removed IDs beyond the bound are forgotten: find them on a copy of that list.
        probe = RegistryState(removed_frameworks=OrderedDict(state.removed_frameworks))
        mutation(probe)
        if mutation.framework_id in probe.removed_frameworks:
            ops.append(Put(f"removed/{key(mutation.framework_id)}", dump(mutation.time)))
        ops += [Delete(f"removed/{key(old)}") for old in state.removed_frameworks.keys() - probe.removed_frameworks]
        return ops
    if isinstance(mutation, SetWeights):
        return [Put("weights", dump({**state.weights, **mutation.weights}))]
    if isinstance(mutation, MarkGone):
        return [Delete(f"agents/{key(mutation.agent_id)}"), Delete(f"unreachable/{key(mutation.agent_id)}"),
                Delete(f"resources/{key(mutation.agent_id)}"),
                Put(f"gone/{key(mutation.agent_id)}", dump(mutation.time))]
    if isinstance(mutation, SetQuotas):
        return [Delete(f"quotas/{key(role)}") if config is None else Put(f"quotas/{key(role)}", dump(config))
                for role, config in sorted(mutation.quotas.items())]
    if isinstance(mutation, UpdateMaintenance):
        ops = [Put("maintenance/schedule", dump(mutation.schedule))] if mutation.schedule is not None else []
        for machine, entry in sorted(mutation.down.items()):
            path = f"maintenance/down/{key(machine)}"
            ops.append(Delete(path) if entry is None else Put(path, dump(entry)))
        return ops
    if isinstance(mutation, SetAgentState):
        path = f"agent_states/{key(mutation.agent_id)}"
        return [Delete(path) if mutation.state is None else Put(path, dump(mutation.state))]
    if isinstance(mutation, CheckpointResources):
        return [Put(f"resources/{key(mutation.agent_id)}", dump(mutation.resources))]
    raise TypeError(f"not a registry mutation: {mutation!r}")


@implementer(IRegistry)
class Registry:
    """The registry in ``store``.

    :attr:`state` includes every mutation applied, durable or not. Mutations that arrive while a
    commit is in flight are committed together by the next one (group commit), each built on what
    the previous ones made durable; when a commit fails, :attr:`state` goes back to what is durable
    plus what is still queued. ``legacy_file`` names a ``registry.json`` of earlier versions: when
    it exists, recovery imports it into the store once and renames it ``registry.json.imported``.
    """

    #: A write that fails for want of file descriptors (or memory) is tried again after this many seconds,
    #: doubling up to RETRY_MAX: a master that runs short of descriptors must not abort for it.
    RETRY_FIRST, RETRY_MAX = 0.1, 5.0

    def __init__(self, store: Any, legacy_file: str | None = None, clock: Any = None):
        self.store = store
        self.legacy_file = legacy_file
        self.clock = clock
        self._retry_delay = self.RETRY_FIRST
        self.state = RegistryState()
        #: what the store holds
        self._durable = RegistryState()
        self._queue: list[tuple[Mutation, defer.Deferred]] = []
        self._writing = False

    # -- recovery ----------------------------------------------------------------------------

    @defer.inlineCallbacks
    def recover(self) -> Any:
        try:
            if self.legacy_file is not None and os.path.exists(self.legacy_file):
                yield self._import(self.legacy_file)
            state = yield self._read()
        except RegistryError:
            raise
        except StoreError as exc:
            raise RegistryError(str(exc)) from None  # the store's errors say which store and why
        self.state, self._durable = state, state.copy()
        return state

    @defer.inlineCallbacks
    def _read(self) -> Any:
        state = RegistryState()
        sections: dict[str, dict[str, Any]] = {}
        for section in SECTIONS:
            sections[section] = {}
            names = yield self.store.children(section)
            # All at once: a store such as ZooKeeper answers them in one pipeline, where one at a time
            # would cost a round trip per agent before a new leader can take any.
            raws = yield defer.gatherResults([self.store.get(f"{section}/{name}") for name in names],
                                             consumeErrors=True).addErrback(_first_error)
            for name, raw in zip(names, raws, strict=True):
                if raw is None:
                    continue
                try:
                    value = json.loads(raw or b"null")
                    if section in ("unreachable", "removed"):
                        value = float(value)
                    elif section == "owners" and not isinstance(value, str):
                        raise ValueError("an owner must be a principal")
                    elif section == "resources" and not isinstance(value, list):
                        raise ValueError("checkpointed resources must be a JSON array")
                    elif section == "agents" and isinstance(value, dict):
                        value = without_id(value)
                except (ValueError, TypeError) as exc:
                    raise RegistryError(f"cannot read the registry: {section}/{name} holds {raw[:80]!r} "
                                        f"({exc})") from None
                sections[section][identifier(name)] = value
        state.agents, state.unreachable = sections["agents"], sections["unreachable"]
        state.frameworks = sections["frameworks"]
        state.owners = sections["owners"]
        state.resources = sections["resources"]
        # Oldest first, as they were removed: that is the order in which the bound forgets them.
        state.removed_frameworks = OrderedDict(sorted(sections["removed"].items(), key=lambda kv: (kv[1], kv[0])))
        for name in (yield self.store.children("gone")):
            raw = yield self.store.get(f"gone/{name}")
            if raw is None:
                continue
            try:
                state.gone[identifier(name)] = float(json.loads(raw or b"null"))
            except (ValueError, TypeError) as exc:
                raise RegistryError(f"cannot read the registry: gone/{name} holds {raw[:80]!r} ({exc})") from None
        for name in (yield self.store.children("quotas")):
            raw = yield self.store.get(f"quotas/{name}")
            if raw is None:
                continue
            try:
                config = json.loads(raw)
                if not isinstance(config, dict):
                    raise ValueError("a quota must be a JSON object")
            except ValueError as exc:
                raise RegistryError(f"cannot read the registry: quotas/{name} holds {raw[:80]!r} ({exc})") from None
            state.quotas[identifier(name)] = config
        for section, into in (("maintenance/down", state.down_machines), ("agent_states", state.agent_states)):
            for name in (yield self.store.children(section)):
                raw = yield self.store.get(f"{section}/{name}")
                if raw is not None:
                    into[identifier(name)] = _object(raw, f"{section}/{name}")
        schedule = yield self.store.get("maintenance/schedule")
        if schedule is not None:
            state.schedule = _object(schedule, "maintenance/schedule")
        weights = yield self.store.get("weights")
        try:
            state.weights = json.loads(weights) if weights else {}
        except ValueError as exc:
            raise RegistryError(f"cannot read the registry: weights holds {weights[:80]!r} ({exc})") from None
        return state

    @defer.inlineCallbacks
    def _import(self, path: str) -> Any:
        try:
            with open(path, "rb") as f:
                state = RegistryState.from_json(json.load(f))
            for section in (state.agents, state.frameworks):
                if not all(isinstance(info, dict) for info in section.values()):
                    raise ValueError("agents and frameworks must be JSON objects")
        except (OSError, ValueError, TypeError) as exc:
            raise RegistryError(f"cannot import the registry {path}: {exc}") from None
        ops: list[Operation] = [Delete(section) for section in (*SECTIONS, "gone", "weights", "quotas", "maintenance",
                                                                 "agent_states")]
        empty = RegistryState()
        for mutation in _mutations_of(state):
            ops += operations(empty, mutation)
            mutation(empty)
        yield self.store.commit(ops)
        os.replace(path, f"{path}.imported")
        log.info("Imported the registry of an earlier version from {path} ({a} agents, {f} frameworks); "
                 "the file is kept as {path}.imported", path=path, a=len(state.agents), f=len(state.frameworks))

    # -- mutations ----------------------------------------------------------------------------

    def apply(self, mutation: Mutation) -> defer.Deferred:
        mutation(self.state)
        d: defer.Deferred = defer.Deferred()
        self._queue.append((mutation, d))
        if not self._writing:
            self._write()
        return d

    def _write(self) -> None:
        batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        # Only the removed IDs and the weights shape the writes: build them on a copy of those.
        probe = RegistryState(removed_frameworks=OrderedDict(self._durable.removed_frameworks),
                              weights=dict(self._durable.weights))
        ops: list[Operation] = []
        for mutation, _ in batch:
            ops += operations(probe, mutation)
            mutation(probe)
        self._writing = True
        d = defer.maybeDeferred(self.store.commit, ops)
        d.addBoth(self._written, batch)

    def _written(self, result: Any, batch: list[tuple[Mutation, defer.Deferred]]) -> None:
        if isinstance(result, Failure) and _transient(result.value):
            # Out of descriptors: the same batch again, later; nothing is reported, nothing aborts.
            delay, self._retry_delay = self._retry_delay, min(self._retry_delay * 2, self.RETRY_MAX)
            log.warn("Registry write failed ({why}); retrying in {delay}s", why=result.getErrorMessage(), delay=delay)
            self._queue[:0] = batch
            self._writing = True
            clock = self.clock
            if clock is None:
                from twisted.internet import reactor as clock
            clock.callLater(delay, self._retry)
            return
        self._retry_delay = self.RETRY_FIRST
        self._writing = False
        if isinstance(result, Failure):
            if result.check(StoreFenced):
                message = f"registry write refused ({result.getErrorMessage()}); this master may no longer lead"
            else:
                message = f"cannot write the registry: {result.getErrorMessage() or result.type.__name__}"
            # Forget the batch: what is still queued is redone on what the store holds.
            self.state = self._durable.copy()
            for mutation, _ in self._queue:
                mutation(self.state)
        else:
            for mutation, _ in batch:
                mutation(self._durable)
        for _, d in batch:
            if isinstance(result, Failure):
                d.errback(RegistryError(message))
            else:
                d.callback(None)
        # A waiter's callback may have started the next write already: never two at once.
        if self._queue and not self._writing:
            self._write()


    def _retry(self) -> None:
        self._writing = False
        if self._queue:
            self._write()


def _transient(error: BaseException | None) -> bool:
    """Whether ``error`` (or what caused it) is a lack of descriptors or memory, which passes."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, OSError) and error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
            return True
        # Stores wrap OS errors in messages of their own (StoreError "...: [Errno 24] Too many open files").
        if any(os.strerror(code) in str(error) for code in (errno.EMFILE, errno.ENFILE)):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


def _mutations_of(state: RegistryState) -> list[Mutation]:
    """Mutations that build ``state`` from nothing."""
    owners = {agent_id: owner for agent_id, owner in state.owners.items() if isinstance(owner, str)}
    mutations: list[Mutation] = [AdmitAgent(agent_id, info, owners.pop(agent_id, None))
                                 for agent_id, info in state.agents.items()]
    # Unreachable agents keep their owners: admitted with them first, then marked unreachable.
    mutations += [AdmitAgent(agent_id, {}, owners.pop(agent_id)) for agent_id in state.unreachable
                  if agent_id in owners]
    mutations += [MarkUnreachable(agent_id, float(time)) for agent_id, time in state.unreachable.items()]
    mutations += [AddFramework(framework_id, info) for framework_id, info in state.frameworks.items()]
    mutations += [RemoveFramework(framework_id, float(time)) for framework_id, time in
                  sorted(state.removed_frameworks.items(), key=lambda kv: (kv[1], kv[0]))]
    if state.weights:
        mutations.append(SetWeights({role: float(weight) for role, weight in state.weights.items()}))
    mutations += [MarkGone(agent_id, float(time)) for agent_id, time in state.gone.items()]
    if state.quotas:
        mutations.append(SetQuotas(dict(state.quotas)))
    if state.schedule or state.down_machines:
        mutations.append(UpdateMaintenance(dict(state.schedule), dict(state.down_machines)))
    mutations += [SetAgentState(agent_id, entry) for agent_id, entry in state.agent_states.items()]
    mutations += [CheckpointResources(agent_id, resources) for agent_id, resources in state.resources.items()
                  if isinstance(resources, list)]
    return mutations


def _object(raw: bytes, where: str) -> dict[str, Any]:
    """A JSON object read from the registry; RegistryError when it is none."""
    try:
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise RegistryError(f"cannot read the registry: {where} holds {raw[:80]!r} ({exc})") from None
    return value


class InMemoryRegistry(Registry):
    """Not durable at all: for tests and for masters with ``--registry=in_memory`` (Mesos's ``in_memory``)."""

    def __init__(self) -> None:
        super().__init__(MemoryStateStore())


def _first_error(failure: Any) -> Any:
    """gatherResults's FirstError unwrapped: the store's own error, as reading one at a time raised it."""
    if failure.check(defer.FirstError):
        return failure.value.subFailure
    return failure
