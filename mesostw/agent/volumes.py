"""Persistent volumes on an agent: where they live, how tasks see them, and when they go.

A volume of role ``eng/web`` with persistence ID ``db`` lives in
``<work_dir>/volumes/roles/eng web/db`` (Mesos's layout: a ``/`` of a hierarchical role becomes a space,
so that sub-roles are not directories inside their parents' volumes). It is made when a CREATE reaches
the agent and removed, data and all, only when a DESTROY does (and no container uses it then).

A task whose resources include a volume sees it in its sandbox at the volume's ``container_path``, as
a symbolic link (Mesos's ``filesystem/posix`` isolator, its default): a link works whoever the agent
runs as and whatever ``--isolation`` says, and removing a sandbox never follows it into the volume,
where a bind mount would need a mount namespace to be as safe. The link is made when the container is
launched or given the task. A volume first used by a container whose sandbox belongs to another user
than root is given to that user (its top directory only, as Mesos does), so that the task can write it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable

from twisted.logger import Logger

from mesostw.model.reservation import Key, container_path_problem, is_volume
from mesostw.model.resources import Resources

log = Logger()


class VolumeError(Exception):
    """A volume could not be made visible to a task; the message says which and why."""


def volume_path(work_dir: str, role: str, persistence_id: str) -> str:
    """``<work_dir>/volumes/roles/<role, '/' as ' '>/<persistence id>``"""
    return os.path.join(work_dir, "volumes", "roles", role.replace("/", " "), persistence_id)


class Volumes:
    """The persistent volumes under one agent's ``work_dir``."""

    def __init__(self, work_dir: str):
        self.work_dir = work_dir

    def path(self, key: Key) -> str:
        """Where the volume of a resource key lives."""
        disk = key[2].disk
        return volume_path(self.work_dir, key[1], disk.persistence_id)

    def sync(self, old: Resources, new: Resources, in_use: Iterable[str] = ()) -> None:
        """The agent's checkpointed resources went from ``old`` to ``new``: make the volumes created,
        remove the ones destroyed (except those whose paths are ``in_use`` by a container, kept and
        reported)."""
        busy = set(in_use)
        wanted = {self.path(k) for k in new.volumes().keys()}
        for key in new.volumes().keys():
            os.makedirs(self.path(key), exist_ok=True)
        for key in old.volumes().keys():
            path = self.path(key)
            if path in wanted:
                continue
            if path in busy:
                log.warn("Not removing destroyed volume {path}: a container still uses it", path=path)
                continue
            log.info("Removing destroyed persistent volume {path}", path=path)
            shutil.rmtree(path, ignore_errors=True)

    def link(self, sandbox: str, resources: Resources) -> None:
        """Make every volume of ``resources`` appear in ``sandbox`` at its container path; raises
        :class:`VolumeError`."""
        for key, _ in resources.entries():
            if len(key) != 3 or not is_volume(key):
                continue
            disk = key[2].disk
            problem = container_path_problem(disk.container_path or "")
            if problem:
                raise VolumeError(f"volume {disk.persistence_id}: {problem}")
            source = self.path(key)
            os.makedirs(source, exist_ok=True)
            target = os.path.join(sandbox, disk.container_path)
            if os.path.islink(target) and os.readlink(target) == source:
                continue
            try:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if os.path.lexists(target):
                    raise VolumeError(f"volume {disk.persistence_id}: {disk.container_path!r} exists in the sandbox")
                os.symlink(source, target)
                _give(source, sandbox)
            except OSError as exc:
                raise VolumeError(f"volume {disk.persistence_id}: cannot link it at {target}: {exc}") from None

    def used_by(self, resources: Resources) -> set[str]:
        """The paths of the volumes in ``resources``."""
        return {self.path(k) for k in resources.volumes().keys()}


def _give(volume: str, sandbox: str) -> None:
    """Give the volume's top directory to the sandbox's owner (when that is not root: root reads and
    writes it anyway, and a volume once given to a user stays with it)."""
    status = os.stat(sandbox)
    if status.st_uid == 0:
        return
    current = os.stat(volume)
    if (current.st_uid, current.st_gid) != (status.st_uid, status.st_gid) and os.getuid() == 0:
        os.chown(volume, status.st_uid, status.st_gid)
