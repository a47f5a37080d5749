"""Deployments: a plan (steps of actions on apps) with the apps before and after it.

Pure data. Which step runs is kept in memory only: each step's completion is
recomputed from the instances (see :func:`frameworks.service.planner.converge`),
so a deployment recovered by a new leader starts again at its first step and
passes the finished ones at once. ``status`` holds the planner's account of why each
app of the current step is not done yet; the launch queue adds its part when asked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from frameworks.service import planner as P
from frameworks.service.appdef import App


@attrs.define(eq=False)
class Deployment:
    id: str
    version: str
    steps: list[list[P.Action]]
    original: dict[str, App | None]
    target: dict[str, App | None]
    current_step: int = 0
    status: dict[str, str] = attrs.field(factory=dict)
    started_at: float = 0.0

    @property
    def affected(self) -> list[str]:
        return sorted(set(self.original) | set(self.target))

    @property
    def finished(self) -> bool:
        return self.current_step >= len(self.steps)

    def current_actions(self) -> list[P.Action]:
        return list(self.steps[self.current_step]) if not self.finished else []

    def mode_for(self, app_id: str) -> str:
        """How ``app_id`` converges now: its action in the current step, HOLD until its step comes,
        STEADY once its step is done (or when no step names it)."""
        for index, step in enumerate(self.steps):
            for action in step:
                if action.app != app_id:
                    continue
                if index == self.current_step:
                    return action.action
                if index > self.current_step:
                    return P.HOLD
        return P.STEADY

    # -- JSON ----------------------------------------------------------------------------------

    def to_json(self, explain: Callable[[str, str | None], str] | None = None,
                readiness: Callable[[str], list[dict[str, Any]]] | None = None) -> dict[str, Any]:
        """``/v2/deployments`` entry (marathon-python's keys): ``readiness`` gives an app's
        readiness results; with ``explain`` (app id and the planner's words -> text) a ``status``
        of each current action's app is added."""
        current = [{"action": a.action, "app": a.app,
                    "readinessCheckResults": readiness(a.app) if readiness is not None else []}
                   for a in self.current_actions()]
        out: dict[str, Any] = {
            "id": self.id,
            "version": self.version,
            "affectedApps": self.affected,
            "affectedPods": [],
            "steps": [{"actions": [a.to_json() for a in step]} for step in self.steps],
            "currentActions": current,
            "currentStep": min(self.current_step + 1, len(self.steps)),
            "totalSteps": len(self.steps),
        }
        if explain is not None:
            out["status"] = {a.app: explain(a.app, self.status.get(a.app)) for a in self.current_actions()}
        return out

    def to_store(self) -> dict[str, Any]:
        return {
            "id": self.id, "version": self.version, "startedAt": self.started_at,
            "steps": [[a.to_json() for a in step] for step in self.steps],
            "original": {k: (dict(v.json) if v else None) for k, v in self.original.items()},
            "target": {k: (dict(v.json) if v else None) for k, v in self.target.items()},
        }

    @classmethod
    def from_store(cls, data: Mapping[str, Any]) -> Deployment:
        return cls(id=data["id"], version=data["version"], started_at=data.get("startedAt", 0.0),
                   steps=[[P.Action(a["action"], a["app"]) for a in step] for step in data["steps"]],
                   original={k: App.from_json(v) if v else None for k, v in data["original"].items()},
                   target={k: App.from_json(v) if v else None for k, v in data["target"].items()})
