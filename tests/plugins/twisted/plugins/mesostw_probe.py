"""The probe framework's dropin, found when ``tests/plugins`` is on a daemon's Python path."""

from probe_plugins.mesostw_probe import mesosProbe, probe

__all__ = ["mesosProbe", "probe"]
