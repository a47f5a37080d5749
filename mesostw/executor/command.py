"""The command executor: runs one task's command and reports how it ended.

It speaks the v1 executor API (Calls and Events, as Mesos's own command
executor since 1.x) framed as RecordIO over one plain connection to its agent
(see :mod:`mesostw.agent.executor_stream`), and is written against the
standard library only, with no reactor: it is forked per task by the agent's
launcher, and the less it carries, the cheaper each fork and each message
(see DESIGN.md's spawn costs). With ``LIBPROCESS_SSL_ENABLED`` in its
environment (the agent passes its TLS settings on) the connection is TLS,
made with the stdlib ``ssl`` module (:func:`tls_context`).

The command runs in its own process group, and the executor is a child
subreaper: whatever the command starts stays among the executor's descendants,
even after a double fork or a ``setsid`` (daemons, ``nohup ... &``). A kill
sends SIGTERM to all of them and SIGKILL after the grace period; when the
command ends, whatever it left running is killed too. Exit status 0 gives
TASK_FINISHED, any other TASK_FAILED with the status in the message, a kill
TASK_KILLED. A task with a ``health_check`` is checked as Mesos's command
executor does (see :mod:`mesostw.executor.health`): each probe runs in a
thread, its verdict comes back to the loop through a pipe, health changes go
out as TASK_RUNNING updates with ``healthy`` set, and too many failures in a
row kill the task (TASK_KILLED, ``healthy`` false, reason
``REASON_TASK_HEALTH_CHECK_STATUS_UPDATED``). If the agent goes away, a
checkpointing framework's executor keeps the task running and reconnects
(re-sending what was not acknowledged) until the recovery timeout; any other
executor kills its task and exits, as Mesos's does.
"""

from __future__ import annotations

import _signal
import base64
import ctypes
import heapq
import json
import os
import queue
import re
import selectors
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import ssl

    from mesostw.executor import health as checks

# Opens the agent's executor stream (see mesostw.agent.executor_stream); that module imports nothing.
from mesostw.wire.preambles import EXECUTOR as PREAMBLE

#: The variable holding this executor's secret (mesostw.agent.executor_auth.ENVIRONMENT_VARIABLE).
SECRET_VARIABLE = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"
#: SIGTERM to SIGKILL when neither the kill nor the task names a grace period.
DEFAULT_GRACE = 3.0
#: How often a checkpointing executor tries to reach its agent again while the agent is away.
RECONNECT_INTERVAL = 0.5
PR_SET_CHILD_SUBREAPER = 36
#: Signals the interpreter ignores that a task starts with at their default dispositions.
TASK_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)
#: SIGPIPE as a plain number, for :func:`ignore_sigpipe`.
_SIGPIPE = int(signal.SIGPIPE)
# Loaded once, in the launcher, before it forks executors (the function too: a lookup costs a dlsym).
_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl
#: How long to wait for the agent to take the final update before exiting anyway.
EXIT_TIMEOUT = 5.0
_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "secs": 1.0, "mins": 60.0, "hrs": 3600.0, "days": 86400.0,
          "weeks": 604800.0}
# Compiled here, in the launcher: a forked executor that compiled it would pay for that every time.
_DURATION = re.compile(r"^\s*([0-9.]+)\s*([a-z]*)\s*$")


def duration(text: str, default: float) -> float:
    match = _DURATION.match(text or "")
    if not match:
        return default
    return float(match.group(1)) * _UNITS.get(match.group(2) or "secs", 1.0)


def log(message: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} mesos-executor: {message}\n")
    sys.stderr.flush()


def describe_exit(status: int) -> tuple[int | None, str]:
    """(exit code or None, Mesos's message) for a wait status."""
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        return code, f"Command exited with status {code}"
    signum = os.WTERMSIG(status)
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = str(signum)
    return None, f"Command terminated with signal {name}"



def ignore_sigpipe() -> None:
    """Ignore SIGPIPE (a write to a closed connection then fails instead of killing the executor).

    Through ``_signal``, the C module under :mod:`signal`: ``signal.signal`` turns the handler it
    replaces into an enum member, Python code whose objects a forked executor would copy page by page.
    """
    _signal.signal(_SIGPIPE, _signal.SIG_IGN)


def health_checks() -> Any:
    """:mod:`mesostw.executor.health`, imported for the first task with a health check (with :mod:`ssl`
    and :mod:`http.client`, more than the executor needs otherwise). An executor forked by the agent's
    launcher has it already: the agent asks for it (the launch's ``preload``) when the task has a health
    check, and the launcher's child imports it before it switches to the task's user, who may not be
    able to read the interpreter's library."""
    from mesostw.executor import health

    return health


def become_subreaper() -> bool:
    """Make orphaned descendants this process's children rather than init's (Linux 3.4+)."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def descendants(root: int) -> list[int]:
    """Every process below ``root``, from /proc (parents before children)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(name))
    out: list[int] = []
    queue = list(children.get(root, []))
    while queue:
        pid = queue.pop(0)
        out.append(pid)
        queue.extend(children.get(pid, []))
    return out


def record(body: bytes) -> bytes:
    """One RecordIO record."""
    return str(len(body)).encode() + b"\n" + body


def _tls_setting(environ: Mapping[str, str], *names: str) -> str | None:
    """The first of ``names`` set among the ``LIBPROCESS_SSL_*`` (or pre-1.0 ``SSL_*``) variables."""
    # The pre-1.0 SSL_ prefix only for a pre-1.0 configuration: SSL_CERT_FILE is also OpenSSL's CA bundle.
    prefix = "SSL_" if environ.get("SSL_ENABLED") and not environ.get("LIBPROCESS_SSL_ENABLED") else "LIBPROCESS_SSL_"
    for name in names:
        value = environ.get(prefix + name)
        if value:
            return value
    return None


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes", "on")


def tls_wanted(environ: Mapping[str, str]) -> bool:
    """Whether an executor with this environment speaks TLS to its agent (and so needs :mod:`ssl`)."""
    return _true(_tls_setting(environ, "ENABLED"))


def tls_context(environ: Mapping[str, str]) -> ssl.SSLContext | None:
    """A TLS client context from the ``LIBPROCESS_SSL_*`` (or pre-1.0 ``SSL_*``) variables; None when TLS is off.

    As libprocess (and ``mesostw.auth.tls``): TLS 1.2 or newer; the agent's certificate is checked
    (chain to ``LIBPROCESS_SSL_CA_FILE`` / ``_CA_DIR``, name or IP address) when
    ``LIBPROCESS_SSL_VERIFY_CERT`` is true, which it is by default when a CA is given; the
    executor presents ``LIBPROCESS_SSL_CERT_FILE`` / ``_KEY_FILE`` to agents that require a client
    certificate.
    """

    if not tls_wanted(environ):
        return None
    import ssl  # only here: the launcher loads it before it forks an executor that speaks TLS

    def get(*names: str) -> str | None:
        return _tls_setting(environ, *names)

    ca_file, ca_dir = get("CA_FILE"), get("CA_DIR")
    verify = get("VERIFY_CERT", "VERIFY_SERVER_CERT")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if _true(verify) if verify is not None else bool(ca_file or ca_dir):
        if ca_file:
            context.load_verify_locations(cafile=ca_file)
        if ca_dir:
            for name in sorted(os.listdir(ca_dir)):
                try:
                    context.load_verify_locations(cafile=os.path.join(ca_dir, name))
                except (OSError, ValueError):
                    pass  # not a certificate (a CRL, a README ...), as mesostw.auth.tls skips them too
        if not (ca_file or ca_dir):
            context.load_default_certs()
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    cert, key = get("CERT_FILE"), get("KEY_FILE")
    if cert and key:
        context.load_cert_chain(cert, key)
    ciphers = get("CIPHERS")
    if ciphers:
        context.set_ciphers(ciphers)
    return context


def literal_family(host: str) -> int | None:
    """The address family of ``host`` when it is an IP address, else None."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return family
        except OSError:
            continue
    return None


def connect(address: tuple[str, int], tls: ssl.SSLContext | None, timeout: float = 10.0) -> socket.socket:
    """A connection to the agent, through TLS (handshake done, certificate checked) when ``tls`` is given.

    The agent's endpoint is an IP address, which is connected to directly: the resolver's lookup
    would cost each executor more than the connection itself.
    """
    family = literal_family(address[0])
    if family is None:
        sock = socket.create_connection(address, timeout=timeout)
    else:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=address[0])
    except BaseException:
        sock.close()
        raise
    return sock


def receive(sock: socket.socket) -> tuple[bytes, bool]:
    """What has arrived on a readable ``sock``: (data, whether the peer closed).

    A readable TLS socket may hold only records without data (session tickets), and OpenSSL
    may hold decrypted data the selector cannot see: so TLS sockets are read without blocking
    until OpenSSL has nothing more, and may give (b"", False).
    """
    ssl = sys.modules.get("ssl")  # loaded when TLS is used
    if ssl is None or not isinstance(sock, ssl.SSLSocket):
        data = sock.recv(65536)
        return data, not data
    chunks: list[bytes] = []
    sock.setblocking(False)
    try:
        while True:
            try:
                chunk = sock.recv(65536)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return b"".join(chunks), False
            if not chunk:
                return b"".join(chunks), True
            chunks.append(chunk)
    finally:
        sock.setblocking(True)


class RecordReader:
    """Decodes RecordIO records of JSON, incrementally."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self.buffer += data
        out: list[dict[str, Any]] = []
        while True:
            newline = self.buffer.find(b"\n")
            if newline < 0:
                return out
            length = int(self.buffer[:newline])
            end = newline + 1 + length
            if len(self.buffer) < end:
                return out
            out.append(json.loads(self.buffer[newline + 1:end]))
            self.buffer = self.buffer[end:]


class CommandExecutor:
    """Subscribes to the agent, runs the one task it is given, reports, exits."""

    def __init__(self, environ: dict[str, str], task_environ: Mapping[str, str] | None = None):
        #: what the task's environment starts from (this process's own unless given)
        self.task_environ = task_environ
        host, _, port = environ["MESOS_AGENT_ENDPOINT"].rpartition(":")
        self.agent = (host, int(port))
        self.framework_id = environ["MESOS_FRAMEWORK_ID"]
        self.executor_id = environ["MESOS_EXECUTOR_ID"]
        #: the secret the agent gave this executor run; presented with every SUBSCRIBE, never given to the task
        self.secret = environ.get(SECRET_VARIABLE)
        self.checkpoint = environ.get("MESOS_CHECKPOINT") == "1"
        self.recovery_timeout = duration(environ.get("MESOS_RECOVERY_TIMEOUT", ""), 900.0)
        self.shutdown_grace = duration(environ.get("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", ""), 5.0)
        self.backoff_max = duration(environ.get("MESOS_SUBSCRIPTION_BACKOFF_MAX", ""), 2.0)
        self.tls = tls_context(environ)
        self.selector = selectors.DefaultSelector()
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_ids = 0
        self.sock: socket.socket | None = None
        self.reader = RecordReader()
        self.task: dict[str, Any] | None = None
        self.task_acknowledged = False
        self.pid: int | None = None
        self.pidfd: int | None = None
        self.killing = False
        self.final_uuid: str | None = None
        self.unacked: dict[str, dict[str, Any]] = {}
        self.exit_code: int | None = None
        self.lost_since: float | None = None
        # the task's health check, when it has one
        self.health: checks.HealthPolicy | None = None
        self.health_check: dict[str, Any] = {}
        self.task_env: dict[str, str] = {}
        self.started = 0.0
        self.unhealthy: str | None = None
        self.verdicts: queue.SimpleQueue[tuple[bool, str]] | None = None
        self.wakeup: tuple[int, int] | None = None

    # -- the loop ------------------------------------------------------------------

    def run(self) -> int:
        self.watch_children()
        self.subscribe()
        while self.exit_code is None:
            self.step()
        return self.exit_code

    def step(self, longest: float | None = None) -> None:
        """One turn of the loop: wait for I/O or the next timer (at most ``longest`` seconds), then run
        what is due."""
        timeout = longest
        if self.timers:
            due = max(0.0, self.timers[0][0] - time.monotonic())
            timeout = due if timeout is None else min(timeout, due)
        for key, _ in self.selector.select(timeout):
            key.data()
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now and self.exit_code is None:
            _, _, action = heapq.heappop(self.timers)
            action()

    def later(self, delay: float, action: Callable[[], None]) -> None:
        self._timer_ids += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self._timer_ids, action))

    def envelope(self, kind: str, body: dict[str, Any] | None = None, **extra: str) -> bytes:
        call: dict[str, Any] = {"type": kind, "framework_id": {"value": self.framework_id},
                                "executor_id": {"value": self.executor_id}}
        if body is not None:
            call[kind.lower()] = body
        call.update(extra)
        return json.dumps(call).encode()

    # -- the agent -------------------------------------------------------------------

    def unacknowledged_tasks(self) -> list[dict[str, Any]]:
        """The tasks (TaskInfo JSON) of which the agent has acknowledged no update yet (for SUBSCRIBE)."""
        return [self.task] if self.task is not None and not self.task_acknowledged else []

    def subscribe(self) -> None:
        tasks = self.unacknowledged_tasks()
        body = self.envelope("SUBSCRIBE", {"unacknowledged_tasks": tasks,
                                           "unacknowledged_updates": [{"status": s} for s in self.unacked.values()]},
                             token=self.secret or "")
        try:
            sock = connect(self.agent, self.tls)
            sock.sendall(PREAMBLE + record(body))
        except OSError as exc:
            self.disconnected(str(exc))
            return
        sock.settimeout(None)
        self.sock = sock
        self.reader = RecordReader()
        self.lost_since = None
        self.selector.register(sock, selectors.EVENT_READ, self.on_stream)

    def on_stream(self) -> None:
        assert self.sock is not None
        try:
            data, closed = receive(self.sock)
        except OSError:
            data, closed = b"", True
        try:
            events = self.reader.feed(data) if data else []
        except ValueError:
            events, closed = [], True
        for event in events:
            self.handle(event)
        if closed and self.sock is not None:
            self.selector.unregister(self.sock)
            self.sock.close()
            self.sock = None
            self.disconnected("the agent closed the connection")

    def disconnected(self, why: str) -> None:
        if self.exit_code is not None:
            return
        now = time.monotonic()
        if not self.checkpoint:
            log(f"lost the agent ({why}); the framework does not checkpoint, so the task is killed")
            self.kill_now()
            self.exit_code = 1
            return
        if self.lost_since is None:
            self.lost_since = now
            log(f"lost the agent ({why}); reconnecting")
        if now - self.lost_since > self.recovery_timeout:
            log("the agent did not come back within the recovery timeout; killing the task")
            self.kill_now()
            self.exit_code = 1
            return
        self.later(min(self.backoff_max, RECONNECT_INTERVAL), self.subscribe)

    def call(self, body: bytes) -> None:
        """Send a Call; if the agent is gone, unacknowledged updates go again with the next SUBSCRIBE."""
        if self.sock is None:
            return
        try:
            self.sock.sendall(record(body))
        except OSError:
            pass

    # -- events -------------------------------------------------------------------------

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "LAUNCH":
            self.launch(event["launch"]["task"])
        elif kind == "KILL":
            nanos = event["kill"].get("kill_policy", {}).get("grace_period", {}).get("nanoseconds")
            self.kill(int(nanos) / 1e9 if nanos is not None else None)
        elif kind == "ACKNOWLEDGED":
            uuid_text = event["acknowledged"]["uuid"]
            self.unacked.pop(uuid_text, None)
            self.task_acknowledged = True
            if uuid_text == self.final_uuid:
                self.exit_code = 0
        elif kind == "SHUTDOWN":
            if self.pid is not None:
                self.kill(max(self.shutdown_grace - 1.0, 0.0))
            elif self.final_uuid is None:
                self.exit_code = 0
        elif kind == "ERROR":
            log(f"error from the agent: {event.get('error', {}).get('message', '')}")
            self.kill_now()
            self.exit_code = 1

    def update(self, state: str, message: str | None = None, healthy: bool | None = None,
               reason: str | None = None) -> str:
        assert self.task is not None
        status: dict[str, Any] = {"task_id": self.task["task_id"], "state": state, "source": "SOURCE_EXECUTOR",
                                  "executor_id": {"value": self.executor_id}, "timestamp": time.time(),
                                  "uuid": base64.b64encode(uuid.uuid4().bytes).decode()}
        if message:
            status["message"] = message
        if healthy is not None:
            status["healthy"] = healthy
        if reason:
            status["reason"] = reason
        self.unacked[status["uuid"]] = status
        self.call(self.envelope("UPDATE", {"status": status}))
        return status["uuid"]

    def launch(self, task: dict[str, Any]) -> None:
        if self.task is not None:
            if task["task_id"] != self.task["task_id"]:
                log("the command executor runs a single task; ignoring another launch")
            return
        self.task = task
        command = task.get("command") or {}
        shell = command.get("shell", True)
        if shell:
            argv = ["/bin/sh", "-c", command.get("value", "")]
        else:
            argv = list(command.get("arguments") or [command.get("value", "")])
        env = dict(os.environ if self.task_environ is None else self.task_environ)
        env.pop(SECRET_VARIABLE, None)  # the task has no business speaking for its executor
        for variable in command.get("environment", {}).get("variables", []):
            env[variable["name"]] = variable.get("value", "")
        # Found on the task's own PATH, as execvp would in its environment.
        program = argv[0] if shell else (shutil.which(argv[0], path=env.get("PATH", os.defpath)) or argv[0])
        check = task.get("health_check")
        if check is not None:
            try:
                checks = health_checks()
            except ImportError as exc:
                self.finish("TASK_FAILED", f"Cannot run the task's health check: {exc}")
                return
            why = checks.problem(check)
            if why is not None:
                self.finish("TASK_FAILED", f"Invalid health check: {why}")
                return
        try:
            # SIGPIPE and SIGXFSZ are ignored here (as in any Python process): the command gets them
            # back at their defaults, as from a shell, so that `yes | head -1` ends as it does there.
            self.pid = os.posix_spawn(program, argv, env, setpgroup=0, setsigdef=TASK_DEFAULT_SIGNALS)
        except OSError as exc:
            self.finish("TASK_FAILED", f"Failed to launch the command: {exc.strerror}: {program}")
            return
        self.pidfd = os.pidfd_open(self.pid)
        self.selector.register(self.pidfd, selectors.EVENT_READ, self.on_exit)
        log(f"forked command at {self.pid}")
        self.update("TASK_RUNNING")
        if check is not None:
            self.start_health_checks(check, env)

    # -- health checks ---------------------------------------------------------------------

    def start_health_checks(self, check: dict[str, Any], env: dict[str, str]) -> None:
        checks = health_checks()
        self.verdicts = queue.SimpleQueue()
        self.health = checks.HealthPolicy(check)
        self.health_check = check
        self.task_env = env
        self.started = time.monotonic()
        self.wakeup = os.pipe()
        os.set_blocking(self.wakeup[0], False)
        self.selector.register(self.wakeup[0], selectors.EVENT_READ, self.on_verdicts)
        log(f"{self.health.kind} health check every {self.health.interval:g}s after {self.health.delay:g}s")
        self.later(self.health.delay, self.probe_health)

    def checking(self) -> bool:
        return self.health is not None and self.pid is not None and not self.killing and self.exit_code is None

    def probe_health(self) -> None:
        """Run one probe in a thread; its result wakes the loop (:meth:`on_verdicts`)."""
        if not self.checking():
            return
        assert self.health is not None and self.wakeup is not None
        check, env, timeout, wake = self.health_check, self.task_env, self.health.timeout, self.wakeup[1]
        checks, verdicts = health_checks(), self.verdicts
        assert verdicts is not None

        def run() -> None:
            try:
                result = checks.probe(check, self.agent[0], env, None, timeout)
            except Exception as exc:  # noqa: BLE001 - a broken probe is a failed check, not a dead executor
                result = (False, f"health check error: {exc!r}")
            verdicts.put(result)
            try:
                os.write(wake, b"!")
            except OSError:
                pass

        threading.Thread(target=run, name="health-check", daemon=True).start()

    def on_verdicts(self) -> None:
        assert self.wakeup is not None and self.verdicts is not None
        try:
            os.read(self.wakeup[0], 4096)
        except BlockingIOError:
            pass
        while not self.verdicts.empty():
            ok, what = self.verdicts.get()
            if not self.checking():
                continue
            assert self.health is not None
            verdict = self.health.result(ok, time.monotonic() - self.started)
            if verdict.update:
                self.update("TASK_RUNNING", None if ok else what, healthy=verdict.healthy)
            if verdict.kill:
                self.unhealthy = (f"Task killed after {self.health.failures} consecutive failed health checks "
                                  f"(last: {what})")
                log(self.unhealthy)
                self.kill(None)
                continue
            self.later(self.health.interval, self.probe_health)

    def kill(self, grace: float | None) -> None:
        if self.task is None:
            return
        if self.pid is None:
            if self.final_uuid is None:
                self.finish("TASK_KILLED", "Killed before the command started")
            return
        if self.killing:
            return
        self.killing = True
        policy = self.task.get("kill_policy", {}).get("grace_period", {}).get("nanoseconds")
        if grace is None and policy is not None:
            grace = int(policy) / 1e9
        grace = DEFAULT_GRACE if grace is None else min(grace, self.shutdown_grace)
        self.signal(signal.SIGTERM)
        self.later(grace, lambda: self.signal(signal.SIGKILL))

    def kill_now(self) -> None:
        self.signal(signal.SIGKILL)

    def signal(self, signum: int) -> None:
        """Signal the command's process group and every other descendant (daemons in sessions of their own)."""
        if self.pid is not None:
            try:
                os.killpg(self.pid, signum)
            except ProcessLookupError:
                pass
        for pid in descendants(os.getpid()):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    # -- children -------------------------------------------------------------------------

    def watch_children(self) -> None:
        """Become a child subreaper, so that whatever the command starts stays among our descendants.

        Orphans that end while the task runs stay zombies until it ends (:meth:`kill_leftovers` reaps
        them): reaping them sooner would race the health probes' threads for their own children's
        exit statuses, which no wait call can tell apart.
        """
        become_subreaper()

    def kill_leftovers(self) -> None:
        """SIGKILL whatever the ended command left behind, until nothing is left.

        Without children there are no descendants at all, which ``waitid`` tells without reading
        /proc: the common case (a command that left nothing) costs no scan.
        """
        for _ in range(100):  # a fork bomb could outrun a few rounds; cgroups isolation catches the rest
            if not self.has_children():
                return
            left = descendants(os.getpid())
            if not left:
                return
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for pid in left:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass  # not ours (yet): reaped by its own parent, or reparented to us later

    def has_children(self) -> bool:
        """Whether any child is still alive, once the ended ones are reaped."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True

    def on_exit(self) -> None:
        assert self.pidfd is not None and self.pid is not None
        self.selector.unregister(self.pidfd)
        os.close(self.pidfd)
        _, status = os.waitpid(self.pid, 0)
        try:
            os.killpg(self.pid, signal.SIGKILL)  # the command's children go with it
        except ProcessLookupError:
            pass
        self.pid = self.pidfd = None
        self.kill_leftovers()
        code, message = describe_exit(status)
        if self.killing and self.unhealthy is not None:
            self.finish("TASK_KILLED", self.unhealthy, healthy=False, reason=health_checks().REASON)
            return
        if self.killing:
            state = "TASK_KILLED"
        elif code == 0:
            state = "TASK_FINISHED"
        else:
            state = "TASK_FAILED"
        self.finish(state, message)

    def finish(self, state: str, message: str, healthy: bool | None = None, reason: str | None = None) -> None:
        self.final_uuid = self.update(state, message, healthy=healthy, reason=reason)
        self.later(EXIT_TIMEOUT, self.give_up)

    def give_up(self) -> None:
        if not self.checkpoint or self.lost_since is None:
            self.exit_code = 0


def run_executor(make: Callable[[dict[str, str]], Any], environ: dict[str, str] | None) -> int:
    """Run the executor ``make`` builds from the environment an agent sets (``environ``, else this
    process's own; the launcher passes it, which spares a fork the rewriting of its own); 2 when it was
    not started by an agent or cannot set up TLS."""
    environ = dict(os.environ) if environ is None else environ
    missing = [k for k in ("MESOS_AGENT_ENDPOINT", "MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID") if not environ.get(k)]
    if missing:
        log(f"not started by an agent: {', '.join(missing)} not set")
        return 2
    ignore_sigpipe()
    try:
        executor = make(environ)
    except OSError as exc:  # ssl.SSLError included
        log(f"cannot set up TLS to the agent (see the LIBPROCESS_SSL_* variables): {exc}")
        return 2
    return executor.run()


def main(environ: dict[str, str] | None = None) -> int:
    """Run the command executor in this process (see :func:`run_executor`)."""
    return run_executor(lambda env: CommandExecutor(env, env), environ)


if __name__ == "__main__":
    sys.exit(main())
