"""A registry write that fails for want of file descriptors is retried, never reported (issue 12, item 4)."""

from __future__ import annotations

import errno
import os

from twisted.internet import defer, task
from twisted.trial import unittest

from mesostw.master.registry import AdmitAgent, Registry, RegistryState
from mesostw.store import StoreError
from mesostw.store.memory import MemoryStateStore


class ShortOfDescriptors(MemoryStateStore):
    """A store whose first ``failures`` commits fail as a process out of descriptors does."""

    def __init__(self, failures: int, error: Exception):
        super().__init__()
        self.failures = failures
        self.error = error
        self.attempts = 0

    def commit(self, operations):
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            return defer.fail(self.error)
        return super().commit(operations)


class DescriptorShortageTests(unittest.TestCase):
    def registry(self, failures: int, error: Exception) -> tuple[Registry, ShortOfDescriptors, task.Clock]:
        clock = task.Clock()
        store = ShortOfDescriptors(failures, error)
        return Registry(store, clock=clock), store, clock

    def test_emfile_is_retried_until_the_write_lands(self):
        """EMFILE (raw, or wrapped in a store's error) delays the write, with growing waits, until it lands;
        the mutation's Deferred then fires and nothing was reported as a failure."""
        for error in (OSError(errno.EMFILE, os.strerror(errno.EMFILE)),
                      StoreError(f"cannot write: [Errno 24] {os.strerror(errno.EMFILE)}")):
            registry, store, clock = self.registry(3, error)
            done = registry.apply(AdmitAgent("S1", {"hostname": "h"}, "agent"))
            self.assertNoResult(done)
            clock.advance(0.1)
            clock.advance(0.2)
            self.assertNoResult(done)
            clock.advance(0.4)
            self.successResultOf(done)
            self.assertEqual(store.attempts, 4)
            state = self.successResultOf(Registry(store).recover())
            self.assertEqual(state.owners, {"S1": "agent"})

    def test_other_failures_are_reported(self):
        """Any other failure of the store fails the write at once (the master aborts on it)."""
        registry, store, clock = self.registry(1, StoreError("disk on fire"))
        failure = self.failureResultOf(registry.apply(AdmitAgent("S1", {})))
        self.assertIn("disk on fire", failure.getErrorMessage())
        self.assertEqual(registry.state, RegistryState())
        self.assertEqual(store.attempts, 1)
