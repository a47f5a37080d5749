"""The service framework's layout in its IStateStore (the host's own namespace for it).

::

    framework_id                    the Mesos framework ID (UTF-8)
    apps/<app>                      the current definition of each app (JSON with version, versionInfo)
    versions/<app>/<version>        every kept version of an app (``zk_max_versions`` per app; those of a
                                    deleted app until no kept group version names it)
    groups/<group>                  explicitly created groups: {id, dependencies, version} (``_`` is the root)
    deployments/<uuid>              running deployment plans: steps and the affected apps before and after
    instances/<task id>             every launched instance: app, version, agent, host, ports, goal, health
    failures/<app>                  the app's last task failure (lastTaskFailure)
    groupversions/<version>         the root group as each change left it: {version, apps: {id: app
                                    version}, groups: {id: {dependencies}}} (``zk_max_versions`` kept)

``<app>`` is the id without slashes (``/prod/web`` -> ``prod_web``; ``_`` never occurs in an
id). One small value per object keeps every write far below ZooKeeper's node size limit, and
related changes (an app, its new version and the deployment that rolls it out) go in one
atomic commit, written before the API answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from twisted.internet import defer

from frameworks.service import pathid
from mesostw.store import Delete, Operation, Put, dump

ROOT_GROUP = "_"


def app_key(app_id: str) -> str:
    return f"apps/{pathid.safe(app_id)}"


def version_key(app_id: str, version: str) -> str:
    return f"versions/{pathid.safe(app_id)}/{version}"


def group_key(group_id: str) -> str:
    return f"groups/{pathid.safe(group_id) or ROOT_GROUP}"


def deployment_key(deployment_id: str) -> str:
    return f"deployments/{deployment_id}"


def instance_key(task_id: str) -> str:
    return f"instances/{task_id}"


def failure_key(app_id: str) -> str:
    return f"failures/{pathid.safe(app_id)}"


def group_version_key(version: str) -> str:
    return f"groupversions/{version}"


def put(key: str, value: Any) -> Put:
    return Put(key, dump(value))


@attrs.define
class Snapshot:
    """Everything a new leader loads."""

    framework_id: str | None = None
    apps: list[dict[str, Any]] = attrs.field(factory=list)
    versions: dict[str, list[str]] = attrs.field(factory=dict)
    groups: list[dict[str, Any]] = attrs.field(factory=list)
    deployments: list[dict[str, Any]] = attrs.field(factory=list)
    instances: list[dict[str, Any]] = attrs.field(factory=list)
    failures: list[dict[str, Any]] = attrs.field(factory=list)
    group_versions: list[dict[str, Any]] = attrs.field(factory=list)


class Storage:
    """Reads and writes the layout above through an IStateStore."""

    def __init__(self, store: Any):
        self.store = store

    def commit(self, operations: Iterable[Operation]) -> defer.Deferred:
        ops = list(operations)
        return self.store.commit(ops) if ops else defer.succeed(None)

    @defer.inlineCallbacks
    def load(self) -> Any:
        snapshot = Snapshot()
        raw = yield self.store.get("framework_id")
        snapshot.framework_id = raw.decode() if raw else None
        snapshot.apps = yield self._values("apps")
        snapshot.groups = yield self._values("groups")
        snapshot.deployments = yield self._values("deployments")
        snapshot.instances = yield self._values("instances")
        snapshot.failures = yield self._values("failures")
        snapshot.group_versions = yield self._values("groupversions")
        for token in (yield self.store.children("versions")):
            snapshot.versions[pathid.unsafe(token)] = sorted((yield self.store.children(f"versions/{token}")))
        return snapshot

    @defer.inlineCallbacks
    def _values(self, folder: str) -> Any:
        names = yield self.store.children(folder)
        found = yield defer.gatherResults([self.store.get(f"{folder}/{name}") for name in names],
                                          consumeErrors=True)
        return [json.loads(value) for value in found if value is not None]

    @defer.inlineCallbacks
    def version(self, app_id: str, version: str) -> Any:
        """The definition JSON of one stored version, or None."""
        raw = yield self.store.get(version_key(app_id, version))
        return None if raw is None else json.loads(raw)

    def framework_id(self, framework_id: str) -> defer.Deferred:
        return self.store.put("framework_id", framework_id.encode())

    # -- operations ----------------------------------------------------------------------------

    @staticmethod
    def app_ops(definition: Mapping[str, Any], new_version: bool = True) -> list[Operation]:
        ops: list[Operation] = [put(app_key(definition["id"]), definition)]
        if new_version:
            ops.append(put(version_key(definition["id"], definition["version"]), definition))
        return ops

    @staticmethod
    def delete_app_ops(app_id: str) -> list[Operation]:
        """An app's removal; its versions stay while a kept group version names it (see
        :meth:`delete_versions_ops`), so that rolling a group back can bring the app back."""
        return [Delete(app_key(app_id)), Delete(failure_key(app_id))]

    @staticmethod
    def delete_versions_ops(app_id: str) -> list[Operation]:
        return [Delete(f"versions/{pathid.safe(app_id)}")]

    @staticmethod
    def prune_ops(app_id: str, versions: list[str], keep: int, protected: Iterable[str] = ()) -> list[Operation]:
        """Deletes of the oldest versions beyond ``keep`` (never the ``protected`` ones)."""
        spare = set(protected)
        excess = [v for v in versions if v not in spare][: max(0, len(versions) - keep)]
        return [Delete(version_key(app_id, v)) for v in excess]

    @staticmethod
    def group_ops(group: Mapping[str, Any]) -> list[Operation]:
        return [put(group_key(group["id"]), group)]

    @staticmethod
    def delete_group_ops(group_id: str) -> list[Operation]:
        return [Delete(group_key(group_id))]

    @staticmethod
    def deployment_ops(stored: Mapping[str, Any]) -> list[Operation]:
        return [put(deployment_key(stored["id"]), stored)]

    @staticmethod
    def delete_deployment_ops(deployment_id: str) -> list[Operation]:
        return [Delete(deployment_key(deployment_id))]

    @staticmethod
    def instance_ops(stored: Mapping[str, Any]) -> list[Operation]:
        return [put(instance_key(stored["taskId"]), stored)]

    @staticmethod
    def delete_instance_ops(task_id: str) -> list[Operation]:
        return [Delete(instance_key(task_id))]

    @staticmethod
    def failure_ops(failure: Mapping[str, Any]) -> list[Operation]:
        return [put(failure_key(failure["appId"]), failure)]

    @staticmethod
    def group_version_ops(snapshot: Mapping[str, Any], dropped: Iterable[str] = ()) -> list[Operation]:
        """Write one root group version, and delete the ``dropped`` ones."""
        return [put(group_version_key(snapshot["version"]), snapshot),
                *(Delete(group_version_key(v)) for v in dropped)]
