"""The bundled ``service`` framework (Marathon's job and REST API) as a hosted plugin.

A host (``mesos-master --frameworks=service``, ``mesos-local``, or ``twistd mesos-service``)
reads these attributes: the flags below (the master shows them as ``--service_<flag>``),
the API's default port (Marathon's 8080) and :func:`makeService`.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService

from mesostw.flags import Flag

NAME = "service"
DESCRIPTION = "Long-running services with health checks and rolling deployments, speaking Marathon's REST API"
DEFAULT_PORT = 8080


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise ValueError(f"{value} is not a TCP port")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


FLAGS: tuple[Flag, ...] = (
    Flag("framework_name", "marathon", "The framework's name as the master shows it"),
    Flag.duration("failover_timeout", 604800.0,
                  "How long the master keeps the framework's tasks while no instance of it is connected"),
    Flag("mesos_role", "*", "The role the framework registers in (its apps may also accept '*')"),
    Flag("mesos_user", "", "The user tasks run as unless an app names one (default: the user running this)"),
    Flag.duration("task_launch_timeout", 300.0, "Time for a launched task to reach TASK_RUNNING before it is "
                                                "killed and retried"),
    Flag.duration("decline_offer_duration", 120.0, "How long declined offers stay away (until revived)"),
    Flag("max_instances_per_offer", 50, "The most instances launched from one offer", _positive),
    Flag("health_check_concurrency", 256, "The most health and readiness probes in flight at once", _positive),
    Flag.duration("reconciliation_interval", 600.0, "Time between task reconciliations with the master"),
    Flag.duration("scale_apps_interval", 5.0, "Time between sweeps that re-check every app's instances, launch "
                                              "timeouts, unreachable instances and unanswered kills"),
    Flag("local_port_min", 10000, "Lowest service port given to apps that ask for port 0", _port),
    Flag("local_port_max", 20000, "Highest service port given to apps that ask for port 0", _port),
    Flag("zk_max_versions", 50, "Versions kept per app", _positive),
    Flag("http_credentials", "", "user:password (comma-separated for several) that the API requires with "
                                 "HTTP Basic authentication (default: none)"),
    Flag.bool("strict_compat", True, "Answer only with the fields marathon-python 0.13 accepts (extensions such "
                                     "as a deployment's 'status' then need '?embed=status')"),
)


def makeService(host: Any, config: Any) -> IService:
    """The framework's service: it recovers and registers once ``host`` says it leads."""
    from frameworks.service.service import ServiceFramework

    return ServiceFramework(host, config)
