"""The probe framework plugin (``tests/plugins``) for in-process tests and for the daemons tests start.

In-process, ``getPlugins(IFrameworkPlugin, probe_package())`` finds it; daemons find it in
``tests/plugins/twisted/plugins`` when :data:`PLUGINS` is on their ``PYTHONPATH``
(:func:`probe_environment`).
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any

from twisted.plugin import getPlugins

from mesostw import flags as flaglib
from mesostw.interfaces import IFrameworkPlugin
from mesostw.master.flags import MASTER_FLAGS
from mesostw.scheduler.hosted_flags import frameworks_flag, hosted_flags
from tests.helpers.processes import REPO

PLUGINS = os.path.join(REPO, "tests", "plugins")


def probe_package() -> types.ModuleType:
    """The plugin package holding the probe's declarations (``probe_framework`` becomes importable too)."""
    if PLUGINS not in sys.path:
        sys.path.append(PLUGINS)
    import probe_plugins

    return probe_plugins


def probe_plugin() -> Any:
    """The probe's IFrameworkPlugin, found as any host finds plugins."""
    return next(p for p in getPlugins(IFrameworkPlugin, probe_package()) if p.name == "probe")


def probe_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment additions that let a daemon find the probe plugin."""
    return {"PYTHONPATH": PLUGINS + os.pathsep + REPO, **(extra or {})}


def master_config(**overrides: Any) -> flaglib.Config:
    """A master's Config hosting the probe (``--frameworks=probe``) on its default port."""
    plugin = probe_plugin()
    flags = (*MASTER_FLAGS, frameworks_flag((), ["probe"]), *hosted_flags({"probe": plugin}))
    values = {"hostname": "127.0.0.1", "frameworks": ("probe",), "port": 5050, **overrides}
    return flaglib.defaults(flags, **values)
