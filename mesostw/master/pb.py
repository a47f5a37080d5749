"""The master over Perspective Broker: agents and PB scheduler drivers connect here.

Each connection gets its own root object (:class:`MasterConnection`); once an
agent registers or a framework subscribes on it, the connection is bound to
that agent or framework, and later messages on it act for that one only. A
connection that neither authenticates, nor registers, nor subscribes within
``--connection_setup_timeout`` is dropped by the port (:func:`mesostw.wire.switch.bound`).
Payloads are JSON bytes (see :mod:`mesostw.wire.pb`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.spread import pb
from zope.interface import implementer

from mesostw.auth.crammd5 import AuthenticationError
from mesostw.auth.pb import PBAuthentication
from mesostw.interfaces import IAgentLink, IFrameworkLink
from mesostw.master.master import RECOVERING, Master, RegistrationRefused
from mesostw.model import internal
from mesostw.model import scheduler_api as api
from mesostw.model.info import MasterInfo
from mesostw.model.validation import ValidationError
from mesostw.scheduler.session import CallRefused, NotLeading, SchedulerSession, SubscriptionRefused
from mesostw.wire.pb import (
    Batcher,
    NotLeaderError,
    RefusedError,
    decode,
    decode_batch,
    encode,
    encode_errors,
    parse_messages,
    reference,
)
from mesostw.wire.switch import bound

log = Logger()


@implementer(IAgentLink)
class PBAgentLink(Batcher):
    """The master's handle on an agent's remote reference; messages are batched per turn (it is its own
    :class:`Batcher`: a master holds one per agent)."""

    __slots__ = ("remote", "ip", "__weakref__")

    def __init__(self, remote: pb.RemoteReference, clock: Any, ip: str | None = None):
        super().__init__(clock, None)
        self.remote = remote
        #: the address the agent's connection comes from (which machine it runs on, for maintenance)
        self.ip = ip

    def _deliver(self, payload: Any) -> Any:
        return self.remote.callRemote("messages", payload)

    def runTasks(self, framework_info, tasks, executor=None):
        self.add(internal.run_tasks(framework_info, list(tasks), executor))

    def killTask(self, framework_id, task_id, grace_period=None):
        self.add(internal.kill_task(framework_id, task_id, grace_period))

    def acknowledge(self, acknowledgements):
        for framework_id, task_id, uuid in acknowledgements:
            self.add(internal.acknowledgement(framework_id, task_id, uuid))

    def shutdownFramework(self, framework_id):
        self.add(internal.shutdown_framework(framework_id))

    def shutdownExecutor(self, framework_id, executor_id):
        self.add(internal.shutdown_executor(framework_id, executor_id))

    def frameworkMessage(self, framework_id, executor_id, data):
        self.add(internal.framework_to_executor(framework_id, executor_id, data))

    def ping(self):
        self.flush()
        # Fails (rather than raises) once the connection is gone, as the interface promises.
        return defer.maybeDeferred(self.remote.callRemote, "ping")

    def removed(self, reason):
        self.add(internal.agent_removed(reason))

    def checkpointResources(self, resources):
        self.add(internal.checkpoint_resources(resources))


@implementer(IFrameworkLink)
class PBFrameworkLink:
    """The master's handle on a PB scheduler driver: events are batched per turn."""

    def __init__(self, remote: pb.RemoteReference, clock: Any, principal: str | None = None):
        self.remote = remote
        self.principal = principal
        self._batch = Batcher(clock, lambda payload: remote.callRemote("events", payload))

    def send(self, event):
        self._batch.add(event)

    def close(self):
        self._batch.flush()
        broker = self.remote.broker
        if broker.transport is not None:
            broker.transport.loseConnection()


#: message type -> the name of the master's handler (see :func:`mesostw.model.internal.parse_for_master`)
AGENT_HANDLERS = {
    internal.STATUS_UPDATE: "statusUpdates",
    internal.EXITED_EXECUTOR: "exitedExecutor",
    internal.EXECUTOR_TO_FRAMEWORK: "executorMessage",
    internal.UNREGISTER_AGENT: "unregisterAgent",
}


class MasterConnection(pb.Referenceable):
    """The root object one PB connection sees.

    A master holds one per agent (ten thousand of them): what only some connections need (the scheduler's
    side, the authentication exchange) is made when first asked for, and what most never change is a
    class-level default."""

    agent_id: str | None = None
    agent_link: PBAgentLink | None = None
    _session: SchedulerSession | None = None
    _auth: PBAuthentication | None = None
    _gone = False

    def __init__(self, master: Master, broker: pb.Broker, clock: Any,
                 leader_pid: Callable[[], str | None] = lambda: None):
        self.leader_pid = leader_pid
        self.master = master
        self.broker = broker
        self.clock = clock
        broker.notifyOnDisconnect(self)  # itself rather than a bound method kept per connection (__call__)

    @property
    def session(self) -> SchedulerSession:
        """The scheduler's side of this connection (a framework subscribes on it)."""
        if self._session is None:
            self._session = SchedulerSession(self.master,
                                             authentication_required=self.master.security.authenticate_frameworks)
        return self._session

    @property
    def auth(self) -> PBAuthentication:
        """This connection's CRAM-MD5 authentication."""
        if self._auth is None:
            self._auth = PBAuthentication(self.master.security, self.clock, self._peer, self._authentication_failed)
        return self._auth

    def _principal(self) -> str | None:
        """The principal this connection authenticated as (None: it did not)."""
        return self._auth.principal if self._auth is not None else None

    def _framework_id(self) -> str | None:
        return self._session.framework_id if self._session is not None else None

    def _authentication_failed(self) -> None:
        self.master.metrics["authentication_failures"] += 1

    def _peer_ip(self) -> str | None:
        peer = self._peer()
        return None if peer == "unknown" else peer

    def _peer(self) -> str:
        transport = getattr(self.broker, "transport", None)
        return getattr(transport.getPeer(), "host", "unknown") if transport is not None else "unknown"

    # -- authentication (SASL CRAM-MD5) ---------------------------------------------

    def remote_authenticationMechanisms(self) -> list[str]:
        return self.auth.mechanisms()

    def remote_authenticate(self, mechanism: Any) -> bytes:
        """Start a CRAM-MD5 exchange; answers with a fresh challenge."""
        try:
            return self.auth.start(mechanism)
        except AuthenticationError as exc:
            raise RefusedError(f"authentication error: {exc}") from None

    def remote_authenticationStep(self, response: Any) -> defer.Deferred:
        """Answer the challenge; fires with the principal, or fails (late, when failures repeat)."""
        def failed(failure: Any) -> None:
            if failure.check(AuthenticationError):
                raise RefusedError(f"authentication error: {failure.getErrorMessage()}")
            raise RefusedError("authentication failed")

        return self.auth.step(response).addCallbacks(self._authenticated, failed)

    def _authenticated(self, principal: str) -> str:
        bound(self.broker)
        return self.session.authenticated(principal)

    def _check_authenticated(self, required: bool, who: str) -> None:
        if required and self._principal() is None:
            raise RefusedError(f"{who} is not authenticated: this master requires authentication (CRAM-MD5)")

    # -- agents ----------------------------------------------------------------

    def _check_leading(self) -> None:
        if not self.master.leading:
            raise self._not_leader()

    def _not_leader(self) -> NotLeaderError:
        return NotLeaderError(f"this master is not the leader (the leader is {self.leader_pid() or 'unknown'})")

    def _when_may_join(self, register: Callable[[], Any]) -> Any:
        """``register()`` now on the leader; once the registry is recovered on a master elected and still
        reading it (the agents and frameworks of a failover wait for it rather than back off and come
        later); refused on any other master."""
        if self.master.leading:
            return register()
        if self.leader_pid() == RECOVERING:
            d = self.master.whenLeading().addCallback(self._still_connected)
            return d.addCallback(lambda _: register())
        raise self._not_leader()

    def _still_connected(self, _: Any) -> None:
        """A peer that went away while it waited is not registered (nothing would hear it leave)."""
        if self._gone:
            raise pb.PBConnectionLost("the peer went away while the registry was recovered")

    def remote_registerAgent(self, agent: pb.RemoteReference, payload: bytes) -> defer.Deferred:
        registration = self._read_registration(payload)
        if registration[0].id is not None:
            raise RefusedError("a new agent must not carry an ID; re-register instead")
        return self._when_may_join(lambda: self._register_agent(agent, registration))

    def remote_reregisterAgent(self, agent: pb.RemoteReference, payload: bytes) -> defer.Deferred:
        registration = self._read_registration(payload)
        if registration[0].id is None:
            raise RefusedError("re-registration needs the agent's ID")
        return self._when_may_join(lambda: self._reregister_agent(agent, registration))

    def _read_registration(self, payload: bytes) -> tuple:
        """A registration, checked and parsed at once: bad input is refused before any wait, and the agents
        of a failover are read while the elected master still reads the registry, not after."""
        if not self.master.leading and self.leader_pid() != RECOVERING:
            raise self._not_leader()
        self._check_authenticated(self.master.security.authenticate_agents, "Agent")
        self._check_no_framework()
        try:
            return internal.parse_registration(decode(payload))
        except ValidationError as exc:
            raise RefusedError(f"invalid registration: {exc}") from None

    def _check_no_framework(self) -> None:
        if self._framework_id() is not None:
            raise RefusedError("this connection belongs to a framework")

    def _register_agent(self, agent: pb.RemoteReference, registration: tuple) -> defer.Deferred:
        self._check_no_framework()
        info, version, _, _, _ = registration
        link = PBAgentLink(reference(agent, "the agent"), self.clock, self._peer_ip())
        d = self.master.registerAgent(link, info, version, self._principal())
        d.addCallback(self._agent_bound, link)
        d.addCallback(lambda result: encode(internal.registered(*result)))
        d.addErrback(self._refused)
        return d

    def _reregister_agent(self, agent: pb.RemoteReference, registration: tuple) -> defer.Deferred:
        self._check_no_framework()
        info, version, tasks, executors, frameworks = registration
        link = PBAgentLink(reference(agent, "the agent"), self.clock, self._peer_ip())
        d = self.master.reregisterAgent(link, info, tasks, executors, frameworks, version, self._principal())
        d.addCallback(lambda master_info: self._agent_bound((info.id, master_info), link))
        d.addCallback(lambda result: _reregistered(result[1]))
        d.addErrback(self._refused)
        return d

    def _agent_bound(self, result: tuple, link: PBAgentLink) -> tuple:
        self.agent_id, self.agent_link = result[0], link
        bound(self.broker)
        return result

    def remote_messages(self, payload: bytes) -> None:
        if self.agent_id is None:
            raise RefusedError("register first")
        parsed, dropped = parse_messages(payload, internal.parse_for_master, f"agent {self.agent_id}")
        self.master.metrics["invalid_messages"] += dropped
        for kind, args in parsed:
            getattr(self.master, AGENT_HANDLERS[kind])(self.agent_id, *args)

    # -- frameworks ---------------------------------------------------------------

    def remote_subscribe(self, scheduler: pb.RemoteReference, payload: bytes) -> Any:
        """Subscribe the framework; on a master elected and still recovering the registry, once it is
        recovered (as agents wait: refused, the driver would back off and come back later)."""
        if not self.master.leading and self.leader_pid() != RECOVERING:
            raise self._not_leader()
        if self.agent_id is not None:
            raise RefusedError("this connection belongs to an agent")
        try:
            _, call = api.parse_call(decode(payload))
        except ValidationError as exc:
            raise RefusedError(f"invalid SUBSCRIBE: {exc}") from None
        if not isinstance(call, api.Subscribe):
            raise RefusedError("the first call must be SUBSCRIBE")
        return self._when_may_join(lambda: self._subscribe(scheduler, call))

    def _subscribe(self, scheduler: pb.RemoteReference, call: api.Subscribe) -> None:
        if self.agent_id is not None:
            raise RefusedError("this connection belongs to an agent")
        link = PBFrameworkLink(reference(scheduler, "the scheduler"), self.clock, self.session.principal)
        try:
            self.session.subscribe(link, call)
        except NotLeading:
            raise self._not_leader() from None
        except SubscriptionRefused as exc:
            raise RefusedError(str(exc)) from None
        bound(self.broker)

    def remote_calls(self, payload: bytes) -> bytes:
        """A batch of Calls from the subscribed framework; returns the errors, one per refused call."""
        if self._framework_id() is None:
            raise RefusedError("subscribe first")
        try:
            calls = decode_batch(payload, "calls")
        except ValidationError as exc:
            raise RefusedError(str(exc)) from None
        errors = []
        for data in calls:
            try:
                self.session.call(*api.parse_call(data))
            except (ValidationError, CallRefused) as exc:
                self.master.metrics["invalid_calls"] += 1
                errors.append(str(exc))
        return encode_errors(errors)

    # -- connection -------------------------------------------------------------

    def _refused(self, failure: Any) -> None:
        if failure.check(RegistrationRefused):
            raise RefusedError(failure.getErrorMessage())
        return failure

    def __call__(self) -> None:
        """The connection is lost (the broker's disconnect notifier)."""
        self._disconnected()

    def _disconnected(self) -> None:
        self._gone = True
        if self._auth is not None:
            self._auth.disconnected()
        if self.agent_id is not None:
            self.master.agentDisconnected(self.agent_id, self.agent_link)
        if self._session is not None:
            self._session.disconnected()


@functools.lru_cache(maxsize=4)
def _reregistered(master: MasterInfo) -> bytes:
    """The answer to a re-registration: the same for every agent of a failover (encoded once)."""
    return encode(internal.registered(None, master))


@implementer(pb.IPBRoot)
class MasterRoot:
    """Gives every PB connection its own :class:`MasterConnection`."""

    def __init__(self, master: Master, clock: Any, leader_pid: Callable[[], str | None] = lambda: None):
        self.master, self.clock, self.leader_pid = master, clock, leader_pid

    def rootObject(self, broker: pb.Broker) -> MasterConnection:
        return MasterConnection(self.master, broker, self.clock, self.leader_pid)

