"""A task's health check (Mesos's ``TaskInfo.health_check``) as the command executor runs it.

Standard library only, like :mod:`mesostw.executor.command`, which drives it. A check is
``{"type": "COMMAND" | "HTTP" | "TCP", "command": CommandInfo, "http": {"scheme", "port", "path",
"statuses"}, "tcp": {"port"}, "delay_seconds", "interval_seconds", "timeout_seconds",
"consecutive_failures", "grace_period_seconds"}`` with Mesos's defaults (15 s, 10 s, 20 s, 3, 10 s).

:class:`HealthPolicy` is Mesos's health checker without I/O: failures are ignored during the grace
period until the first success; the first success, and the first success after failures, give a
healthy update; every other failure an unhealthy one; ``consecutive_failures`` failures in a row
kill the task. :func:`probe` runs one check, blocking (the executor runs it in a thread, so its
loop never waits): COMMAND in the task's environment (exit 0 passes; past the timeout its process
group is killed), HTTP(S) passing on the ``statuses`` given or else 200-399 (certificates are not
checked), TCP passing once a connection is accepted. HTTP and TCP probes go to ``host``: the
agent's address, where a task on the host's network listens whether it binds to that address or
to all of them.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import subprocess
from collections.abc import Mapping
from typing import Any, NamedTuple

DEFAULTS = {"delay_seconds": 15.0, "interval_seconds": 10.0, "timeout_seconds": 20.0, "consecutive_failures": 3,
            "grace_period_seconds": 10.0}
#: The reason of the TASK_KILLED that ends a task its health check killed (Mesos's name).
REASON = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"


class Verdict(NamedTuple):
    """What one probe result means: whether to send an update, with which health, and whether to kill."""

    update: bool
    healthy: bool | None
    kill: bool


class HealthPolicy:
    """The health of one task from its probe results (see the module docstring)."""

    def __init__(self, check: Mapping[str, Any]):
        def number(name: str) -> float:
            value = check.get(name, DEFAULTS[name])
            return float(value) if isinstance(value, (int, float)) and value >= 0 else float(DEFAULTS[name])

        self.kind = kind(check)
        self.delay = number("delay_seconds")
        self.interval = max(number("interval_seconds"), 0.1)
        self.timeout = max(number("timeout_seconds"), 0.1)
        self.grace = number("grace_period_seconds")
        self.consecutive = int(number("consecutive_failures"))
        self.initializing = True
        self.failures = 0

    def result(self, ok: bool, elapsed: float) -> Verdict:
        """Take a probe result ``elapsed`` seconds after the task started."""
        if ok:
            send = self.initializing or self.failures > 0
            self.initializing = False
            self.failures = 0
            return Verdict(send, True, False)
        if self.initializing and elapsed <= self.grace:
            return Verdict(False, None, False)
        self.failures += 1
        return Verdict(True, False, self.failures >= self.consecutive)


def kind(check: Mapping[str, Any]) -> str:
    """COMMAND, HTTP or TCP (a check without a type but with a command, as before Mesos 1.2, is COMMAND)."""
    found = check.get("type")
    if isinstance(found, str) and found:
        return found.upper()
    return "COMMAND" if check.get("command") else ""


def problem(check: Any) -> str | None:
    """Why ``check`` cannot run, or None."""
    if not isinstance(check, dict):
        return "the health check is not an object"
    found = kind(check)
    if found == "COMMAND":
        command = check.get("command")
        if not isinstance(command, dict) or not (command.get("value") or command.get("arguments")):
            return "a COMMAND health check needs a command"
    elif found in ("HTTP", "TCP"):
        port = (check.get(found.lower()) or {}).get("port")
        if not isinstance(port, int) or not 0 < port < 65536:
            return f"an {found} health check needs a port"
    else:
        return f"unknown health check type {check.get('type')!r}"
    return None


def probe(check: Mapping[str, Any], host: str, env: Mapping[str, str], cwd: str | None,
          timeout: float) -> tuple[bool, str]:
    """Run the check once: (passed, what happened)."""
    found = kind(check)
    try:
        if found == "COMMAND":
            return _command(check["command"], env, cwd, timeout)
        if found == "HTTP":
            return _http(check["http"], host, timeout)
        with socket.create_connection((host, int(check["tcp"]["port"])), timeout=timeout):
            return True, "connected"
    except TimeoutError:
        return False, f"{found} health check timed out after {timeout:g}s"
    except (OSError, http.client.HTTPException) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        return False, f"{found} health check failed: {why}"


def _command(command: Mapping[str, Any], env: Mapping[str, str], cwd: str | None,
             timeout: float) -> tuple[bool, str]:
    environment = dict(env)
    for variable in (command.get("environment") or {}).get("variables", []):
        environment[variable["name"]] = variable.get("value", "")
    if command.get("shell", True):
        argv = ["/bin/sh", "-c", command.get("value", "")]
    else:
        argv = list(command.get("arguments") or [command.get("value", "")])
    process = subprocess.Popen(argv, env=environment, cwd=cwd, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
        return False, f"COMMAND health check timed out after {timeout:g}s"
    if code == 0:
        return True, "command exited with status 0"
    return False, f"COMMAND health check exited with status {code}" if code > 0 else \
        f"COMMAND health check terminated by signal {-code}"


def _http(spec: Mapping[str, Any], host: str, timeout: float) -> tuple[bool, str]:
    port = int(spec["port"])
    path = spec.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    connection: http.client.HTTPConnection
    if (spec.get("scheme") or "http").lower() == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"User-Agent": "mesostw-health-check"})
        status = connection.getresponse().status
    finally:
        connection.close()
    statuses = spec.get("statuses") or []
    ok = status in statuses if statuses else 200 <= status < 400
    return ok, f"HTTP health check answered {status}"
