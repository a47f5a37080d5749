"""Marathon's event bus: typed events to subscribers filtered by ``eventType``.

Every event is a JSON object with ``eventType`` and ``timestamp`` and only the payload
keys Marathon sends (marathon-python fails on an unknown ``eventType`` but tolerates
extra keys). The builders below are the one place that names those payloads; the SSE
endpoint (:mod:`frameworks.service.api.events`) is one subscriber.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from frameworks.service.timestamps import format_ts

#: Every event type this server emits; all are known to marathon-python 0.13.
EVENT_TYPES = frozenset({
    "api_post_event", "status_update_event", "framework_message_event", "subscribe_event", "unsubscribe_event",
    "add_health_check_event", "remove_health_check_event", "failed_health_check_event",
    "health_status_changed_event", "unhealthy_task_kill_event", "group_change_success", "group_change_failed",
    "deployment_success", "deployment_failed", "deployment_info", "deployment_step_success",
    "deployment_step_failure", "event_stream_attached", "event_stream_detached", "app_terminated_event",
    "instance_changed_event", "unknown_instance_terminated_event", "unhealthy_instance_kill_event",
    "instance_health_changed_event",
})

Event = dict[str, Any]
Subscriber = Callable[[Event], None]


class EventBus:
    """Publishes events to subscribers; each subscription may name the event types it wants."""

    def __init__(self, clock: Any):
        self.clock = clock
        self._subscribers: dict[int, tuple[Subscriber, frozenset[str] | None]] = {}
        self._next = 0
        self.published = 0

    def subscribe(self, callback: Subscriber, types: Collection[str] | None = None) -> int:
        self._next += 1
        self._subscribers[self._next] = (callback, frozenset(types) if types else None)
        return self._next

    def unsubscribe(self, token: int) -> None:
        self._subscribers.pop(token, None)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, event_type: str, **payload: Any) -> Event:
        """Send one event (``timestamp`` defaults to now) to every interested subscriber."""
        event: Event = {"eventType": event_type, "timestamp": format_ts(self.clock.seconds())}
        event.update(payload)
        self.published += 1
        for callback, types in list(self._subscribers.values()):
            if types is None or event_type in types:
                callback(event)
        return event

    def wants(self, event_type: str) -> bool:
        """Whether any subscriber would receive ``event_type`` (to skip building costly payloads)."""
        return any(types is None or event_type in types for _, types in self._subscribers.values())


def ip_addresses(host: str) -> list[dict[str, str]]:
    """``ipAddresses`` of a task on ``host``: the host itself when it is an IPv4 address."""
    parts = host.split(".")
    if len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts):
        return [{"ipAddress": host, "protocol": "IPv4"}]
    return []


def plan_json(deployment_json: Mapping[str, Any], original: list[Mapping[str, Any]], target: list[Mapping[str, Any]],
              version: str, light: bool = False) -> dict[str, Any]:
    """A deployment plan as events carry it: exactly ``{id, version, original, target, steps}``,
    the groups holding the affected apps (``light`` leaves the groups out, as marathon-lb asks)."""
    plan: dict[str, Any] = {
        "id": deployment_json["id"],
        "version": deployment_json["version"],
        "steps": [{"actions": [dict(a) for a in step["actions"]]} for step in deployment_json["steps"]],
    }
    if not light:
        plan["original"] = {"id": "/", "version": version, "apps": list(original), "groups": [], "pods": [],
                            "dependencies": []}
        plan["target"] = {"id": "/", "version": version, "apps": list(target), "groups": [], "pods": [],
                          "dependencies": []}
    return plan


def ts(seconds: float) -> str:
    return format_ts(seconds)
