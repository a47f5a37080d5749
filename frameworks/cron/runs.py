"""Runs: one execution of a job for one slot (or one manual or dependency trigger), and its tasks.

A run is recorded in the store before any task of it is launched, and its task IDs are derived from the
record: ``ct:<due ms>:<launch>:<job>:<arguments>`` (Chronos's format, ``launch`` counting launches of the
run). A framework that restarts therefore knows every run it may have launched and asks the master
about exactly those task IDs, so that it neither launches a slot twice nor forgets one.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from typing import Any

import attrs

from frameworks.cron.calendar import format_ms
from frameworks.cron.jobs import Job
from mesostw.model.info import CommandInfo, ExecutorInfo
from mesostw.model.resources import UNRESERVED, Resources, to_millis
from mesostw.model.task import Offer, TaskInfo

#: What brought a run about.
SCHEDULE, MANUAL, DEPENDENCY = "schedule", "manual", "dependency"

#: Where a run is. PENDING waits for its record to be durable, its time or its turn; READY waits for an
#: offer; LAUNCHED and RUNNING have a task; RECONCILING was recovered and waits for the master's word.
PENDING, READY, LAUNCHED, RUNNING, RECONCILING = "pending", "ready", "launched", "running", "reconciling"
ACTIVE = (LAUNCHED, RUNNING, RECONCILING)

_UNSAFE = re.compile(r"[;/\\\x00-\x1f\x7f]")
TASK_ID_MAX = 255


@attrs.define(eq=False)
class Run:
    """A run: its durable fields first, then what only the leader's memory holds."""

    job: str
    due: int
    trigger: str = SCHEDULE
    arguments: str | None = None
    launch: int = 0
    failures: int = 0
    not_before: int = 0
    elements: int = 0  # what the current launch reported processing (dataProcessingJobType)
    state: str = PENDING
    recorded: bool = False
    agent_id: str | None = None
    launched_at: int | None = None
    started_at: int | None = None
    kill_reason: str | None = None
    hostname: str = ""
    confirmed: bool = False  # the task reported a state of its own (it reached an agent)

    @property
    def key(self) -> str:
        """The run's name in the store: unique per job and due time."""
        return f"{self.job}:{self.due}"

    @property
    def task_id(self) -> str:
        args = _UNSAFE.sub("", self.arguments or "")
        head = f"ct:{self.due}:{self.launch}:{self.job}:"
        return head + args[: max(0, TASK_ID_MAX - len(head))]

    @property
    def expires(self) -> bool:
        """Only a scheduled slot's first attempt can be too late; retries, manual and dependency runs wait."""
        return self.trigger == SCHEDULE and self.failures == 0

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"job": self.job, "due": self.due, "trigger": self.trigger, "launch": self.launch,
                               "failures": self.failures}
        if self.arguments is not None:
            out["arguments"] = self.arguments
        if self.not_before:
            out["notBefore"] = self.not_before
        if self.elements:
            out["elements"] = self.elements
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        arguments = data.get("arguments")
        return cls(str(data["job"]), int(data["due"]), str(data.get("trigger", SCHEDULE)),
                   arguments if isinstance(arguments, str) else None, int(data.get("launch", 0)),
                   int(data.get("failures", 0)), int(data.get("notBefore", 0)), elements=int(data.get("elements", 0)))


def parse_task_id(task_id: str) -> tuple[int, int, str] | None:
    """(due, launch, job) of one of our task IDs, or None."""
    parts = task_id.split(":", 4)
    if len(parts) != 5 or parts[0] != "ct" or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return int(parts[1]), int(parts[2]), parts[3]


# -- offers ------------------------------------------------------------------------------------------


def _attribute(offer: Offer, name: str) -> list[str]:
    """An agent attribute's values as text (``hostname`` is always there, as in Chronos)."""
    if name not in offer.attributes:
        return [offer.hostname] if name == "hostname" else []
    value = offer.attributes[name]
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, tuple):
        return []
    if isinstance(value, float) and value.is_integer():
        return [str(value), str(int(value))]
    return [str(value)]


def satisfies(offer: Offer, constraints: Iterable[tuple[str, str, str]]) -> bool:
    """Chronos's EQUALS / LIKE / UNLIKE on agent attributes; an absent attribute matches nothing."""
    for attribute, operator, value in constraints:
        values = _attribute(offer, attribute)
        if not values:
            return False
        if operator == "EQUALS":
            ok = value in values
        elif operator == "LIKE":
            ok = any(re.fullmatch(value, v) for v in values)
        else:
            ok = not any(re.fullmatch(value, v) for v in values)
        if not ok:
            return False
    return True


def take(available: Resources, job: Job, role: str) -> Resources | None:
    """The resources ``job``'s task takes from ``available`` (reserved for ``role`` first), or None."""
    items: dict[tuple[str, str], int] = {}
    for name, amount in (("cpus", job.cpus), ("mem", job.mem), ("disk", job.disk)):
        need = to_millis(amount)
        if need <= 0:
            continue
        for candidate in dict.fromkeys((role, UNRESERVED)):
            have = available.get(name, candidate)
            if isinstance(have, int) and have >= need:
                items[(name, candidate)] = need
                break
        else:
            return None
    return Resources(items)


# -- tasks -------------------------------------------------------------------------------------------


def environment(run: Run, job: Job, hostname: str) -> dict[str, str]:
    """What Chronos puts in a task's environment; the job's own variables never override it."""
    task_id = run.task_id
    env = {
        "mesos_task_id": task_id, "MESOS_TASK_ID": task_id, "CHRONOS_JOB_OWNER": job.owner,
        "CHRONOS_JOB_NAME": job.name, "HOST": hostname, "CHRONOS_RESOURCE_MEM": str(job.mem),
        "CHRONOS_RESOURCE_CPU": str(job.cpus), "CHRONOS_RESOURCE_DISK": str(job.disk),
        "CHRONOS_JOB_RUN_TIME": format_ms(run.due), "CHRONOS_JOB_RUN_ATTEMPT": str(run.failures),
    }
    for name, value in job.environment:
        env.setdefault(name, value)
    return env


def task_info(run: Run, job: Job, offer: Offer, resources: Resources) -> TaskInfo:
    """The TaskInfo of ``run``'s current launch on ``offer``'s agent."""
    uris = [{"value": f.uri, "executable": f.executable, "extract": f.extract, "cache": f.cache,
             **({"output_file": f.output_file} if f.output_file else {})} for f in job.fetch]
    uris += [{"value": uri, "executable": False, "extract": True, "cache": False} for uri in job.uris]
    env = environment(run, job, offer.hostname)
    user = job.run_as_user or None
    name = f"ChronosTask:{job.name}"
    if job.executor:
        command = CommandInfo(job.executor, True, (), env, user, tuple(uris))
        data = (job.task_info_data or f"{job.executor_flags}|{job.command}").encode()
        executor = ExecutorInfo(job.name, command=command, name=name)
        return TaskInfo(name, run.task_id, offer.agent_id, resources, executor=executor, data=data)
    value = job.command
    arguments = list(job.arguments)
    if run.arguments:
        if job.shell:
            value = f"{value} {run.arguments}"
        else:
            arguments += shlex.split(run.arguments)
    command = CommandInfo(value, job.shell, tuple(arguments), env, user, tuple(uris))
    return TaskInfo(name, run.task_id, offer.agent_id, resources, command=command)

