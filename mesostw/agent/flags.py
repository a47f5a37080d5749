"""The agent's flags, with Mesos's names and defaults."""

from __future__ import annotations

import os

from mesostw.daemon import COMMON_FLAGS, check_common
from mesostw.flags import Config, Flag, FlagOptions, options_for, read_value
from mesostw.model.attributes import parse_attributes
from mesostw.model.resources import validate_role
from mesostw.model.units import format_bytes, parse_bytes
from mesostw.model.validation import ValidationError


def _resources_text(text: str) -> str:
    from mesostw.model.resources import Resources

    text = read_value(text)
    try:
        Resources.parse(text)
    except ValidationError as exc:
        raise ValueError("; ".join(exc.errors)) from None
    return text


def _attributes(text: str) -> dict:
    try:
        return parse_attributes(read_value(text))
    except ValidationError as exc:
        raise ValueError("; ".join(exc.errors)) from None


def _credential(text: str) -> object:
    from mesostw.auth.credentials import load_credential

    return load_credential(text)


def _recover(text: str) -> str:
    if text not in ("reconnect", "cleanup"):
        raise ValueError("must be 'reconnect' or 'cleanup'")
    return text


def _isolation(text: str) -> str:
    from mesostw.agent.isolation import check_isolation

    return check_isolation(text)


def _role(text: str) -> str:
    problem = validate_role(text)
    if problem:
        raise ValueError(problem)
    return text


AGENT_FLAGS = tuple(
    Flag.int("port", 5051, f.help) if f.name == "port" else f for f in COMMON_FLAGS
) + (
    Flag("master", None, "Where the master is: host:port, zk://host1:port1,host2:port2/path (the leader elected "
         "there), or file:///path holding either"),
    Flag.duration("zk_session_timeout", 10.0, "ZooKeeper session timeout, with --master=zk://..."),
    Flag("credential", None, "This agent's credential for authenticating with the master: a path or "
         'file:///path to JSON {"principal": ..., "secret": ...} or a "principal secret" line',
         parse=_credential, render=lambda c: c.principal if c is not None else ""),
    Flag.bool("switch_user", True, "Run tasks as the user they name (or their framework's user); an agent not "
              "running as root can only run them as itself"),
    Flag("work_dir", None, "Directory for sandboxes and the agent's checkpointed state (required)"),
    Flag("resources", None, "Resources to advertise, e.g. 'cpus:4;mem:8192;ports:[31000-32000];gpus(ml):1' or a "
         "JSON array of Resource objects; whatever is not given is probed", parse=_resources_text),
    Flag("attributes", {}, "Attributes passed through in offers, e.g. 'rack:r1;zone:a'", parse=_attributes,
         render=lambda v: ";".join(f"{k}:{x}" for k, x in v.items())),
    Flag("default_role", "*", "Role given to probed resources and to resources named without one", parse=_role),
    Flag.bool("native_command_executor", True, "Run plain command tasks (no health check, no TLS to the "
              "executors) with the native command executor when it is built; false: always the Python one"),
    Flag.duration("executor_registration_timeout", 60.0, "Time an executor has to subscribe after it starts"),
    Flag.duration("executor_shutdown_grace_period", 5.0,
                  "Time an executor has to exit after being told to shut down, before it is killed"),
    Flag.duration("registration_backoff_factor", 1.0,
                  "Initial backoff for (re-)registration attempts; doubles up to a minute"),
    Flag.duration("agent_ping_timeout", 15.0, "Time between the master's pings, as configured on the master",
                  aliases=("slave_ping_timeout",)),
    Flag.int("max_agent_ping_timeouts", 5, "Missed master pings after which the agent re-registers",
             aliases=("max_slave_ping_timeouts",)),
    Flag.bool("authenticate_http_executors", True,
              "HTTP executors must present their secret (MESOS_EXECUTOR_AUTHENTICATION_TOKEN) as "
              "'Authorization: Bearer'; false only for executors that know no secret. Executors on the "
              "agent's own PB and stream transports always must"),
    Flag.bool("authenticate_http_readonly", False,
              "The agent's HTTP endpoints (state, flags, metrics, /files; not /health) require HTTP Basic "
              "authentication against --http_credentials"),
    Flag("http_credentials", None, "Credentials of HTTP clients: a path or file:///path to JSON "
         '{"credentials": [{"principal": ..., "secret": ...}]} or lines of "principal secret"'),
    Flag("acls", None, "Access control lists, as the master's --acls; the agent enforces access_sandboxes "
         "(which principals may read /files of executors running as which users)"),
    Flag("executor_secret_key", None, "File holding the key executor secrets are derived from (at least 16 "
         "bytes, kept secret); default: <work_dir>/meta/executor_secret_key, created on first start"),
    # -- recovery (Mesos's agent recovery flags) --
    Flag("recover", "reconnect", "What to do with the state checkpointed under --work_dir/meta by an earlier "
         "run: 'reconnect' to the executors it left running (those of checkpointing frameworks; others are "
         "killed), or 'cleanup' to kill every one of them (their tasks end, reported) and start with none",
         parse=_recover),
    Flag.bool("strict", True, "Refuse to start when the checkpointed state cannot be read whole; with "
              "--strict=false recover what can be read and kill the rest"),
    Flag.duration("executor_reregistration_timeout", 2.0, "Time the executors of an earlier run have to "
                  "reconnect after the agent restarts before they are killed"),
    Flag.duration("recovery_timeout", 900.0, "Time a checkpointing executor waits for its restarting agent "
                  "before it kills its tasks and exits (MESOS_RECOVERY_TIMEOUT)"),
    # -- containers --
    Flag("isolation", "posix", "How executors are contained: 'posix' (their process tree and session; usage "
         "from /proc) or 'cgroups' (a cgroup each, v1 or v2 as the host has it, with cpu shares, CFS quota and "
         "memory limits from the tasks' resources; killed whole); add ',disk/du' to check sandboxes' disk "
         "usage against the tasks' disk. Mesos's names (cgroups/cpu,cgroups/mem,...) are accepted",
         parse=_isolation),
    Flag("cgroups_root", None, "Name of the cgroup, under the agent's own, holding its containers' cgroups; "
         "default mesostw/<a digest of --work_dir>, so that agents sharing a host never take each other's "
         "containers for orphans"),
    Flag("cgroups_hierarchy", None, "Mount point of the cgroup hierarchy to use (the cgroup2 mount, or the "
         "directory of the v1 controllers' mounts); detected when not given"),
    Flag.bool("cgroups_enable_cfs", True, "Cap each container's CPU time at its cpus with a CFS quota "
              "(besides cpu shares); Mesos's default is false"),
    Flag.bool("enforce_container_disk_quota", True, "With disk/du isolation, fail the tasks of a container "
              "whose sandbox outgrows their disk (REASON_CONTAINER_LIMITATION_DISK)"),
    Flag.duration("container_disk_watch_interval", 15.0, "How often disk/du measures each sandbox"),
    # -- fetcher --
    Flag("fetcher_cache_dir", None, "Where cached downloads of URIs (cache: true) are kept; default "
         "<work_dir>/fetch"),
    Flag("fetcher_cache_size", 2 << 30, "Largest size of the fetcher's cache, e.g. 2GB", parse=parse_bytes,
         render=format_bytes),
    Flag("frameworks_home", None, "Directory that relative URI paths are taken under"),
    Flag.duration("fetcher_timeout", 60.0, "Time one download may take (connect and every read)"),
    Flag("external_log_file", None, "The agent's log file as written by whoever runs it (e.g. twistd --logfile): "
         "served as /slave/log by the operator API's LIST_FILES and READ_FILE; mesostw never writes it"),
)


def check_master(text: str) -> None:
    """Raise ValueError unless ``text`` is host:port, a zk:// URL, or a file:// holding one."""
    from mesostw.detector import parse_address
    from mesostw.zk.url import is_zk, parse_zk_url

    if is_zk(text):
        parse_zk_url(text)
    else:
        parse_address(read_value(text))


class AgentOptions(FlagOptions):
    def check(self, config: Config, errors: list[str]) -> None:
        check_common(config, errors)
        if not config.master:
            errors.append("--master is required (host:port of the master, or a zk:// URL)")
        else:
            try:
                check_master(config.master)
            except ValueError as exc:
                errors.append(f"--master: {exc}")
        if not config.work_dir:
            errors.append("--work_dir is required")
            return
        config.work_dir = os.path.abspath(config.work_dir)
        check_work_dir_and_resources(config, errors)
        check_agent_security(config, errors)


def check_agent_security(config: Config, errors: list[str]) -> None:
    """HTTP credentials and ACLs must load; authentication needs credentials."""
    from mesostw.auth.acls import parse_acls
    from mesostw.auth.credentials import load_credentials

    if config.http_credentials:
        try:
            load_credentials(config.http_credentials)
        except ValueError as exc:
            errors.append(f"--http_credentials: {exc}")
    elif config.authenticate_http_readonly:
        errors.append("--authenticate_http_readonly needs --http_credentials")
    if config.acls:
        try:
            parse_acls(config.acls)
        except ValueError as exc:
            errors.append(f"--acls: {exc}")
    if config.executor_secret_key:
        try:
            with open(config.executor_secret_key, "rb") as f:
                if len(f.read()) < 16:
                    errors.append(f"--executor_secret_key={config.executor_secret_key}: needs at least 16 bytes")
        except OSError as exc:
            errors.append(f"--executor_secret_key={config.executor_secret_key}: {exc.strerror}")


def check_work_dir_and_resources(config: Config, errors: list[str]) -> None:
    """Make the agent's work_dir, then refuse an agent that would have no cpus or no memory to offer."""
    try:
        os.makedirs(config.work_dir, exist_ok=True)
    except OSError as exc:
        errors.append(f"--work_dir={config.work_dir}: {exc.strerror}")
        return
    from mesostw.agent.probe import missing_essentials, probe

    problem = missing_essentials(probe(config.work_dir, config.resources, config.default_role))
    if problem:
        errors.append(problem)


Options = options_for(AGENT_FLAGS, "--master=HOST:PORT --work_dir=DIR [options]", AgentOptions)
