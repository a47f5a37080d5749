"""Large JSON answers written as they are built, a slice per reactor turn.

A handler answers with a value in which some arrays are :class:`Items` (an iterable whose items
are made only when their turn comes) inside :class:`Fields` (an object whose values may be such
arrays). :func:`chunks` encodes it piece by piece into exactly the bytes
``json.dumps(value, separators=(",", ":"))`` gives for the same value built in full; the
:class:`Streamer` writes those pieces to the request, a slice per reactor turn (so the daemon
serves everything else in between), and stops while the client's connection is saturated (so
what waits to be sent stays small, whatever the answer's size). The first bytes leave at once.

What an answer shows is each item as it is when its turn comes: an answer streamed over several
turns is not a snapshot of one instant (the iterables are fixed when they start).
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from mesostw.model import jsontext
from mesostw.model.lazyjson import Fields, Items, Raw, Texts, materialize

__all__ = ["Fields", "Items", "Raw", "Texts", "materialize", "chunks", "collector_held", "encode", "pieces", "Streamer"]

log = Logger()

#: Plain items encoded together in one call to the C encoder (and written as one piece).
BATCH = 200
#: Text already encoded (:class:`Raw`) is written in pieces of this size: a turn's writing stays bounded, and
#: so do the copies the transport makes of what waits to be sent.
RAW_PIECE = 1024 * 1024
#: What a turn writes at most before it lets the reactor run (it always writes at least one piece) ...
TURN_BYTES = 4 * 1024 * 1024
#: ... and how long it may take: a turn makes pieces for about this long. Each turn waits behind whatever
#: else the reactor has to do (an allocation cycle of a large cluster), so turns are few and long enough
#: for a large answer to finish in a few of them, and short enough that nothing else waits long.
TURN_SECONDS = 0.05

_encode = jsontext.encode


def _nested(value: Any) -> bool:
    return isinstance(value, (Fields, Items, Raw))


def chunks(value: Any) -> Iterator[bytes]:
    """The JSON encoding of ``value``, piece by piece (see the module docstring)."""
    if isinstance(value, Raw):
        for data in value.pieces:
            if len(data) <= RAW_PIECE:
                yield data
                continue
            for start in range(0, len(data), RAW_PIECE):
                yield data[start:start + RAW_PIECE]
    elif isinstance(value, Texts):
        yield from _texts(value.iterable)
    elif isinstance(value, Items):
        yield from _array(value.iterable)
    elif isinstance(value, Fields):
        yield from _object(value)
    else:
        yield _encode(value).encode()


def _object(fields: Fields) -> Iterator[bytes]:
    head = "{"
    plain: list[str] = []
    for key, value in fields.items():
        if not isinstance(key, str):
            raise TypeError(f"keys of streamed objects must be strings, not {type(key).__name__}")
        if _nested(value):
            yield (head + ",".join(plain) + ("," if plain else "") + _encode(key) + ":").encode()
            plain, head = [], ""
            yield from chunks(value)
            head = ","
        else:
            plain.append(_encode(key) + ":" + _encode(value))
    if plain:
        yield (head + ",".join(plain) + "}").encode()
    else:
        yield b"{}" if head == "{" else b"}"


def _texts(iterable: Iterable[str]) -> Iterator[bytes]:
    separator = "["
    batch: list[str] = []
    for text in iterable:
        batch.append(text)
        if len(batch) >= BATCH:
            yield (separator + ",".join(batch)).encode()
            batch, separator = [], ","
    if batch:
        yield (separator + ",".join(batch) + "]").encode()
    else:
        yield b"[]" if separator == "[" else b"]"


def _array(iterable: Iterable[Any]) -> Iterator[bytes]:
    separator = "["
    batch: list[Any] = []
    for item in iterable:
        if _nested(item):
            if batch:
                yield (separator + _encode(batch)[1:-1]).encode()
                batch, separator = [], ","
            yield separator.encode()
            yield from chunks(item)
            separator = ","
            continue
        batch.append(item)
        if len(batch) >= BATCH:
            yield (separator + _encode(batch)[1:-1]).encode()
            batch, separator = [], ","
    if batch:
        yield (separator + _encode(batch)[1:-1] + "]").encode()
    else:
        yield b"[]" if separator == "[" else b"]"


def encode(value: Any) -> bytes:
    """All of :func:`chunks`, joined."""
    return b"".join(chunks(value))


def pieces(value: Any) -> list[bytes]:
    """All of :func:`chunks` at once, made in this turn with the collector held back (as a turn of the
    :class:`Streamer` does): for an answer that must be whole before it is sent (a RecordIO record, whose
    length comes first) or one snapshot of one instant."""
    with collector_held():
        return list(chunks(value))


@contextmanager
def collector_held() -> Iterator[None]:
    """The garbage collector waits until the block ends.

    A turn that makes an answer makes many short-lived containers (an agent's model is a few dozen
    dicts); the ones alive when a young collection runs are promoted, and enough promoted objects make
    the next collection a full one, a pass over every object of a master with a hundred thousand tasks
    (a second or more, in the middle of the answer). Made within one turn and mostly freed by the end
    of it, they are never promoted."""
    collecting = gc.isenabled()
    if collecting:
        gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


@implementer(IPushProducer)
class Streamer:
    """Writes ``pieces`` to ``request`` and finishes it: up to ``turn_bytes`` (and :data:`TURN_SECONDS` of
    ``clock``) per turn of ``clock``, none
    while the connection is paused. :attr:`done` fires once the request is finished, or once the
    client went away (then nothing more is made). A piece that raises ends the answer early (the
    client sees a truncated body and the connection closes; the error is logged)."""

    def __init__(self, request: Any, pieces: Iterator[bytes], clock: Any, turn_bytes: int | None = None):
        self.request = request
        self.pieces = pieces
        self.clock = clock
        self.turn_bytes = TURN_BYTES if turn_bytes is None else turn_bytes
        self.done: defer.Deferred[None] = defer.Deferred()
        self._paused = False
        self._finished = False
        self._call: Any = None

    def start(self) -> defer.Deferred[None]:
        self.request.registerProducer(self, True)
        self.request.notifyFinish().addErrback(self._gone)
        self._produce()
        return self.done

    def _produce(self) -> None:
        self._call = None
        if self._finished or self._paused:
            return
        parts: list[bytes] = []
        size = 0
        ended = False
        try:
            with collector_held():  # until the end of the turn (see collector_held)
                deadline = self.clock.seconds() + TURN_SECONDS
                while size < self.turn_bytes and (not parts or self.clock.seconds() < deadline):
                    piece = next(self.pieces, None)
                    if piece is None:
                        ended = True
                        break
                    parts.append(piece)
                    size += len(piece)
        except Exception:
            log.failure("Streaming an answer to {path} failed", path=getattr(self.request, "path", b"?"))
            self._end(failed=True)
            return
        if parts:
            self.request.write(b"".join(parts))
        if ended:
            self._end()
        elif not self._paused and not self._finished:
            self._call = self.clock.callLater(0, self._produce)

    def _end(self, failed: bool = False) -> None:
        self._finished = True
        self.request.unregisterProducer()
        if failed:
            transport = getattr(getattr(self.request, "channel", None), "transport", None)
            if transport is not None:
                transport.abortConnection()
        else:
            self.request.finish()
        self._release()

    def _release(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        close = getattr(self.pieces, "close", None)
        if close is not None:
            close()  # a generator's cleanup runs now, not whenever it is collected
        if not self.done.called:
            self.done.callback(None)

    def _gone(self, failure: Failure) -> None:
        """The client went away before the end: make nothing more."""
        if not self._finished:
            self._finished = True
            self._release()

    # -- IPushProducer --------------------------------------------------------------------

    def pauseProducing(self) -> None:
        self._paused = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def resumeProducing(self) -> None:
        if not self._paused:
            return
        self._paused = False
        if not self._finished and self._call is None:
            self._call = self.clock.callLater(0, self._produce)

    def stopProducing(self) -> None:
        if not self._finished:
            self._finished = True
            self._release()
