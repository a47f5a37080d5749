"""Which modules may import what: the cores stay free of transports, the in-process driver of the master."""

from __future__ import annotations

import json
import subprocess
import sys

from twisted.trial import unittest


def imported_by(module: str) -> list[str]:
    """The modules a fresh interpreter holds after importing ``module``."""
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


class LayerTests(unittest.TestCase):
    def test_master_core_imports_no_transport(self) -> None:
        """The master's core (the facade, its components and the calls) imports no HTTP, PB or wire module."""
        modules = imported_by("mesostw.master.master")
        self.assertEqual([m for m in modules if m.startswith(("twisted.web", "twisted.spread", "mesostw.http",
                                                               "mesostw.wire"))], [])

    def test_local_driver_imports_no_master(self) -> None:
        """The in-process scheduler driver depends on the endpoint interface, not on mesostw.master."""
        self.assertEqual([m for m in imported_by("mesostw.scheduler.local") if m.startswith("mesostw.master")], [])

    def test_command_executor_imports_no_twisted(self) -> None:
        """The command executor stays on the standard library (its preamble comes from an import-free module)."""
        modules = imported_by("mesostw.executor.command")
        self.assertEqual([m for m in modules if m.startswith(("twisted", "attrs", "zope"))], [])

    def test_default_executor_imports_no_twisted(self) -> None:
        """The default executor (task groups) stays on the standard library too."""
        modules = imported_by("mesostw.executor.default")
        self.assertEqual([m for m in modules if m.startswith(("twisted", "attrs", "zope"))], [])
