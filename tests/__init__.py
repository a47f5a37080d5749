"""mesostw's tests.

Hypothesis runs under a settings profile named by ``HYPOTHESIS_PROFILE`` (loaded here, before any test
module builds its own ``settings``, which inherit from it):

- ``ci`` (what ``make test`` sets): derandomized, so every run tries the same examples and a failure
  reproduces on any machine with the same command; no example database.
- ``dev`` (the default otherwise): random, with failing examples saved under ``.hypothesis/`` at the top of
  the checkout and replayed first by the next run.

- ``mutation`` (what ``make mutation`` sets): as ``ci``, with fewer examples, and without the health
  check that mutmut's way of running each test in forked workers trips.

All print the ``@reproduce_failure`` blob of a failure. See the README's "Testing" section.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True,
                          database=DirectoryBasedExampleDatabase(os.path.join(REPO, ".hypothesis", "examples")))
settings.register_profile("mutation", derandomize=True, database=None, print_blob=True, max_examples=30,
                          suppress_health_check=[HealthCheck.differing_executors])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
