"""The probe framework (tests only): hosted as ``--frameworks=probe``, standalone as ``twistd mesos-probe``."""

from mesostw.scheduler.plugins import FrameworkPlugin, StandaloneMaker

probe = FrameworkPlugin("probe", "probe_framework", "A probe framework that launches one task per API call", 4499)
mesosProbe = StandaloneMaker(probe, "mesos-probe")
