"""The deployment planner: plans (original -> target) and what each app must do next.

Pure. :func:`plan_steps` turns a change of apps into Marathon's ordered steps
(stops in reverse dependency order, starts, then scale/restart dependency-first).
:func:`converge` is the replacement logic of Marathon's ``TaskReplaceActor`` and
scaling actors as one stateless function: given the target and a view of every
live instance, it returns which instances to kill and how many to launch *now*.
Being stateless it needs no recovery (a resumed deployment recomputes the same
answer), and the capacity rules are checked on every call:

* restart: never kill an available instance if fewer than
  ``ceil(N * minimumHealthCapacity)`` would stay available, and never have more than
  ``floor(N * (1 + maximumOverCapacity))`` instances alive, kills still in flight
  included (when the two bounds meet, one extra instance is allowed, as Marathon does);
* scale: launch the deficit, kill the surplus in ``killSelection`` order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

import attrs

from frameworks.service.pathid import ancestors, is_under

START, STOP, SCALE, RESTART = "StartApplication", "StopApplication", "ScaleApplication", "RestartApplication"

STEADY, HOLD = "steady", "hold"  # converge modes besides the action names


class AppLike(Protocol):
    """What the planner reads of an app (:class:`frameworks.service.appdef.App` fits)."""

    @property
    def instances(self) -> int: ...

    @property
    def last_config_change_at(self) -> str: ...


class CyclicDependencies(ValueError):
    """The apps' dependencies form a cycle."""


@attrs.frozen
class Action:
    action: str
    app: str

    def to_json(self) -> dict[str, str]:
        return {"action": self.action, "app": self.app}


# -- dependency order ------------------------------------------------------------------------------

def dependency_graph(app_ids: Iterable[str], app_deps: Callable[[str], Sequence[str]],
                     group_deps: Mapping[str, Sequence[str]]) -> dict[str, set[str]]:
    """For each app, the apps it depends on: its own dependencies and its groups', where a
    dependency on a group means every app inside it."""
    ids = sorted(set(app_ids))
    graph: dict[str, set[str]] = {}
    for app_id in ids:
        wanted = list(app_deps(app_id))
        for group in ancestors(app_id):
            wanted.extend(group_deps.get(group, ()))
        targets: set[str] = set()
        for dep in wanted:
            targets.update(other for other in ids if is_under(other, dep) and other != app_id)
        graph[app_id] = targets
    return graph


def longest_paths(graph: Mapping[str, set[str]]) -> dict[str, int]:
    """The length of the longest dependency chain below each app; CyclicDependencies on a cycle."""
    depth: dict[str, int] = {}
    visiting: list[str] = []

    def visit(node: str) -> int:
        if node in depth:
            return depth[node]
        if node in visiting:
            cycle = visiting[visiting.index(node):] + [node]
            raise CyclicDependencies("Dependency graph has cyclic dependencies: " + " -> ".join(cycle))
        visiting.append(node)
        value = 0
        for dep in sorted(graph.get(node, ())):
            value = max(value, visit(dep) + 1)
        visiting.pop()
        depth[node] = value
        return value

    for node in sorted(graph):
        visit(node)
    return depth


def plan_steps(original: Mapping[str, AppLike], target: Mapping[str, AppLike],
               original_order: Mapping[str, int], target_order: Mapping[str, int]) -> list[list[Action]]:
    """Marathon's steps from ``original`` to ``target`` (app id -> app), given each side's
    dependency depths (:func:`longest_paths`). Empty steps are dropped."""
    steps: list[list[Action]] = []
    stopped = [app_id for app_id in original if app_id not in target]
    for level in sorted({original_order.get(a, 0) for a in stopped}, reverse=True):
        steps.append([Action(STOP, a) for a in sorted(stopped) if original_order.get(a, 0) == level])
    started = sorted(app_id for app_id in target if app_id not in original)
    steps.append([Action(START, a) for a in started])
    for level in sorted(set(target_order.get(a, 0) for a in target)):
        step = []
        for app_id in sorted(a for a in target if target_order.get(a, 0) == level):
            new, old = target[app_id], original.get(app_id)
            if old is None:
                if new.instances > 0:
                    step.append(Action(SCALE, app_id))
            elif old.last_config_change_at != new.last_config_change_at:
                step.append(Action(RESTART, app_id))
            elif old.instances != new.instances:
                step.append(Action(SCALE, app_id))
        steps.append(step)
    return [step for step in steps if step]


# -- what an app does next -------------------------------------------------------------------------

@attrs.frozen
class InstanceView:
    """What :func:`converge` needs to know of one live (non-terminal) instance."""

    id: str
    current: bool = True          # launched with the target's config
    goal_running: bool = True     # False: being stopped for good (scale-down, replaced, app deleted)
    killing: bool = False         # a kill is in flight
    running: bool = False
    available: bool = False       # running, healthy and ready: it serves
    unhealthy: bool = False       # health checks have failed (as opposed to not known yet)
    inactive: bool = False        # unreachable for longer than the app's inactiveAfterSeconds
    since: float = 0.0            # started (else staged) time, for killSelection


@attrs.frozen
class Decision:
    kill: tuple[str, ...] = ()
    launch: int = 0
    done: bool = False
    waiting: str | None = None


def bounds(instances: int, minimum_health_capacity: float, maximum_over_capacity: float) -> tuple[int, int]:
    """(minHealthy, maxCapacity) of a rolling restart of ``instances``, Marathon's rule included:
    when they meet, one extra instance is allowed so that the restart can progress."""
    min_healthy = math.ceil(round(instances * minimum_health_capacity, 6))
    max_capacity = math.floor(round(instances * (1 + maximum_over_capacity), 6))
    if min_healthy >= max_capacity:
        max_capacity = min_healthy + 1
    return min_healthy, max_capacity


def _victims_order(views: Iterable[InstanceView], kill_selection: str) -> list[InstanceView]:
    """Kill order: not running first, then known unhealthy, then not serving, then by killSelection."""
    youngest = kill_selection != "OLDEST_FIRST"
    return sorted(views, key=lambda v: (v.running, not v.unhealthy, v.available,
                                        -v.since if youngest else v.since, v.id))


def converge(mode: str, instances: int, views: Sequence[InstanceView], minimum_health_capacity: float = 1.0,
             maximum_over_capacity: float = 1.0, kill_selection: str = "YOUNGEST_FIRST") -> Decision:
    """What an app must do now in ``mode`` (STEADY, HOLD, or an action name) to reach ``instances``."""
    if mode == HOLD:
        return Decision(waiting="waiting for an earlier deployment step")
    members = [v for v in views if v.goal_running and not v.inactive]
    stopping = sum(1 for v in views if not v.goal_running)
    if mode == STOP:
        kill = tuple(v.id for v in views if v.goal_running or not v.killing)
        done = not views
        return Decision(kill=kill, done=done, waiting=None if done else f"waiting for {len(views)} instances to stop")
    if mode == RESTART:
        return _restart(instances, members, stopping, minimum_health_capacity, maximum_over_capacity, kill_selection)
    return _scale(mode, instances, members, stopping, kill_selection)


def _scale(mode: str, instances: int, members: list[InstanceView], stopping: int, kill_selection: str) -> Decision:
    kill: list[str] = []
    surplus = len(members) - instances
    if surplus > 0:
        candidates = _victims_order(members, kill_selection)
        kill = [v.id for v in candidates[:surplus]]
    remaining = len(members) - len(kill)
    launch = max(0, instances - len(members))
    available = sum(1 for m in members if m.available and m.id not in kill)
    done = remaining == instances and available >= instances and stopping == 0 and not kill
    return Decision(tuple(kill), launch, done, None if done else _why(instances, members, stopping + len(kill),
                                                                       available, launch))


def _restart(instances: int, members: list[InstanceView], stopping: int, minimum_health_capacity: float,
             maximum_over_capacity: float, kill_selection: str) -> Decision:
    min_healthy, max_capacity = bounds(instances, minimum_health_capacity, maximum_over_capacity)
    old = [m for m in members if not m.current]
    new = [m for m in members if m.current]
    kill: list[str] = []
    if len(new) > instances:
        extra = _victims_order(new, kill_selection)[:len(new) - instances]
        kill.extend(v.id for v in extra)
    killed = set(kill)
    available = sum(1 for m in members if m.available and m.id not in killed)
    held_back = 0
    for victim in _victims_order(old, kill_selection):
        if not victim.available:
            kill.append(victim.id)
        elif available - 1 >= min_healthy:
            kill.append(victim.id)
            available -= 1
        else:
            held_back += 1
    killed = set(kill)
    alive = len(members) + stopping  # killed now or before, an instance holds resources until it is gone
    new_kept = len([n for n in new if n.id not in killed])
    launch = max(0, min(instances - new_kept, max_capacity - alive))
    new_available = sum(1 for n in new if n.available and n.id not in killed)
    old_left = len([o for o in old if o.id not in killed])
    done = not old and stopping == 0 and not kill and len(new) == instances and new_available == instances
    if done:
        return Decision(done=True)
    if held_back and launch == 0 and not kill:
        why = (f"keeping {held_back} old instances until new ones are healthy "
               f"(minimumHealthCapacity needs {min_healthy} of {instances} available)")
    else:
        why = _why(instances, new, stopping + len(kill), new_available, launch)
        if old_left:
            why = f"{old_left} old instances left to replace; {why}"
    return Decision(tuple(kill), launch, False, why)


def _why(instances: int, members: Sequence[InstanceView], stopping: int, available: int, launch: int) -> str:
    parts = []
    if launch:
        parts.append(f"{launch} instances to launch")
    if stopping:
        parts.append(f"waiting for {stopping} instances to stop")
    not_running = sum(1 for m in members if not m.running)
    unhealthy = sum(1 for m in members if m.running and m.unhealthy)
    unknown = sum(1 for m in members if m.running and not m.available and not m.unhealthy)
    if not_running - launch > 0:
        parts.append(f"{not_running} instances staging")
    if unhealthy:
        parts.append(f"{unhealthy} instances failing health checks")
    if unknown:
        parts.append(f"{unknown} instances not yet healthy or ready")
    if not parts:
        parts.append(f"{available} of {instances} instances available")
    return "; ".join(parts)
