"""Chronos jobs: the definition a client posts, validated into a :class:`Job`, and the JSON it gets back.

Field names, defaults and the output's field order are Chronos's (``JobDeserializer``,
``JobSerializer``). Every problem with a posted job is reported at once. Beyond Chronos a job may
carry a cron expression as its ``schedule``, and GETs add ``nextRun`` and ``missedCount``; the 2.x
fields ``epsilon`` and ``async`` are accepted and returned.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from frameworks.cron.calendar import ScheduleError, parse_duration_ms, parse_ms, parse_schedule, zone

NAME = re.compile(r"[\w.-]+", re.ASCII)
#: Room left in a Mesos task ID (255 characters) for ``ct:<due>:<attempt>:`` and arguments.
NAME_MAX = 200
OPERATORS = ("EQUALS", "LIKE", "UNLIKE")


class JobInvalid(ValueError):
    """A posted job that cannot be taken; ``errors`` lists every problem."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


@attrs.frozen
class Defaults:
    """What a job gets when it leaves a field out (Chronos's ``--mesos_task_*``, ``--user``,
    ``--task_epsilon``)."""

    cpus: float = 0.1
    mem: float = 128.0
    disk: float = 256.0
    user: str = "root"
    epsilon: str = "PT60S"


@attrs.frozen
class Fetch:
    uri: str
    executable: bool = False
    cache: bool = False
    extract: bool = True
    output_file: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"uri": self.uri, "executable": self.executable, "cache": self.cache,
                               "extract": self.extract}
        if self.output_file:
            out["output_file"] = self.output_file
        return out


@attrs.frozen
class Job:
    """A job definition (without its counters); ``schedule`` xor ``parents`` is set."""

    name: str
    command: str = ""
    shell: bool = True
    arguments: tuple[str, ...] = ()
    executor: str = ""
    executor_flags: str = ""
    task_info_data: str = ""
    retries: int = 2
    owner: str = ""
    owner_name: str = ""
    description: str = ""
    cpus: float = 0.1
    mem: float = 128.0
    disk: float = 256.0
    disabled: bool = False
    soft_error: bool = False
    data_processing: bool = False
    concurrent: bool = False
    high_priority: bool = False
    run_as_user: str = "root"
    uris: tuple[str, ...] = ()
    fetch: tuple[Fetch, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    constraints: tuple[tuple[str, str, str], ...] = ()
    max_completion_time: int = 0
    epsilon: str = "PT60S"
    epsilon_ms: int = 60_000
    is_async: bool = False
    schedule: str | None = None
    schedule_time_zone: str = ""
    parents: tuple[str, ...] | None = None

    @property
    def scheduled(self) -> bool:
        return self.schedule is not None

    @property
    def owners(self) -> list[str]:
        return [o for o in re.split(r"\s*,\s*", self.owner.strip()) if o]

    def definition_json(self) -> dict[str, Any]:
        """The definition as posted (schedule as given), for the store."""
        return self.to_json(Counters(), schedule=self.schedule)

    def to_json(self, counters: Counters, schedule: str | None = None, next_run: str = "",
                mirror: bool = False) -> dict[str, Any]:
        """Chronos's JSON of this job; ``mirror`` fills ``fetch`` from ``uris`` or the reverse, as
        Chronos's GETs do."""
        fetch, uris = list(self.fetch), list(self.uris)
        if mirror:
            if fetch:
                uris = [f.uri for f in fetch]
            else:
                fetch = [Fetch(uri) for uri in uris]
        out: dict[str, Any] = {
            "name": self.name, "command": self.command, "shell": self.shell, "executor": self.executor,
            "executorFlags": self.executor_flags, "taskInfoData": self.task_info_data, "retries": self.retries,
            "owner": self.owner, "ownerName": self.owner_name, "description": self.description,
            "successCount": counters.success_count, "errorCount": counters.error_count,
            "lastSuccess": counters.last_success, "lastError": counters.last_error,
            "cpus": self.cpus, "disk": self.disk, "mem": self.mem, "disabled": self.disabled,
            "softError": self.soft_error, "dataProcessingJobType": self.data_processing,
            "errorsSinceLastSuccess": counters.errors_since_last_success,
            "fetch": [f.to_json() for f in fetch], "uris": uris,
            "environmentVariables": [{"name": n, "value": v} for n, v in self.environment],
            "arguments": list(self.arguments), "highPriority": self.high_priority, "runAsUser": self.run_as_user,
            "concurrent": self.concurrent, "maxCompletionTime": self.max_completion_time,
            "constraints": [list(c) for c in self.constraints],
            "epsilon": self.epsilon, "async": self.is_async,
            "missedCount": counters.missed_count, "nextRun": next_run,
        }
        if self.parents is not None:
            out["parents"] = list(self.parents)
        else:
            out["schedule"] = schedule if schedule is not None else self.schedule
            out["scheduleTimeZone"] = self.schedule_time_zone
        return out


@attrs.define
class Counters:
    """Chronos's run counters (``lastSuccess``/``lastError`` are ISO instants or ""), and missed slots."""

    success_count: int = 0
    error_count: int = 0
    errors_since_last_success: int = 0
    last_success: str = ""
    last_error: str = ""
    missed_count: int = 0

    def last_state(self) -> str:
        """``fresh``, ``success`` or ``failure``, as the graph and the summary show it."""
        success, error = parse_ms(self.last_success), parse_ms(self.last_error)
        if success is None and error is None:
            return "fresh"
        if success is None:
            return "failure"
        if error is None:
            return "success"
        return "success" if success > error else "failure"

    def to_json(self) -> dict[str, Any]:
        return {"successCount": self.success_count, "errorCount": self.error_count,
                "errorsSinceLastSuccess": self.errors_since_last_success, "lastSuccess": self.last_success,
                "lastError": self.last_error, "missedCount": self.missed_count}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Counters:
        return cls(int(data.get("successCount", 0)), int(data.get("errorCount", 0)),
                   int(data.get("errorsSinceLastSuccess", 0)), str(data.get("lastSuccess", "")),
                   str(data.get("lastError", "")), int(data.get("missedCount", 0)))

    def update(self, given: dict[str, Any]) -> None:
        """Take the counters a client posted (sync tools copy them from a GET)."""
        for key, attr in (("successCount", "success_count"), ("errorCount", "error_count"),
                          ("errorsSinceLastSuccess", "errors_since_last_success"),
                          ("lastSuccess", "last_success"), ("lastError", "last_error")):
            if key in given:
                setattr(self, attr, given[key])


class _Reader:
    """Typed reads of a JSON object that collect every error instead of stopping at the first."""

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.errors: list[str] = []

    def error(self, key: str, message: str) -> None:
        self.errors.append(f"{key}: {message}")

    def get(self, key: str, kinds: tuple[type, ...], default: Any, what: str) -> Any:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) and bool not in kinds:
            self.error(key, f"must be {what}")
            return default
        if not isinstance(value, kinds):
            self.error(key, f"must be {what}")
            return default
        return value

    def text(self, key: str, default: str = "") -> str:
        return self.get(key, (str,), default, "a string")

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return self.get(key, (bool,), default, "true or false")

    def whole(self, key: str, default: int, minimum: int = 0) -> int:
        value = self.get(key, (int, float), default, "a whole number")
        if isinstance(value, float):
            if not value.is_integer():
                self.error(key, "must be a whole number")
                return default
            value = int(value)
        if value < minimum:
            self.error(key, f"must be at least {minimum}")
            return default
        return value

    def number(self, key: str, default: float) -> float:
        value = float(self.get(key, (int, float), 0, "a number"))
        if value < 0 or value != value or value == float("inf"):
            self.error(key, "must be a finite number, at least 0")
            return default
        return value if value > 0 else default

    def texts(self, key: str) -> list[str]:
        value = self.get(key, (list,), [], "a list of strings")
        if not all(isinstance(v, str) for v in value):
            self.error(key, "must be a list of strings")
            return []
        return value

    def objects(self, key: str) -> list[dict[str, Any]]:
        value = self.get(key, (list,), [], "a list of objects")
        if not all(isinstance(v, dict) for v in value):
            self.error(key, "must be a list of objects")
            return []
        return value


def parse_job(data: Any, defaults: Defaults, kind: str | None = None, now_ms: int = 0) -> tuple[Job, dict[str, Any]]:
    """Validate a posted job; returns it and the counters it carries (sync tools post them back).

    ``kind`` is the endpoint it came through: ``"iso8601"`` wants a schedule (none means "once, now",
    as Chronos), ``"dependency"`` wants parents; None (the store) takes either.
    """
    if not isinstance(data, dict):
        raise JobInvalid(["the job must be a JSON object"])
    r = _Reader(data)
    name = r.text("name")
    if not name:
        r.error("name", "is required")
    elif not NAME.fullmatch(name):
        r.error("name", f"the job's name is invalid. Allowed names: '{NAME.pattern}'")
    elif len(name) > NAME_MAX:
        r.error("name", f"must be at most {NAME_MAX} characters")
    uris = r.texts("uris")
    fetch = []
    for item in r.objects("fetch"):
        uri = item.get("uri")
        if not isinstance(uri, str) or not uri:
            r.error("fetch", "every entry needs a 'uri'")
            continue
        flags = {k: item.get(k) for k in ("executable", "cache", "extract")}
        if any(v is not None and not isinstance(v, bool) for v in flags.values()):
            r.error("fetch", "executable, cache and extract must be true or false")
            continue
        output = item.get("output_file") or ""
        fetch.append(Fetch(uri, bool(flags["executable"]), bool(flags["cache"]), flags["extract"] is not False,
                           output if isinstance(output, str) else ""))
    if uris and fetch:
        if sorted(uris) == sorted(f.uri for f in fetch):
            uris = []  # what a GET shows (both mirrored), posted back
        else:
            r.error("fetch", f"Tried to add both uri (deprecated) and fetch parameters on {name}")
    environment = []
    for item in r.objects("environmentVariables"):
        if not isinstance(item.get("name"), str) or not item["name"] or not isinstance(item.get("value", ""), str):
            r.error("environmentVariables", "every entry needs a string 'name' and 'value'")
            continue
        environment.append((item["name"], item.get("value", "")))
    constraints = _constraints(r)
    if data.get("container") is not None:
        r.error("container", "container jobs are not supported: the command runs in the agent's own filesystem")
    epsilon = r.text("epsilon", defaults.epsilon) or defaults.epsilon
    epsilon_ms = 0
    try:
        epsilon_ms = parse_duration_ms(epsilon)
    except ScheduleError as exc:
        r.error("epsilon", str(exc))
    schedule, parents = _schedule_or_parents(r, kind, now_ms)
    job = Job(
        name=name, command=r.text("command"), shell=r.flag("shell", True), arguments=tuple(r.texts("arguments")),
        executor=r.text("executor"), executor_flags=r.text("executorFlags"), task_info_data=r.text("taskInfoData"),
        retries=r.whole("retries", 2), owner=r.text("owner"), owner_name=r.text("ownerName"),
        description=r.text("description"), cpus=r.number("cpus", defaults.cpus), mem=r.number("mem", defaults.mem),
        disk=r.number("disk", defaults.disk), disabled=r.flag("disabled", False),
        soft_error=r.flag("softError", False), data_processing=r.flag("dataProcessingJobType", False),
        concurrent=r.flag("concurrent", False), high_priority=r.flag("highPriority", False),
        run_as_user=r.text("runAsUser") or defaults.user, uris=tuple(uris), fetch=tuple(fetch),
        environment=tuple(environment), constraints=tuple(constraints),
        max_completion_time=r.whole("maxCompletionTime", 0), epsilon=epsilon, epsilon_ms=epsilon_ms,
        is_async=r.flag("async", False), schedule=schedule,
        schedule_time_zone=r.text("scheduleTimeZone") if schedule is not None else "", parents=parents)
    counters: dict[str, Any] = {}
    for key in ("successCount", "errorCount", "errorsSinceLastSuccess"):
        if data.get(key) is not None:
            counters[key] = r.whole(key, 0)
    for key in ("lastSuccess", "lastError"):
        if data.get(key) is not None:
            value = r.text(key)
            if value and parse_ms(value) is None:
                r.error(key, "must be an ISO 8601 instant or empty")
            else:
                counters[key] = value
    if job.shell is False and not job.command:
        r.error("command", "is required when shell is false (it is the program to run)")
    if r.errors:
        raise JobInvalid(r.errors)
    return job, counters


def _constraints(r: _Reader) -> list[tuple[str, str, str]]:
    out = []
    for item in r.get("constraints", (list,), [], "a list of [attribute, operator, value]"):
        if not (isinstance(item, list) and len(item) == 3 and all(isinstance(v, str) for v in item)):
            r.error("constraints", "each constraint is [attribute, operator, value]")
            continue
        attribute, operator, value = item
        if operator not in OPERATORS:
            r.error("constraints", f"unknown operator '{operator}' (one of {', '.join(OPERATORS)})")
            continue
        if operator != "EQUALS":
            try:
                re.compile(value)
            except re.error as exc:
                r.error("constraints", f"'{value}' is not a regular expression: {exc}")
                continue
        out.append((attribute, operator, value))
    return out


def _schedule_or_parents(r: _Reader, kind: str | None, now_ms: int) -> tuple[str | None, tuple[str, ...] | None]:
    has_schedule, has_parents = r.data.get("schedule") is not None, r.data.get("parents") is not None
    if has_schedule and has_parents:
        r.error("schedule", "a job has a schedule or parents, not both")
        return None, None
    if kind == "dependency" or (kind is None and has_parents):
        if has_schedule:
            r.error("schedule", "a dependent job has parents, not a schedule")
        parents = r.texts("parents")
        if not parents:
            r.error("parents", "Error, parent does not exist: a dependent job needs at least one parent")
        return None, tuple(dict.fromkeys(parents))
    if has_parents:
        r.error("parents", "a scheduled job has a schedule, not parents (post it to /dependency)")
        return None, None
    schedule = r.text("schedule") if has_schedule else "R1//PT24H"
    try:
        zone(r.text("scheduleTimeZone"))
        parse_schedule(schedule, r.text("scheduleTimeZone"), now_ms)
    except ScheduleError as exc:
        r.error("schedule", str(exc))
    return schedule, None
