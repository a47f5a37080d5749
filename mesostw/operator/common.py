"""The calls master and agent both answer: health, flags, version, metrics, logging level, files.

``register_common`` adds them to a daemon's table, given what each reads: its flags (rendered),
its ``/metrics/snapshot``, its :class:`~mesostw.verbosity.Verbosity` and clock, and its files.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from mesostw.model.validation import Reader
from mesostw.operator.calls import CallContext, CallTable
from mesostw.operator.files import FileSource
from mesostw.operator.v1 import duration, flags_v1, metrics_v1, response, version_info
from mesostw.verbosity import Verbosity

#: The highest verbosity accepted (glog's levels are small integers; Mesos's go up to 3).
MAX_LEVEL = 1 << 31


def register_common(table: CallTable, flags: Callable[[], dict[str, str]], snapshot: Callable[[], dict[str, Any]],
                    verbosity: Verbosity, clock: Any, files: FileSource) -> None:
    """Add GET_HEALTH, GET_FLAGS, GET_VERSION, GET_METRICS, GET/SET_LOGGING_LEVEL, LIST_FILES and READ_FILE."""

    def get_health(context: CallContext, reader: Reader | None) -> dict[str, Any]:
        return response("GET_HEALTH", {"healthy": True})

    def get_flags(context: CallContext, reader: Reader | None) -> dict[str, Any]:
        return response("GET_FLAGS", {"flags": flags_v1(flags())})

    def get_version(context: CallContext, reader: Reader | None) -> dict[str, Any]:
        return response("GET_VERSION", {"version_info": version_info()})

    def get_metrics(context: CallContext, reader: Reader | None) -> dict[str, Any]:
        # The snapshot is taken at once here, so every metric makes any timeout: all are included.
        assert reader is not None
        timeout = reader.obj("timeout")
        duration(timeout, "timeout")
        reader.check()
        return response("GET_METRICS", {"metrics": metrics_v1(snapshot())})

    def get_logging_level(context: CallContext, reader: Reader | None) -> dict[str, Any]:
        return response("GET_LOGGING_LEVEL", {"level": verbosity.level})

    def set_logging_level(context: CallContext, reader: Reader | None) -> None:
        assert reader is not None
        level = reader.int("level", None, required=True, minimum=0)
        seconds = duration(reader.obj("duration", required=True), "duration")
        if level is not None and level > MAX_LEVEL:
            reader.error(f"must be at most {MAX_LEVEL}", "level")
        reader.check()
        assert level is not None and seconds is not None
        verbosity.set(level, seconds, clock)

    def list_files(context: CallContext, reader: Reader | None) -> dict[str, Any]:
        assert reader is not None
        path = reader.str("path", None, required=True, max_len=4096)
        reader.check()
        return response("LIST_FILES", {"file_infos": files.list_files(path, context)})

    def read_file(context: CallContext, reader: Reader | None) -> dict[str, Any]:
        assert reader is not None
        path = reader.str("path", None, required=True, max_len=4096)
        offset = reader.int("offset", None, required=True, minimum=0)
        length = reader.int("length", None, minimum=0)
        reader.check()
        size, data = files.read_file(path, offset, length, context)
        return response("READ_FILE", {"size": size, "data": base64.b64encode(data).decode("ascii")})

    table.register("GET_HEALTH", get_health)
    table.register("GET_FLAGS", get_flags, acl="view_flags")
    table.register("GET_VERSION", get_version)
    table.register("GET_METRICS", get_metrics, required=True)
    table.register("GET_LOGGING_LEVEL", get_logging_level)
    table.register("SET_LOGGING_LEVEL", set_logging_level, required=True, acl="set_log_level")
    table.register("LIST_FILES", list_files, required=True)
    table.register("READ_FILE", read_file, required=True)
