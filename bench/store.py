"""Commits per second and recovery time of the file store, against rewriting one whole file per write.

The state is ``--keys`` values of ``--value-bytes`` each (a registry of that many agents, or a
framework's jobs). Measured on a real reactor, every write fsync'd:

* ``single``: one put at a time, each waited for (latency bound: one fsync per commit);
* ``concurrent``: ``--concurrency`` puts in flight at once (group commit: one fsync per batch);
* ``batch``: commits of ``--batch`` puts each, one at a time;
* ``sync``: single puts with the disk work in the calling thread (no reactor thread pool);
* ``recover``: opening the directory (snapshot plus the journal left by the runs above) with
  ``--keys`` values, and ``recover_snapshot``: the same values right after a compaction;

and, as the baseline in the same run, what the master's registry did before: the whole state as
one JSON file replaced atomically per write (write, fsync, rename, fsync the directory), with the
same group commit (``baseline_*``), and reading that file back. Figures are printed, never asserted.

    python bench/store.py --keys 10000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, task, threads  # noqa: E402

from mesostw.store import Put  # noqa: E402
from mesostw.store.files import FileStateStore  # noqa: E402


def write_atomically(path: str, payload: bytes) -> None:
    """The previous registry's write: a whole new file, fsync'd, renamed over the old one."""
    temporary = f"{path}.tmp"
    with open(temporary, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    fd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WholeFile:
    """The baseline: a dict written as one JSON file per write, with group commit (as FileRegistry did)."""

    def __init__(self, reactor: Any, path: str):
        self.reactor, self.path = reactor, path
        self.values: dict[str, str] = {}
        self._writing = False
        self._waiting: list[defer.Deferred] = []

    def put(self, key: str, value: bytes) -> defer.Deferred:
        self.values[key] = value.decode("latin-1")
        d: defer.Deferred = defer.Deferred()
        self._waiting.append(d)
        if not self._writing:
            self._write()
        return d

    def _write(self) -> None:
        self._writing = True
        batch, self._waiting = self._waiting, []
        payload = json.dumps(self.values, separators=(",", ":")).encode()
        d = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), write_atomically, self.path, payload)

        def done(_: Any) -> None:
            self._writing = False
            for waiter in batch:
                waiter.callback(None)
            if self._waiting and not self._writing:
                self._write()

        d.addCallback(done)


def value(index: int, size: int) -> bytes:
    return (b"%08d" % index) * (size // 8) + b"x" * (size % 8)


@defer.inlineCallbacks
def rate(put: Callable[[str, bytes], defer.Deferred], count: int, concurrency: int, size: int,
         offset: int = 0) -> Any:
    """Puts per second with ``concurrency`` in flight."""
    start = time.perf_counter()
    for first in range(0, count, concurrency):
        yield defer.gatherResults([put(f"agents/S{(offset + i) % 100000}", value(i, size))
                                   for i in range(first, min(count, first + concurrency))])
    return count / (time.perf_counter() - start)


@defer.inlineCallbacks
def run(reactor: Any, args: argparse.Namespace) -> Any:
    base = tempfile.mkdtemp(prefix="mesostw-bench-store-")
    results: dict[str, float] = {}
    try:
        directory = os.path.join(base, "store")
        store = FileStateStore(directory, reactor)
        yield store.open()
        initial = [Put(f"agents/S{i}", value(i, args.value_bytes)) for i in range(args.keys)]
        for first in range(0, args.keys, 1000):
            yield store.commit(initial[first:first + 1000])
        print(f"[files] {args.keys} values of {args.value_bytes} bytes: snapshot {store.snapshot_size} bytes, "
              f"journal {store.journal_size} bytes")
        results["single"] = yield rate(store.put, args.commits, 1, args.value_bytes)
        results["concurrent"] = yield rate(store.put, args.commits * 4, args.concurrency, args.value_bytes)

        batches_made = iter(range(10 ** 9))

        def batch(key: str, data: bytes) -> defer.Deferred:
            first = next(batches_made) * args.batch
            return store.commit([Put(f"agents/S{(first + i) % args.keys}", data) for i in range(args.batch)])

        batches = yield rate(batch, max(1, args.commits // 4), 1, args.value_bytes)
        results["batch_puts"] = batches * args.batch
        yield store.close()

        start = time.perf_counter()
        again = FileStateStore(directory, reactor)
        yield again.open()
        results["recover_ms"] = (time.perf_counter() - start) * 1000
        print(f"[files] recovered {len(again.tree)} values (snapshot {again.snapshot_size} bytes, "
              f"journal {again.journal_size} bytes)")
        yield again.close()

        # The same values right after a compaction: the snapshot alone, as the baseline's one file.
        compacted = os.path.join(base, "compacted")
        fresh = FileStateStore(compacted, reactor, compact_bytes=1)
        yield fresh.commit(initial)  # larger than the (empty) snapshot: written as a snapshot
        yield fresh.close()
        start = time.perf_counter()
        again = FileStateStore(compacted, reactor)
        yield again.open()
        results["recover_snapshot_ms"] = (time.perf_counter() - start) * 1000
        assert len(again.tree) == args.keys and again.journal_size == 0
        yield again.close()

        sync = FileStateStore(directory)
        yield sync.open()
        results["sync"] = yield rate(sync.put, args.commits, 1, args.value_bytes)
        yield sync.close()

        whole = WholeFile(reactor, os.path.join(base, "registry.json"))
        for i in range(args.keys):
            whole.values[f"agents/S{i}"] = value(i, args.value_bytes).decode("latin-1")
        results["baseline_single"] = yield rate(whole.put, max(1, args.commits // 5), 1, args.value_bytes)
        results["baseline_concurrent"] = yield rate(whole.put, args.commits, args.concurrency, args.value_bytes)
        start = time.perf_counter()
        with open(whole.path, "rb") as f:
            loaded = json.load(f)
        results["baseline_recover_ms"] = (time.perf_counter() - start) * 1000
        assert len(loaded) == args.keys
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for name in ("single", "concurrent", "sync"):
        print(f"[files] {name}: {results[name]:.0f} commits/s")
    print(f"[files] batches of {args.batch}: {results['batch_puts']:.0f} puts/s")
    print(f"[whole file] single: {results['baseline_single']:.0f} commits/s, "
          f"concurrent: {results['baseline_concurrent']:.0f} commits/s, read {results['baseline_recover_ms']:.0f} ms")
    print(" ".join(f"{key}={results[key]:.1f}" for key in (
        "single", "concurrent", "batch_puts", "sync", "recover_ms", "recover_snapshot_ms", "baseline_single",
        "baseline_concurrent",
        "baseline_recover_ms")) + f" single_ratio={results['single'] / results['baseline_single']:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=10000)
    parser.add_argument("--value-bytes", type=int, default=300)
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    task.react(lambda reactor: run(reactor, args))


if __name__ == "__main__":
    main()
