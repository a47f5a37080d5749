"""The launcher: a small, pre-loaded process that forks executors for its agent.

Starting a Python executor from scratch costs a few hundred milliseconds of
interpreter and import time; forking this process, which has already
imported the executor's code, costs a few milliseconds. The agent talks to it
over stdin/stdout in JSON lines:

    -> {"id": 1, "mode": "command-executor" | "default-executor" | "exec", "argv": [...], "env": {...},
        "cwd": "...", "stdout": "...", "stderr": "...", "user": null, "cgroups": [...], "preload": [...],
        "native": false}
    <- {"id": 1, "pid": 1234}        or  {"id": 1, "error": "..."}
    <- {"exited": 1234, "status": 0}  (a wait status, whenever a child ends)

Children first join the container's cgroups (``cgroups`` lists their ``cgroup.procs`` files),
while still root and before they run anything of the task's, then start their own session, so
they survive the agent and this process. The answer comes once the child has exec'd (or set
itself up as the command executor): a child that cannot (a missing program, a group it cannot
join) makes the request fail with the reason.
The command executor needs only the standard library, so this process stays
small and its forks cheap (few pages to copy on write, few mappings to copy and
to tear down when the executor ends). What only some executors need is not
loaded here until one does: :mod:`ssl` once an executor's environment turns TLS
on (from then on every executor has it), and the health checks (``preload``:
["health"], which the agent asks for when a task has a health check), which that
child imports itself before it switches to the task's user.

A command executor request with ``"native": true`` (the agent asks for it for plain command tasks)
runs the native command executor (:mod:`mesostw.executor.native`) instead: a C program this process
spawns (vfork and exec), so that no page of this process is copied and no Python runs for it. Without
the program the request runs the Python command executor.
"""

from __future__ import annotations

# A child switched to another user may not be able to read the interpreter's library (it can
# live in a private directory), so whatever the command executor imports lazily is loaded here:
# the codec socket.getaddrinfo() looks up for host names.
import _signal
import ctypes
import encodings.idna  # noqa: E402,F401
import gc
import json
import os
import pwd
import selectors
import signal
import sys
import time
import traceback
from typing import Any

from mesostw.executor import command, default, native

#: The signals a child puts back to their defaults (this process handles or ignores them), as plain
#: numbers for ``_signal``, the C module under :mod:`signal`: ``signal.signal`` turns what it returns
#: into an enum member, and that Python code costs a forked child a hundred copied pages.
_CHILD_DEFAULTS = tuple(int(s) for s in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE,
                                         signal.SIGHUP))

#: What a request may ask its child to import before it switches to the task's user.
PRELOADS = {"health": "mesostw.executor.health"}


def _become(entry: pwd.struct_passwd | None, env: dict[str, str]) -> None:
    """Switch to the user of ``entry`` (its groups too) and give it its own USER, LOGNAME and HOME."""
    if entry is None:
        return
    env.update(USER=entry.pw_name, LOGNAME=entry.pw_name, HOME=entry.pw_dir)
    if entry.pw_uid == os.getuid():
        return
    os.initgroups(entry.pw_name, entry.pw_gid)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)


def _join(cgroups: list[str]) -> None:
    """Move this process into the container's groups (it is still root here, before any setuid)."""
    pid = str(os.getpid())
    for procs in cgroups:
        try:
            with open(procs, "w") as f:
                f.write(pid)
        except OSError as exc:
            raise OSError(f"cannot join the cgroup {os.path.dirname(procs)}: {exc.strerror}") from None


def _reason(exc: BaseException, request: dict[str, Any]) -> str:
    """Why the child could not become the executor, for the launch's error."""
    if isinstance(exc, OSError) and exc.strerror:
        what = exc.filename if isinstance(exc.filename, str) else (request.get("argv") or ["the executor"])[0]
        return f"cannot run {what}: {exc.strerror}"
    return str(exc) or repr(exc)


def _child(request: dict[str, Any], report: int, entry: pwd.struct_passwd | None = None) -> None:
    """In the forked child: join the container, set up the sandbox, then become the executor. Never returns.

    Whatever fails before the executor runs is written to ``report`` (close-on-exec: an exec
    closes it, the command executor closes it once set up), so that the launcher answers the
    request with the reason instead of a pid. ``entry`` is the request's user, looked up by the
    launcher; the request's environment was checked there too (strings only).

    Whatever a fork touches first costs it a copied page: so the child reuses what the launcher
    already has (the user's entry, the environment as decoded, ``sys.stdout`` and ``sys.stderr``,
    which write to descriptors 1 and 2 whatever those are once redirected here; the launcher itself
    never writes through them, so they hold nothing buffered).
    """
    code = 127
    try:
        _signal.set_wakeup_fd(-1)
        for signum in _CHILD_DEFAULTS:
            _signal.signal(signum, _signal.SIG_DFL)
        _join(request.get("cgroups") or [])
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.closerange(3, report)
        os.closerange(report + 1, 65536)
        for name in request.get("preload") or ():
            # While still root (the user may not be able to read the library), and before entering the
            # sandbox, which holds what the task's user put there (fetched URIs).
            __import__(PRELOADS[name])
        os.chdir(request["cwd"])
        env = request["env"]
        _become(entry, env)
        if request["mode"] == "exec":
            argv = request["argv"]
            os.execvpe(argv[0], argv, env)
        os.close(report)
        report = -1
        code = default.main(env) if request["mode"] == "default-executor" else command.main(env)
    except BaseException as exc:  # noqa: BLE001 - anything here must end the child, reported
        try:
            if report >= 0:
                os.write(report, _reason(exc, request).encode()[:4000])
            os.write(2, f"mesos-executor: failed to start: {exc!r}\n".encode())
            os.write(2, traceback.format_exc().encode())
        except OSError:
            pass
    finally:
        os._exit(code)


_libc = ctypes.CDLL(None, use_errno=True)


def fork() -> int:
    """``fork(2)`` itself, without the interpreter's bookkeeping around it.

    ``os.fork`` runs the interpreter's fork hooks in the child (threading's and random's, among
    others): that touches pages enough to double what a fork costs the child, and is needed only
    where other threads may hold locks, which in this single-threaded process none do. The C
    library's own fork handlers (OpenSSL's) still run.
    """
    pid = _libc.fork()
    if pid < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return pid


def _check_user(user: str) -> pwd.struct_passwd:
    """The user's entry, if this launcher may run processes as that user."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"user '{user}' does not exist on this agent") from None
    if os.getuid() != 0 and entry.pw_uid != os.getuid():
        raise ValueError(f"cannot run as user '{user}': the agent does not run as root")
    return entry


def _check_environment(env: Any) -> None:
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ValueError("env must map names to strings")


#: A checked request: the request, its user's entry, the native executor's arguments (None for Python).
Checked = tuple[dict[str, Any], "pwd.struct_passwd | None", "list[bytes] | None"]


class Launcher:
    """The fork-server loop."""

    def __init__(self, inp: int = 0, out: int = 1):
        self.inp, self.out = inp, out
        self.buffer = b""
        self.children: set[int] = set()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)
        self.selector = selectors.DefaultSelector()
        #: report pipe -> (request id, child pid, what the child wrote): children not yet answered for
        self.reports: dict[int, tuple[int, int, bytearray]] = {}
        #: children whose launch failed: their exit is not reported
        self.failed: set[int] = set()
        self.done = False

    def reply(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        while data:
            written = os.write(self.out, data)
            data = data[written:]

    def handle(self, line: bytes) -> None:
        """Answer one request line: start its process, or say why not."""
        request = self.check(line)
        if request is not None:
            self.start([request])

    def check(self, line: bytes) -> Checked | None:
        """The request of ``line`` with its user's entry and, for the native command executor, its
        arguments (see :func:`mesostw.executor.native.spec`), ready to start; None (answered) when it is
        refused."""
        try:
            request = json.loads(line)
            request_id = request["id"]
        except (ValueError, KeyError, TypeError):
            self.reply({"error": f"malformed request {line[:200]!r}"})
            return None
        try:
            for key in ("stdout", "stderr", "cwd"):
                if not isinstance(request.get(key), str):
                    raise ValueError(f"{key} must be a path")
            if request.get("mode") not in ("command-executor", "default-executor", "exec"):
                raise ValueError("mode must be command-executor, default-executor or exec")
            if request["mode"] == "exec" and not request.get("argv"):
                raise ValueError("exec needs argv")
            entry = _check_user(request["user"]) if request.get("user") else None
            _check_environment(request.get("env"))
            cgroups = request.get("cgroups") or []
            if not isinstance(cgroups, list) or not all(isinstance(p, str) for p in cgroups):
                raise ValueError("cgroups must be a list of paths")
            preload = request.get("preload")
            if preload is not None and (not isinstance(preload, list) or not all(name in PRELOADS for name in preload)):
                raise ValueError(f"preload must list some of {', '.join(sorted(PRELOADS))}")
            blob = self.native_spec(request, entry)
        except (ValueError, KeyError) as exc:
            self.reply({"id": request_id, "error": str(exc).strip("'\"")})
            return None
        # Two lookups in the common case: whatever runs here between forks costs this process pages
        # copied on write (every fork shares them again).
        env = request["env"]
        if ("LIBPROCESS_SSL_ENABLED" in env or "SSL_ENABLED" in env) and "ssl" not in sys.modules \
                and request["mode"] != "exec" and command.tls_wanted(env):
            import ssl  # noqa: F401 - once, here: every executor of this agent speaks TLS from now on
        return request, entry, blob

    @staticmethod
    def native_spec(request: dict[str, Any], entry: pwd.struct_passwd | None) -> list[bytes] | None:
        """The native executor's arguments when the request asks for it and the program is here, else None.

        The user's USER, LOGNAME and HOME go into the environment here (:func:`_become` does it in the
        Python executor's child), and the user is named to the child only when it must switch to it.
        """
        if not request.get("native") or request["mode"] != "command-executor" or not native.available():
            return None
        user = None
        if entry is not None:
            request["env"].update(USER=entry.pw_name, LOGNAME=entry.pw_name, HOME=entry.pw_dir)
            if entry.pw_uid != os.getuid():
                user = (entry.pw_name, entry.pw_uid, entry.pw_gid)
        return native.spec(request, user)

    def start(self, requests: list[Checked]) -> None:
        """Fork a child for each of ``requests`` (checked), back to back.

        After a fork, every page this process writes is copied (its last child still shares it) until
        the next fork shares them all again: so nothing else runs between these forks, and the children
        are registered for their reports once all are forked.
        """
        started = []
        for request, entry, blob in requests:
            report_r, report_w = os.pipe2(os.O_CLOEXEC)
            try:
                pid = fork() if blob is None else native.spawn(blob, request["env"], report_w)
            except OSError as exc:  # out of processes or memory: this request fails, the others go on
                os.close(report_r)
                os.close(report_w)
                self.reply({"id": request["id"], "error": f"cannot start a process: {exc.strerror}"})
                continue
            if pid == 0:
                os.close(report_r)
                _child(request, report_w, entry)
            os.close(report_w)
            started.append((report_r, request["id"], pid))
        for report_r, request_id, pid in started:
            self.children.add(pid)
            # Answered once the child has exec'd or set itself up (or failed to): the next fork need not wait.
            self.reports[report_r] = (request_id, pid, bytearray())
            self.selector.register(report_r, selectors.EVENT_READ, self.on_report)

    def on_report(self, fd: int) -> None:
        request_id, pid, problem = self.reports[fd]
        chunk = os.read(fd, 4096)
        if chunk:
            problem += chunk
            return
        self.selector.unregister(fd)
        os.close(fd)
        del self.reports[fd]
        if problem:
            self.failed.add(pid)  # its exit is no news: the request failed
            self.reply({"id": request_id, "error": problem.decode(errors="replace")})
        else:
            self.reply({"id": request_id, "pid": pid})

    def settle(self, pid: int) -> None:
        """Answer ``pid``'s request before reporting its exit (its report pipe is closed by then)."""
        for fd, (_, child, _) in list(self.reports.items()):
            if child == pid:
                while fd in self.reports:
                    self.on_report(fd)

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self.settle(pid)
            if pid in self.failed:
                self.failed.discard(pid)
                continue
            self.reply({"exited": pid, "status": status})

    def on_wake(self, fd: int) -> None:
        try:
            os.read(self.wake_r, 4096)
        except BlockingIOError:
            pass
        self.reap()

    def on_input(self, fd: int) -> None:
        chunk = os.read(self.inp, 65536)
        if not chunk:
            self.done = True
            return
        self.buffer += chunk
        # Every request that has come is checked first, then all are forked together (see start()).
        ready = []
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if line.strip():
                request = self.check(line)
                if request is not None:
                    ready.append(request)
        if ready:
            self.start(ready)

    def run(self) -> int:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.selector.register(self.wake_r, selectors.EVENT_READ, self.on_wake)
        self.selector.register(self.inp, selectors.EVENT_READ, self.on_input)
        while not self.done:
            try:
                events = self.selector.select()
            except InterruptedError:
                continue
            # Reports first: a child's answer goes out before the news of its exit.
            events.sort(key=lambda event: event[0].data != self.on_report)
            for key, _ in events:
                key.data(key.fd)
            self.reap()
        return 0


def main() -> int:
    # The executors log local times: the time zone is read here once, not by every fork.
    time.localtime()
    # What loading freed (a module compiled from source leaves its parser's memory, when there is no
    # bytecode cache) goes back to the system: every fork copies the page table of what is left.
    gc.collect()
    trim = getattr(_libc, "malloc_trim", None)  # glibc's
    if trim is not None:
        trim(0)
    # Objects loaded so far are shared with every child; keep the collector off them so that
    # their pages stay shared after fork instead of being copied when a child collects.
    gc.freeze()
    try:
        return Launcher().run()
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
