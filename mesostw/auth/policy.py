"""What a master enforces, built from its flags: who must authenticate, against which
credentials, and which ACLs authorize what.

Pure policy: no transport. The PB and HTTP authentication steps that apply it live in
:mod:`mesostw.auth.pb` and :mod:`mesostw.auth.http`.
"""

from __future__ import annotations

from typing import Any

import attrs

from mesostw.auth.acls import Authorizer
from mesostw.auth.crammd5 import CredentialsChecker, FailureThrottle
from mesostw.auth.credentials import load_credentials


@attrs.define
class Security:
    """Who must authenticate (per transport and role), the credentials to check and the ACLs."""

    checker: CredentialsChecker | None = None
    authenticate_frameworks: bool = False
    authenticate_agents: bool = False
    authenticate_http_frameworks: bool = False
    authenticate_http_readonly: bool = False
    authenticate_http_readwrite: bool = False
    authorizer: Authorizer = attrs.field(factory=Authorizer)
    throttle: FailureThrottle | None = None

    @classmethod
    def from_config(cls, config: Any, clock: Any) -> Security:
        checker = CredentialsChecker(load_credentials(config.credentials)) if config.credentials else None
        return cls(checker, config.authenticate_frameworks, config.authenticate_agents,
                   config.authenticate_http_frameworks, config.authenticate_http_readonly,
                   config.authenticate_http_readwrite, Authorizer.from_flag(config.acls), throttle_for(config, clock))

    @property
    def frameworks_must_authenticate(self) -> bool:
        """Whether every framework subscription, PB and HTTP alike, must be authenticated:
        ``--authenticate_frameworks`` covers every way a framework subscribes."""
        return self.authenticate_frameworks

    @property
    def http_frameworks_must_authenticate(self) -> bool:
        """Whether HTTP framework subscriptions must be (``--authenticate_http_frameworks`` alone: only these)."""
        return self.authenticate_frameworks or self.authenticate_http_frameworks

    @classmethod
    def for_agent(cls, config: Any, clock: Any) -> Security:
        """An agent's: HTTP Basic against ``--http_credentials`` and the ``access_sandboxes`` ACL of ``--acls``."""
        credentials = getattr(config, "http_credentials", None)
        checker = CredentialsChecker(load_credentials(credentials)) if credentials else None
        return cls(checker, authenticate_http_readonly=getattr(config, "authenticate_http_readonly", False),
                   authorizer=Authorizer.from_flag(getattr(config, "acls", None)), throttle=throttle_for(config, clock))

    def authorize(self, action: str, principal: str | None, obj: str | None) -> bool:
        """Whether the ACLs let ``principal`` (None: anonymous) do ``action`` on ``obj``."""
        return self.authorizer.authorize(action, principal, obj)


def throttle_for(config: Any, clock: Any) -> FailureThrottle:
    """The failure throttle of ``--authentication_failure_delay`` and ``--authentication_failure_delay_max``."""
    return FailureThrottle(clock, base=getattr(config, "authentication_failure_delay", 0.5),
                           cap=getattr(config, "authentication_failure_delay_max", 30.0))
