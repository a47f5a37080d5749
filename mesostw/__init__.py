"""mesostw: a two-level cluster resource manager in the spirit of Apache Mesos, on Twisted."""

__version__ = "1.11.0"
