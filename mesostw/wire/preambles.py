"""The first bytes of a connection on a daemon's one port, which pick its protocol (see
:mod:`mesostw.wire.switch`). Each begins with a non-ASCII byte, like PNG's magic, so that no HTTP
request can begin with one.

This module imports nothing: the command executor, which runs on the standard library alone,
takes :data:`EXECUTOR` from here.
"""

#: What our PB clients send before anything else.
PB = b"\x89MESOSTW-PB\r\n"
#: What the command executor sends before its v1 executor Calls as RecordIO (:mod:`mesostw.agent.executor_stream`).
EXECUTOR = b"\x89MESOSTW-EXEC\r\n"
