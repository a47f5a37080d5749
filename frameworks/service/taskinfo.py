"""The Mesos TaskInfo of an instance, with Marathon's environment.

Pure. Marathon gives every task ``HOST``, ``PORT0..n``, ``PORT`` (the first),
``PORTS``, ``PORT_<servicePort>``, ``PORT_<NAME>`` for named ports,
``MARATHON_APP_ID``/``_VERSION``/``_RESOURCE_*``/``_LABELS``/``_LABEL_<NAME>`` and
``MESOS_TASK_ID``; the app's ``env`` comes on top except for the host and port
variables, which must stay right. A COMMAND or MESOS_* health check becomes the task's
``health_check``, which the executor runs on the agent (with the task's environment).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from frameworks.service import pathid
from frameworks.service.appdef import App
from mesostw.model.resources import Resources

_LABEL_NAME = re.compile(r"[^A-Za-z0-9_]")


def environment(app: App, task_id: str, host: str, host_ports: Sequence[int]) -> dict[str, str]:
    spec = app.spec
    env: dict[str, str] = {
        "MARATHON_APP_ID": app.id,
        "MARATHON_APP_VERSION": app.version,
        "MARATHON_APP_RESOURCE_CPUS": f"{float(spec.get('cpus', 0)):g}",
        "MARATHON_APP_RESOURCE_MEM": f"{float(spec.get('mem', 0)):g}",
        "MARATHON_APP_RESOURCE_DISK": f"{float(spec.get('disk', 0)):g}",
        "MARATHON_APP_RESOURCE_GPUS": str(int(spec.get("gpus", 0))),
    }
    labels = spec.get("labels", {})
    if labels:
        names = [_LABEL_NAME.sub("_", k).upper() for k in labels]
        env["MARATHON_APP_LABELS"] = " ".join(names)
        for name, value in zip(names, labels.values(), strict=True):
            env[f"MARATHON_APP_LABEL_{name}"] = value
    env.update(spec.get("env", {}))
    fixed: dict[str, str] = {"HOST": host, "MESOS_TASK_ID": task_id}
    if host_ports:
        fixed["PORT"] = str(host_ports[0])
        fixed["PORTS"] = ",".join(str(p) for p in host_ports)
    definitions = app.port_definitions
    for index, port in enumerate(host_ports):
        fixed[f"PORT{index}"] = str(port)
        if index < len(definitions):
            service_port = definitions[index].get("port")
            if service_port:
                fixed[f"PORT_{service_port}"] = str(port)
            port_name = definitions[index].get("name")
            if port_name:
                fixed[f"PORT_{_LABEL_NAME.sub('_', port_name).upper()}"] = str(port)
    env.update(fixed)
    return env


def task_info(app: App, task_id: str, agent_id: str, host: str, resources: Resources,
              host_ports: Sequence[int]) -> dict[str, Any]:
    """The TaskInfo JSON (Mesos v1 shape) that launches one instance of ``app``."""
    spec = app.spec
    command: dict[str, Any]
    if spec.get("args"):
        args = list(spec["args"])
        command = {"shell": False, "value": args[0], "arguments": args}
    else:
        command = {"shell": True, "value": spec.get("cmd", "")}
    env = environment(app, task_id, host, host_ports)
    command["environment"] = {"variables": [{"name": k, "value": v} for k, v in env.items()]}
    if spec.get("user"):
        command["user"] = spec["user"]
    uris = []
    for entry in spec.get("fetch", ()):
        uri = {"value": entry["uri"], "executable": entry.get("executable", False),
               "extract": entry.get("extract", True), "cache": entry.get("cache", False)}
        if entry.get("destPath"):
            uri["output_file"] = entry["destPath"]
        uris.append(uri)
    if uris:
        command["uris"] = uris
    info: dict[str, Any] = {
        "name": pathid.hostname(app.id),
        "task_id": {"value": task_id},
        "agent_id": {"value": agent_id},
        "resources": resources.to_json(),
        "command": command,
    }
    labels = spec.get("labels", {})
    if labels:
        info["labels"] = {"labels": [{"key": k, "value": v} for k, v in labels.items()]}
    grace = spec.get("taskKillGracePeriodSeconds")
    if grace is not None:
        info["kill_policy"] = {"grace_period": {"nanoseconds": int(float(grace) * 1e9)}}
    for check in app.health_checks:
        if check.on_agent:  # validation allows one; the executor runs it and reports in status updates
            mesos_check = check.to_mesos(host_ports)
            if mesos_check is not None:
                info["health_check"] = mesos_check
            break
    ports = []
    for index, definition in enumerate(app.port_definitions):
        if index < len(host_ports):
            entry = {"number": host_ports[index], "protocol": definition.get("protocol", "tcp").split(",")[0]}
            if definition.get("name"):
                entry["name"] = definition["name"]
            ports.append(entry)
    if ports:
        info["discovery"] = {"visibility": "FRAMEWORK", "name": pathid.hostname(app.id), "ports": {"ports": ports}}
    return info
