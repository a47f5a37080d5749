"""Framework plugins: lazy declarations that ``twisted.plugin.getPlugins`` finds, and their discovery.

A framework ``<name>`` lives in a module (``frameworks/<name>/plugin.py`` for the bundled ones) exposing
``NAME``, ``DESCRIPTION``, ``DEFAULT_PORT``, ``FLAGS`` (a tuple of :class:`mesostw.flags.Flag`, without
prefix) and ``makeService(host, config)``, which raises ValueError for flag values it refuses; and,
optionally, ``check(config)`` listing every such problem (naming flags unprefixed, ``--flag``), so that
hosts refuse bad values as they parse their flags. A dropin in ``twisted/plugins/`` declares it with a
:class:`FrameworkPlugin` (and, to run it on its own, a :class:`StandaloneMaker`)::

    cron = FrameworkPlugin("cron", "frameworks.cron.plugin", "Chronos-like job scheduler", 4400)
    mesosCron = StandaloneMaker(cron, "mesos-cron")

Both are lazy, like Twisted's ``ServiceMaker``: a dropin is imported whenever any plugin is looked
up (``twistd --help`` imports them all), so it names the module and imports nothing heavy; the
module is imported when its flags or service are first needed.

A declared framework whose module cannot be imported (not installed, or broken) is *skipped*: the
dropin keeps declaring it, and :func:`framework_plugins` leaves it out with a log line saying why.
``mesos-local`` then hosts the frameworks that can run, and ``--frameworks=<name>`` naming a skipped
one is a flag error that gives the reason.
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType
from typing import Any

from twisted.application.service import IServiceMaker
from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from mesostw.interfaces import IFrameworkPlugin

log = Logger()

#: What a framework module must expose.
REQUIRED = ("FLAGS", "makeService")
#: The flags of the standalone host (:mod:`mesostw.scheduler.standalone_tap`), which a framework's own
#: flags share a namespace with; ``http_port`` and ``principal`` are also the master's ``--<name>_*``.
RESERVED = frozenset({"master", "ip", "hostname", "http_port", "work_dir", "zk", "zk_session_timeout", "principal",
                      "secret", "credential", "ssl_cert_file", "ssl_key_file", "ssl_ca_file", "ssl_require_cert"})


class PluginUnavailable(ImportError):
    """A declared framework plugin's module cannot be imported or lacks what a plugin needs."""


class FrameworkFlagsError(ValueError):
    """A framework's ``makeService`` refused the values of its flags; hosts report it as a usage error."""


def make_framework(plugin: Any, host: Any, config: Any) -> Any:
    """``plugin``'s service on ``host``; FrameworkFlagsError when the plugin refuses ``config``."""
    try:
        return plugin.makeService(host, config)
    except ValueError as exc:
        raise FrameworkFlagsError(f"framework {plugin.name!r}: {exc}") from exc


def check_framework(plugin: Any, config: Any, prefix: str = "") -> list[str]:
    """The problems ``plugin``'s optional ``check`` finds in ``config``, its flags named as the host
    offers them (``--<prefix>_<flag>`` in a master)."""
    check = getattr(plugin, "check", None)
    problems = list(check(config)) if check is not None else []
    if prefix:
        names = sorted((flag.name for flag in plugin.flags), key=len, reverse=True)
        pattern = re.compile(r"--(" + "|".join(re.escape(name) for name in names) + r")\b")
        problems = [pattern.sub(lambda m: f"--{prefix}_{m.group(1)}", problem) for problem in problems]
    return problems


@implementer(IPlugin, IFrameworkPlugin)
class FrameworkPlugin:
    """A framework declared by name, module, description and default port; the module is imported
    only when :attr:`flags` or :meth:`makeService` are used."""

    def __init__(self, name: str, module: str, description: str, default_port: int):
        self.name = name
        self.module = module
        self.description = description
        self.default_port = default_port

    def load(self) -> ModuleType:
        """The framework's module; raises :class:`PluginUnavailable` saying why it cannot be used."""
        try:
            module = importlib.import_module(self.module)
        except ImportError as exc:
            raise PluginUnavailable(f"framework {self.name!r} cannot be loaded: importing {self.module} "
                                    f"failed: {exc}") from exc
        missing = [name for name in REQUIRED if not hasattr(module, name)]
        if missing:
            raise PluginUnavailable(f"framework {self.name!r}: {self.module} lacks {', '.join(missing)}")
        taken = sorted(RESERVED & {getattr(flag, "name", None) for flag in module.FLAGS})
        if taken:
            raise PluginUnavailable(f"framework {self.name!r}: {self.module} declares flags its hosts own: "
                                    f"{', '.join(taken)}")
        return module

    @property
    def flags(self) -> tuple[Any, ...]:
        return tuple(self.load().FLAGS)

    def makeService(self, host: Any, config: Any) -> Any:
        return self.load().makeService(host, config)

    def check(self, config: Any) -> list[str]:
        """Every problem the module's optional ``check(config)`` finds (none without one)."""
        check = getattr(self.load(), "check", None)
        return list(check(config)) if check is not None else []

    def __repr__(self) -> str:
        return f"<FrameworkPlugin {self.name} from {self.module}>"


@implementer(IPlugin, IServiceMaker)
class StandaloneMaker:
    """``twistd <tapname>``: one framework in its own process (see :mod:`mesostw.scheduler.standalone_tap`)."""

    def __init__(self, plugin: FrameworkPlugin, tapname: str):
        self.plugin = plugin
        self.tapname = tapname
        self.description = f"{plugin.description} (standalone framework '{plugin.name}')"

    @property
    def options(self) -> type:
        from mesostw.scheduler.standalone_tap import options_for

        return options_for(self.plugin)

    def makeService(self, options: Any) -> Any:
        from mesostw.scheduler.standalone_tap import makeService

        return makeService(options)


def framework_plugins(package: Any = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The framework plugins ``getPlugins`` finds (in ``package``, ``twisted.plugins`` by default):
    ``({name: plugin}, {name: why it was skipped})``. A plugin that cannot be loaded is skipped with
    a log line; of two plugins with one name, the first found is kept."""
    from twisted.plugin import getPlugins

    found: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    args = (package,) if package is not None else ()
    for plugin in getPlugins(IFrameworkPlugin, *args):
        name = plugin.name
        if name in found:
            log.warn("Ignoring a second framework plugin named {name} ({plugin!r})", name=name, plugin=plugin)
            continue
        try:
            load = getattr(plugin, "load", None)
            if load is not None:
                load()
        except PluginUnavailable as exc:
            skipped[name] = str(exc)
            log.warn("Skipping framework plugin {name}: {why}", name=name, why=exc)
            continue
        found[name] = plugin
        skipped.pop(name, None)
    return dict(sorted(found.items())), skipped
