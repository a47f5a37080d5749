"""Who may use an agent's HTTP endpoints, and whose sandboxes they may read.

With ``--authenticate_http_readonly`` every endpoint but ``/health`` (and the executor API, which
checks executor secrets itself) needs HTTP Basic credentials from ``--http_credentials``. The
``access_sandboxes`` ACL of ``--acls`` then decides, per request to ``/files``, whether the caller's
principal may read the sandbox of an executor running as a given user (Mesos's ``AccessSandbox``
object is that user). A path above the sandboxes (the agent's directory, a framework's) is
everyone's sandbox at once: it needs a rule allowing ANY user.
"""

from __future__ import annotations

import os
import pwd
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import server

from mesostw.agent.agent import Agent
from mesostw.agent.state import ExecutorState
from mesostw.auth.http import REALM_AGENT_READONLY, http_principal
from mesostw.auth.policy import Security
from mesostw.http.router import HTTPError, Router

log = Logger()

#: Components from the sandboxes' root (``<work_dir>/slaves``) down to one run's sandbox:
#: ``<agent>/frameworks/<framework>/executors/<executor>/runs/<container>``.
SANDBOX_DEPTH = 7


class AgentAccess:
    """Authenticates requests to one agent's endpoints and authorizes sandbox reads."""

    UNAUTHENTICATED = frozenset({"/health", "/slave(1)/health"})
    OWN_AUTHENTICATION = frozenset({"/api/v1/executor", "/slave(1)/api/v1/executor"})

    def __init__(self, agent: Agent, security: Security, root: str):
        self.agent = agent
        self.security = security
        self.root = os.path.realpath(root)

    def install(self, router: Router) -> None:
        router.filter(self.authenticate, self.UNAUTHENTICATED | self.OWN_AUTHENTICATION, before_body=True)

    def authenticate(self, request: server.Request) -> defer.Deferred:
        """HTTP Basic (required with --authenticate_http_readonly); leaves the principal on the request."""
        d = http_principal(self.security, request, REALM_AGENT_READONLY, self.security.authenticate_http_readonly)

        def bind(principal: str | None) -> None:
            request.principal = principal  # type: ignore[attr-defined]

        return d.addCallback(bind)

    def check_sandbox(self, request: server.Request, real_path: str) -> None:
        """Raise 403 unless the request's principal may read ``real_path`` (a resolved path below the root)."""
        principal = getattr(request, "principal", None)
        user = self.sandbox_user(real_path)
        if not self.security.authorize("access_sandboxes", principal, user):
            log.warn("Principal {p} may not read the sandbox of {u}", p=principal or "(none)", u=user or "every user")
            raise HTTPError(403, f"Principal {principal or '(none)'} may not access "
                                 + (f"sandboxes of user '{user}'" if user else "the sandboxes of every user"))

    def sandbox_user(self, real_path: str) -> str | None:
        """The user the executor whose sandbox holds ``real_path`` runs as; None above the sandboxes."""
        relative = os.path.relpath(real_path, self.root)
        parts = relative.split(os.sep)
        if relative == "." or len(parts) < SANDBOX_DEPTH:
            return None
        sandbox = os.path.join(self.root, *parts[:SANDBOX_DEPTH])
        executor = self._executor_at(sandbox)
        if executor is not None:
            user = executor_user(self.agent, executor)
            if user:
                return user
        return _owner(sandbox)

    def _executor_at(self, sandbox: str) -> ExecutorState | None:
        for framework in (*self.agent.frameworks.values(), *self.agent.completed_frameworks):
            for executor in (*framework.executors.values(), *framework.completed_executors):
                if os.path.realpath(executor.directory) == sandbox:
                    return executor
        return None


def executor_user(agent: Agent, executor: ExecutorState) -> str | None:
    """The user an executor runs as, or would with --switch_user: its command's, else its framework's."""
    if executor.user:
        return executor.user
    command = executor.info.command
    if command is not None and command.user:
        return command.user
    framework = agent.frameworks.get(executor.framework_id)
    return framework.info.user if framework is not None else None


def _owner(path: str) -> Any:
    """The name of the user owning ``path`` (a sandbox is its executor's user's); None if unknown."""
    try:
        uid = os.stat(path).st_uid
    except OSError:
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
