"""Validation of app definitions into their canonical spec, with Marathon's error paths.

Pure. :func:`normalize` reads a client's app JSON, fills Marathon's defaults, resolves
relative ids, converts the deprecated forms (``ports``, ``uris``) and reports every
problem at once into a :class:`~frameworks.service.errors.Problems` (a 422 with
``details`` such as ``/upgradeStrategy/minimumHealthCapacity: is greater than 1``).
Unknown fields are refused; features this cluster cannot run (container images,
secrets, resident apps) are refused with a reason rather than ignored.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from frameworks.service import constraints as C
from frameworks.service.appdef import DROPPED, READ_ONLY, SPEC_FIELDS
from frameworks.service.errors import Problems
from frameworks.service.pathid import ROOT, InvalidPath, canonical, parent

HEALTH_PROTOCOLS = ("HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP")
#: The health checks the task's executor runs on its agent (the others are probed by the framework).
AGENT_HEALTH_PROTOCOLS = ("COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP")
PORT_PROTOCOLS = ("tcp", "udp", "udp,tcp")
KILL_SELECTIONS = ("YOUNGEST_FIRST", "OLDEST_FIRST")
PORT_NAME = re.compile(r"^[a-z0-9-]+$")
#: Fields a request may carry (the deprecated forms and refused features included, to explain them).
ACCEPTED = frozenset(SPEC_FIELDS) | {"uris", "ports", "residency"}

#: Marathon's defaults for fields a client leaves out.
DEFAULTS: dict[str, Any] = {
    "env": {}, "instances": 1, "cpus": 1.0, "mem": 128.0, "disk": 0.0, "gpus": 0, "executor": "",
    "constraints": [], "fetch": [], "backoffSeconds": 1, "backoffFactor": 1.15, "maxLaunchDelaySeconds": 300,
    "healthChecks": [], "readinessChecks": [], "dependencies": [],
    "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0},
    "labels": {}, "secrets": {}, "unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0},
    "killSelection": "YOUNGEST_FIRST", "requirePorts": False,
}


# -- small typed readers ---------------------------------------------------------------------------

def _number(problems: Problems, path: str, value: Any, minimum: float | None = None,
            maximum: float | None = None, integer: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.add(path, "error.expected.jsnumber" if not integer else "error.expected.jsnumber (an integer)")
        return None
    if integer and isinstance(value, float):
        if not value.is_integer():
            problems.add(path, "must be an integer")
            return None
        value = int(value)
    if minimum is not None and value < minimum:
        problems.add(path, f"got {value}, expected {minimum} or more")
        return None
    if maximum is not None and value > maximum:
        problems.add(path, f"got {value}, expected {maximum} or less")
        return None
    return value


def _string(problems: Problems, path: str, value: Any, nonempty: bool = False) -> str | None:
    if not isinstance(value, str):
        problems.add(path, "error.expected.jsstring")
        return None
    if nonempty and not value.strip():
        problems.add(path, "must not be empty")
        return None
    return value


def _bool(problems: Problems, path: str, value: Any) -> bool | None:
    if not isinstance(value, bool):
        problems.add(path, "error.expected.jsboolean")
        return None
    return value


def _strings(problems: Problems, path: str, value: Any) -> list[str] | None:
    if not isinstance(value, list):
        problems.add(path, "error.expected.jsarray")
        return None
    out = []
    for index, item in enumerate(value):
        if _string(problems, f"{path}({index})", item) is not None:
            out.append(item)
    return out


def _string_map(problems: Problems, path: str, value: Any) -> dict[str, str] | None:
    if not isinstance(value, dict):
        problems.add(path, "error.expected.jsobject")
        return None
    out = {}
    for key, item in value.items():
        if _string(problems, f"{path}/{key}", item) is not None:
            out[key] = item
    return out


def _object(problems: Problems, path: str, value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        problems.add(path, "error.expected.jsobject")
        return None
    return value


# -- nested definitions ----------------------------------------------------------------------------

def _health_check(problems: Problems, path: str, raw: Any, port_count: int) -> dict[str, Any] | None:
    data = _object(problems, path, raw)
    if data is None:
        return None
    protocol = data.get("protocol", "HTTP")
    if protocol not in HEALTH_PROTOCOLS:
        problems.add(f"{path}/protocol", f"must be one of {', '.join(HEALTH_PROTOCOLS)}")
        return None
    out: dict[str, Any] = {
        "gracePeriodSeconds": 300, "intervalSeconds": 60, "maxConsecutiveFailures": 3,
        "timeoutSeconds": 20, "delaySeconds": 15,
    }
    limits = {"gracePeriodSeconds": 0, "intervalSeconds": 1, "maxConsecutiveFailures": 0, "timeoutSeconds": 1,
              "delaySeconds": 0}
    for key, minimum in limits.items():
        if key in data:
            value = _number(problems, f"{path}/{key}", data[key], minimum=minimum, integer=True)
            if value is not None:
                out[key] = value
    out["protocol"] = protocol
    if protocol == "COMMAND":
        command = data.get("command")
        if isinstance(command, str):
            command = {"value": command}
        if not isinstance(command, dict) or not isinstance(command.get("value"), str) or not command["value"]:
            problems.add(f"{path}/command", "A command health check needs a command with a non-empty value")
        else:
            out["command"] = {"value": command["value"]}
    else:
        has_port = "port" in data and data["port"] is not None
        if has_port:
            port = _number(problems, f"{path}/port", data["port"], minimum=0, maximum=65535, integer=True)
            if port is not None:
                out["port"] = port
            if data.get("portIndex") is not None:
                problems.add(path, "Health check must not specify both port and portIndex")
        else:
            index = data.get("portIndex", 0)
            index = _number(problems, f"{path}/portIndex", index, minimum=0, integer=True)
            if index is not None:
                if index >= port_count:
                    problems.add(f"{path}/portIndex", "Health check port indices must address an element of "
                                                      "the ports array or container port mappings.")
                out["portIndex"] = index
        if protocol in ("HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS"):
            path_value = data.get("path", "/")
            if _string(problems, f"{path}/path", path_value) is not None:
                out["path"] = path_value if path_value.startswith("/") else "/" + path_value
            ignore = data.get("ignoreHttp1xx", False)
            if _bool(problems, f"{path}/ignoreHttp1xx", ignore) is not None:
                out["ignoreHttp1xx"] = ignore
    ip_protocol = data.get("ipProtocol", "IPv4")
    if ip_protocol not in ("IPv4", "IPv6"):
        problems.add(f"{path}/ipProtocol", "must be IPv4 or IPv6")
    elif protocol in ("MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP"):
        out["ipProtocol"] = ip_protocol
    return out


def _readiness_check(problems: Problems, path: str, raw: Any, port_names: set[str]) -> dict[str, Any] | None:
    data = _object(problems, path, raw)
    if data is None:
        return None
    out: dict[str, Any] = {"name": "readinessCheck", "protocol": "HTTP", "path": "/", "portName": "http-api",
                           "intervalSeconds": 30, "timeoutSeconds": 10, "httpStatusCodesForReady": [200],
                           "preserveLastResponse": False}
    for key in ("name", "path", "portName"):
        if key in data and _string(problems, f"{path}/{key}", data[key], nonempty=True) is not None:
            out[key] = data[key]
    if data.get("protocol", "HTTP") not in ("HTTP", "HTTPS"):
        problems.add(f"{path}/protocol", "must be HTTP or HTTPS")
    else:
        out["protocol"] = data.get("protocol", "HTTP")
    for key in ("intervalSeconds", "timeoutSeconds"):
        if key in data:
            value = _number(problems, f"{path}/{key}", data[key], minimum=1, integer=True)
            if value is not None:
                out[key] = value
    if out["timeoutSeconds"] >= out["intervalSeconds"]:
        problems.add(f"{path}/timeoutSeconds", "must be smaller than intervalSeconds")
    if "httpStatusCodesForReady" in data:
        codes = data["httpStatusCodesForReady"]
        if not isinstance(codes, list) or not codes or not all(
                isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 999 for c in codes):
            problems.add(f"{path}/httpStatusCodesForReady", "must be a non-empty list of HTTP status codes")
        else:
            out["httpStatusCodesForReady"] = list(codes)
    if "preserveLastResponse" in data and _bool(problems, f"{path}/preserveLastResponse",
                                                  data["preserveLastResponse"]) is not None:
        out["preserveLastResponse"] = data["preserveLastResponse"]
    if out["portName"] not in port_names:
        problems.add(f"{path}/portName", f"No port definition reference for portName {out['portName']}")
    return out


def _port_definitions(problems: Problems, data: Mapping[str, Any]) -> list[dict[str, Any]]:
    ports, definitions = data.get("ports"), data.get("portDefinitions")
    if ports is not None and definitions is not None:
        listed = [d.get("port") for d in definitions if isinstance(d, dict)] if isinstance(definitions, list) else None
        if listed != ports:
            problems.add("/", "You cannot specify both ports and port definitions")
            return []
        ports = None
    if ports is not None:
        if not isinstance(ports, list):
            problems.add("/ports", "error.expected.jsarray")
            return []
        definitions = [{"port": p} for p in ports]
    if definitions is None:
        return [{"port": 0, "protocol": "tcp"}]
    if not isinstance(definitions, list):
        problems.add("/portDefinitions", "error.expected.jsarray")
        return []
    out, names, numbers = [], set(), set()
    for index, raw in enumerate(definitions):
        path = f"/portDefinitions({index})"
        item = _object(problems, path, raw)
        if item is None:
            continue
        port = _number(problems, f"{path}/port", item.get("port", 0), minimum=0, maximum=65535, integer=True)
        entry: dict[str, Any] = {"port": port if port is not None else 0,
                                 "protocol": item.get("protocol", "tcp")}
        if entry["protocol"] not in PORT_PROTOCOLS:
            problems.add(f"{path}/protocol", "must be one of tcp, udp, udp,tcp")
        if port:
            if port in numbers:
                problems.add("/portDefinitions", "Ports must be unique.")
            numbers.add(port)
        if item.get("name") is not None:
            name = _string(problems, f"{path}/name", item["name"])
            if name is not None:
                if not PORT_NAME.match(name):
                    problems.add(f"{path}/name", "must match '^[a-z0-9-]+$'")
                if name in names:
                    problems.add("/portDefinitions", "Port names must be unique.")
                names.add(name)
                entry["name"] = name
        if item.get("labels") is not None:
            labels = _string_map(problems, f"{path}/labels", item["labels"])
            if labels:
                entry["labels"] = labels
        out.append(entry)
    return out


def _fetch(problems: Problems, data: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    uris = data.get("uris")
    if uris is not None:
        for uri in _strings(problems, "/uris", uris) or []:
            extract = not uri.endswith((".sh", ".py")) and any(
                uri.endswith(s) for s in (".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz", ".zip"))
            out.append({"uri": uri, "extract": extract, "executable": False, "cache": False})
    fetch = data.get("fetch")
    if fetch is not None:
        if not isinstance(fetch, list):
            problems.add("/fetch", "error.expected.jsarray")
            return out
        for index, raw in enumerate(fetch):
            path = f"/fetch({index})"
            item = _object(problems, path, raw)
            if item is None:
                continue
            link = _string(problems, f"{path}/uri", item.get("uri"), nonempty=True)
            entry: dict[str, Any] = {"uri": link, "extract": True, "executable": False, "cache": False}
            for key in ("extract", "executable", "cache"):
                if key in item and _bool(problems, f"{path}/{key}", item[key]) is not None:
                    entry[key] = item[key]
            if item.get("destPath") is not None and _string(problems, f"{path}/destPath", item["destPath"]):
                entry["destPath"] = item["destPath"]
            out.append(entry)
    return out


def _env(problems: Problems, value: Any) -> dict[str, Any]:
    data = _object(problems, "/env", value)
    out: dict[str, Any] = {}
    for key, item in (data or {}).items():
        if isinstance(item, str):
            out[key] = item
        elif isinstance(item, dict) and set(item) == {"secret"} and isinstance(item["secret"], str):
            problems.add(f"/env/{key}", "secret references are not supported")
        else:
            problems.add(f"/env/{key}", "error.expected.jsstring")
    return out


def _strategy(problems: Problems, value: Any) -> dict[str, float]:
    out = dict(DEFAULTS["upgradeStrategy"])
    data = _object(problems, "/upgradeStrategy", value)
    for key in ("minimumHealthCapacity", "maximumOverCapacity"):
        if data is None or key not in data:
            continue
        number = data[key]
        path = f"/upgradeStrategy/{key}"
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            problems.add(path, "error.expected.jsnumber")
        elif number > 1:
            problems.add(path, "is greater than 1")
        elif number < 0:
            problems.add(path, "is less than 0")
        else:
            out[key] = float(number)
    return out


def _unreachable(problems: Problems, value: Any) -> Any:
    if value == "disabled":
        return "disabled"
    data = _object(problems, "/unreachableStrategy", value)
    out = dict(DEFAULTS["unreachableStrategy"])
    if data is None:
        return out
    for key in ("inactiveAfterSeconds", "expungeAfterSeconds"):
        if key in data:
            number = _number(problems, f"/unreachableStrategy/{key}", data[key], minimum=0, integer=True)
            if number is not None:
                out[key] = number
    if out["inactiveAfterSeconds"] > out["expungeAfterSeconds"]:
        problems.add("/unreachableStrategy/inactiveAfterSeconds", "inactiveAfterSeconds must be less or equal to "
                                                                  "expungeAfterSeconds")
    return out


# -- the whole definition --------------------------------------------------------------------------

def normalize(data: Any, problems: Problems, base: str = ROOT) -> dict[str, Any]:
    """The canonical spec of an app JSON object (``id`` resolved under ``base``); problems found
    are added to ``problems`` and the result is meaningful only when there are none."""
    if not isinstance(data, dict):
        problems.add("/", "error.expected.jsobject")
        return {}
    for key in data:
        if key not in ACCEPTED and key not in READ_ONLY and key not in DROPPED:
            problems.add(f"/{key}", "error.unknown.field: not a field of an app definition")
    spec: dict[str, Any] = {}
    raw_id = data.get("id")
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip("/")):
        problems.add("/id", "error.path.missing" if raw_id is None else "Path must contain at least one segment")
    elif _string(problems, "/id", raw_id) is not None:
        try:
            spec["id"] = canonical(raw_id, base)
        except InvalidPath as exc:
            problems.add("/id", str(exc))
    for key in ("cmd", "user", "executor"):
        if data.get(key) is not None and _string(problems, f"/{key}", data[key], nonempty=(key == "cmd")) is not None:
            spec[key] = data[key]
    if data.get("args") is not None:
        args = _strings(problems, "/args", data["args"])
        if args is not None:
            spec["args"] = args
    container = data.get("container")
    if container is not None and _object(problems, "/container", container) is not None:
        images = [container.get(kind, {}).get("image") for kind in ("docker", "appc")
                  if isinstance(container.get(kind), dict)]
        if any(images) or container.get("type", "DOCKER") == "DOCKER":
            problems.add("/container", "container images are not supported: give a cmd or args instead")
        else:
            spec["container"] = copy.deepcopy(container)
    if "cmd" in spec and "args" in spec:
        problems.add("/", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.")
    elif "cmd" not in spec and "args" not in spec:
        problems.add("/", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.")
    if "args" in spec and not spec["args"]:
        problems.add("/args", "must not be empty")
    spec["env"] = _env(problems, data["env"]) if data.get("env") is not None else {}
    scalars = (("instances", 0, True), ("cpus", 0.001, False), ("mem", 0, False), ("disk", 0, False),
               ("gpus", 0, True))
    for key, minimum, integer in scalars:
        value = data.get(key)
        if value is None:
            spec[key] = DEFAULTS[key]
            continue
        number = _number(problems, f"/{key}", value, minimum=minimum, integer=integer)
        spec[key] = number if number is None or integer else float(number)
    spec.setdefault("executor", "")
    if spec["executor"] not in ("", "//cmd"):
        problems.add("/executor", "custom executors are not supported (use '' or '//cmd')")
    raw_constraints = data.get("constraints") or []
    if not isinstance(raw_constraints, list):
        problems.add("/constraints", "error.expected.jsarray")
        raw_constraints = []
    spec["constraints"] = []
    for index, raw in enumerate(raw_constraints):
        try:
            spec["constraints"].append(C.parse(raw).to_json())
        except ValueError as exc:
            problems.add(f"/constraints({index})", str(exc))
    spec["fetch"] = _fetch(problems, data)
    if data.get("storeUrls"):
        spec["storeUrls"] = _strings(problems, "/storeUrls", data["storeUrls"]) or []
    backoff = (("backoffSeconds", 0, True), ("backoffFactor", 1.0, False), ("maxLaunchDelaySeconds", 0, True))
    for key, minimum, integer in backoff:
        value = data.get(key)
        spec[key] = DEFAULTS[key] if value is None else _number(problems, f"/{key}", value, minimum=minimum,
                                                                   integer=integer)
    ports = _port_definitions(problems, data)
    port_names = {p["name"] for p in ports if "name" in p}
    checks = data.get("healthChecks") or []
    if not isinstance(checks, list):
        problems.add("/healthChecks", "error.expected.jsarray")
        checks = []
    spec["healthChecks"] = [c for index, raw in enumerate(checks)
                            if (c := _health_check(problems, f"/healthChecks({index})", raw, len(ports)))]
    if sum(1 for c in spec["healthChecks"] if c["protocol"] in AGENT_HEALTH_PROTOCOLS) > 1:
        # Mesos runs one health check per task (TaskInfo.health_check)
        problems.add("/healthChecks", "AppDefinition can contain at most one Mesos health check (COMMAND or "
                                      "MESOS_*)")
    readiness = data.get("readinessChecks") or []
    if not isinstance(readiness, list):
        problems.add("/readinessChecks", "error.expected.jsarray")
        readiness = []
    if len(readiness) > 1:
        problems.add("/readinessChecks", "Only one readinessCheck is allowed")
    spec["readinessChecks"] = [c for index, raw in enumerate(readiness)
                               if (c := _readiness_check(problems, f"/readinessChecks({index})", raw, port_names))]
    spec["dependencies"] = []
    for index, dep in enumerate(_strings(problems, "/dependencies", data.get("dependencies") or []) or []):
        try:
            resolved = canonical(dep, parent(spec.get("id", ROOT)))
        except InvalidPath as exc:
            problems.add(f"/dependencies({index})", str(exc))
            continue
        if resolved == spec.get("id"):
            problems.add(f"/dependencies({index})", "An app cannot depend on itself")
        elif resolved not in spec["dependencies"]:
            spec["dependencies"].append(resolved)
    spec["upgradeStrategy"] = _strategy(problems, data["upgradeStrategy"]) if data.get("upgradeStrategy") is not None \
        else dict(DEFAULTS["upgradeStrategy"])
    spec["labels"] = (_string_map(problems, "/labels", data["labels"]) or {}) if data.get("labels") is not None else {}
    if data.get("acceptedResourceRoles") is not None:
        roles = _strings(problems, "/acceptedResourceRoles", data["acceptedResourceRoles"])
        if roles is not None and not roles:
            problems.add("/acceptedResourceRoles", "must not be empty")
        elif roles:
            spec["acceptedResourceRoles"] = list(dict.fromkeys(roles))
    if data.get("ipAddress") is not None:
        problems.add("/ipAddress", "IP-per-task networking is not supported")
    if data.get("residency") is not None:
        problems.add("/residency", "resident apps (persistent volumes) are not supported")
    secrets = data.get("secrets")
    if secrets:
        problems.add("/secrets", "secrets are not supported")
    spec["secrets"] = {}
    grace = data.get("taskKillGracePeriodSeconds")
    if grace is not None:
        number = _number(problems, "/taskKillGracePeriodSeconds", grace, minimum=0)
        if number is not None:
            spec["taskKillGracePeriodSeconds"] = number
    spec["unreachableStrategy"] = _unreachable(problems, data["unreachableStrategy"]) \
        if data.get("unreachableStrategy") is not None else dict(DEFAULTS["unreachableStrategy"])
    kill = data.get("killSelection") or "YOUNGEST_FIRST"
    if kill not in KILL_SELECTIONS:
        problems.add("/killSelection", f"must be one of {', '.join(KILL_SELECTIONS)}")
    spec["killSelection"] = kill
    require = data.get("requirePorts", False)
    spec["requirePorts"] = bool(_bool(problems, "/requirePorts", require)) if require is not None else False
    spec["portDefinitions"] = ports
    networks = data.get("networks")
    if networks is not None:
        if networks not in ([], [{"mode": "host"}]):
            problems.add("/networks", "only host networking is supported")
        elif networks:
            spec["networks"] = [{"mode": "host"}]
    if data.get("role") is not None and _string(problems, "/role", data["role"], nonempty=True) is not None:
        spec["role"] = data["role"]
    return {key: spec[key] for key in SPEC_FIELDS if key in spec}
