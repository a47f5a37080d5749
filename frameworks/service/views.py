"""What GETs answer: apps with counts and embeds, tasks, groups, the queue.

Built from the indexes (an app's instances, the locks) so that a request costs
what its answer contains, and restricted to the keys marathon-python 0.13 accepts
(spec section 3.1.4): ``taskStats`` (never ``tasksStats``), no ``tty``/``role`` in
queue items, no ``enforceRole`` on groups.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from typing import Any

from frameworks.service import pathid
from frameworks.service.appdef import App
from frameworks.service.instances import Instance
from frameworks.service.state import ServiceState
from frameworks.service.timestamps import format_ts, parse_ts
from mesostw.model import task as T

EMBED_TASKS, EMBED_COUNTS, EMBED_DEPLOYMENTS = "tasks", "counts", "deployments"
EMBED_READINESS, EMBED_FAILURE, EMBED_STATS = "readiness", "lastTaskFailure", "taskStats"


def embeds(values: Iterable[str], prefixes: tuple[str, ...] = ("apps.", "app.", "group.apps.", "")) -> set[str]:
    """The ``embed`` query values that concern apps, without their prefix; ``failures`` means
    tasks, lastTaskFailure and deployments (Marathon's deprecated shorthand); unknown ones are ignored."""
    out: set[str] = set()
    for value in values:
        for prefix in prefixes:
            if value.startswith(prefix):
                name = value[len(prefix):]
                if name == "failures":
                    out.update({EMBED_TASKS, EMBED_FAILURE, EMBED_DEPLOYMENTS})
                elif name in (EMBED_TASKS, EMBED_COUNTS, EMBED_DEPLOYMENTS, EMBED_READINESS, EMBED_FAILURE,
                              EMBED_STATS):
                    out.add(name)
                break
    if EMBED_TASKS in out:
        out.add(EMBED_DEPLOYMENTS)
    return out


class Views:
    def __init__(self, state: ServiceState, clock: Any):
        self.state = state
        self.clock = clock

    def checks_of(self, instance: Instance) -> int:
        spec = self.state.spec_of(instance)
        return len(spec.health_checks) if spec is not None else 0

    def task(self, instance: Instance) -> dict[str, Any]:
        return instance.to_json(self.checks_of(instance))

    def tasks(self, instances: Iterable[Instance]) -> list[dict[str, Any]]:
        return [self.task(i) for i in instances if not i.gone]

    def readiness(self, app_id: str) -> list[dict[str, Any]]:
        """Readiness results of an app's live instances that have a readiness check."""
        return [i.readiness.to_json(i.task_id) for i in self.state.instances.of_app(app_id)
                if i.readiness is not None and not i.gone]

    def app(self, app: App, wanted: set[str]) -> dict[str, Any]:
        """An AppInfo: the definition plus what ``wanted`` asks for."""
        out = dict(app.json)
        instances = [i for i in self.state.instances.of_app(app.id) if not i.gone]
        if EMBED_COUNTS in wanted:
            staged = running = healthy = unhealthy = 0
            for instance in instances:
                if instance.state in (T.STAGING, T.STARTING):
                    staged += 1
                elif instance.state == T.RUNNING:
                    running += 1
                health = instance.healthy(self.checks_of(instance))
                if health is True:
                    healthy += 1
                elif health is False:
                    unhealthy += 1
            out.update(tasksStaged=staged, tasksRunning=running, tasksHealthy=healthy, tasksUnhealthy=unhealthy)
        if EMBED_DEPLOYMENTS in wanted:
            lock = self.state.locks.get(app.id)
            out["deployments"] = [{"id": lock}] if lock else []
        if EMBED_READINESS in wanted:
            out["readinessCheckResults"] = self.readiness(app.id) if app.readiness_checks else []
        if EMBED_TASKS in wanted:
            out["tasks"] = [self.task(i) for i in instances]
        if EMBED_FAILURE in wanted and app.id in self.state.failures:
            out["lastTaskFailure"] = dict(self.state.failures[app.id])
        if EMBED_STATS in wanted:
            out["taskStats"] = self.task_stats(app, instances)
        return out

    def task_stats(self, app: App, instances: list[Instance]) -> dict[str, Any]:
        now = self.clock.seconds()

        def stats(chosen: list[Instance]) -> dict[str, Any] | None:
            if not chosen:
                return None
            checks = [self.checks_of(i) for i in chosen]
            counts = {
                "staged": sum(1 for i in chosen if i.state in (T.STAGING, T.STARTING)),
                "running": sum(1 for i in chosen if i.running),
                "healthy": sum(1 for i, c in zip(chosen, checks, strict=True) if i.healthy(c) is True),
                "unhealthy": sum(1 for i, c in zip(chosen, checks, strict=True) if i.healthy(c) is False),
            }
            lives = [now - i.started_at for i in chosen if i.started_at is not None]
            out: dict[str, Any] = {"counts": counts}
            if lives:
                out["lifeTime"] = {"averageSeconds": sum(lives) / len(lives),
                                   "medianSeconds": statistics.median(lives)}
            return {"stats": out}

        groups = {
            "startedAfterLastScaling": [i for i in instances if i.staged_at >= _seconds(app.last_scaling_at)],
            "withLatestConfig": [i for i in instances if i.config_version == app.last_config_change_at],
            "withOutdatedConfig": [i for i in instances if i.config_version != app.last_config_change_at],
            "totalSummary": instances,
        }
        return {name: value for name, chosen in groups.items() if (value := stats(chosen)) is not None}

    def group(self, group_id: str, wanted_apps: set[str], with_apps: bool = True,
              with_groups: bool = True) -> dict[str, Any]:
        """A group with its apps and subgroups (recursively), as ``/v2/groups`` answers."""
        meta = self.state.groups.get(group_id, {})
        children: dict[str, list[App]] = {}
        subgroups: set[str] = set()
        for app in self.state.apps_under(group_id):
            rest = app.id[len(group_id):].strip("/") if group_id != pathid.ROOT else app.id.strip("/")
            if "/" in rest:
                subgroups.add(pathid.canonical(rest.split("/", 1)[0], group_id))
            else:
                children.setdefault(group_id, []).append(app)
        for other in self.state.group_ids():
            if other != group_id and pathid.parent(other) == group_id:
                subgroups.add(other)
        out: dict[str, Any] = {"id": group_id, "dependencies": list(meta.get("dependencies", ())),
                               # the root changes with every change; another group when its apps or records do
                               "version": self.state.root_version if group_id == pathid.ROOT
                               else meta.get("version", self.state.root_version)}
        out["apps"] = [self.app(a, wanted_apps) for a in children.get(group_id, [])] if with_apps else []
        out["groups"] = ([self.group(g, wanted_apps, with_apps, with_groups) for g in sorted(subgroups)]
                         if with_groups else [])
        out["pods"] = []
        return out

    def queue(self, with_offers: bool, why: Callable[[str], str | None] | None = None) -> list[dict[str, Any]]:
        now = self.clock.seconds()
        out = []
        for entry in sorted(self.state.queue.waiting(), key=lambda e: (e.since or 0.0, e.app_id)):
            app = self.state.apps.get(entry.app_id)
            if app is None:
                continue
            left = entry.backoff.left(now)
            item: dict[str, Any] = {
                "app": self.app(app, {EMBED_COUNTS, EMBED_DEPLOYMENTS}),
                "count": entry.pending,
                "delay": {"timeLeftSeconds": int(round(left)), "overdue": left <= 0},
                "since": _ts(entry.since if entry.since is not None else now),
                "processedOffersSummary": entry.summary(),
            }
            reason = why(app.id) if why is not None else None
            if reason:
                item["processedOffersSummary"]["why"] = reason
            if with_offers:
                item["lastUnusedOffers"] = entry.last_unused()
            out.append(item)
        return out


def _ts(seconds: float) -> str:
    return format_ts(seconds)


def _seconds(version: str) -> float:
    try:
        return parse_ts(version)
    except ValueError:
        return 0.0
