"""The ``mesostw`` command: Mesos's operator tools (``mesos-execute``, ``mesos-ps``, ``mesos-cat`` ...).

:mod:`~mesostw.cli.main` parses the command line and dispatches to one module per job;
everything but ``execute`` is plain blocking HTTP against the master's and agents' JSON endpoints.
"""
