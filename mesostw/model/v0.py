"""The v0 JSON shapes the master's and the agent's endpoints share (``/state``, ``/tasks``).

Resources use the flat v0 model (``{"cpus": 2.0, "mem": 1024.0, ...}``) that existing tools read.
These run once per task of a ``/master/state`` (a hundred thousand times on a large cluster), so
they build their dicts directly.
"""

from __future__ import annotations

from typing import Any

from mesostw.model import jsontext
from mesostw.model.resources import UNRESERVED, Resources, format_ranges, format_set, normalize_ranges
from mesostw.model.task import Task

#: TaskInfo fields kept as they came (``TaskInfo.extra``) that v0 tasks show.
_TASK_EXTRAS = ("labels", "discovery", "container", "health_check", "kill_policy")
#: The scalars every v0 resources object shows, first and in this order.
_BASE = ("cpus", "gpus", "mem", "disk")


def resources_model(resources: Resources) -> dict[str, Any]:
    """``resources.model()``, the flat object of v0 endpoints (``{"cpus": 2.0, ..., "ports": "[31000-32000]"}``),
    in one pass over the bag: every name summed over its roles, ranges and sets shown as text."""
    scalars: dict[str, int] = {}
    ranges: dict[str, list[tuple[int, int]]] | None = None
    sets: dict[str, frozenset[str]] | None = None
    for name, _role, value in resources:
        if isinstance(value, int):
            scalars[name] = scalars.get(name, 0) + value
        elif isinstance(value, tuple):
            if ranges is None:
                ranges = {}
            ranges.setdefault(name, []).extend(value)
        else:
            if sets is None:
                sets = {}
            sets[name] = sets.get(name, frozenset()) | value
    out: dict[str, Any] = {"cpus": 0.0, "gpus": 0.0, "mem": 0.0, "disk": 0.0}
    if ranges is None and sets is None:
        for name in sorted(scalars):
            out[name] = scalars[name] / 1000
        return out
    names = scalars.keys() | (ranges or {}).keys() | (sets or {}).keys()
    for name in sorted(names):
        pairs = ranges.get(name) if ranges is not None else None
        items = sets.get(name) if sets is not None else None
        if pairs:
            out[name] = format_ranges(normalize_ranges(pairs))
        elif items:
            out[name] = format_set(items)
        else:
            out[name] = scalars.get(name, 0) / 1000
    return out


def task_model(task: Task, role: str = "*") -> dict[str, Any]:
    """A Task as v0 endpoints show it; ``role`` is its framework's allocation role."""
    info = task.info
    statuses = []
    for status in task.statuses:
        if status.healthy is None:
            statuses.append({"state": status.state, "timestamp": status.timestamp})
        else:
            statuses.append({"state": status.state, "timestamp": status.timestamp, "healthy": status.healthy})
    agent_id = info.agent_id
    out: dict[str, Any] = {
        "id": info.task_id,
        "name": info.name,
        "framework_id": task.framework_id,
        "executor_id": task.executor_id if info.executor is not None else "",
        "slave_id": agent_id,
        "agent_id": agent_id,
        "state": task.state,
        "resources": resources_model(info.resources),
        "role": role,
        "statuses": statuses,
    }
    if task.user:
        out["user"] = task.user
    extra = info.extra
    if extra:
        for key in _TASK_EXTRAS:
            if key in extra:
                out[key] = extra[key]
    return out


# -- the same shapes as JSON text ---------------------------------------------------------------------
#
# A large /master/state holds a hundred thousand tasks; making each a dict only to encode it costs twice
# what writing its text does. These give exactly what json.dumps(..., separators=(",", ":")) gives for
# the dicts above (strings ASCII-escaped, floats as repr, NaN and infinities as JSON's encoder spells
# them), checked against it by the tests.

_string = jsontext.string
_encode = jsontext.encode
json_value = jsontext.value


def resources_json(resources: Resources) -> str:
    """The JSON text of :func:`resources_model` (unreserved scalars and ranges directly, anything else
    through the model)."""
    cpus = gpus = mem = disk = 0
    rest: dict[str, Any] | None = None
    for name, role, value in resources:
        kind = type(value)
        if role != UNRESERVED or kind is frozenset or (kind is tuple and (not value or name in _BASE)):
            return _encode(resources_model(resources))  # roles, sets or odd shapes: the general way
        if isinstance(value, int) and name in _BASE:
            if name == "cpus":
                cpus = value
            elif name == "mem":
                mem = value
            elif name == "disk":
                disk = value
            else:
                gpus = value
        else:
            if rest is None:
                rest = {}
            rest[name] = value
    # Scalars are whole thousandths: their quotients are finite, and %r is how JSON writes a float.
    text = f'{{"cpus":{cpus / 1000!r},"gpus":{gpus / 1000!r},"mem":{mem / 1000!r},"disk":{disk / 1000!r}'
    if rest:
        for name in sorted(rest) if len(rest) > 1 else rest:
            value = rest[name]
            if type(value) is int:
                text += f",{_string(name)}:{value / 1000!r}"
            elif len(value) == 1:
                text += f',{_string(name)}:"[{value[0][0]:d}-{value[0][1]:d}]"'
            else:
                text += f",{_string(name)}:{_string(format_ranges(value))}"
    return text + "}"


def task_json(task: Task, role: str = "*") -> str:
    """The JSON text of :func:`task_model`."""
    info = task.info
    statuses = []
    for status in task.statuses:
        if status.healthy is None:
            statuses.append(f'{{"state":{_string(status.state)},"timestamp":{json_value(status.timestamp)}}}')
        else:
            statuses.append(f'{{"state":{_string(status.state)},"timestamp":{json_value(status.timestamp)},'
                            f'"healthy":{json_value(status.healthy)}}}')
    agent_id = _string(info.agent_id)
    executor_id = json_value(task.executor_id) if info.executor is not None else '""'
    text = (f'{{"id":{_string(info.task_id)},"name":{_string(info.name)},"framework_id":{_string(task.framework_id)},'
            f'"executor_id":{executor_id},"slave_id":{agent_id},"agent_id":{agent_id},"state":{_string(task.state)},'
            f'"resources":{resources_json(info.resources)},"role":{_string(role)},"statuses":[{",".join(statuses)}]')
    if task.user:
        text += f',"user":{json_value(task.user)}'
    extra = info.extra
    if extra:
        for key in _TASK_EXTRAS:
            if key in extra:
                text += f',"{key}":{_encode(extra[key])}'
    return text + "}"
