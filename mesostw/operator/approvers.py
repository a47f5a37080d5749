"""What an operator API caller may see: Mesos's ``ObjectApprovers`` over the ``view_*`` ACLs.

One :class:`Approvers` serves one request, or one event subscriber for as long as it is subscribed:
it binds the caller's principal to a :class:`~mesostw.auth.policy.Security` and remembers each
decision (the ACLs do not change while the daemon runs), so that filtering every event of a stream
costs a dictionary lookup. Pure: no transport.

The objects are Mesos's (``src/authorizer/local/authorizer.cpp``): a framework is judged by its
``user``; a task by its own user, else its framework's; an executor by its command's user, else its
framework's; a role by its name, and a resource by every role it names (its reservations and its
allocation), so unreserved resources are always visible.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mesostw.auth.policy import Security
from mesostw.model.info import ExecutorInfo, FrameworkInfo
from mesostw.model.task import Task

#: Decisions remembered per caller at most (then forgotten all at once; they are cheap to make again).
MAX_REMEMBERED = 4096


class Approvers:
    """The view decisions of one caller (``principal``, None when anonymous)."""

    def __init__(self, security: Security | None, principal: str | None):
        self.security = security
        self.principal = principal
        #: without ACLs everything is allowed, and nothing needs asking
        self.everything = security is None or security.authorizer.acls is None
        self._decided: dict[tuple[str, str | None], bool] = {}

    def allowed(self, action: str, obj: str | None = None) -> bool:
        """Whether the ACLs let this caller do ``action`` on ``obj`` (None: an implicit object)."""
        if self.everything:
            return True
        key = (action, obj)
        decision = self._decided.get(key)
        if decision is None:
            assert self.security is not None
            if len(self._decided) >= MAX_REMEMBERED:
                self._decided.clear()
            decision = self._decided[key] = self.security.authorize(action, self.principal, obj)
        return decision

    def view_framework(self, info: FrameworkInfo) -> bool:
        return self.allowed("view_frameworks", info.user)

    def view_task(self, task: Task, framework: FrameworkInfo) -> bool:
        return self.allowed("view_tasks", task.user or _command_user(task) or framework.user)

    def view_executor(self, executor: ExecutorInfo, framework: FrameworkInfo) -> bool:
        user = executor.command.user if executor.command is not None else None
        return self.allowed("view_executors", user or framework.user)

    def view_container(self, executor: ExecutorInfo, framework: FrameworkInfo) -> bool:
        user = executor.command.user if executor.command is not None else None
        return self.allowed("view_containers", user or framework.user)

    def view_role(self, role: str) -> bool:
        return self.allowed("view_roles", role)

    def view_flags(self) -> bool:
        return self.allowed("view_flags")

    def view_resource(self, resource: dict[str, Any]) -> bool:
        """Whether a v1 Resource (JSON) may be shown: every role it names must be viewable."""
        if self.everything:
            return True
        role = resource.get("role")
        if isinstance(role, str) and role != "*" and not self.view_role(role):
            return False
        allocation = resource.get("allocation_info")
        if isinstance(allocation, dict) and isinstance(allocation.get("role"), str) \
                and not self.view_role(allocation["role"]):
            return False
        return all(self.view_role(r["role"]) for r in resource.get("reservations", ())
                   if isinstance(r, dict) and isinstance(r.get("role"), str))

    def resources(self, resources: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The viewable ones of v1 Resources (JSON)."""
        return [r for r in resources if self.view_resource(r)]


#: Everything is visible: for callers the ACLs do not judge (the daemon itself, tests).
EVERYTHING = Approvers(None, None)


def _command_user(task: Task) -> str | None:
    """The user a task's TaskInfo names (its command's, else its executor's command's)."""
    info = task.info
    for command in (info.command, info.executor.command if info.executor is not None else None):
        if command is not None and command.user:
            return command.user
    return None
