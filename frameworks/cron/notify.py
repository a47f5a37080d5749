"""Owners hear about their jobs through a webhook: an HTTP POST of JSON per owner, as Chronos's
``--http_notification_url`` notifier sends it (same fields, values as strings), plus the event name.

A notification that cannot be delivered is logged and counted, never retried for ever and never
allowed to disturb scheduling.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from frameworks.cron.effects import Notify

log = Logger()


def payload(notice: Notify, owner: str) -> dict[str, str]:
    """Chronos's HttpClient body: subject, message, to, and the job's main fields as strings."""
    job = notice.job
    body: dict[str, str] = {}
    if notice.subject:
        body["subject"] = notice.subject
    if notice.message:
        body["message"] = notice.message
    if owner:
        body["to"] = owner
    uris = [f["uri"] for f in job.get("fetch", [])] + list(job.get("uris", []))
    for key, field in (("job", "name"), ("command", "command"), ("cpus", "cpus"), ("softError", "softError"),
                       ("errorCount", "errorCount"), ("errorsSinceLastSuccess", "errorsSinceLastSuccess"),
                       ("executor", "executor"), ("executorFlags", "executorFlags"), ("lastError", "lastError"),
                       ("lastSuccess", "lastSuccess"), ("mem", "mem"), ("retries", "retries"),
                       ("successCount", "successCount")):
        value = job.get(field, "")
        body[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    body["uris"] = ",".join(dict.fromkeys(uris))
    body["event"] = notice.event
    return body


class WebhookNotifier:
    """POSTs notifications to ``url`` (nothing when it is empty), with HTTP Basic ``user:password``."""

    def __init__(self, reactor: Any, url: str, credentials: str = "", timeout: float = 10.0):
        self.reactor, self.url, self.timeout = reactor, url, timeout
        self.authorization = b"Basic " + base64.b64encode(credentials.encode()) if credentials else None
        self.agent = Agent(reactor, connectTimeout=timeout) if url else None
        self.counts: Counter[str] = Counter()

    def notify(self, notice: Notify) -> defer.Deferred:
        """Send one POST per owner (one without ``to`` when the job has none); fires when all are done."""
        if self.agent is None:
            return defer.succeed(None)
        posts = [self._post(payload(notice, owner)) for owner in (notice.owners or ("",))]
        return defer.DeferredList(posts, consumeErrors=True).addCallback(lambda _: None)

    def _post(self, body: dict[str, str]) -> defer.Deferred:
        assert self.agent is not None
        headers = Headers({b"Content-Type": [b"application/json"]})
        if self.authorization is not None:
            headers.addRawHeader(b"Authorization", self.authorization)
        d = self.agent.request(b"POST", self.url.encode(), headers, _Body(json.dumps(body).encode()))
        d.addCallback(self._answered)
        d.addTimeout(self.timeout, self.reactor)
        d.addCallbacks(self._sent, self._failed)
        return d

    def _answered(self, response: Any) -> defer.Deferred:
        return readBody(response).addCallback(lambda _: response.code)

    def _sent(self, code: int) -> None:
        if 200 <= code < 300:
            self.counts["sent"] += 1
        else:
            self.counts["failed"] += 1
            log.warn("Notification to {url} answered {code}", url=self.url, code=code)

    def _failed(self, failure: Any) -> None:
        self.counts["failed"] += 1
        log.warn("Notification to {url} failed: {why}", url=self.url, why=failure.getErrorMessage())


@implementer(IBodyProducer)
class _Body:
    """A request body written in one go (FileBodyProducer would cooperate on the global reactor)."""

    def __init__(self, data: bytes):
        self.data = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> defer.Deferred:
        consumer.write(self.data)
        return defer.succeed(None)

    def stopProducing(self) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass
