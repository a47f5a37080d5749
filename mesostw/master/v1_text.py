"""The JSON text of the v1 operator API's Resource and Task messages, written directly (``GET_STATE``,
``GET_TASKS``).

A large cluster's ``GET_STATE`` holds a hundred thousand tasks with their statuses; building each as
dicts (:func:`mesostw.operator.v1.task_v1`) only to encode them costs several times what writing their
text does. :func:`task_v1_json` gives exactly ``json.dumps(task_v1(task, role), separators=(",", ":"))``
(checked against it by the tests); a status or task with fields kept as they came (``extra``) goes the
general way. The v1 resources of a task are written once per distinct resources object and role (tasks
share equal resources, see :meth:`~mesostw.model.resources.Resources._shared`), each resource from a
head and a tail made once per key (name, reservations, disk), kind and allocation role.
"""

from __future__ import annotations

from binascii import b2a_base64
from typing import Any

from mesostw.model import jsontext
from mesostw.model.reservation import stack_json
from mesostw.model.resources import RANGES, SCALAR, SET, Resources, sort_key
from mesostw.model.task import Task, TaskStatus
from mesostw.operator.v1 import _TASK_EXTRAS, status_v1

_string = jsontext.string
_value = jsontext.value
_encode = jsontext.encode
#: How JSON writes the floats whose repr is not JSON.
_SPECIAL_FLOATS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}

#: (id of a Resources, role) -> (that Resources, its v1 JSON text): the object is kept so that its id
#: is not reused while the entry lives. Bounded, cleared when full: at most a few hundred KB (a text is
#: a few hundred bytes, most objects are shared with the tasks holding them).
_RESOURCES: dict[tuple[int, str | None], tuple[Resources, str]] = {}
_RESOURCES_MAX = 1024
#: (a Resources' entries, role) -> its v1 JSON text: for sums made afresh at each read (what a
#: framework holds on an agent), mostly equal to others; bounded likewise.
_BY_VALUE: dict[tuple[tuple[Any, ...], str | None], str] = {}
_BY_VALUE_MAX = 1024

#: What comes between a Resource's type and its value, by kind.
_VALUE_OPEN = {SCALAR: ',"scalar":{"value":', RANGES: ',"ranges":{"range":', SET: ',"set":{"item":'}
#: (the keys of a Resources in its order, allocation role) -> for each resource in the order of
#: ``to_json``: its index among the keys and the texts before and after its value for each kind
#: (scalar, ranges, set). A cluster has few of them (names x roles x reservations); bounded all the same.
_SHAPES: dict[tuple[tuple[Any, ...], str | None], tuple[tuple[int, tuple[str, ...]], ...]] = {}
_SHAPES_MAX = 1024


def _shape(keys: tuple[Any, ...], role: str | None) -> tuple[tuple[int, tuple[str, ...]], ...]:
    shape = _SHAPES.get((keys, role))
    if shape is None:
        order = sorted(range(len(keys)), key=lambda index: sort_key(keys[index]))
        made = []
        for index in order:
            key = keys[index]
            tail: dict[str, Any] = {}
            stack_json(tail, key)
            if role is not None:
                tail["allocation_info"] = {"role": role}
            after = "}" + ("," + _encode(tail)[1:] if tail else "}")
            parts: list[str] = []
            for kind in (SCALAR, RANGES, SET):
                parts += [_encode({"name": key[0], "type": kind})[:-1] + _VALUE_OPEN[kind], after]
            made.append((index, tuple(parts)))
        if len(_SHAPES) >= _SHAPES_MAX:
            _SHAPES.clear()
        shape = _SHAPES[(keys, role)] = tuple(made)
    return shape


def _resources_text(resources: Resources, role: str | None) -> str:
    entries = list(resources.entries())
    out = []
    for index, parts in _shape(tuple([key for key, _ in entries]), role):
        value = entries[index][1]
        if isinstance(value, int):
            # thousandths: finite, and a float's repr is how JSON writes it
            out.append(parts[0] + float.__repr__(value / 1000) + parts[1])
        elif isinstance(value, tuple):
            out.append(parts[2] + "[" + ",".join([f'{{"begin":{begin:d},"end":{end:d}}}' for begin, end in value])
                       + "]" + parts[3])
        else:
            out.append(parts[4] + _encode(sorted(value)) + parts[5])
    return "[" + ",".join(out) + "]"


def resources_v1_json(resources: Resources, role: str | None) -> str:
    """The text of ``resources.to_json(role)``."""
    key = (id(resources), role)
    found = _RESOURCES.get(key)
    if found is not None and found[0] is resources:
        return found[1]
    value = (tuple(resources.entries()), role)
    text = _BY_VALUE.get(value)
    if text is not None:
        return text  # most likely a sum made for this read: not kept by object
    text = _resources_text(resources, role)
    if len(_BY_VALUE) >= _BY_VALUE_MAX:
        _BY_VALUE.clear()
    _BY_VALUE[value] = text
    if len(_RESOURCES) >= _RESOURCES_MAX:
        _RESOURCES.clear()
    _RESOURCES[key] = (resources, text)
    return text


#: The texts of short strings many tasks show (states, sources, reasons, framework IDs, users, messages),
#: made once: a look-up costs less than escaping. Bounded (a few hundred KB at most), cleared when full.
_KNOWN: dict[str, str] = {}
_KNOWN_MAX = 1024
_KNOWN_LENGTH = 128


def _known(text: str) -> str:
    """``_string(text)``, kept for the next task showing the same string if it is short."""
    made = _string(text)
    if len(text) <= _KNOWN_LENGTH:
        if len(_KNOWN) >= _KNOWN_MAX:
            _KNOWN.clear()
        _KNOWN[text] = made
    return made


def _uuid_text(uuid: bytes) -> str:
    return b2a_base64(uuid, newline=False).decode("ascii")


def status_v1_json(status: TaskStatus) -> str:
    """The text of :func:`~mesostw.operator.v1.status_v1`."""
    return _status_text(status, None, "", None, "", None, "")


def _status_text(status: TaskStatus, task_id: str | None, task_id_text: str, agent_id: str | None,
                 agent_id_text: str, update_uuid: bytes | None, update_uuid_text: str) -> str:
    """:func:`status_v1_json`, given the texts of what the status most likely shows (its task's IDs: a
    status of a command task shows the task's ID as its executor's too; the UUID of the task's latest
    update). Each field's text is made apart (empty when the field is absent) and all joined at once."""
    if status.extra:
        return _encode(status_v1(status))
    known = _KNOWN.get
    sid = status.task_id
    timestamp = status.timestamp
    message = status.message
    source = status.source
    reason = status.reason
    aid = status.agent_id
    eid = status.executor_id
    uuid = status.uuid
    healthy = status.healthy
    # the strings are str (TaskStatus.read makes them so): the C encoder takes them directly
    sid_text = task_id_text if sid == task_id else _string(sid)
    if timestamp is None:
        timestamp_text = ""
    elif type(timestamp) is float:
        timestamp_text = float.__repr__(timestamp)
        timestamp_text = ',"timestamp":' + _SPECIAL_FLOATS.get(timestamp_text, timestamp_text)
    else:
        timestamp_text = ',"timestamp":' + _value(timestamp)
    message_text = "" if message is None else ',"message":' + (known(message) or _known(message))
    source_text = "" if source is None else ',"source":' + (known(source) or _known(source))
    reason_text = "" if reason is None else ',"reason":' + (known(reason) or _known(reason))
    aid_text = "" if not aid else ',"agent_id":{"value":' + (agent_id_text if aid == agent_id else _string(aid)) + "}"
    eid_text = "" if not eid else ',"executor_id":{"value":' + (task_id_text if eid == task_id else _string(eid)) + "}"
    if uuid is None:
        uuid_text = ""
    else:
        uuid_text = ',"uuid":"' + (update_uuid_text if uuid == update_uuid else _uuid_text(uuid)) + '"'
    healthy_text = "" if healthy is None else (',"healthy":true' if healthy else ',"healthy":false')
    state = status.state
    return (f'{{"task_id":{{"value":{sid_text}}},"state":{known(state) or _known(state)}{timestamp_text}'
            f'{message_text}{source_text}{reason_text}{aid_text}{eid_text}{uuid_text}{healthy_text}}}')


def task_v1_json(task: Task, role: str | None = None) -> str:
    """The text of :func:`~mesostw.operator.v1.task_v1`."""
    known = _KNOWN.get
    info = task.info
    task_id = info.task_id
    agent_id = info.agent_id
    framework_id = task.framework_id
    state = task.state
    tid = _string(task_id)
    aid = _string(agent_id)  # ten thousand agents: not among the known strings
    executor = ',"executor_id":{"value":' + _string(task.executor_id) + "}" \
        if info.executor is not None and task.executor_id else ""
    resources = ',"resources":' + resources_v1_json(info.resources, role) if info.resources else ""
    update_state = task.status_update_state
    update_uuid = task.status_update_uuid
    update_uuid_text = "" if update_uuid is None else _uuid_text(update_uuid)
    statuses = task.statuses
    if not statuses:
        statuses_text = ""
    elif len(statuses) == 1:
        statuses_text = ',"statuses":[' + _status_text(statuses[0], task_id, tid, agent_id, aid, update_uuid,
                                                        update_uuid_text) + "]"
    else:
        statuses_text = ',"statuses":[' + ",".join([_status_text(s, task_id, tid, agent_id, aid, update_uuid,
                                                                 update_uuid_text) for s in statuses]) + "]"
    update_state_text = ',"status_update_state":' + (known(update_state) or _known(update_state)) \
        if update_state else ""
    update_uuid_text = "" if update_uuid is None else ',"status_update_uuid":"' + update_uuid_text + '"'
    extra = info.extra
    extras = "".join(["," + _string(key) + ":" + _encode(extra[key]) for key in _TASK_EXTRAS if key in extra]) \
        if extra else ""
    user = task.user
    user_text = ',"user":' + (known(user) or _known(user)) if user else ""
    return (f'{{"name":{_string(info.name)},"task_id":{{"value":{tid}}},"framework_id":{{"value":'
            f'{known(framework_id) or _known(framework_id)}}},"agent_id":{{"value":{aid}}},"state":'
            f'{known(state) or _known(state)}{executor}{resources}{statuses_text}{update_state_text}'
            f'{update_uuid_text}{extras}{user_text}}}')
