"""The flags of a master that hosts frameworks: ``--frameworks`` and, per installed plugin,
``--<name>_http_port``, ``--<name>_principal`` and the plugin's own flags as ``--<name>_<flag>``.

Every installed plugin's flags are offered (and shown by ``--help``) whether or not
``--frameworks`` selects it, as Mesos offers every module's flags; ``MESOS_<NAME>_<FLAG>`` in the
environment sets them like any flag.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mesostw.flags import Config, Flag, FlagOptions, options_for, prefixed, unprefixed
from mesostw.scheduler.plugins import check_framework, framework_plugins

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def parse_names(text: str) -> tuple[str, ...]:
    """``--frameworks=cron,service``: plugin names, in order, each once; empty for none."""
    names: list[str] = []
    for name in (part.strip() for part in text.split(",")):
        if not name:
            continue
        if not _NAME.match(name):
            raise ValueError(f"{name!r} is not a framework name")
        if name not in names:
            names.append(name)
    return tuple(names)


def frameworks_flag(default: tuple[str, ...], installed: Iterable[str]) -> Flag:
    names = ", ".join(installed) or "none"
    return Flag("frameworks", default, f"Comma-separated framework plugins to run in this process while it leads "
                f"the cluster (installed: {names}); empty for none", parse=parse_names, render=",".join)


def host_flags(plugin: Any) -> tuple[Flag, ...]:
    """What a master offers for one plugin."""
    name = plugin.name
    return (
        Flag.int(f"{name}_http_port", plugin.default_port, f"Port of the hosted {name} framework's HTTP API "
                 "(on --ip; 0 picks a free port)"),
        Flag(f"{name}_principal", name, f"Principal the hosted {name} framework registers as (ACLs apply to it)"),
        *prefixed(plugin.flags, name),
    )


def hosted_flags(plugins: Mapping[str, Any]) -> tuple[Flag, ...]:
    return tuple(flag for plugin in plugins.values() for flag in host_flags(plugin))


def check_frameworks(config: Config, plugins: Mapping[str, Any], skipped: Mapping[str, str],
                     errors: list[str]) -> None:
    """``--frameworks`` names installed plugins, their ports are ports that do not collide, and each
    plugin's own check finds nothing wrong with its ``--<name>_*`` flags."""
    installed = ", ".join(plugins) or "none"
    ports: dict[int, str] = {config.port: "--port"} if getattr(config, "port", 0) else {}
    for name in config.frameworks:
        if name in skipped:
            errors.append(f"--frameworks: {skipped[name]}")
            continue
        if name not in plugins:
            errors.append(f"--frameworks: no framework plugin named {name!r} is installed (installed: {installed})")
            continue
        flag = f"--{name}_http_port"
        port = getattr(config, f"{name}_http_port")
        if not 0 <= port <= 65535:
            errors.append(f"{flag}={port} is not a port number")
        elif port and port in ports:
            errors.append(f"{flag}={port} is already the port of {ports[port]}")
        elif port:
            ports[port] = flag
        errors.extend(check_framework(plugins[name], unprefixed(config, plugins[name].flags, name), name))


def hosting_options(flags: Sequence[Flag], base: type[FlagOptions], default: str = "none",
                    package: Any = None) -> type[FlagOptions]:
    """``base``'s Options with the hosting flags of the installed plugins (found in ``package``,
    ``twisted.plugins`` by default) added; ``default`` is "none" (mesos-master) or "all"
    (mesos-local). The class carries ``plugins``, ``skipped`` and ``hosting_flags``."""
    plugins, skipped = framework_plugins(package)
    extra = (frameworks_flag(tuple(plugins) if default == "all" else (), plugins), *hosted_flags(plugins))

    def check(self: Any, config: Config, errors: list[str]) -> None:
        base.check(self, config, errors)
        check_frameworks(config, self.plugins, self.skipped, errors)

    return options_for((*flags, *extra), "[options]", base, plugins=plugins, skipped=skipped,
                       hosting_flags=extra, check=check)
