"""The agent's v1 operator API: ``POST /api/v1`` (also ``/slave(1)/api/v1``), after ``agent.proto``.

The calls every daemon answers (:mod:`mesostw.operator.common`: health, flags, version, metrics,
logging level, and files: the sandboxes with the confinement of ``/files/*``, and ``/slave/log``
when ``--external_log_file`` names the agent's log), and the agent's own: GET_STATE, GET_CONTAINERS,
GET_FRAMEWORKS, GET_EXECUTORS, GET_OPERATIONS, GET_TASKS and GET_AGENT, filtered by the caller's ``view_*`` ACLs as
Mesos's agent does (``src/slave/http.cpp``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.internet import defer
from twisted.web import server

from mesostw.agent.agent import Agent
from mesostw.agent.files import SandboxFiles
from mesostw.agent.http import snapshot
from mesostw.agent.state import TERMINATED, ExecutorState, FrameworkState
from mesostw.auth.http import http_principal
from mesostw.auth.policy import Security
from mesostw.http.router import Router
from mesostw.model.info import wrap
from mesostw.model.task import Task
from mesostw.model.validation import Reader
from mesostw.operator.approvers import Approvers
from mesostw.operator.calls import AGENT_CALL_TYPES, CallContext, CallTable
from mesostw.operator.common import register_common
from mesostw.operator.files import AttachedFiles, FileSources, file_info
from mesostw.operator.http import OperatorAPI
from mesostw.operator.v1 import executor_info_v1, response, task_v1
from mesostw.verbosity import VERBOSITY, Verbosity

PATHS = ("/api/v1", "/slave(1)/api/v1")
#: The realm of the agent's read-write endpoints (Mesos's ``mesos-agent-readwrite``).
REALM = "mesos-agent-readwrite"


class SandboxSource:
    """LIST_FILES and READ_FILE over an agent's sandboxes (:class:`~mesostw.agent.files.SandboxFiles`)."""

    def __init__(self, sandboxes: SandboxFiles):
        self.sandboxes = sandboxes

    def owns(self, path: str) -> bool:
        return self.sandboxes.owns(path)

    def list_files(self, path: str, context: CallContext) -> list[dict[str, Any]]:
        return [file_info(name, st) for name, st in self.sandboxes.stat_entries(path, context.request)]

    def read_file(self, path: str, offset: int, length: int | None, context: CallContext) -> tuple[int, bytes]:
        return self.sandboxes.read_range(path, offset, length, context.request)


class AgentOperatorAPI:
    """The agent's call table and its HTTP adapter. ``security`` says who must authenticate (HTTP Basic,
    ``--authenticate_http_readwrite``) and what the ACLs let them see; without it, nobody and everything."""

    def __init__(self, agent: Agent, flags: dict[str, str], sandboxes: SandboxFiles,
                 security: Security | None = None, verbosity: Verbosity = VERBOSITY, log_file: str | None = None):
        self.agent = agent
        self.security = security if security is not None else Security()
        self.table = CallTable("agent", AGENT_CALL_TYPES)
        logs = AttachedFiles()
        if log_file:
            logs.attach("/slave/log", log_file)
        register_common(self.table, lambda: flags, lambda: snapshot(agent), verbosity, agent.clock,
                        FileSources(logs, SandboxSource(sandboxes)))
        for call_type, handler in (("GET_STATE", self.get_state), ("GET_CONTAINERS", self.get_containers),
                                   ("GET_OPERATIONS", self.get_operations),
                                   ("GET_FRAMEWORKS", self.get_frameworks), ("GET_EXECUTORS", self.get_executors),
                                   ("GET_TASKS", self.get_tasks), ("GET_AGENT", self.get_agent)):
            self.table.register(call_type, handler, message=call_type.lower())
        self.http = OperatorAPI(self.table, lambda: self.security, authenticate=self.authenticate,
                                verbosity=verbosity)

    def install(self, router: Router) -> None:
        self.http.install(router, PATHS)

    def authenticate(self, request: server.Request) -> defer.Deferred:
        security = self.security
        return http_principal(security, request, REALM, security.authenticate_http_readwrite)

    # -- the calls ---------------------------------------------------------------------------

    def get_state(self, context: CallContext, reader: Reader | None) -> dict[str, Any]:
        approvers = context.approvers
        return response("GET_STATE", {"get_tasks": self._tasks(approvers), "get_executors": self._executors(approvers),
                                      "get_frameworks": self._frameworks(approvers)})

    def get_frameworks(self, context: CallContext, reader: Reader | None) -> dict[str, Any]:
        return response("GET_FRAMEWORKS", self._frameworks(context.approvers))

    def get_executors(self, context: CallContext, reader: Reader | None) -> dict[str, Any]:
        return response("GET_EXECUTORS", self._executors(context.approvers))

    def get_tasks(self, context: CallContext, reader: Reader | None) -> dict[str, Any]:
        return response("GET_TASKS", self._tasks(context.approvers))

    def get_operations(self, context: CallContext, reader: Reader | None) -> dict[str, Any]:
        """No operation with feedback is applied on mesostw's agents yet (launches are not listed)."""
        return response("GET_OPERATIONS", {"operations": []})

    def get_agent(self, context: CallContext, reader: Reader | None) -> dict[str, Any]:
        info = self.agent.info.to_json()
        info.pop("checkpoint", None)
        info["resources"] = context.approvers.resources(info["resources"])
        return response("GET_AGENT", {"agent_info": info})

    def get_containers(self, context: CallContext, reader: Reader | None) -> dict[str, Any]:
        """The containers of live executors the caller may view, with their statistics."""
        containers = []
        for framework in self.agent.frameworks.values():
            for executor in framework.executors.values():
                if executor.state == TERMINATED or not context.approvers.view_container(executor.info, framework.info):
                    continue
                statistics = dict(self.agent.containerizer.usage(executor.container_id))
                statistics.setdefault("timestamp", self.agent.clock.seconds())  # required in ResourceStatistics
                status: dict[str, Any] = {"container_id": wrap(executor.container_id)}
                if executor.pid is not None:
                    status["executor_pid"] = executor.pid
                containers.append({
                    "framework_id": wrap(framework.id),
                    "executor_id": wrap(executor.id),
                    "executor_name": executor.info.name or "",
                    "container_id": wrap(executor.container_id),
                    "container_status": status,
                    "resource_statistics": statistics,
                })
        return response("GET_CONTAINERS", {"containers": containers})

    # -- the shapes ---------------------------------------------------------------------------

    def _visible(self, frameworks: Iterable[FrameworkState], approvers: Approvers) -> list[FrameworkState]:
        return [f for f in frameworks if approvers.view_framework(f.info)]

    def _frameworks(self, approvers: Approvers) -> dict[str, Any]:
        """``Response.GetFrameworks``."""
        agent = self.agent
        return {"frameworks": [{"framework_info": f.info.to_json()}
                               for f in self._visible(agent.frameworks.values(), approvers)],
                "completed_frameworks": [{"framework_info": f.info.to_json()}
                                         for f in self._visible(agent.completed_frameworks, approvers)]}

    def _executors(self, approvers: Approvers) -> dict[str, Any]:
        """``Response.GetExecutors``: live and completed executors of every framework the caller may view."""
        live: list[dict[str, Any]] = []
        completed: list[dict[str, Any]] = []
        agent = self.agent
        for framework in self._visible(agent.frameworks.values(), approvers):
            live += [{"executor_info": executor_info_v1(e.info)} for e in framework.executors.values()
                     if approvers.view_executor(e.info, framework.info)]
        for framework in self._visible([*agent.frameworks.values(), *agent.completed_frameworks], approvers):
            completed += [{"executor_info": executor_info_v1(e.info)} for e in framework.completed_executors
                          if approvers.view_executor(e.info, framework.info)]
        return {"executors": live, "completed_executors": completed}

    def _tasks(self, approvers: Approvers) -> dict[str, Any]:
        """``Response.GetTasks``: queued, launched, terminated (update not yet acknowledged) and completed."""
        queued: list[dict[str, Any]] = []
        launched: list[dict[str, Any]] = []
        terminated: list[dict[str, Any]] = []
        completed: list[dict[str, Any]] = []
        agent = self.agent
        for framework in self._visible([*agent.frameworks.values(), *agent.completed_frameworks], approvers):
            info = framework.info
            role = info.allocation_role
            executors: list[ExecutorState] = [*framework.executors.values(), *framework.completed_executors]
            for executor in executors:
                for task_info in executor.queued.values():
                    task = Task(info=task_info, framework_id=framework.id,  # as Mesos: TASK_STAGING
                                executor_id=task_info.executor.executor_id if task_info.executor else None)
                    if approvers.view_task(task, info):
                        queued.append(task_v1(task, role))
                launched += [task_v1(t, role) for t in executor.launched.values() if approvers.view_task(t, info)]
                terminated += [task_v1(t, role) for t in executor.terminated.values() if approvers.view_task(t, info)]
                completed += [task_v1(t, role) for t in executor.completed if approvers.view_task(t, info)]
        return {"queued_tasks": queued, "launched_tasks": launched, "terminated_tasks": terminated,
                "completed_tasks": completed}

