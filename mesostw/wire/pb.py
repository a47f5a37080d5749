"""Perspective Broker with JSON payloads.

PB's jelly is slow for nested data, so every method here takes and returns
JSON-encoded bytes of Mesos-shaped messages (see DESIGN.md). Plural flows are
batched: :class:`Batcher` gathers what one reactor turn produces into one call,
split to stay under Banana's 640 KiB string limit. A single message larger than
that (a task with much data, an agent re-registering with thousands of tasks)
travels as a list of pieces (:func:`pieces`), which :func:`decode` joins.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.spread import pb

from mesostw.model.validation import ValidationError
from mesostw.wire.switch import PREAMBLE

log = Logger()

#: Below Banana's 640 KiB limit on one string, with room for framing: the most a batch holds when its items
#: allow, and the longest piece of a larger payload.
MAX_PAYLOAD = 600 * 1024
#: What one incoming payload may hold at most, all its pieces together (a peer cannot make us parse more at
#: once); an agent re-registering with thousands of tasks stays well under it.
MAX_INCOMING = 16 * 1024 * 1024


class RefusedError(pb.Error):
    """A request the peer refused, with a reason meant for people; travels over PB intact."""


class NotLeaderError(pb.Error):
    """The master asked is not the leader (yet); ask again, perhaps elsewhere."""


def reference(peer: Any, what: str) -> pb.RemoteReference:
    """``peer`` if PB passed a remote reference; plain data (which a peer may send instead) is refused."""
    if not isinstance(peer, pb.RemoteReference):
        raise RefusedError(f"{what} must be a remote reference, not {type(peer).__name__}")
    return peer


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def pieces(payload: bytes) -> bytes | list[bytes]:
    """``payload`` as a PB argument: itself when Banana carries it as one string, else the list of its pieces
    of at most :data:`MAX_PAYLOAD` bytes (which :func:`decode` joins)."""
    if len(payload) <= MAX_PAYLOAD:
        return payload
    return [payload[start:start + MAX_PAYLOAD] for start in range(0, len(payload), MAX_PAYLOAD)]


def decode(payload: Any, what: str = "payload") -> Any:
    """Decode JSON bytes from a peer, sent whole or in :func:`pieces`; anything malformed becomes a ValidationError."""
    if isinstance(payload, list) and payload and all(isinstance(piece, bytes) for piece in payload):
        size = sum(len(piece) for piece in payload)
    elif isinstance(payload, bytes):
        size = len(payload)
    else:
        raise ValidationError(f"{what} must be JSON bytes")
    if size > MAX_INCOMING:
        raise ValidationError(f"{what} is larger than {MAX_INCOMING} bytes")
    if isinstance(payload, list):
        payload = b"".join(payload)
    try:
        return json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise ValidationError(f"{what} is not valid JSON: {exc}") from None


#: Most items one batch may hold: :func:`split` never sends more, and a peer's larger batch is refused
#: whole (each item costs tens of microseconds of the reactor's time to validate, junk included).
MAX_BATCH = 10_000
#: How many refusals an answer to a batch of calls lists; a batch of junk must not make a larger answer.
MAX_ERRORS = 100


def decode_batch(payload: Any, what: str) -> list[Any]:
    """Decode a batch (a JSON list of at most :data:`MAX_BATCH` items) from a peer, or raise ValidationError."""
    items = decode(payload)
    if not isinstance(items, list):
        raise ValidationError(f"{what} must be a list")
    if len(items) > MAX_BATCH:
        raise ValidationError(f"{what} must not hold more than {MAX_BATCH} items")
    return items


def parse_messages(payload: Any, parse: Callable[[Any], Any], source: str) -> tuple[list[Any], int]:
    """Decode a batch of messages and parse each with ``parse``; malformed ones are dropped and
    reported in one log line (a batch of junk must not flood the log). A malformed batch as a
    whole is refused with :class:`RefusedError`. Returns the parsed messages and how many were dropped."""
    try:
        messages = decode_batch(payload, "messages")
    except ValidationError as exc:
        raise RefusedError(str(exc)) from None
    parsed, dropped, first = [], 0, None
    for message in messages:
        try:
            parsed.append(parse(message))
        except ValidationError as exc:
            dropped, first = dropped + 1, first or exc
    if dropped:
        log.warn("Dropped {n} malformed message(s) from {source}; the first: {e}", n=dropped, source=source,
                 e=first)
    return parsed, dropped


def encode_errors(errors: list[str]) -> bytes:
    """The answer to a batch of calls: its refusals, the first :data:`MAX_ERRORS` of them, each cut short."""
    shown = [error[:1000] for error in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        shown.append(f"... and {len(errors) - MAX_ERRORS} more refused calls")
    return encode(shown)


def split(items: list[Any], limit: int = MAX_PAYLOAD) -> list[bytes]:
    """Encode ``items`` as one or more JSON lists, each under ``limit`` bytes (unless one item alone is
    larger) and :data:`MAX_BATCH` items."""
    return [payload for _, payload in split_items(items, limit)]


def split_items(items: list[Any], limit: int = MAX_PAYLOAD) -> list[tuple[list[Any], bytes]]:
    """:func:`split`, with the items each payload holds."""
    payload = encode(items)
    if (len(payload) <= limit and len(items) <= MAX_BATCH) or len(items) <= 1:
        return [(items, payload)]
    half = len(items) // 2
    return split_items(items[:half], limit) + split_items(items[half:], limit)


class Batcher:
    """Collects items and sends them as a list on the next reactor turn, in order. ``send`` takes the
    payload as a PB argument (see :func:`pieces`).

    ``unsent(items, error)`` hears of items that certainly did not leave: the send raised at once (the
    connection is gone, or the message could not be encoded). Items whose send failed later may or may
    not have arrived, and are not reported."""

    #: a master holds one per agent: slots, and no list while nothing waits
    __slots__ = ("_clock", "_send", "_unsent", "_items", "_pending")

    def __init__(self, clock: Any, send: Callable[[bytes | list[bytes]], defer.Deferred] | None,
                 unsent: Callable[[list[Any], Exception], None] | None = None):
        self._clock = clock
        self._send = send
        self._unsent = unsent
        self._items: list[Any] | None = None
        self._pending: Any = None

    def add(self, item: Any) -> None:
        if self._items is None:
            self._items = [item]
        else:
            self._items.append(item)
        if self._pending is None:
            self._pending = self._clock.callLater(0, self.flush)

    def flush(self) -> None:
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None
        items, self._items = self._items, None
        if not items:
            return
        for part, payload in split_items(items):
            # A reference whose connection is gone raises DeadReferenceError at once rather than failing a
            # Deferred, and Banana refuses what it cannot encode before anything is written.
            try:
                d = self._deliver(pieces(payload))
            except Exception as exc:  # noqa: BLE001 - reported below, and the next payloads still go
                if self._unsent is not None:
                    self._unsent(part, exc)
                elif not isinstance(exc, pb.DeadReferenceError):
                    log.failure("Batched call failed")
                continue
            if isinstance(d, defer.Deferred):
                d.addErrback(_lost)

    def _deliver(self, payload: bytes | list[bytes]) -> Any:
        """Send one payload (a subclass may send it itself rather than hold a ``send`` callable)."""
        assert self._send is not None
        return self._send(payload)

    def discard(self) -> None:
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None
        self._items = None


def _lost(failure: Any) -> None:
    if not failure.check(pb.PBConnectionLost, pb.DeadReferenceError):
        log.failure("Batched call failed", failure)


class _Local:
    """What a broker keeps of each object it names for its peer (``pb.Local``), in slots: a broker has one
    for its root object at least."""

    __slots__ = ("object", "perspective", "refcount")

    def __init__(self, object: Any, perspective: Any = None) -> None:  # noqa: A002 - pb.Local's signature
        self.object = object
        self.perspective = perspective
        self.refcount = 1

    def __repr__(self) -> str:
        return f"<pb.Local {self.object!r} ref:{self.refcount}>"

    def incref(self) -> int:
        self.refcount += 1
        return self.refcount

    def decref(self) -> int:
        self.refcount -= 1
        return self.refcount


#: Broker containers most connections never use (references, caches, pagers): made when first touched.
_LAZY = {"luids": dict, "remotelyCachedObjects": dict, "remotelyCachedLUIDs": dict, "locallyCachedObjects": dict,
         "_localCleanup": dict, "pageProducers": list, "failures": list, "localObjects": dict,
         "waitingForAnswers": dict}
#: Attributes Twisted's classes give a class-level default, which shows until the broker sets its own.
_DEFAULTS = {"factory": None, "connected": 0, "transport": None, "prefixLimit": None,
             "buffer": b"", "_lift_setup_deadline": None}
#: prefix limit -> Banana's bounds on integers (each broker computed its own big integers)
_INT_LIMITS: dict[int, tuple[int, int, int, int]] = {}
#: the names of a broker's named local objects ("root"), encoded once
_NAMES: dict[str, bytes] = {}


class LeanBroker(pb.Broker):
    """A broker that shares Banana's table of outgoing symbols rather than copying it (about 1 KB per
    connection, which a master with ten thousand agents holds ten thousand times): Banana only reads it.

    Its attributes that Banana and Broker always set before they read them live in slots: with more than
    thirty attributes, an instance's ``__dict__`` no longer shares its keys with the other instances' and
    takes 1.6 KB a connection; slots take 8 bytes each. Attributes with a class-level default in Twisted
    (``transport``, ``connected``, ``factory``, ``prefixLimit``, ``buffer``...) are slots too, whose
    unset value is that default (:data:`_DEFAULTS`), so that no ``__dict__`` is made at all. The
    containers of :data:`_LAZY`, empty on most connections for their whole life, are made when first
    touched; the integer bounds and the names of local objects are shared; each named object costs a
    slotted :class:`_Local`."""

    __slots__ = ("listStack", "outgoingSymbols", "outgoingSymbolCount", "isClient", "disconnected", "disconnects",
                 "failures", "connects", "localObjects", "security", "pageProducers", "currentRequestID",
                 "currentLocalID", "unserializingPerspective", "luids", "remotelyCachedObjects",
                 "remotelyCachedLUIDs", "locallyCachedObjects", "_localCleanup", "currentDialect",
                 "_smallestLongInt", "_smallestInt", "_largestInt", "_largestLongInt", "serializingPerspective",
                 "jellyMethod", "jellyArgs", "jellyKw",
                 # Twisted gives these a class-level default (see _DEFAULTS)
                 "waitingForAnswers", "factory", "connected", "transport", "prefixLimit", "buffer",
                 # a server's root object (see setNameForLocal)
                 "_root",
                 # the port switch's (mesostw.wire.switch.bound), while the connection has not bound
                 "_lift_setup_deadline")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outgoingSymbols = self.outgoingVocabulary
        for name in _LAZY:
            delattr(self, name)

    def __getattr__(self, name: str) -> Any:
        # Only called for an attribute not set: one of the lazy containers, a default, or a genuine AttributeError.
        make = _LAZY.get(name)
        if make is None:
            if name in _DEFAULTS:
                return _DEFAULTS[name]
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        value = make()
        setattr(self, name, value)
        return value

    def proto_answer(self, requestID: int, netResult: Any) -> None:
        super().proto_answer(requestID, netResult)
        self._answered()

    def proto_error(self, requestID: int, fail: Any) -> None:
        super().proto_error(requestID, fail)
        self._answered()

    def _answered(self) -> None:
        # A dict keeps the table it grew to when emptied: an idle connection (whose only calls are
        # the master's pings) holds none (the next call makes one).
        if self.waitingForAnswers is not None and not self.waitingForAnswers:
            del self.waitingForAnswers

    def setPrefixLimit(self, limit: int) -> None:
        self.prefixLimit = limit  # type: ignore[assignment]  # Banana declares it None until set
        bounds = _INT_LIMITS.get(limit)
        if bounds is None:
            bounds = _INT_LIMITS[limit] = (-(2 ** (limit * 7)) + 1, -(2**31), 2**31 - 1, 2 ** (limit * 7) - 1)
        self._smallestLongInt, self._smallestInt, self._largestInt, self._largestLongInt = bounds

    def setNameForLocal(self, name: Any, object: Any) -> None:  # noqa: A002 - pb.Broker's signature
        if isinstance(name, str):
            encoded = _NAMES.get(name)
            if encoded is None:
                encoded = name.encode("utf8")
                if len(_NAMES) < 64:
                    _NAMES[name] = encoded
            name = encoded
        assert object is not None
        if name == b"root" and getattr(self, "_root", None) is None:
            # A server broker's one named object, in a slot: no table of local objects at all until the
            # connection passes references
            self._root = object
            return
        self.localObjects[name] = _Local(object)

    def connectionLost(self, reason: Any = None) -> None:
        super().connectionLost(reason)
        self._root = None

    def localObjectForID(self, luid: Any) -> Any:
        if luid in (b"root", "root"):
            root = getattr(self, "_root", None)
            if root is not None:
                return root
        return super().localObjectForID(luid)


class ServerFactory(pb.PBServerFactory):
    r"""``PBServerFactory`` making :class:`LeanBroker`\ s."""

    protocol = LeanBroker


class PreambleBroker(LeanBroker):
    """A client broker that opens with the preamble the port switch looks for."""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(PREAMBLE)
        super().connectionMade()


class ClientFactory(pb.PBClientFactory):
    """``PBClientFactory`` for our one-port servers (one per connection, so it does not log starting and stopping)."""

    protocol = PreambleBroker
    noisy = False


def refused(failure: Any, kind: type[pb.Error] = RefusedError) -> bool:
    """Whether a failure is the peer's ``kind`` of refusal, also after an inlineCallbacks turned it
    into a plain RemoteError that only names the remote type."""
    if failure.check(kind):
        return True
    value = failure.value
    if isinstance(value, pb.RemoteError):
        remote = value.remoteType.decode() if isinstance(value.remoteType, bytes) else str(value.remoteType)
        return remote == f"{kind.__module__}.{kind.__qualname__}"
    return False


def remote_error(failure: Any) -> str:
    """A readable message from a PB failure (the peer's message, not its traceback)."""
    value = failure.value
    if isinstance(value, pb.PBConnectionLost) and value.args and hasattr(value.args[0], "getErrorMessage"):
        # PB wraps the reason (itself a Failure) whose repr would read as a traceback.
        return f"connection lost: {value.args[0].getErrorMessage()}"
    return failure.getErrorMessage()
