"""The bundled frameworks as plugins: ``IFrameworkPlugin`` providers ``cron`` and ``service`` (hosted by
``mesos-master --frameworks=...`` and ``mesos-local``), and the twistd commands ``mesos-cron`` and
``mesos-service`` that run each on its own.

Lazy, like ``ServiceMaker``: nothing of a framework is imported until it is used, and a framework
whose package is missing is skipped with a log line (see :mod:`mesostw.scheduler.plugins`).
"""

from mesostw.scheduler.plugins import FrameworkPlugin, StandaloneMaker

cron = FrameworkPlugin("cron", "frameworks.cron.plugin", "A Chronos-compatible job scheduler", 4400)
service = FrameworkPlugin("service", "frameworks.service.plugin", "A Marathon-compatible service scheduler", 8080)

mesosCron = StandaloneMaker(cron, "mesos-cron")
mesosService = StandaloneMaker(service, "mesos-service")
