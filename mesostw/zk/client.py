"""kazoo bridged to Twisted: every call returns a Deferred that fires in the reactor's thread.

kazoo does its I/O and runs its callbacks in threads of its own; nothing here
blocks the reactor. Session state changes (CONNECTED, SUSPENDED, LOST) and
watches are delivered to the reactor with ``callFromThread``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError, RolledBackError, RuntimeInconsistency
from kazoo.protocol.states import KazooState
from kazoo.retry import KazooRetry
from kazoo.security import CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from twisted.internet import defer, threads
from twisted.logger import Logger

from mesostw.zk.url import ZkUrl

log = Logger()

CONNECTED = KazooState.CONNECTED
SUSPENDED = KazooState.SUSPENDED
LOST = KazooState.LOST

# kazoo logs every reconnection attempt at WARNING; our own log says what matters.
logging.getLogger("kazoo.client").setLevel(logging.ERROR)

#: The longest a thread waits for the GIL held by a busy reactor thread (Python's default is 5 ms).
#: kazoo's I/O thread takes the GIL back after every reply it waits for, so with the default a busy
#: reactor (a failover's agents re-registering) stretched a new leader's registry read of 2,000 znodes
#: from 0.3 s to 1.1 s on loopback; at 0.5 ms it takes 0.4 s.
SWITCH_INTERVAL = 0.0005


class ZooKeeper:
    """One ZooKeeper session (kazoo reconnects and, after expiry, starts a new one)."""

    def __init__(self, reactor: Any, url: ZkUrl, session_timeout: float = 10.0):
        self.reactor = reactor
        self.url = url
        self.session_timeout = session_timeout
        auth = [url.auth] if url.auth else None
        # With credentials, as Mesos: everyone may read, only the creator may change.
        acl = CREATOR_ALL_ACL + READ_ACL_UNSAFE if auth else OPEN_ACL_UNSAFE
        self.kazoo = KazooClient(hosts=url.hosts, timeout=session_timeout, auth_data=auth, default_acl=acl,
                                 connection_retry=KazooRetry(max_tries=-1, delay=0.2, max_delay=2.0),
                                 command_retry=KazooRetry(max_tries=3, delay=0.1, max_delay=1.0))
        self.kazoo.add_listener(self._state_changed)
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        self.listeners: list[Callable[[str], None]] = []
        self.state = LOST
        self._stopped: defer.Deferred | None = None

    # -- session ------------------------------------------------------------------------

    def start(self, attempt_timeout: float = 5.0) -> defer.Deferred:
        """Connect, retrying until a server answers; fires once a session exists."""
        stopped = {"value": False}
        self._stop_starting = lambda: stopped.__setitem__("value", True)

        def connect() -> None:
            while not stopped["value"]:
                try:
                    self.kazoo.start(timeout=attempt_timeout)
                    return
                except Exception as exc:  # noqa: BLE001 - kazoo raises its own timeout type
                    log.info("Waiting for ZooKeeper at {hosts}: {e}", hosts=self.url.hosts, e=exc)

        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), connect)

    def stop(self) -> defer.Deferred:
        """End the session (once; later calls return the same Deferred's outcome)."""
        if self._stopped is not None:
            return defer.succeed(None)
        stopper = getattr(self, "_stop_starting", None)
        if stopper is not None:
            stopper()

        def close() -> None:
            self.kazoo.stop()
            self.kazoo.close()

        self._stopped = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), close)
        return self._stopped

    def _state_changed(self, state: str) -> None:
        self.reactor.callFromThread(self._deliver_state, state)

    def _deliver_state(self, state: str) -> None:
        self.state = state
        for listener in list(self.listeners):
            try:
                listener(state)
            except Exception:
                log.failure("ZooKeeper state listener failed")

    @property
    def session_id(self) -> int | None:
        session = self.kazoo.client_id
        return session[0] if session else None

    # -- calls --------------------------------------------------------------------------

    def _bridge(self, result: Any) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()

        def done(async_result: Any) -> None:
            try:
                value = async_result.get_nowait()
            except Exception as exc:  # noqa: BLE001 - handed to the errback
                self.reactor.callFromThread(d.errback, exc)
            else:
                self.reactor.callFromThread(d.callback, value)

        result.rawlink(done)
        return d

    def create(self, path: str, value: bytes = b"", ephemeral: bool = False, sequence: bool = False,
               makepath: bool = False) -> defer.Deferred:
        return self._bridge(self.kazoo.create_async(path, value, ephemeral=ephemeral, sequence=sequence,
                                                    makepath=makepath))

    def ensure_path(self, path: str) -> defer.Deferred:
        return self._bridge(self.kazoo.ensure_path_async(path))

    def get(self, path: str) -> defer.Deferred:
        """Fires with (data, ZnodeStat)."""
        return self._bridge(self.kazoo.get_async(path))

    def get_children(self, path: str) -> defer.Deferred:
        return self._bridge(self.kazoo.get_children_async(path))

    def exists(self, path: str) -> defer.Deferred:
        return self._bridge(self.kazoo.exists_async(path))

    def set(self, path: str, value: bytes, version: int = -1) -> defer.Deferred:
        return self._bridge(self.kazoo.set_async(path, value, version))

    def delete(self, path: str, version: int = -1) -> defer.Deferred:
        return self._bridge(self.kazoo.delete_async(path, version))

    def read_tree(self, path: str, watch: Callable[[Any], None] | None = None) -> defer.Deferred:
        """Every znode below ``path`` (not ``path`` itself), fires with ``{relative path: (data, number of
        children)}``. The reads are pipelined level by level from a worker thread, so a large subtree
        costs a few round trips, not one reactor wake-up per node; nodes deleted meanwhile are skipped.

        ``watch`` is set on every list of children and every node read (``path`` included): kazoo calls it,
        in a thread of its own, with the event of the first change to any of them (a NONE event when the
        connection is lost, which drops every watch). Pass the same callable every time: kazoo keeps one
        registration per callable and znode."""
        top = path.rstrip("/") or "/"

        def absolute(relative: str) -> str:
            return f"{top.rstrip('/')}/{relative}" if relative else top

        def read() -> dict[str, tuple[bytes, int]]:
            found: dict[str, tuple[bytes, int]] = {}
            parents = [""]
            while parents:
                listings = [(parent, self.kazoo.get_children_async(absolute(parent), watch)) for parent in parents]
                names = []
                for parent, listing in listings:
                    try:
                        names += [f"{parent}/{child}" if parent else child for child in listing.get()]
                    except NoNodeError:
                        continue
                reads = [(name, self.kazoo.get_async(absolute(name), watch)) for name in names]
                parents = []
                for name, reading in reads:
                    try:
                        data, stat = reading.get()
                    except NoNodeError:
                        continue
                    found[name] = (data or b"", stat.numChildren)
                    if stat.numChildren or watch is not None:  # watched: a child created later is a change
                        parents.append(name)
            return found

        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), read)

    def transaction(self) -> Any:
        """A kazoo TransactionRequest; commit it with :meth:`commit`."""
        return self.kazoo.transaction()

    def commit(self, transaction: Any) -> defer.Deferred:
        """Commit a transaction; fails with the error of the operation that made it fail."""
        d = self.results(transaction)

        def check(results: list[Any]) -> list[Any]:
            errors = [result for result in results if isinstance(result, Exception)]
            # The operations around the one that failed report RolledBackError / RuntimeInconsistency.
            causes = [e for e in errors if not isinstance(e, (RolledBackError, RuntimeInconsistency))]
            if causes or errors:
                raise (causes or errors)[0]
            return results

        return d.addCallback(check)

    def results(self, transaction: Any) -> defer.Deferred:
        """Commit a transaction; fires with kazoo's result of each operation (the exception of each one
        that failed: the cause, and RolledBackError for the others), or fails when ZooKeeper could not
        be asked (then whether it committed is unknown)."""
        return self._bridge(transaction.commit_async())

    def watch_children(self, path: str, callback: Callable[[list[str]], None]) -> Any:
        """Call ``callback(children)`` in the reactor now and on every change (kazoo's ChildrenWatch)."""
        def changed(children: list[str]) -> None:
            self.reactor.callFromThread(callback, list(children))

        return self.kazoo.ChildrenWatch(path, changed)
