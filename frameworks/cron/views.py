"""What the API reads: jobs as Chronos JSON (cached per job, so listing 10,000 jobs joins bytes), search,
summary, the dependency graph, per-job statistics and history. Pure functions of the planner."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from frameworks.cron import graph
from frameworks.cron.calendar import format_ms, from_ms
from frameworks.cron.planner import Planner
from frameworks.cron.records import JobRecord
from frameworks.cron.runs import ACTIVE

PERCENTILES = {"75thPercentile": 0.75, "95thPercentile": 0.95, "98thPercentile": 0.98, "99thPercentile": 0.99,
               "median": 0.5}
_TASK_STATES = {"success": "TASK_FINISHED", "failure": "TASK_FAILED", "killed": "TASK_KILLED", "missed": "MISSED"}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def job_bytes(planner: Planner, record: JobRecord, now: int) -> bytes:
    if record.cache is None:
        record.cache = _dumps(planner.job_json(record, now))
    return record.cache


def jobs_bytes(planner: Planner, names: Sequence[str], now: int) -> bytes:
    return b"[" + b",".join(job_bytes(planner, planner.jobs[name], now) for name in names) + b"]"


def search(planner: Planner, name: str = "", command: str = "", any_: str = "", limit: int = 10,
           offset: int = 0) -> list[str]:
    """Chronos's search: name AND command (case-insensitive substrings), or ``any`` in either, then
    ``offset`` and ``limit`` (10 unless given), in name order. (Chronos returns every job when only
    ``any`` is given; here ``any`` alone filters.)"""
    name, command, any_ = name.lower(), command.lower(), any_.lower()
    found = []
    for job_name in planner.names:
        job = planner.jobs[job_name].job
        lowered_name, lowered_command = job_name.lower(), job.command.lower()
        valid = (not name or name in lowered_name) and (not command or command in lowered_command)
        if any_ and not (name or command):
            valid = False
        if not valid and any_ and (any_ in lowered_name or any_ in lowered_command):
            valid = True
        if valid:
            found.append(job_name)
            if len(found) >= offset + limit:
                break
    return found[offset:offset + limit]


def summary(planner: Planner, now: int) -> dict[str, Any]:
    jobs = []
    for name in planner.names:
        record = planner.jobs[name]
        jobs.append({"name": name, "status": record.counters.last_state(), "state": planner.current_state(record),
                     "schedule": planner.schedule_text(record, now) or "",
                     "parents": list(record.job.parents or ()), "disabled": record.job.disabled})
    return {"jobs": jobs}


def _nodes(planner: Planner) -> list[tuple[str, str, str]]:
    return [(name, planner.jobs[name].counters.last_state(), planner.current_state(planner.jobs[name]))
            for name in planner.names]


def graph_csv(planner: Planner) -> str:
    return graph.csv(_nodes(planner), planner.graph.links())


def graph_dot(planner: Planner) -> str:
    return graph.dot(_nodes(planner), planner.graph.links())


def quantile(values: Sequence[float], q: float) -> float:
    """Dropwizard's snapshot quantile (linear between the two nearest ranks)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = q * (len(ordered) + 1)
    if position < 1:
        return float(ordered[0])
    if position >= len(ordered):
        return float(ordered[-1])
    lower = ordered[int(position) - 1]
    upper = ordered[int(position)]
    return lower + (position - int(position)) * (upper - lower)


def histogram(values: Sequence[float]) -> dict[str, float]:
    out = {key: quantile(values, q) for key, q in PERCENTILES.items()}
    out["mean"] = sum(values) / len(values) if values else 0.0
    out["count"] = len(values)
    return out


def _chronos_time(ms: int | None) -> str:
    return from_ms(ms).strftime("%m/%d/%y %H:%M:%S") if ms else "N/A"


def _duration(ms: int) -> str:
    seconds = ms // 1000
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return (f"{days}d" if days else "") + (f"{hours}h" if hours else "") + f"{minutes}m{seconds}s"


def stat(planner: Planner, record: JobRecord) -> dict[str, Any]:
    """Chronos's ``job/stat``: a run-time histogram (ms) and the task history, newest first."""
    history = []
    for key in sorted(record.runs):
        run = planner.runs[key]
        if run.state in ACTIVE:
            history.append({"taskId": run.task_id, "jobName": record.name, "slaveId": run.agent_id or "",
                            "startTime": _chronos_time(run.started_at or run.launched_at), "endTime": "N/A",
                            "status": "TASK_RUNNING"})
    for entry in reversed(record.history):
        if entry.get("status") == "missed":
            continue
        item = {"taskId": entry.get("taskId", ""), "jobName": record.name, "slaveId": entry.get("agentId", ""),
                "startTime": _chronos_time(entry.get("start")), "endTime": _chronos_time(entry.get("end")),
                "status": _TASK_STATES.get(entry["status"], entry["status"])}
        if entry.get("start") and entry.get("end"):
            item["duration"] = _duration(entry["end"] - entry["start"])
        if "elements" in entry:
            item["numElementsProcessed"] = entry["elements"]
        history.append(item)
    return {"histogram": histogram(list(record.durations)), "taskStatHistory": history}


def percentile(planner: Planner, which: str) -> list[dict[str, Any]]:
    """Chronos's ``stats/{which}``: each job's run time at that percentile, in seconds, slowest first."""
    if which not in PERCENTILES and which != "mean":
        return []
    rows = []
    for name in planner.names:
        durations = list(planner.jobs[name].durations)
        if durations:
            rows.append({"jobNameLabel": name, "time": histogram(durations)[which] / 1000.0})
    rows.sort(key=lambda row: row["time"], reverse=True)
    return rows


def history(planner: Planner, record: JobRecord, now: int) -> dict[str, Any]:
    """Beyond Chronos: every recent run with its slot, trigger, attempt, outcome and lateness, and the
    runs pending or active now."""
    def when(ms: Any) -> str:
        return format_ms(int(ms)) if ms is not None else ""

    runs = []
    for entry in reversed(record.history):
        item = {k: v for k, v in entry.items() if k not in ("due", "start", "end", "until")}
        item.update(due=when(entry.get("due")), started=when(entry.get("start")), finished=when(entry.get("end")))
        if "until" in entry:
            item["until"] = when(entry["until"])
        if entry.get("start") is not None and entry.get("due") is not None:
            item["latenessSeconds"] = max(0, entry["start"] - entry["due"]) / 1000.0
        runs.append(item)
    current = [{"taskId": run.task_id, "due": when(run.due), "trigger": run.trigger, "attempt": run.failures,
                "state": run.state, "arguments": run.arguments}
               for run in sorted((planner.runs[k] for k in record.runs), key=lambda r: r.due)]
    next_run = planner.next_run(record, now)
    return {"name": record.name, "nextRun": when(next_run), "current": current, "runs": runs}
