"""The framework's state in memory: apps, groups, deployments, instances, the launch queue.

Plain data with indexes and queries; no I/O. The controller (API changes) and the
runtime (offers, status updates, health) are the only writers, each through
methods here, and each writes the store first for anything that must survive.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any

from frameworks.service import pathid
from frameworks.service import planner as P
from frameworks.service.appdef import App
from frameworks.service.deployments import Deployment
from frameworks.service.instances import Instance, InstanceTracker
from frameworks.service.queue import LaunchQueue


class ServiceState:
    def __init__(self, local_port_min: int = 10000, local_port_max: int = 20000, seed: int | None = None):
        self.apps: dict[str, App] = {}
        self.versions: dict[str, list[str]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.deployments: dict[str, Deployment] = {}
        self.locks: dict[str, str] = {}
        self.instances = InstanceTracker()
        self.queue = LaunchQueue()
        self.specs: dict[tuple[str, str], App] = {}
        self.failures: dict[str, dict[str, Any]] = {}
        self.root_version = "1970-01-01T00:00:00.000Z"
        #: the root group as each change left it, by version (see Storage: groupversions/)
        self.group_versions: dict[str, dict[str, Any]] = {}
        self.framework_id: str | None = None
        self.port_range = (local_port_min, local_port_max)
        self._random = random.Random(seed)

    # -- apps ----------------------------------------------------------------------------------

    def set_app(self, app: App) -> None:
        self.apps[app.id] = app
        self.specs[(app.id, app.version)] = app
        known = self.versions.setdefault(app.id, [])
        if app.version not in known:
            known.append(app.version)
            known.sort()

    def drop_app(self, app_id: str) -> None:
        self.apps.pop(app_id, None)
        self.versions.pop(app_id, None)
        self.failures.pop(app_id, None)

    def spec_of(self, instance: Instance) -> App | None:
        """The app version an instance was launched with (the current one if that is unknown)."""
        return self.specs.get((instance.app_id, instance.version)) or self.apps.get(instance.app_id)

    def forget_unused_specs(self, app_id: str) -> None:
        live = {i.version for i in self.instances.of_app(app_id)}
        current = self.apps.get(app_id)
        for key in [k for k in self.specs if k[0] == app_id]:
            if key[1] not in live and (current is None or current.version != key[1]):
                del self.specs[key]

    def apps_under(self, group_id: str) -> list[App]:
        return [a for i, a in sorted(self.apps.items()) if pathid.is_under(i, group_id) and i != group_id]

    def group_ids(self) -> set[str]:
        """Every group that exists: explicit ones and the parents of every app."""
        found = {pathid.ROOT} | set(self.groups)
        for app_id in self.apps:
            found.update(pathid.ancestors(app_id))
        for group_id in list(found):
            found.update(pathid.ancestors(group_id))
        return found

    def group_versions_of(self, group_id: str) -> list[str]:
        """The root versions in which ``group_id`` existed (held an app or was a recorded group), newest first."""
        found = []
        for version, snapshot in self.group_versions.items():
            if group_id == pathid.ROOT or group_id in snapshot.get("groups", {}) or \
                    any(pathid.is_under(a, group_id) for a in snapshot.get("apps", {})):
                found.append(version)
        return sorted(found, reverse=True)

    # -- ports ---------------------------------------------------------------------------------

    def service_ports_in_use(self, except_app: str | None = None) -> set[int]:
        used: set[int] = set()
        for app_id, app in self.apps.items():
            if app_id != except_app:
                used.update(p for p in app.service_ports if p)
        return used

    def assign_service_ports(self, spec: dict[str, Any], previous: App | None, taken: set[int]) -> str | None:
        """Give every ``port: 0`` definition a free service port (keeping the previous version's
        port at the same index); returns a problem when the range is exhausted."""
        keep = previous.service_ports if previous is not None else []
        low, high = self.port_range
        definitions = [dict(d) for d in spec.get("portDefinitions", [])]
        for definition in definitions:
            if definition["port"]:
                taken.add(definition["port"])
        for index, definition in enumerate(definitions):
            if definition["port"]:
                continue
            if index < len(keep) and keep[index] and keep[index] not in taken:
                definition["port"] = keep[index]
            else:
                port = self._free_port(low, high, taken)
                if port is None:
                    return f"no free service port left in {low}-{high}"
                definition["port"] = port
            taken.add(definition["port"])
        spec["portDefinitions"] = definitions
        return None

    def _free_port(self, low: int, high: int, taken: set[int]) -> int | None:
        for _ in range(64):
            port = self._random.randint(low, high)
            if port not in taken:
                return port
        return next((p for p in range(low, high + 1) if p not in taken), None)

    # -- dependencies and deployments ----------------------------------------------------------

    def group_dependencies(self) -> dict[str, list[str]]:
        return {g: list(meta.get("dependencies", ())) for g, meta in self.groups.items()}

    def order(self, apps: Mapping[str, App], groups: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, int]:
        """Dependency depth of each app of ``apps`` (with ``groups`` instead of the current group
        records when given); CyclicDependencies on a cycle."""
        records = self.groups if groups is None else groups
        group_deps = {g: list(meta.get("dependencies", ())) for g, meta in records.items()}
        graph = P.dependency_graph(apps, lambda a: apps[a].dependencies, group_deps)
        return P.longest_paths(graph)

    def locking(self, app_ids: Iterable[str]) -> list[str]:
        """Ids of the deployments that hold any of ``app_ids``."""
        return sorted({self.locks[a] for a in app_ids if a in self.locks})

    def add_deployment(self, deployment: Deployment) -> None:
        self.deployments[deployment.id] = deployment
        for app_id in deployment.affected:
            self.locks[app_id] = deployment.id

    def remove_deployment(self, deployment_id: str) -> Deployment | None:
        deployment = self.deployments.pop(deployment_id, None)
        if deployment is not None:
            for app_id in deployment.affected:
                if self.locks.get(app_id) == deployment_id:
                    del self.locks[app_id]
        return deployment

    def deployment_of(self, app_id: str) -> Deployment | None:
        found = self.locks.get(app_id)
        return self.deployments.get(found) if found else None
