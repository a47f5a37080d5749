"""The agent's side of the launcher process (see :mod:`mesostw.executor.zygote`)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from twisted.application import service
from twisted.internet import defer, error, protocol, task
from twisted.logger import Logger

from mesostw.agent.containers import same_process

log = Logger()

#: How often executors whose launcher died are checked for liveness.
ORPHAN_POLL = 1.0


class LaunchError(Exception):
    """The launcher could not start a process; the message says why."""


class _LauncherProtocol(protocol.ProcessProtocol):
    """Splits the launcher's stdout into JSON lines."""

    MAX_LINE = 1 << 20

    def __init__(self, owner: Launcher):
        self.owner = owner
        self.buffer = b""

    def outReceived(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            self.owner._line(line)
        if len(self.buffer) > self.MAX_LINE:
            log.error("The launcher wrote an overlong line; restarting it")
            self.buffer = b""
            if self.transport is not None:
                self.transport.signalProcess("KILL")

    def processEnded(self, reason: Any) -> None:
        self.owner._ended(self, reason)


class Launcher(service.Service):
    """Keeps a launcher process running and turns its JSON lines into Deferreds."""

    name = "launcher"  # type: ignore[assignment]  # twisted declares Service.name as None

    def __init__(self, reactor: Any, python: str = sys.executable):
        self.reactor = reactor
        self.python = python
        self._proto: _LauncherProtocol | None = None
        self._next = 0
        self._requests: dict[int, defer.Deferred] = {}
        self._exits: dict[int, defer.Deferred] = {}
        self._statuses: dict[int, int] = {}
        self._orphans: task.LoopingCall | None = None
        #: pid -> (start time, Deferred) of processes that are not the launcher's children
        self._adopted: dict[int, list[tuple[float | None, defer.Deferred]]] = {}
        self._stopping = False
        self.spawned = 0

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        self._spawn()

    def stopService(self) -> defer.Deferred:
        super().stopService()
        self._stopping = True
        if self._orphans is not None and self._orphans.running:
            self._orphans.stop()
        proto = self._proto
        if proto is None or proto.transport is None:
            return defer.succeed(None)
        done: defer.Deferred[None] = defer.Deferred()
        self._stopped = done
        proto.transport.closeStdin()
        return done

    def _spawn(self) -> None:
        proto = _LauncherProtocol(self)
        # Every symbol of the libraries loaded at start is resolved then (extension modules are loaded with
        # RTLD_NOW already), not by each forked executor the first time it calls one: each such lookup
        # costs it CPU and a copied page of the library's table. Its children run with the environment
        # of their request, not this one.
        env = dict(os.environ, LD_BIND_NOW="1")
        self.reactor.spawnProcess(proto, self.python, [self.python, "-m", "mesostw.executor.zygote"], env=env,
                                  childFDs={0: "w", 1: "r", 2: 2})
        self._proto = proto
        self.spawned += 1

    def launch(self, mode: str, argv: list[str], env: dict[str, str], cwd: str, stdout: str, stderr: str,
               user: str | None = None, cgroups: list[str] | None = None,
               preload: list[str] | None = None, native: bool = False) -> defer.Deferred:
        """Start a process; fires with its pid. ``mode`` is "command-executor", "default-executor" or "exec";
        the process joins the ``cgroups`` (``cgroup.procs`` paths) before anything else, and an executor
        imports what ``preload`` names (see :data:`mesostw.executor.zygote.PRELOADS`) before it switches
        to ``user``; a command executor is the native one when ``native`` (and the launcher has it)."""
        if self._proto is None or self._proto.transport is None:
            return defer.fail(LaunchError("the launcher is not running"))
        self._next += 1
        request = {"id": self._next, "mode": mode, "argv": argv, "env": env, "cwd": cwd, "stdout": stdout,
                   "stderr": stderr, "user": user, "cgroups": cgroups or []}
        if preload:
            request["preload"] = preload
        if native:
            request["native"] = True
        d: defer.Deferred[int] = defer.Deferred()
        self._requests[self._next] = d
        self._proto.transport.write(json.dumps(request).encode() + b"\n")
        return d

    def wait(self, pid: int) -> defer.Deferred:
        """Fires with the wait status of ``pid`` (None if it could not be learned) when it ends."""
        if pid in self._statuses:
            return defer.succeed(self._statuses.pop(pid))
        d = self._exits.get(pid)
        if d is None:
            if self._proto is None:  # the launcher that started it is gone: poll it
                return self.watch(pid, None)
            d = self._exits[pid] = defer.Deferred()
        out: defer.Deferred[int | None] = defer.Deferred()

        def relay(result: Any) -> Any:
            out.callback(result)
            return result

        d.addBoth(relay)
        return out

    def watch(self, pid: int, started: float | None) -> defer.Deferred:
        """Fires with None when ``pid`` (started at ``started``), a process that is no child of this
        launcher (an executor an earlier run of the agent started), ends; polled."""
        d: defer.Deferred[None] = defer.Deferred()
        self._adopted.setdefault(pid, []).append((started, d))
        self._watch_orphans()
        return d

    def _line(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            log.error("Unreadable line from the launcher: {line!r}", line=line[:200])
            return
        if "exited" in message:
            pid, status = message["exited"], message.get("status")
            waiter = self._exits.pop(pid, None)
            if waiter is not None:
                waiter.callback(status)
            else:
                self._statuses[pid] = status
            return
        request = self._requests.pop(message.get("id"), None)
        if request is None:
            log.error("Launcher answered an unknown request: {m}", m=message)
        elif "pid" in message:
            request.callback(message["pid"])
        else:
            request.errback(LaunchError(message.get("error", "unknown error")))

    def _ended(self, proto: _LauncherProtocol, reason: Any) -> None:
        if proto is not self._proto:
            return
        self._proto = None
        pending, self._requests = self._requests, {}
        for d in pending.values():
            d.errback(LaunchError("the launcher exited"))
        if self._stopping:
            stopped = getattr(self, "_stopped", None)
            if stopped is not None and not stopped.called:
                stopped.callback(None)
            return
        if not reason.check(error.ProcessDone):
            log.warn("The launcher died ({r}); starting a new one", r=reason.getErrorMessage())
        # Its children are no one's children now (no one reports their exit): poll them instead.
        orphans, self._exits = self._exits, {}
        for pid, waiter in orphans.items():
            self._adopted.setdefault(pid, []).append((None, waiter))
        if self._adopted:
            self._watch_orphans()
        self._spawn()

    def _watch_orphans(self) -> None:
        if self._orphans is None or not self._orphans.running:
            self._orphans = task.LoopingCall(self._poll_orphans)
            self._orphans.clock = self.reactor
            self._orphans.start(ORPHAN_POLL, now=False)

    def _poll_orphans(self) -> None:
        for pid, watchers in list(self._adopted.items()):
            for started, d in list(watchers):
                if not same_process(pid, started):
                    watchers.remove((started, d))
                    d.callback(None)
            if not watchers:
                del self._adopted[pid]
        if not self._adopted and self._orphans is not None and self._orphans.running:
            self._orphans.stop()
