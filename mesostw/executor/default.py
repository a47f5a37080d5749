"""The default executor: runs task groups (``LAUNCH_GROUP``), as Mesos's ``mesos-default-executor``.

One executor process per container runs every task of the groups it is given, each in a process
group of its own with its own sandbox, ``tasks/<task id>`` under the executor's (its working
directory and ``MESOS_SANDBOX``; its ``stdout`` and ``stderr`` are there), as Mesos lays out the
sandboxes of a task group's nested containers. Every task is reported (TASK_STARTING, TASK_RUNNING,
then how it ended), and a group is all or nothing, as Mesos's default executor's restart policy: when
one task of a group fails, or is killed (a KILL kills that task), the group's other tasks are killed.
Tasks share files through ``SANDBOX_PATH`` volumes of type ``PARENT`` (a directory of the executor's
sandbox, shown in each task's sandbox), as with Mesos.
The executor ends once all its tasks have ended and their updates are acknowledged.

Like the command executor (:mod:`mesostw.executor.command`), whose connection to the agent,
reconnection and child handling it shares, it uses the standard library only, so that the agent's
launcher forks it cheaply. Health checks of group tasks are not run.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import sys
import time
from typing import Any

from mesostw.executor.command import (
    DEFAULT_GRACE,
    EXIT_TIMEOUT,
    SECRET_VARIABLE,
    TASK_DEFAULT_SIGNALS,
    CommandExecutor,
    describe_exit,
    log,
    run_executor,
)

#: Mesos's default executor announces each task as starting before running it.
STARTING, RUNNING = "TASK_STARTING", "TASK_RUNNING"


class TaskRun:
    """One task of a group: its process and how far it got."""

    __slots__ = ("info", "group", "pid", "pidfd", "killing", "ended", "acknowledged")

    def __init__(self, info: dict[str, Any], group: tuple[str, ...]):
        self.info = info
        self.group = group
        self.pid: int | None = None
        self.pidfd: int | None = None
        self.killing = False
        self.ended = False
        self.acknowledged = False

    @property
    def id(self) -> str:
        return str(self.info["task_id"]["value"])


def sandbox_of(root: str, task_id: str) -> str:
    """A task's own sandbox under the executor's (task IDs may not hold '/', so it stays below ``root``)."""
    return os.path.join(root, "tasks", task_id)


def within(root: str, relative: str) -> str | None:
    """``relative`` joined below ``root``, or None when it is absolute or climbs out of it."""
    if not relative or os.path.isabs(relative):
        return None
    root = os.path.normpath(root)
    path = os.path.normpath(os.path.join(root, relative))
    return path if path.startswith(os.path.join(root, "")) else None


def share_volumes(info: dict[str, Any], task_sandbox: str, executor_sandbox: str) -> str | None:
    """Give the task its ``SANDBOX_PATH`` volumes: a ``PARENT`` one is a directory of the executor's sandbox
    that every task of the group naming it shares (how Mesos's task groups share files), a ``SELF`` one a
    directory of the task's own; each appears at its relative ``container_path`` in the task's sandbox (a
    symbolic link: the tasks share the host's mount namespace). Why one cannot be given, or None."""
    for volume in (info.get("container") or {}).get("volumes", []):
        source = volume.get("source") or {}
        if source.get("type") != "SANDBOX_PATH":
            continue
        sandbox_path = source.get("sandbox_path") or {}
        kind = sandbox_path.get("type", "SELF")
        root = executor_sandbox if kind == "PARENT" else task_sandbox
        if kind not in ("PARENT", "SELF"):
            return f"Unknown sandbox path type {kind!r}"
        target = within(root, str(sandbox_path.get("path", "")))
        link = within(task_sandbox, str(volume.get("container_path", "")))
        if target is None or link is None:
            return (f"A SANDBOX_PATH volume needs relative paths inside the sandboxes: path "
                    f"{sandbox_path.get('path')!r}, container_path {volume.get('container_path')!r}")
        try:
            os.makedirs(target, exist_ok=True)
            if target != link:
                os.makedirs(os.path.dirname(link), exist_ok=True)
                if not os.path.islink(link):
                    os.symlink(target, link)
        except OSError as exc:
            return f"Failed to set up volume {volume.get('container_path')!r}: {exc.strerror}"
    return None


def command_argv(command: dict[str, Any], path: str | None) -> list[str]:
    """What to exec for a CommandInfo: ``sh -c value`` for a shell command, else its arguments."""
    if command.get("shell", True):
        return ["/bin/sh", "-c", command.get("value", "")]
    argv = list(command.get("arguments") or [command.get("value", "")])
    argv[0] = shutil.which(argv[0], path=path) or argv[0]
    return argv


class DefaultExecutor(CommandExecutor):
    """Subscribes to the agent, runs task groups, reports every task, ends when they have all ended."""

    def __init__(self, environ: dict[str, str], sandbox: str | None = None):
        super().__init__(environ)
        self.sandbox = sandbox or environ.get("MESOS_SANDBOX") or os.getcwd()
        #: this process's working directory, which it leaves only to start a task in that task's sandbox
        self.home = os.getcwd()
        self.runs: dict[str, TaskRun] = {}
        self.by_pidfd: dict[int, TaskRun] = {}
        self.shutting_down = False
        self.environ = environ

    def unacknowledged_tasks(self) -> list[dict[str, Any]]:
        return [run.info for run in self.runs.values() if not run.acknowledged]

    def live(self) -> list[TaskRun]:
        return [run for run in self.runs.values() if not run.ended]

    # -- events -------------------------------------------------------------------------------

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "LAUNCH_GROUP":
            self.launch_group(event["launch_group"]["task_group"].get("tasks", []))
        elif kind == "LAUNCH":
            log("the default executor runs task groups only (LAUNCH_GROUP); shutting down")
            self.shutdown()
        elif kind == "KILL":
            task_id = event["kill"]["task_id"]["value"]
            nanos = event["kill"].get("kill_policy", {}).get("grace_period", {}).get("nanoseconds")
            run = self.runs.get(task_id)
            if run is None or run.ended:
                log(f"ignoring a kill of task {task_id}: it is not running here")
                return
            self.kill_task(run, int(nanos) / 1e9 if nanos is not None else None)
        elif kind == "ACKNOWLEDGED":
            status = self.unacked.pop(event["acknowledged"]["uuid"], None)
            run = self.runs.get(event["acknowledged"]["task_id"]["value"])
            if run is not None:
                run.acknowledged = True
            if status is not None and not self.live() and not self.unacked and self.runs:
                self.exit_code = 0
        elif kind == "SHUTDOWN":
            self.shutdown()
        elif kind == "ERROR":
            log(f"error from the agent: {event.get('error', {}).get('message', '')}")
            self.kill_now()
            self.exit_code = 1

    def report(self, run: TaskRun, state: str, message: str | None = None, reason: str | None = None) -> str:
        """Send a status update of one task (kept until acknowledged); returns its UUID."""
        self.task = run.info  # the update() of the command executor reports self.task
        return self.update(state, message, reason=reason)

    # -- launching ----------------------------------------------------------------------------

    def launch_group(self, tasks: list[dict[str, Any]]) -> None:
        if self.shutting_down:
            log("ignoring a task group: the executor is shutting down")
            return
        group = tuple(str(task["task_id"]["value"]) for task in tasks)
        runs = []
        for task in tasks:
            if task["task_id"]["value"] in self.runs:
                log(f"ignoring task {task['task_id']['value']}: it was launched already")
                continue
            run = self.runs[task["task_id"]["value"]] = TaskRun(task, group)
            runs.append(run)
        failed = None
        for run in runs:
            problem = self.start(run)
            if problem is not None:
                failed = run
                run.ended = True
                self.report(run, "TASK_FAILED", problem)
                break
        for run in runs:
            if run.pid is not None:
                self.report(run, STARTING)
        for run in runs:
            if run.pid is not None:
                self.report(run, RUNNING)
        if failed is not None:
            # All or nothing: the tasks started are killed, those not started never run.
            for run in runs:
                if run.pid is not None:
                    self.kill_task(run, None)
                elif not run.ended:
                    run.ended = True
                    self.report(run, "TASK_KILLED", "Another task of the task group failed to launch")
            self.maybe_done()

    def start(self, run: TaskRun) -> str | None:
        """Start the task's command in its sandbox and process group; the reason it could not be, or None."""
        command = run.info.get("command") or {}
        directory = sandbox_of(self.sandbox, run.id)
        env = dict(self.environ)
        env.pop(SECRET_VARIABLE, None)  # the task has no business speaking for its executor
        env.update(MESOS_SANDBOX=directory, MESOS_TASK_ID=run.id)
        for variable in command.get("environment", {}).get("variables", []):
            env[variable["name"]] = variable.get("value", "")
        argv = command_argv(command, env.get("PATH"))
        try:
            os.makedirs(directory, exist_ok=True)
            out = os.open(os.path.join(directory, "stdout"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            err = os.open(os.path.join(directory, "stderr"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            return f"Failed to set up the task's sandbox: {exc.strerror}: {directory}"
        problem = share_volumes(run.info, directory, self.sandbox)
        if problem is not None:
            os.close(out)
            os.close(err)
            return problem
        if "health_check" in run.info:
            log(f"task {run.id}: health checks of task group tasks are not run")
        try:
            # posix_spawn (vfork and exec) copies nothing of this process, and fails with the exec's
            # error; it has no chdir, so this executor (single-threaded) steps into the sandbox around it.
            os.chdir(directory)
            try:
                pid = os.posix_spawn(argv[0], argv, env, file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, err, 2)],
                    setpgroup=0, setsigdef=TASK_DEFAULT_SIGNALS)
            finally:
                os.chdir(self.home)
        except OSError as exc:
            return f"Failed to launch the command: {exc.strerror}: {argv[0]}"
        finally:
            os.close(out)
            os.close(err)
        run.pid = pid
        run.pidfd = os.pidfd_open(pid)
        self.by_pidfd[run.pidfd] = run
        fd = run.pidfd
        self.selector.register(fd, selectors.EVENT_READ, lambda: self.exited(self.by_pidfd[fd]))
        log(f"task {run.id}: started command at {pid} in {directory}")
        return None

    # -- killing and ending ------------------------------------------------------------------

    def kill_task(self, run: TaskRun, grace: float | None) -> None:
        """SIGTERM to the task's process group, SIGKILL after the grace period (the kill's, else the task's
        kill policy's, else 3 s; at most the executor's shutdown grace period)."""
        if run.killing or run.ended or run.pid is None:
            return
        run.killing = True
        policy = run.info.get("kill_policy", {}).get("grace_period", {}).get("nanoseconds")
        if grace is None and policy is not None:
            grace = int(policy) / 1e9
        grace = DEFAULT_GRACE if grace is None else min(grace, self.shutdown_grace)
        self.signal_task(run, signal.SIGTERM)
        self.later(grace, lambda: self.signal_task(run, signal.SIGKILL))

    @staticmethod
    def signal_task(run: TaskRun, signum: int) -> None:
        if run.pid is not None and not run.ended:
            try:
                os.killpg(run.pid, signum)
            except ProcessLookupError:
                pass

    def kill_now(self) -> None:
        for run in self.live():
            self.signal_task(run, signal.SIGKILL)
        self.signal(signal.SIGKILL)

    def shutdown(self) -> None:
        """Kill every task (within the shutdown grace period); end once they have."""
        self.shutting_down = True
        for run in self.live():
            if run.pid is None:
                run.ended = True
                self.report(run, "TASK_KILLED", "Killed before it was launched")
            else:
                self.kill_task(run, max(self.shutdown_grace - 1.0, 0.0))
        self.maybe_done()

    def exited(self, run: TaskRun) -> None:
        """A task's process ended: report it, and the group's restart policy: a failed or killed task takes
        the rest of its group with it."""
        assert run.pidfd is not None and run.pid is not None
        self.selector.unregister(run.pidfd)
        del self.by_pidfd[run.pidfd]
        os.close(run.pidfd)
        _, status = os.waitpid(run.pid, 0)
        try:
            os.killpg(run.pid, signal.SIGKILL)  # what the command left in its group goes with it
        except ProcessLookupError:
            pass
        run.pidfd = None
        run.ended = True
        code, message = describe_exit(status)
        state = "TASK_KILLED" if run.killing else "TASK_FINISHED" if code == 0 else "TASK_FAILED"
        self.report(run, state, message)
        log(f"task {run.id}: {state} ({message})")
        if state != "TASK_FINISHED" and not self.shutting_down:
            for other in self.runs.values():
                if other.id in run.group and other is not run and not other.ended and not other.killing:
                    log(f"task {other.id}: killed, as task {run.id} of its group is {state}")
                    self.kill_task(other, None)
        self.maybe_done()

    def maybe_done(self) -> None:
        """Once no task is left: leftovers are killed, and the executor ends when its updates are
        acknowledged (or after a while, as the command executor's)."""
        if self.live() or not self.runs and not self.shutting_down:
            return
        self.kill_leftovers()
        if not self.unacked:
            self.exit_code = 0
        else:
            self.later(EXIT_TIMEOUT, self.give_up)


def main(environ: dict[str, str] | None = None) -> int:
    """Run the default executor in this process (see :func:`~mesostw.executor.command.run_executor`)."""
    started = time.monotonic()
    code = run_executor(DefaultExecutor, environ)
    log(f"the default executor ends after {time.monotonic() - started:.1f}s")
    return code


if __name__ == "__main__":
    sys.exit(main())
