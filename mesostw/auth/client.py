"""The client's side of CRAM-MD5 over Perspective Broker (agents and PB scheduler drivers)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from mesostw.auth.crammd5 import respond
from mesostw.auth.credentials import Credential


@defer.inlineCallbacks
def authenticate(root: Any, credential: Credential) -> Any:
    """Authenticate a master connection's root object; fires with the principal, fails with the refusal."""
    mechanisms = yield root.callRemote("authenticationMechanisms")
    if "CRAM-MD5" not in mechanisms:
        raise ValueError(f"the master offers no CRAM-MD5 (only {', '.join(mechanisms) or 'nothing'})")
    challenge = yield root.callRemote("authenticate", "CRAM-MD5")
    principal = yield root.callRemote("authenticationStep", respond(credential, challenge))
    return principal
