"""The service framework as real processes: a master hosting it (``--frameworks=service``) with agents
that look like separate hosts (``--ip`` 127.0.0.1, 127.0.0.2 ... and so distinct hostnames), the
real ``marathon`` client, and a check that a task really serves.

marathon 0.13 uses ``collections.Iterable``, gone since Python 3.10: importing this module patches it
back in this process only (ENVIRONMENT.md), so that apps with health checks and constraints encode.
"""

from __future__ import annotations

import collections
import collections.abc
import http.client
import os
from typing import Any

from tests.helpers.processes import ProcessCluster

if not hasattr(collections, "Iterable"):
    collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]

from marathon import MarathonClient  # noqa: E402

#: Agents' resources: with host ports for the apps' $PORT0.
#: Each test process takes its own window of task ports (below the ephemeral range), so that suites run
#: side by side on one machine never hand two tasks the same port on the same address.
_PORTS = 20000 + (os.getpid() % 12) * 1000
RESOURCES = f"cpus:4;mem:4096;disk:4096;ports:[{_PORTS}-{_PORTS + 999}]"
#: A small HTTP server a task runs on its agent's address and first host port.
HTTP_SERVER = "exec python3 -m http.server --bind $HOST $PORT0"


def agent_ips(count: int) -> list[str]:
    return [f"127.0.0.{index + 1}" for index in range(count)]


def service_cluster(testcase: Any, api_port: int, agents: int = 2, master_args: list[str] | None = None) -> Any:
    """A ProcessCluster whose master runs the service framework with its API on ``api_port``."""
    return ProcessCluster(testcase, agents=agents, resources=RESOURCES, agent_ips=agent_ips(agents),
                          master_args=["--frameworks=service", f"--service_http_port={api_port}",
                                       *(master_args or [])])


def client(url: str | list[str], timeout: float = 20) -> MarathonClient:
    return MarathonClient(url, timeout=timeout)


def close(marathon: MarathonClient) -> None:
    marathon.session.close()
    marathon.sse_session.close()


def serving(host: str, port: int, timeout: float = 5.0) -> bool:
    """Whether an HTTP server answers 200 at ``host:port`` within ``timeout`` (blocking); generous, so
    that a loaded machine's slow answer is not taken for an instance that is down."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
