"""The master's durable state: admitted agents, live framework IDs, weights.

Everything a new leading master needs to know to take over is here (Mesos's
registry); the rest is rebuilt from agents and frameworks as they come back.
A change is durable when :meth:`IRegistry.apply` fires, and the master
acknowledges nothing before that. Providers: in memory (tests, no
``--work_dir``), an atomically replaced file under ``--work_dir``, and
ZooKeeper (:mod:`mesostw.zk.registry`).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Any

import attrs
from twisted.internet import defer, threads
from twisted.logger import Logger
from zope.interface import Interface, implementer

log = Logger()

#: How many removed framework IDs are remembered (so that they cannot come back).
MAX_REMOVED_FRAMEWORKS = 1000


class RegistryError(Exception):
    """The registry could not be read or written; for ZooKeeper, possibly fenced off."""


class IRegistry(Interface):
    """Where the master's durable state lives."""

    def recover():
        """Read the state; fires with a :class:`RegistryState`."""

    def apply(mutation):
        """Make one mutation durable; fires once it is, fails with RegistryError if it cannot be."""


@attrs.define
class RegistryState:
    agents: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    unreachable: dict[str, float] = attrs.field(factory=dict)
    frameworks: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    removed_frameworks: OrderedDict[str, float] = attrs.field(factory=OrderedDict)
    weights: dict[str, float] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"agents": self.agents, "unreachable": self.unreachable, "frameworks": self.frameworks,
                "removed_frameworks": dict(self.removed_frameworks), "weights": self.weights}

    def copy(self) -> RegistryState:
        """A copy that mutations of this one do not change (they replace values, never edit them)."""
        return RegistryState(dict(self.agents), dict(self.unreachable), dict(self.frameworks),
                             OrderedDict(self.removed_frameworks), dict(self.weights))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RegistryState:
        if not isinstance(data, dict):
            raise ValueError(f"a registry must be a JSON object, not {type(data).__name__}")
        return cls(dict(data.get("agents", {})), dict(data.get("unreachable", {})),
                   dict(data.get("frameworks", {})), OrderedDict(data.get("removed_frameworks", {})),
                   dict(data.get("weights", {})))


# -- mutations ---------------------------------------------------------------------------

@attrs.frozen
class AdmitAgent:
    """An agent joins (or re-joins after being unreachable)."""

    agent_id: str
    info: dict[str, Any]

    def __call__(self, state: RegistryState) -> None:
        state.agents[self.agent_id] = self.info
        state.unreachable.pop(self.agent_id, None)


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


Mutation = AdmitAgent | MarkUnreachable | RemoveAgent | AddFramework | RemoveFramework | SetWeights


# -- providers -----------------------------------------------------------------------------

@implementer(IRegistry)
class InMemoryRegistry:
    """Not durable at all: for tests and for masters without ``--work_dir`` (Mesos's ``in_memory``)."""

    def __init__(self) -> None:
        self.state = RegistryState()

    def recover(self) -> defer.Deferred:
        return defer.succeed(self.state)

    def apply(self, mutation: Mutation) -> defer.Deferred:
        mutation(self.state)
        return defer.succeed(None)


@implementer(IRegistry)
class FileRegistry:
    """A JSON file replaced atomically (write, fsync, rename, fsync the directory).

    Mutations that arrive while a write is in flight are committed together by
    the next write (group commit), so a burst of registrations costs one fsync
    per batch, not one each.
    """

    def __init__(self, reactor: Any, path: str):
        self.reactor = reactor
        self.path = path
        self.state = RegistryState()
        #: what the file holds (the state to go back to when a write fails)
        self._durable = RegistryState()
        self._writing = False
        self._waiting: list[tuple[Mutation, defer.Deferred]] = []

    def recover(self) -> defer.Deferred:
        def read() -> RegistryState:
            try:
                with open(self.path) as f:
                    return RegistryState.from_json(json.load(f))
            except FileNotFoundError:
                return RegistryState()
            except (OSError, ValueError, TypeError) as exc:
                raise RegistryError(f"cannot read the registry {self.path}: {exc}") from None

        def recovered(state: RegistryState) -> RegistryState:
            self.state, self._durable = state, state.copy()
            return state

        d = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), read)
        return d.addCallback(recovered)

    def apply(self, mutation: Mutation) -> defer.Deferred:
        mutation(self.state)
        d: defer.Deferred = defer.Deferred()
        self._waiting.append((mutation, d))
        if not self._writing:
            self._write()
        return d

    def _write(self) -> None:
        self._writing = True
        batch, self._waiting = self._waiting, []
        written = self.state.copy()
        payload = json.dumps(written.to_json(), separators=(",", ":")).encode()
        d = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), write_atomically, self.path,
                                      payload)

        def done(result: Any) -> None:
            self._writing = False
            if isinstance(result, BaseException):
                # Forget the batch: what is still queued is redone on what the file holds.
                self.state = self._durable.copy()
                for mutation, _ in self._waiting:
                    mutation(self.state)
            else:
                self._durable = written
            for _, waiter in batch:
                if isinstance(result, BaseException):
                    waiter.errback(RegistryError(f"cannot write the registry {self.path}: {result}"))
                else:
                    waiter.callback(None)
            # A waiter's callback may have started the next write already: never two at once.
            if self._waiting and not self._writing:
                self._write()

        d.addCallbacks(done, lambda failure: done(failure.value))


def write_atomically(path: str, payload: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = f"{path}.tmp"
    try:
        with open(temporary, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        # A failed write (e.g. ENOSPC) leaves the old registry as it was, and no partial file behind.
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
