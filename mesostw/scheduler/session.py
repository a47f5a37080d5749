"""The master's side of one scheduler connection, over an :class:`~mesostw.interfaces.IMasterEndpoint`.

A scheduler reaches the master three ways: Perspective Broker (:mod:`mesostw.master.pb`), the v1 HTTP
API (:mod:`mesostw.master.scheduler_http`) and, inside the master's process, the local driver
(:mod:`mesostw.scheduler.local`). Each keeps one :class:`SchedulerSession` per connection: the session
checks that this master leads and that the connection is authenticated when it must be, subscribes
with the connection's principal (the master's ACLs judge it), then takes Calls for that framework only.
The transports frame bytes and answer refusals in their own way.

This module imports nothing of :mod:`mesostw.master`, so that drivers in the master's process depend
on the endpoint interface alone.
"""

from __future__ import annotations

from mesostw.interfaces import IFrameworkLink, IMasterEndpoint
from mesostw.model import scheduler_api as api


class SubscriptionRefused(Exception):
    """The master will not take this subscription; the message says why."""


class NotLeading(SubscriptionRefused):
    """This master does not lead (yet): ask again, perhaps elsewhere."""


class CallRefused(Exception):
    """The master will not act on this Call; the message says why."""


class SchedulerSession:
    """One scheduler connection: subscribe (perhaps again), then Calls for the subscribed framework.

    ``authentication_required``: the connection may subscribe only once :meth:`authenticated`
    (PB with ``--authenticate_frameworks``; HTTP answers 401 before a session exists).
    """

    def __init__(self, endpoint: IMasterEndpoint, principal: str | None = None,
                 authentication_required: bool = False):
        self.endpoint = endpoint
        self.principal = principal
        self.authentication_required = authentication_required
        self.framework_id: str | None = None
        self.link: IFrameworkLink | None = None

    def authenticated(self, principal: str) -> str:
        """The connection proved it is ``principal``."""
        self.principal = principal
        return principal

    def check_leading(self) -> None:
        if not self.endpoint.leading:
            raise NotLeading("this master is not the leader")

    def subscribe(self, link: IFrameworkLink, call: api.Subscribe) -> str:
        """Subscribe the framework whose events go to ``link``; returns its ID or raises SubscriptionRefused."""
        self.check_leading()
        if self.authentication_required and self.principal is None:
            raise SubscriptionRefused("Framework is not authenticated: this master requires authentication (CRAM-MD5)")
        framework_id: str = self.endpoint.subscribe(link, call.framework_info, self.principal, call.force)
        if self.framework_id is not None and self.framework_id != framework_id and self.link is not None:
            self.endpoint.disconnected(self.framework_id, self.link)  # this connection now serves another one
        self.framework_id, self.link = framework_id, link
        return framework_id

    def call(self, framework_id: str | None, call: api.Call) -> None:
        """A Call of the subscribed framework; raises CallRefused."""
        if self.framework_id is None:
            raise CallRefused("subscribe first")
        if framework_id != self.framework_id:
            raise CallRefused("framework_id does not match the subscribed framework")
        if isinstance(call, api.Subscribe):
            raise CallRefused("SUBSCRIBE goes through subscribe()")
        self.endpoint.call(framework_id, call)

    def disconnected(self) -> None:
        """The connection went away."""
        if self.framework_id is not None and self.link is not None:
            self.endpoint.disconnected(self.framework_id, self.link)
