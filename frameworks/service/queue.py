"""The launch queue: per app, how many instances wait to launch, the backoff delay, and why
offers were not used.

Pure. The delay follows Marathon's rate limiter: the first failure delays the next
launch by ``backoffSeconds``, each further one multiplies the delay by
``backoffFactor``, capped at ``maxLaunchDelaySeconds``; a new config version or
``DELETE /v2/queue/{app}/delay`` resets it, and so does a quiet period of the
delay plus ``maxLaunchDelaySeconds`` without failures. The offer statistics feed
``processedOffersSummary`` and the "why is this not launching" text.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

import attrs

from frameworks.service.timestamps import format_ts

#: Marathon's reasons for not using an offer, in the order its matcher checks them.
REASONS = ("UnfulfilledRole", "UnfulfilledConstraint", "NoCorrespondingReservationFound", "AgentMaintenance",
           "InsufficientCpus", "InsufficientMemory", "InsufficientDisk", "InsufficientGpus", "InsufficientPorts",
           "DeclinedScarceResources")
LAST_OFFERS = 20


@attrs.define
class Backoff:
    delay: float = 0.0
    failures: int = 0
    until: float = 0.0

    def failed(self, now: float, seconds: float, factor: float, maximum: float) -> None:
        if self.failures and now > self.until + maximum:
            self.reset()
        self.delay = float(seconds) if not self.failures else min(self.delay * factor, float(maximum))
        self.delay = min(self.delay, float(maximum))
        self.failures += 1
        self.until = now + self.delay

    def reset(self) -> None:
        self.delay, self.failures, self.until = 0.0, 0, 0.0

    def left(self, now: float) -> float:
        return max(0.0, self.until - now)


@attrs.frozen
class OfferResult:
    """What one offer did for one app: used, or the reasons (REASONS) and details it failed on."""

    offer_id: str
    agent_id: str
    hostname: str
    time: float
    used: bool
    reasons: tuple[str, ...] = ()
    detail: str | None = None


@attrs.define
class QueueEntry:
    app_id: str
    pending: int = 0
    since: float | None = None
    backoff: Backoff = attrs.field(factory=Backoff)
    processed: int = 0
    unused: int = 0
    last_used_at: float | None = None
    last_unused_at: float | None = None
    attempt: Counter[str] = attrs.field(factory=Counter)
    attempt_processed: Counter[str] = attrs.field(factory=Counter)
    recent: deque[OfferResult] = attrs.field(factory=lambda: deque(maxlen=LAST_OFFERS))

    def record(self, result: OfferResult) -> None:
        self.processed += 1
        if result.used:
            self.last_used_at = result.time
        else:
            self.unused += 1
            self.last_unused_at = result.time
            for reason in result.reasons:
                self.attempt[reason] += 1
            for reason in _checked(result.reasons):
                self.attempt_processed[reason] += 1
        self.recent.append(result)

    def summary(self) -> dict[str, Any]:
        """Marathon's ``processedOffersSummary``."""
        last: Counter[str] = Counter()
        last_processed: Counter[str] = Counter()
        for result in self.recent:
            if result.used:
                continue
            last.update(result.reasons)
            last_processed.update(_checked(result.reasons))
        return {
            "processedOffersCount": self.processed,
            "unusedOffersCount": self.unused,
            "lastUnusedOfferAt": _ts(self.last_unused_at),
            "lastUsedOfferAt": _ts(self.last_used_at),
            "rejectSummaryLastOffers": [{"reason": r, "declined": last[r], "processed": last_processed[r]}
                                        for r in REASONS],
            "rejectSummaryLaunchAttempt": [{"reason": r, "declined": self.attempt[r],
                                            "processed": self.attempt_processed[r]} for r in REASONS],
        }

    def last_unused(self) -> list[dict[str, Any]]:
        return [{"offer": {"id": r.offer_id, "agentId": r.agent_id, "hostname": r.hostname},
                 "timestamp": format_ts(r.time), "reason": list(r.reasons), "detail": r.detail}
                for r in self.recent if not r.used]

    def why(self) -> str | None:
        """A one-line explanation of the recent unused offers, or None when none were refused."""
        refused = [r for r in self.recent if not r.used]
        if not refused:
            return None
        counts = Counter(reason for r in refused for reason in r.reasons)
        details = Counter(r.detail for r in refused if r.detail)
        text = ", ".join(f"{reason} x{counts[reason]}" for reason in REASONS if counts[reason])
        if details:
            text += " (" + "; ".join(f"{d} on {n} offers" for d, n in details.most_common(3)) + ")"
        return f"no offer matched in the last {len(refused)} offers: {text}"


def _checked(reasons: Iterable[str]) -> list[str]:
    """Every check an offer went through up to (and including) the ones it failed."""
    failed = [REASONS.index(r) for r in reasons if r in REASONS]
    last = max(failed) if failed else len(REASONS) - 1
    return list(REASONS[: last + 1])


def _ts(value: float | None) -> str | None:
    return None if value is None else format_ts(value)


class LaunchQueue:
    """Queue entries by app id (an app is listed while it has launches pending)."""

    def __init__(self) -> None:
        self.entries: dict[str, QueueEntry] = {}

    def entry(self, app_id: str) -> QueueEntry:
        found = self.entries.get(app_id)
        if found is None:
            found = self.entries[app_id] = QueueEntry(app_id)
        return found

    def set_pending(self, app_id: str, count: int, now: float) -> bool:
        """Record that ``count`` launches are wanted; returns whether the count grew."""
        entry = self.entry(app_id)
        grew = count > entry.pending
        if count and not entry.pending:
            entry.since = now
            entry.attempt.clear()
            entry.attempt_processed.clear()
        if not count:
            entry.since = None
        entry.pending = count
        return grew

    def launchable(self, app_id: str, now: float) -> int:
        entry = self.entries.get(app_id)
        if entry is None or not entry.pending or entry.backoff.left(now) > 0:
            return 0
        return entry.pending

    def waiting(self) -> list[QueueEntry]:
        return [e for e in self.entries.values() if e.pending]

    def failed(self, app_id: str, now: float, seconds: float, factor: float, maximum: float) -> float:
        """A launched instance failed: lengthen the app's delay; returns the delay."""
        backoff = self.entry(app_id).backoff
        backoff.failed(now, seconds, factor, maximum)
        return backoff.delay

    def reset_delay(self, app_id: str) -> None:
        if app_id in self.entries:
            self.entries[app_id].backoff.reset()

    def forget(self, app_id: str) -> None:
        self.entries.pop(app_id, None)

    def next_wakeup(self, now: float) -> float | None:
        """The earliest time a delayed app with pending launches becomes launchable."""
        times = [e.backoff.until for e in self.entries.values() if e.pending and e.backoff.until > now]
        return min(times) if times else None
