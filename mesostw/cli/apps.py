"""``mesostw apps ...``: the service framework's apps, tasks, deployments and queue (Marathon's API).

Each subcommand makes one or two calls to the API (``--url``, ``$MESOSTW_SERVICE_URL``, or
``http://127.0.0.1:8080``) and prints a table, or with ``--json`` the API's own JSON for scripts.
Changes print the deployment they started; nothing waits for it (``mesostw apps deployments``
shows its progress and, when stuck, why).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from mesostw.cli import service_api
from mesostw.cli.errors import CLIError, UsageError
from mesostw.cli.output import format_table, write_json
from mesostw.cli.service_api import ServiceAPI, app_path

APP_COLUMNS = ("APP", "INSTANCES", "HEALTHY", "CPUS", "MEM", "DEPLOYING", "COMMAND")
TASK_COLUMNS = ("TASK", "HOST", "PORTS", "STATE", "HEALTHY", "STARTED", "VERSION")
DEPLOYMENT_COLUMNS = ("DEPLOYMENT", "APPS", "STEP", "ACTIONS", "WAITING FOR")
QUEUE_COLUMNS = ("APP", "WAITING", "DELAY", "WHY")
COMMAND_WIDTH = 50


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--url", metavar="URL",
                         help=f"the service API, http(s)://[user:password@]host:port (default: "
                              f"${service_api.URL_VARIABLE}, else {service_api.DEFAULT_URL})")
    options.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")
    apps = subparsers.add_parser("apps", help="long-running apps of the service framework",
                                 description="Apps of the service framework, through its Marathon API.")
    commands = apps.add_subparsers(dest="apps_command", metavar="SUBCOMMAND", parser_class=type(apps))
    commands.required = True

    def add(name: str, func: Any, help: str, force: bool = False) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, parents=[options], help=help, description=help[0].upper() + help[1:] + ".")
        if force:
            parser.add_argument("--force", action="store_true",
                                help="override a deployment that holds the app (it is cancelled)")
        parser.set_defaults(func=func)
        return parser

    listing = add("list", run_list, "list the apps with their instances and health")
    listing.add_argument("--label", metavar="SELECTOR", help="only apps whose labels match, e.g. 'team==web'")
    show = add("show", run_show, "show one app and its tasks")
    show.add_argument("app_id", metavar="APP_ID")
    create = add("create", run_create, "create an app from a JSON definition", force=True)
    create.add_argument("file", metavar="FILE", help="the app's JSON definition ('-' for stdin)")
    update = add("update", run_update, "change an app (fields given in a JSON file; a rolling restart)", force=True)
    update.add_argument("app_id", metavar="APP_ID")
    update.add_argument("file", metavar="FILE", help="the fields to change, as JSON ('-' for stdin)")
    scale = add("scale", run_scale, "set how many instances of an app run", force=True)
    scale.add_argument("app_id", metavar="APP_ID")
    scale.add_argument("instances", metavar="INSTANCES", type=_count)
    restart = add("restart", run_restart, "replace every instance of an app (a rolling restart)", force=True)
    restart.add_argument("app_id", metavar="APP_ID")
    kill = add("kill", run_kill, "kill tasks of an app (all of them, or the ones given); they are replaced "
                                 "unless --scale")
    kill.add_argument("app_id", metavar="APP_ID")
    kill.add_argument("task_ids", metavar="TASK_ID", nargs="*")
    kill.add_argument("--scale", action="store_true", help="lower the app's instances by the tasks killed")
    kill.add_argument("--host", help="only the app's tasks on this host")
    delete = add("delete", run_delete, "stop an app and remove it", force=True)
    delete.add_argument("app_id", metavar="APP_ID")
    tasks = add("tasks", run_tasks, "list the tasks of every app, or of one")
    tasks.add_argument("app_id", metavar="APP_ID", nargs="?")
    add("deployments", run_deployments, "list the running deployments and what each waits for")
    cancel = add("cancel", run_cancel, "cancel a deployment: roll it back, or with --force just stop it")
    cancel.add_argument("deployment_id", metavar="DEPLOYMENT_ID")
    cancel.add_argument("--force", action="store_true", help="stop where it is, without rolling back")
    add("queue", run_queue, "list the instances waiting to launch, and why they wait")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _api(args: argparse.Namespace) -> ServiceAPI:
    return ServiceAPI(service_api.service_url(args.url))


def _read_definition(path: str) -> Any:
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{path} must hold one JSON object (an app definition)")
    return value


def _changed(out: TextIO, args: argparse.Namespace, result: Any, what: str) -> int:
    if args.json:
        write_json(out, result, sort_keys=True)
    elif isinstance(result, dict) and result.get("deploymentId"):
        out.write(f"{what} (deployment {result['deploymentId']})\n")
    else:
        out.write(what + "\n")
    return 0


# -- reading ---------------------------------------------------------------------------------

def run_list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    params: dict[str, Any] = {"embed": ["apps.counts", "apps.deployments"]}
    if args.label:
        params["label"] = args.label
    apps = _api(args).call("GET", "/v2/apps", params)["apps"]
    if args.json:
        write_json(out, apps, sort_keys=True)
        return 0
    rows = [[a["id"], f"{a.get('tasksRunning', 0)}/{a.get('instances', 0)}", _healthy(a), _number(a.get("cpus")),
             _number(a.get("mem")), "yes" if a.get("deployments") else "", _command(a)]
            for a in sorted(apps, key=lambda a: a["id"])]
    out.write(format_table(APP_COLUMNS, rows))
    return 0


def run_show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    params = {"embed": ["app.tasks", "app.counts", "app.deployments", "app.lastTaskFailure"]}
    app = _api(args).call("GET", f"/v2/apps/{app_path(args.app_id)}", params)["app"]
    if args.json:
        write_json(out, app, sort_keys=True)
        return 0
    strategy = app.get("upgradeStrategy") or {}
    facts = [("App", app["id"]), ("Command", _command(app, width=None)),
             ("Instances", f"{app.get('tasksRunning', 0)} running of {app.get('instances', 0)}"
                           f" ({app.get('tasksStaged', 0)} staging)"),
             ("Healthy", _healthy(app) or "no health checks"),
             ("Resources", f"cpus {_number(app.get('cpus'))}, mem {_number(app.get('mem'))} MB, "
                           f"disk {_number(app.get('disk'))} MB"),
             ("Constraints", ", ".join(":".join(str(p) for p in c) for c in app.get("constraints") or []) or "none"),
             ("Upgrade", f"minimumHealthCapacity {strategy.get('minimumHealthCapacity')}, "
                         f"maximumOverCapacity {strategy.get('maximumOverCapacity')}"),
             ("Version", app.get("version", "")),
             ("Deployments", ", ".join(d["id"] for d in app.get("deployments") or []) or "none")]
    failure = app.get("lastTaskFailure")
    if failure:
        facts.append(("Last failure", f"{failure.get('state')} on {failure.get('host')} at "
                                      f"{failure.get('timestamp')}: {failure.get('message') or ''}".rstrip(": ")))
    width = max(len(name) for name, _ in facts)
    out.write("".join(f"{name + ':':<{width + 1}} {value}\n" for name, value in facts))
    tasks = app.get("tasks") or []
    if tasks:
        out.write("\n" + format_table(TASK_COLUMNS, [_task_row(t) for t in tasks]))
    return 0


def run_tasks(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    path = f"/v2/apps/{app_path(args.app_id)}/tasks" if args.app_id else "/v2/tasks"
    tasks = _api(args).call("GET", path)["tasks"]
    if args.json:
        write_json(out, tasks, sort_keys=True)
        return 0
    columns = TASK_COLUMNS if args.app_id else ("APP", *TASK_COLUMNS)
    rows = [_task_row(t) if args.app_id else [t.get("appId", ""), *_task_row(t)]
            for t in sorted(tasks, key=lambda t: (t.get("appId", ""), t.get("stagedAt") or "", t["id"]))]
    out.write(format_table(columns, rows))
    return 0


def run_deployments(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    deployments = _api(args).call("GET", "/v2/deployments", {"embed": "status"})
    if args.json:
        write_json(out, deployments, sort_keys=True)
        return 0
    rows = []
    for d in deployments:
        actions = ", ".join(f"{a.get('action')} {a.get('app')}" for a in d.get("currentActions") or [])
        status = d.get("status") or {}
        waiting = "; ".join(f"{app}: {why}" for app, why in sorted(status.items())) if isinstance(status, dict) \
            else str(status)
        rows.append([d["id"], ", ".join(d.get("affectedApps") or []), f"{d.get('currentStep')}/{d.get('totalSteps')}",
                     actions, waiting])
    out.write(format_table(DEPLOYMENT_COLUMNS, rows))
    return 0


def run_queue(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    queue = _api(args).call("GET", "/v2/queue")["queue"]
    if args.json:
        write_json(out, queue, sort_keys=True)
        return 0
    rows = []
    for item in queue:
        delay = item.get("delay") or {}
        left = delay.get("timeLeftSeconds") or 0
        why = (item.get("processedOffersSummary") or {}).get("why") or ""
        rows.append([item["app"]["id"], str(item.get("count", "")), f"{left}s" if left else "", why])
    out.write(format_table(QUEUE_COLUMNS, rows))
    return 0


# -- changing --------------------------------------------------------------------------------

def run_create(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    definition = _read_definition(args.file)
    app = _api(args).call("POST", "/v2/apps", {"force": _bool(args.force)}, definition)
    if args.json:
        write_json(out, app, sort_keys=True)
        return 0
    deployments = ", ".join(d["id"] for d in app.get("deployments") or [])
    out.write(f"Created {app['id']}" + (f" (deployment {deployments})" if deployments else "") + "\n")
    return 0


def run_update(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    fields = _read_definition(args.file)
    result = _api(args).call("PUT", f"/v2/apps/{app_path(args.app_id)}", {"force": _bool(args.force)}, fields)
    return _changed(out, args, result, f"Updating {_app_id(args.app_id)}")


def run_scale(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    result = _api(args).call("PUT", f"/v2/apps/{app_path(args.app_id)}", {"force": _bool(args.force)},
                             {"instances": args.instances})
    return _changed(out, args, result, f"Scaling {_app_id(args.app_id)} to {args.instances} instances")


def run_restart(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    result = _api(args).call("POST", f"/v2/apps/{app_path(args.app_id)}/restart", {"force": _bool(args.force)})
    return _changed(out, args, result, f"Restarting {_app_id(args.app_id)}")


def run_delete(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    result = _api(args).call("DELETE", f"/v2/apps/{app_path(args.app_id)}", {"force": _bool(args.force)})
    return _changed(out, args, result, f"Deleting {_app_id(args.app_id)}")


def run_kill(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    api = _api(args)
    path = f"/v2/apps/{app_path(args.app_id)}/tasks"
    scale = _bool(args.scale)
    if args.task_ids:
        if args.host:
            raise UsageError("give task IDs or --host, not both")
        known = {t["id"] for t in api.call("GET", path)["tasks"]}
        strangers = [t for t in args.task_ids if t not in known]
        if strangers:
            raise CLIError(f"not tasks of {_app_id(args.app_id)}: {', '.join(strangers)}")
        result = api.call("POST", "/v2/tasks/delete", {"scale": scale}, {"ids": list(args.task_ids)})
    else:
        params = {"scale": scale, **({"host": args.host} if args.host else {})}
        result = api.call("DELETE", path, params)
    if args.json:
        write_json(out, result, sort_keys=True)
        return 0
    if isinstance(result, dict) and result.get("deploymentId"):
        out.write(f"Killing tasks of {_app_id(args.app_id)} and scaling it down "
                  f"(deployment {result['deploymentId']})\n")
        return 0
    killed = [t["id"] for t in (result or {}).get("tasks", [])]
    out.write("".join(f"Killing {task_id}\n" for task_id in killed) or "No task to kill\n")
    return 0


def run_cancel(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    result = _api(args).call("DELETE", f"/v2/deployments/{args.deployment_id}", {"force": _bool(args.force)})
    if args.force:
        return _changed(out, args, result, f"Stopped deployment {args.deployment_id}")
    return _changed(out, args, result, f"Rolling back deployment {args.deployment_id}")


# -- formatting ------------------------------------------------------------------------------

def _app_id(raw: str) -> str:
    return "/" + app_path(raw)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _number(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}"
    return "" if value is None else str(value)


def _healthy(app: dict[str, Any]) -> str:
    if not app.get("healthChecks"):
        return ""
    return f"{app.get('tasksHealthy', 0)}/{app.get('instances', 0)}"


def _command(app: dict[str, Any], width: int | None = COMMAND_WIDTH) -> str:
    text = app.get("cmd") or " ".join(app.get("args") or []) or ""
    text = " ".join(text.split())
    if width is not None and len(text) > width:
        text = text[: width - 3] + "..."
    return text


def _task_row(task: dict[str, Any]) -> list[str]:
    results = task.get("healthCheckResults")
    if results:
        healthy = "yes" if all(r.get("alive") for r in results) else "no"
    else:
        healthy = ""
    return [task["id"], task.get("host", ""), ",".join(str(p) for p in task.get("ports") or []),
            task.get("state", ""), healthy, task.get("startedAt") or "", task.get("version", "")]
