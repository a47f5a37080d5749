"""Who may register what with the master: the security decisions of agent and framework admission.

Pure functions of the :class:`~mesostw.auth.policy.Security` policy, the principal a connection
proved (None: it did not authenticate) and what the master already knows. Each returns None to
admit, or the reason to refuse; :class:`~mesostw.master.agents.AgentManager` and
:class:`~mesostw.master.frameworks.FrameworkManager` act on the answer.

- An agent needs the ``register_agents`` ACL for its principal, on registration and re-registration.
- An agent ID belongs to the principal that registered it: a re-registration with that ID by
  another principal (or by none) is refused. An ID with no known owner (admitted before owners were
  kept, or without authentication) is taken by its next authenticated re-registration.
- A framework's declared principal must be the one it authenticated as; ACLs judge the proved
  principal only, never a claimed one.
- A framework ID belongs to the principal that subscribed it: only that principal may subscribe
  with it again (fail over, or take it back after a master failover).
"""

from __future__ import annotations

from collections.abc import Mapping

from mesostw.auth.policy import Security
from mesostw.model.info import FrameworkInfo


def agent_refusal(security: Security, principal: str | None, agent_id: str | None,
                  owners: Mapping[str, str | None]) -> str | None:
    """Why an agent authenticated as ``principal`` may not (re-)register as ``agent_id`` (None: new)."""
    if not security.authorize("register_agents", principal, None):
        return f"Principal {principal or '(none)'} is not authorized to register agents"
    if agent_id is not None and agent_id in owners:
        owner = owners[agent_id]
        if owner is not None and owner != principal:
            return (f"Agent {agent_id} was registered by principal {owner}; principal {principal or '(none)'} "
                    f"may not re-register it")
    return None


def framework_refusal(security: Security, info: FrameworkInfo, principal: str | None, role: str) -> str | None:
    """Why a framework authenticated as ``principal`` may not subscribe with ``info`` in ``role``."""
    if principal is not None and info.principal is not None and info.principal != principal:
        return (f"Framework principal '{info.principal}' does not match the authenticated principal "
                f"'{principal}'")
    if not security.authorize("register_frameworks", principal, role):
        return f"Not authorized to register a framework with role '{role}' (principal {principal or '(none)'})"
    return None


def takeover_refusal(framework_id: str, owner: str | None, principal: str | None) -> str | None:
    """Why a connection authenticated as ``principal`` may not subscribe as the existing framework
    ``framework_id``, which principal ``owner`` subscribed (None: an unauthenticated one)."""
    if owner is not None and owner != principal:
        return (f"Framework {framework_id} belongs to principal {owner}; principal {principal or '(none)'} "
                f"may not subscribe as it")
    return None
