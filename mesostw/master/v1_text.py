"""The JSON text of the v1 operator API's Task messages, written directly (``GET_STATE``, ``GET_TASKS``).

A large cluster's ``GET_STATE`` holds a hundred thousand tasks with their statuses; building each as
dicts (:func:`mesostw.operator.v1.task_v1`) only to encode them costs several times what writing their
text does. :func:`task_v1_json` gives exactly ``json.dumps(task_v1(task, role), separators=(",", ":"))``
(checked against it by the tests); a status or task with fields kept as they came (``extra``) goes the
general way. The v1 resources of a task are written once per distinct resources object and role (tasks
share equal resources, see :meth:`~mesostw.model.resources.Resources._shared`).
"""

from __future__ import annotations

from typing import Any

from mesostw.model import jsontext
from mesostw.model.resources import Resources
from mesostw.model.task import Task, TaskStatus
from mesostw.model.validation import b64
from mesostw.operator.v1 import _TASK_EXTRAS, status_v1

_string = jsontext.string
_value = jsontext.value
_encode = jsontext.encode

#: (id of a Resources, role) -> (that Resources, its v1 JSON text): the object is kept so that its id
#: is not reused while the entry lives; bounded, cleared when full
_RESOURCES: dict[tuple[int, str | None], tuple[Resources, str]] = {}
_RESOURCES_MAX = 4096


def resources_v1_json(resources: Resources, role: str | None) -> str:
    """The text of ``resources.to_json(role)``."""
    key = (id(resources), role)
    found = _RESOURCES.get(key)
    if found is not None and found[0] is resources:
        return found[1]
    text = _encode(resources.to_json(role))
    if len(_RESOURCES) >= _RESOURCES_MAX:
        _RESOURCES.clear()
    _RESOURCES[key] = (resources, text)
    return text


def status_v1_json(status: TaskStatus) -> str:
    """The text of :func:`~mesostw.operator.v1.status_v1`."""
    if status.extra:
        return _encode(status_v1(status))
    parts = ['{"task_id":{"value":', _string(status.task_id), '},"state":', _value(status.state)]
    if status.timestamp is not None:
        parts += [',"timestamp":', _value(status.timestamp)]
    if status.message is not None:
        parts += [',"message":', _value(status.message)]
    if status.source is not None:
        parts += [',"source":', _value(status.source)]
    if status.reason is not None:
        parts += [',"reason":', _value(status.reason)]
    if status.agent_id:
        parts += [',"agent_id":{"value":', _value(status.agent_id), "}"]
    if status.executor_id:
        parts += [',"executor_id":{"value":', _value(status.executor_id), "}"]
    if status.uuid is not None:
        parts += [',"uuid":"', b64(status.uuid), '"']
    if status.healthy is not None:
        parts += [',"healthy":', _value(status.healthy)]
    parts.append("}")
    return "".join(parts)


def task_v1_json(task: Task, role: str | None = None) -> str:
    """The text of :func:`~mesostw.operator.v1.task_v1`."""
    info = task.info
    parts: list[Any] = ['{"name":', _value(info.name), ',"task_id":{"value":', _value(task.task_id),
                        '},"framework_id":{"value":', _value(task.framework_id), '},"agent_id":{"value":',
                        _value(task.agent_id), '},"state":', _value(task.state)]
    if info.executor is not None and task.executor_id:
        parts += [',"executor_id":{"value":', _value(task.executor_id), "}"]
    if info.resources:
        parts += [',"resources":', resources_v1_json(info.resources, role)]
    if task.statuses:
        parts += [',"statuses":[', ",".join(status_v1_json(s) for s in task.statuses), "]"]
    if task.status_update_state:
        parts += [',"status_update_state":', _value(task.status_update_state)]
    if task.status_update_uuid is not None:
        parts += [',"status_update_uuid":"', b64(task.status_update_uuid), '"']
    extra = info.extra
    if extra:
        for key in _TASK_EXTRAS:
            if key in extra:
                parts += [",", _string(key), ":", _encode(extra[key])]
    if task.user:
        parts += [',"user":', _value(task.user)]
    parts.append("}")
    return "".join(parts)
