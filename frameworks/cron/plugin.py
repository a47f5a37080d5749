"""The ``cron`` framework plugin: Chronos's job scheduler and REST API, for any framework host.

Hosts find it through ``twisted.plugin.getPlugins(IFrameworkPlugin)``; inside the master its flags are
``--cron_<flag>``, standalone (``twistd mesos-cron``) they are as below. Names, defaults and units are
Chronos's where Chronos has the flag (``failure_retry`` in milliseconds, ``task_epsilon`` in seconds).
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService

from mesostw.flags import Flag

NAME = "cron"
DESCRIPTION = "Chronos-compatible batch job scheduler (ISO 8601 and cron schedules, dependencies, retries)"
DEFAULT_PORT = 4400

FLAGS: tuple[Flag, ...] = (
    Flag("mesos_framework_name", "chronos", "The framework's name at the master"),
    Flag("user", "root", "The user the framework registers as, and tasks run as unless a job says runAsUser"),
    Flag("mesos_role", "*", "The role whose resources the framework is offered and uses"),
    Flag.duration("failover_timeout", 604800.0, "How long the master keeps the framework's tasks while it is away"),
    Flag.bool("mesos_checkpoint", True, "Ask agents to checkpoint the framework's tasks"),
    Flag.float("mesos_task_cpu", 0.1, "CPUs of a task whose job does not say"),
    Flag.float("mesos_task_mem", 128.0, "Memory (MB) of a task whose job does not say"),
    Flag.float("mesos_task_disk", 256.0, "Disk (MB) of a task whose job does not say"),
    Flag.int("failure_retry", 60000, "Milliseconds between a failed run and its retry"),
    Flag.int("disable_after_failures", 0, "Disable a job after this many failed runs in a row (0: never)"),
    Flag.int("task_epsilon", 60, "Seconds a run may start late before it is missed, for jobs without epsilon"),
    Flag("http_notification_url", "", "URL that job owners' notifications are POSTed to as JSON"),
    Flag("http_notification_credentials", "", "user:password for the notification URL (HTTP Basic)"),
    Flag("cluster_name", "", "A name put in front of notification subjects"),
    Flag.int("decline_offer_duration", 5000, "Milliseconds an unused offer is refused for"),
    Flag.int("reconciliation_interval", 600, "Seconds between reconciliations of every task with the master"),
    Flag.int("leader_max_idle_time", 5000, "Milliseconds ahead of its time that a run is recorded in the store"),
    Flag.int("job_history_limit", 10, "Runs kept in each job's history"),
    Flag("http_credentials", "", "user:password (comma-separated for several) the API requires with HTTP Basic "
                                 "authentication (default: none)"),
)


def check(config: Any) -> list[str]:
    """Every problem with the flags' values."""
    errors = []
    for name in ("mesos_task_cpu", "mesos_task_mem", "mesos_task_disk"):
        if getattr(config, name) <= 0:
            errors.append(f"--{name} must be positive")
    for name in ("failure_retry", "disable_after_failures", "task_epsilon", "decline_offer_duration",
                 "leader_max_idle_time"):
        if getattr(config, name) < 0:
            errors.append(f"--{name} must not be negative")
    if config.reconciliation_interval <= 0:
        errors.append("--reconciliation_interval must be positive")
    if config.job_history_limit < 1:
        errors.append("--job_history_limit must be at least 1")
    url = config.http_notification_url
    if url and not url.startswith(("http://", "https://")):
        errors.append("--http_notification_url must be an http:// or https:// URL")
    if config.http_credentials and any(":" not in e for e in config.http_credentials.split(",")):
        errors.append("--http_credentials must be user:password[,user:password...]")
    if config.http_notification_credentials and ":" not in config.http_notification_credentials:
        errors.append("--http_notification_credentials must be user:password")
    if not config.mesos_framework_name:
        errors.append("--mesos_framework_name must not be empty")
    return errors


def makeService(host: Any, config: Any) -> IService:
    """The framework's service on ``host`` (an IFrameworkHost); ValueError lists bad flag values."""
    errors = check(config)
    if errors:
        raise ValueError("invalid cron flags:\n  " + "\n  ".join(errors))
    from frameworks.cron.service import CronService

    return CronService(host, config)
