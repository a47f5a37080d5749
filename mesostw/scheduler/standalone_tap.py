"""``twistd mesos-cron`` / ``mesos-service`` (any framework plugin): one framework in its own process.

``twistd -n mesos-cron --master=HOST:PORT|zk://... [--http_port=N] [--work_dir=DIR] [--zk=zk://.../cron]
[--hostname=H] [--ip=IP] [--principal=P] [--secret=S | --credential=FILE] [--ssl_*]`` plus the plugin's own
flags, unprefixed. Every flag may also come from ``MESOS_<NAME>_<FLAG>`` in the environment
(``MESOS_CRON_MASTER``, ``MESOS_CRON_HTTP_PORT``): the same variables as set the framework's flags in
a master that hosts it, and none of the ``MESOS_IP``, ``MESOS_ZK``, ``MESOS_WORK_DIR`` meant for a
master or an agent on the same machine.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.python import usage

from mesostw.auth import tls
from mesostw.flags import Config, Flag, FlagOptions, read_value
from mesostw.flags import options_for as build_options
from mesostw.scheduler.plugins import FrameworkFlagsError, PluginUnavailable, check_framework


def _parse_zk(text: str) -> str:
    from mesostw.zk.url import parse_zk_url

    parse_zk_url(text)
    return text


def _parse_credential(text: str) -> Any:
    from mesostw.auth.credentials import load_credential

    return load_credential(text)


def host_flags(plugin: Any) -> tuple[Flag, ...]:
    """The standalone host's own flags (their names are :data:`mesostw.scheduler.plugins.RESERVED`)."""
    name = plugin.name
    return tls.FLAGS + (
        Flag("master", None, "The leading master: host:port, zk://host:port/path (the masters' ZooKeeper "
             "group) or file:///path holding one"),
        Flag("ip", "127.0.0.1", "IP address the framework's HTTP API listens on"),
        Flag.int("http_port", plugin.default_port, "Port of the framework's HTTP API (0 picks a free port)"),
        Flag("hostname", None, "Hostname other instances and the web UI reach this one by (default: --ip)"),
        Flag("work_dir", None, "Directory for the framework's state when there is no --zk; without either "
             "the state is kept in memory only"),
        Flag("zk", None, f"ZooKeeper URL under which instances elect their leader and keep the state, e.g. "
             f"zk://host1:2181,host2:2181/mesostw/{name}; several instances may then run", parse=_parse_zk),
        Flag.duration("zk_session_timeout", 10.0, "ZooKeeper session timeout; an instance that loses its "
                      "session exits"),
        Flag("principal", None, f"Principal the framework registers (and authenticates) as (default: {name}, "
             "or the principal of --credential)"),
        Flag("secret", None, "Secret of --principal for authentication (SASL CRAM-MD5), or file:///path "
             "holding it", parse=read_value, render=lambda v: "********" if v else ""),
        Flag("credential", None, "File (a path or file:///path) with the principal and secret to authenticate "
             "with, as mesos-slave --credential", parse=_parse_credential,
             render=lambda c: c.principal if c is not None else ""),
    )


class StandaloneOptions(FlagOptions):
    plugin: Any = None
    #: the plugin's own flags (the rest are the host's)
    framework_flags: tuple[Flag, ...] = ()
    #: why the plugin cannot run, when it cannot
    unavailable: str | None = None

    def parseOptions(self, options: Any = None) -> None:
        if self.unavailable:
            raise usage.UsageError(self.unavailable)
        super().parseOptions(options)

    def check(self, config: Config, errors: list[str]) -> None:
        try:
            tls.tls_from(config)
        except tls.TLSConfigError as exc:
            errors.extend(exc.problems)
        if not config.master:
            errors.append("--master is required (host:port or zk://host:port/path of the masters)")
        if not 0 <= config.http_port <= 65535:
            errors.append(f"--http_port={config.http_port} is not a port number")
        try:
            socket.inet_aton(config.ip)
        except OSError:
            errors.append(f"--ip={config.ip} is not an IPv4 address")
        if config.zk_session_timeout < 1:
            errors.append("--zk_session_timeout must be at least 1secs")
        if config.secret is not None and config.credential is not None:
            errors.append("give either --secret or --credential, not both")
        if config.credential is not None and config.principal and config.principal != config.credential.principal:
            errors.append(f"--principal={config.principal} differs from the principal of --credential "
                          f"({config.credential.principal})")
        if config.secret == "":
            errors.append("--secret must not be empty")
        if config.hostname is None:
            config.hostname = config.ip
        if config.work_dir:
            config.work_dir = os.path.abspath(config.work_dir)
        errors.extend(check_framework(self.plugin, framework_config(config, self.framework_flags)))


def options_for(plugin: Any) -> type[FlagOptions]:
    """The Options class of ``twistd <tapname>`` for ``plugin``."""
    try:
        framework_flags = plugin.flags
    except PluginUnavailable as exc:
        return build_options((), "[options]", StandaloneOptions, plugin=plugin, unavailable=str(exc))
    return build_options((*host_flags(plugin), *framework_flags), "[options]", StandaloneOptions, plugin=plugin,
                         framework_flags=framework_flags, env_prefix=f"MESOS_{plugin.name.upper()}_")


def framework_config(config: Config, flags: Any) -> Config:
    """The plugin's own Config out of the instance's."""
    return Config(flags, {f.name: getattr(config, f.name) for f in flags})


def refuse(tapname: str, error: FrameworkFlagsError) -> SystemExit:
    """What ends ``twistd <tapname>`` when a framework refuses its flags: the message (on stderr) and
    exit status 1, as a usage error, instead of a traceback."""
    return SystemExit(f"twistd {tapname}: invalid flags: {error}")


def makeService(options: Any) -> Any:
    from mesostw.scheduler.standalone import StandaloneFramework

    config = options.config
    settings = tls.tls_from(config)
    if settings.enabled and any(getattr(config, f.name) for f in tls.FLAGS):
        # The PB driver takes its TLS settings from the environment, as every libprocess client does:
        # hand it those of the flags.
        os.environ.update(settings.environment())
    try:
        return StandaloneFramework(options.plugin, config, framework_config(config, options.framework_flags))
    except FrameworkFlagsError as exc:
        raise refuse(f"mesos-{options.plugin.name}", exc) from None
