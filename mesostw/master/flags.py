"""The master's flags, with Mesos's names and defaults."""

from __future__ import annotations

from mesostw.daemon import COMMON_FLAGS, check_common
from mesostw.flags import Config, Flag, FlagOptions, options_for
from mesostw.model.resources import validate_role


def parse_weights(text: str) -> dict[str, float]:
    """``--weights=role1=2,role2=0.5``"""
    weights = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        role, sep, value = item.partition("=")
        problem = validate_role(role.strip())
        if not sep or problem:
            raise ValueError(f"bad weight {item!r}: expected role=weight")
        weight = float(value)
        if weight <= 0:
            raise ValueError(f"weight of {role} must be positive")
        weights[role.strip()] = weight
    return weights


def parse_roles(text: str) -> tuple[str, ...]:
    roles = tuple(r.strip() for r in text.split(",") if r.strip())
    for role in roles:
        problem = validate_role(role)
        if problem:
            raise ValueError(problem)
    return roles


def _choice(value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"expected one of {', '.join(choices)}")
    return value


def render_weights(weights: dict[str, float]) -> str:
    return ",".join(f"{role}={weight:g}" for role, weight in sorted(weights.items()))


def parse_zk(text: str) -> str:
    from mesostw.zk.url import parse_zk_url

    parse_zk_url(text)  # validated here, parsed again where used
    return text


MASTER_FLAGS = COMMON_FLAGS + (
    Flag("work_dir", None, "Directory for the master's registry (files under registry/, without --zk); "
         "without either, the registry is kept in memory only"),
    Flag("zk", None, "ZooKeeper URL for leader election and the registry: zk://host1:port1,host2:port2/path, "
         "zk://user:pass@hosts/path, or file:///path holding one", parse=parse_zk),
    Flag.int("quorum", None, "Number of masters that make a majority (required with --zk; with ZooKeeper "
             "holding the registry it is advisory)"),
    Flag.duration("zk_session_timeout", 10.0, "ZooKeeper session timeout"),
    Flag("registry", "replicated_log", "Where the registry lives: replicated_log (ZooKeeper with --zk, else a "
         "file under --work_dir) or in_memory", parse=lambda v: _choice(v, ("replicated_log", "in_memory"))),
    Flag("cluster", None, "Human readable name for the cluster, shown in /master/state"),
    Flag.duration("allocation_interval", 1.0, "Time between batch allocations of free resources"),
    Flag.duration("offer_timeout", None, "Time after which an unanswered offer is rescinded (default: never)"),
    Flag.duration("agent_ping_timeout", 15.0, "Time to wait for an agent to answer a health ping",
                  aliases=("slave_ping_timeout",)),
    Flag.int("max_agent_ping_timeouts", 5, "Missed pings after which an agent is considered lost",
             aliases=("max_slave_ping_timeouts",)),
    Flag.duration("agent_reregister_timeout", 600.0,
                  "Time known agents have to re-register after a master failover",
                  aliases=("slave_reregister_timeout",)),
    Flag("roles", (), "Comma-separated whitelist of roles frameworks may use (default: any role)",
         parse=parse_roles, render=lambda v: ",".join(v)),
    Flag("weights", {}, "Role weights for DRF, e.g. ops=2,dev=0.5", parse=parse_weights, render=render_weights),
    Flag.bool("authenticate_frameworks", False, "Only frameworks that authenticate (SASL CRAM-MD5) may register",
              aliases=("authenticate",)),
    Flag.bool("authenticate_agents", False, "Only agents that authenticate (SASL CRAM-MD5) may register",
              aliases=("authenticate_slaves",)),
    Flag.bool("authenticate_http_frameworks", False,
              "HTTP frameworks must authenticate with HTTP Basic against --credentials"),
    Flag.bool("authenticate_http_readonly", False, "Read-only HTTP endpoints require HTTP Basic authentication"),
    Flag.bool("authenticate_http_readwrite", False,
              "HTTP endpoints that change state (teardown, kill, weights) require HTTP Basic authentication"),
    Flag("credentials", None, "Credentials of frameworks and agents: a path or file:///path to JSON "
         '{"credentials": [{"principal": ..., "secret": ...}]} or lines of "principal secret"'),
    Flag("acls", None, "Access control lists: a JSON string, a path or file:///path (register_frameworks, "
         "run_tasks, teardown_frameworks, permissive)"),
    Flag("authenticators", "crammd5", "Authentication mechanism for frameworks and agents (only crammd5)",
         parse=lambda v: _choice(v, ("crammd5",))),
    Flag.int("max_completed_frameworks", 50, "Completed frameworks kept for /master/state"),
    Flag.int("max_completed_tasks_per_framework", 1000, "Completed tasks kept per framework"),
    Flag.int("max_operator_event_stream_subscribers", 1000,
             "Most subscribers of the operator API's event stream (SUBSCRIBE) at once; beyond, the oldest is closed"),
    Flag("external_log_file", None, "The master's log file as written by whoever runs it (e.g. twistd --logfile): "
         "served as /master/log by the operator API's LIST_FILES and READ_FILE; mesostw never writes it"),
)


class MasterOptions(FlagOptions):
    def check(self, config: Config, errors: list[str]) -> None:
        check_common(config, errors)
        if config.allocation_interval <= 0:
            errors.append("--allocation_interval must be positive")
        if config.agent_ping_timeout <= 0:
            errors.append("--agent_ping_timeout must be positive")
        if config.max_agent_ping_timeouts < 1:
            errors.append("--max_agent_ping_timeouts must be at least 1")
        if config.max_operator_event_stream_subscribers < 1:
            errors.append("--max_operator_event_stream_subscribers must be at least 1")
        check_security(config, errors)
        zk, quorum = getattr(config, "zk", None), getattr(config, "quorum", None)
        if zk and quorum is None:
            errors.append("--quorum is required with --zk (the number of masters that make a majority)")
        if quorum is not None and quorum < 1:
            errors.append("--quorum must be at least 1")
        if getattr(config, "zk_session_timeout", 10.0) < 1:
            errors.append("--zk_session_timeout must be at least 1secs")
        if config.roles:
            unknown = set(config.weights) - set(config.roles)
            if unknown:
                errors.append(f"--weights names roles not in --roles: {', '.join(sorted(unknown))}")


def check_security(config: Config, errors: list[str]) -> None:
    """Credentials and ACLs must load, and authentication needs credentials."""
    from mesostw.auth.acls import parse_acls
    from mesostw.auth.credentials import load_credentials

    names = ("authenticate_frameworks", "authenticate_agents", "authenticate_http_frameworks",
             "authenticate_http_readonly", "authenticate_http_readwrite")
    wanted = [name for name in names if getattr(config, name, False)]
    if config.credentials:
        try:
            load_credentials(config.credentials)
        except ValueError as exc:
            errors.append(f"--credentials: {exc}")
    elif wanted:
        errors.append(f"--{', --'.join(wanted)} need --credentials")
    if config.acls:
        try:
            parse_acls(config.acls)
        except ValueError as exc:
            errors.append(f"--acls: {exc}")


Options = options_for(MASTER_FLAGS, "[options]", MasterOptions)
