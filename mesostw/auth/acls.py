"""Mesos ACLs: the ``--acls`` flag parsed into :class:`ACLs`, and their evaluation (see the spec, section 4.2).

Pure and synchronous. These actions are enforced, each with its subjects (``principals``) and objects:

============================  ===========================  =========================================
action                        subject                      object
============================  ===========================  =========================================
``register_frameworks``       the framework's principal    a role it registers with
``run_tasks``                 the framework's principal    the user a task or executor runs as
``teardown_frameworks``       the HTTP caller's principal  the principal of the framework torn down
                                                           (or whose task ``/master/kill`` kills)
``register_agents``           the agent's principal        ``agents``: implicit, use ANY or NONE
``access_sandboxes``          the HTTP caller's principal  the user an executor runs as (an agent's
                                                           ``/files``; ANY above the sandboxes)
============================  ===========================  =========================================

and the operator API's (:data:`OPERATOR_ACTIONS`), whose subject is the HTTP caller's principal:
``view_frameworks``, ``view_tasks``, ``view_executors`` and ``view_containers`` (``users``: the
framework's user, or the task's or executor's own), ``view_roles``, ``update_weights``, ``get_quotas`` and
``update_quotas`` (``roles``), ``view_flags``
(``flags``), ``set_log_level`` (``level``), ``access_mesos_logs`` (``logs``), ``mark_agents_gone``,
``drain_agents``, ``deactivate_agents`` and ``reactivate_agents`` (``agents``), the maintenance actions
``update_maintenance_schedules``, ``get_maintenance_schedules``, ``start_maintenances``,
``stop_maintenances`` and ``get_maintenance_statuses`` (``machines``), and ``get_endpoints``
(``paths``). Offer operations, whether a framework (its principal) or an operator asks, need
``reserve_resources`` (``roles``: the role reserved for), ``unreserve_resources``
(``reserver_principals``: the principal that made the reservation), ``create_volumes`` (``roles``) and
``destroy_volumes`` (``creator_principals``: the principal that created the volume). As in Mesos, the
objects of ``view_flags``, ``set_log_level``, ``access_mesos_logs``, the agent actions and the
maintenance actions are implicit: a request names none (it is ``ANY``), so their rules decide by their
principals, with ``{"type": "ANY"}`` or ``{"type": "NONE"}`` as objects.

``shutdown_frameworks``, the name of ``teardown_frameworks`` before Mesos 0.27, is accepted too. When both
appear, the two lists are evaluated as one: every ``shutdown_frameworks`` rule, then every
``teardown_frameworks`` rule, each in file order. (Mesos 0.27-1.x drops ``shutdown_frameworks`` when
both are present; silently dropping rules an operator wrote seemed the worse surprise, so mesostw keeps
them and warns.) The other ACL names of Mesos (:data:`IGNORED_ACTIONS`) are accepted, not enforced, and
reported in :attr:`ACLs.warnings`; any other key is an error.

Evaluation (``mesos@0.21.0:src/authorizer/authorizer.cpp``): scan the action's rules in order; the first
rule whose subject and object both *match* the request decides, allowing iff both are *allowed*; when no
rule matches, ``permissive`` (default true) decides. A known principal, role or user is ``SOME{value}``
in the request; an unknown one (``None``: an unauthenticated framework or HTTP caller) is ``ANY``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import attrs

from mesostw.flags import read_file

__all__ = [
    "ACL",
    "ACLs",
    "ACTIONS",
    "ANY",
    "IGNORED_ACTIONS",
    "NONE",
    "OPERATOR_ACTIONS",
    "SOME",
    "Authorizer",
    "Entity",
    "acls_from_json",
    "allows",
    "matches",
    "parse_acls",
]

SOME, ANY, NONE = "SOME", "ANY", "NONE"
TYPES = (SOME, ANY, NONE)

#: The enforced actions and the key naming each one's objects.
ACTIONS = {"register_frameworks": "roles", "run_tasks": "users", "teardown_frameworks": "framework_principals",
           "register_agents": "agents", "access_sandboxes": "users"}
#: The operator API's actions and the key naming each one's objects (``mesos:include/mesos/authorizer/acls.proto``).
OPERATOR_ACTIONS = {"view_frameworks": "users", "view_tasks": "users", "view_executors": "users",
                    "view_roles": "roles", "view_flags": "flags", "update_weights": "roles",
                    "set_log_level": "level", "access_mesos_logs": "logs", "mark_agents_gone": "agents",
                    "get_endpoints": "paths", "view_containers": "users",
                    "get_quotas": "roles", "update_quotas": "roles",
                    "update_maintenance_schedules": "machines", "get_maintenance_schedules": "machines",
                    "start_maintenances": "machines", "stop_maintenances": "machines",
                    "get_maintenance_statuses": "machines", "drain_agents": "agents",
                    "deactivate_agents": "agents", "reactivate_agents": "agents",
                    "reserve_resources": "roles", "unreserve_resources": "reserver_principals",
                    "create_volumes": "roles", "destroy_volumes": "creator_principals"}
ACTIONS.update(OPERATOR_ACTIONS)
#: Old names of enforced actions.
ALIASES = {"shutdown_frameworks": "teardown_frameworks"}
#: The other ACLs Mesos knows (``mesos:include/mesos/authorizer/acls.proto``): accepted, never enforced.
IGNORED_ACTIONS = frozenset({
    "resize_volumes",
    "set_quotas", "remove_quotas",
    "launch_nested_containers_as_user", "launch_nested_containers_under_parent_with_user",
    "launch_nested_container_sessions_as_user", "launch_nested_container_sessions_under_parent_with_user",
    "attach_containers_input", "attach_containers_output", "kill_nested_containers",
    "wait_nested_containers", "remove_nested_containers",
    "launch_standalone_containers", "kill_standalone_containers", "wait_standalone_containers",
    "remove_standalone_containers", "view_standalone_containers",
    "view_resource_providers", "modify_resource_provider_configs", "mark_resource_providers_gone",
    "prune_images", "create_block_disks", "destroy_block_disks", "create_mount_disks", "destroy_mount_disks",
    "destroy_raw_disks",
})


@attrs.frozen
class Entity:
    """The subjects or objects of a rule, or of a request: ``SOME`` of ``values``, ``ANY`` or ``NONE``."""

    type: str = SOME
    values: frozenset[str] = frozenset()

    @classmethod
    def request(cls, value: str | None) -> Entity:
        """The request side: ``SOME{value}`` when known, ``ANY`` when ``None``."""
        return cls(ANY) if value is None else cls(SOME, frozenset([value]))


def matches(request: Entity, acl: Entity) -> bool:
    """Whether a rule's entity applies to a request's (the spec's Match table)."""
    if request.type == NONE:
        return acl.type == NONE
    if request.type == ANY:
        return acl.type in (ANY, NONE)
    return acl.type in (ANY, NONE) or request.values <= acl.values


def allows(request: Entity, acl: Entity) -> bool:
    """Whether a rule's entity permits a request's (the spec's Allow table)."""
    if request.type in (NONE, ANY):
        return acl.type == request.type
    return acl.type == ANY or (acl.type == SOME and request.values <= acl.values)


@attrs.frozen
class ACL:
    """One rule: who (``principals``) may act on what (``objects``: roles, users or framework principals)."""

    principals: Entity
    objects: Entity


@attrs.frozen
class ACLs:
    """A parsed ``--acls``: the rules of each enforced action, in evaluation order, and ``permissive``."""

    permissive: bool = True
    register_frameworks: tuple[ACL, ...] = ()
    run_tasks: tuple[ACL, ...] = ()
    teardown_frameworks: tuple[ACL, ...] = ()
    register_agents: tuple[ACL, ...] = ()
    access_sandboxes: tuple[ACL, ...] = ()
    #: What was accepted but not enforced, for the caller to log.
    warnings: tuple[str, ...] = attrs.field(default=(), eq=False)
    #: (action, rules) of the operator API's actions (:data:`OPERATOR_ACTIONS`) that have rules
    operator: tuple[tuple[str, tuple[ACL, ...]], ...] = ()

    def rules(self, action: str) -> tuple[ACL, ...]:
        """The rules of ``action``, one of :data:`ACTIONS`."""
        if _check_action(action) in OPERATOR_ACTIONS:
            return next((rules for name, rules in self.operator if name == action), ())
        rules: tuple[ACL, ...] = getattr(self, action)
        return rules

    def authorize(self, action: str, subject: str | None, object: str | None) -> bool:
        """Whether ``subject`` (a principal, ``None`` if unauthenticated) may do ``action`` on ``object``."""
        request_subject, request_object = Entity.request(subject), Entity.request(object)
        for acl in self.rules(action):
            if matches(request_subject, acl.principals) and matches(request_object, acl.objects):
                return allows(request_subject, acl.principals) and allows(request_object, acl.objects)
        return self.permissive


class Authorizer:
    """What the master asks: :meth:`authorize` against ``acls``, or allow everything when there are none
    (no ``--acls``, as Mesos). ``decisions`` counts ``(action, "allowed" | "denied")`` for metrics."""

    def __init__(self, acls: ACLs | None = None):
        self.acls = acls
        self.decisions: Counter[tuple[str, str]] = Counter()

    @classmethod
    def from_flag(cls, value: str | None) -> Authorizer:
        """An authorizer for the ``--acls`` flag's value; unset or blank means no ACLs."""
        return cls(parse_acls(value) if value and value.strip() else None)

    def authorize(self, action: str, subject: str | None, object: str | None) -> bool:
        """As :meth:`ACLs.authorize`, counted; always true without ACLs (for a known action)."""
        if self.acls is None:
            allowed = bool(_check_action(action))
        else:
            allowed = self.acls.authorize(action, subject, object)
        self.decisions[(action, "allowed" if allowed else "denied")] += 1
        return allowed


def _check_action(action: str) -> str:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    return action


def parse_acls(value: str) -> ACLs:
    """Parse ``--acls``: a JSON object, or a path (``/path`` or ``file:///path``) to a file holding one.

    Raises a :class:`ValueError` listing every problem; see :func:`acls_from_json`.
    """
    text = value.strip()
    if not text:
        raise ValueError("--acls is empty")
    source = "--acls"
    if not text.startswith("{"):
        source, text = read_file(text, "ACLs")
    duplicates: list[str] = []

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, item in pairs:
            if key in seen:
                duplicates.append(f"duplicate key {key!r}")
            seen[key] = item
        return seen

    try:
        data = json.loads(text, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid ACLs in {source}: invalid JSON at line {exc.lineno} column {exc.colno}: "
                         f"{exc.msg}") from None
    except RecursionError:
        raise ValueError(f"invalid ACLs in {source}: JSON nested too deeply") from None
    return acls_from_json(data, source, duplicates)


def acls_from_json(data: Any, source: str = "--acls", errors: list[str] | None = None) -> ACLs:
    """Build :class:`ACLs` from decoded JSON, raising one :class:`ValueError` that lists every problem
    (each prefixed with where it is, e.g. ``run_tasks[1].users``) after any ``errors`` passed in."""
    errors = list(errors or [])
    warnings: list[str] = []
    permissive = True
    rules: dict[str, list[ACL]] = {action: [] for action in (*ACTIONS, *ALIASES)}
    if not isinstance(data, dict):
        errors.append("expected a JSON object")
        data = {}
    for key, value in data.items():
        if key == "permissive":
            if isinstance(value, bool):
                permissive = value
            else:
                errors.append("permissive: must be true or false")
        elif key in rules:
            action = ALIASES.get(key, key)
            if not isinstance(value, list):
                errors.append(f"{key}: must be a list of rules")
                continue
            for index, item in enumerate(value):
                rule = _rule(item, ACTIONS[action], f"{key}[{index}]", errors, warnings)
                if rule is not None:
                    rules[key].append(rule)
        elif key in IGNORED_ACTIONS:
            warnings.append(f"{key}: not enforced by mesostw, ignored")
        else:
            errors.append(f"unknown key {key!r}; expected permissive, {', '.join(ACTIONS)}, shutdown_frameworks "
                          f"or another Mesos ACL name")
    if "shutdown_frameworks" in data:
        warnings.append("shutdown_frameworks: deprecated, use teardown_frameworks")
        if "teardown_frameworks" in data:
            warnings.append("shutdown_frameworks and teardown_frameworks both given: evaluating the "
                            "shutdown_frameworks rules first (Mesos would use teardown_frameworks only)")
    if errors:
        raise ValueError(f"invalid ACLs in {source}: " + "; ".join(errors))
    return ACLs(
        permissive=permissive,
        register_frameworks=tuple(rules["register_frameworks"]),
        run_tasks=tuple(rules["run_tasks"]),
        teardown_frameworks=tuple(rules["shutdown_frameworks"] + rules["teardown_frameworks"]),
        register_agents=tuple(rules["register_agents"]),
        access_sandboxes=tuple(rules["access_sandboxes"]),
        warnings=tuple(warnings),
        operator=tuple((action, tuple(rules[action])) for action in OPERATOR_ACTIONS if rules[action]),
    )


def _rule(data: Any, objects_key: str, where: str, errors: list[str], warnings: list[str]) -> ACL | None:
    keys = ("principals", objects_key)
    if not isinstance(data, dict):
        errors.append(f'{where}: expected an object {{"principals": ..., "{objects_key}": ...}}')
        return None
    before = len(errors)
    for key in data:
        if key not in keys:
            errors.append(f"{where}: unknown key {key!r}; expected principals and {objects_key}")
    entities: list[Entity | None] = []
    for key in keys:
        if key not in data:
            errors.append(f"{where}: missing {key}")
        else:
            entities.append(_entity(data[key], f"{where}.{key}", errors, warnings))
    principals, objects = entities if len(entities) == 2 else (None, None)
    if len(errors) > before or principals is None or objects is None:
        return None
    return ACL(principals, objects)


def _entity(data: Any, where: str, errors: list[str], warnings: list[str]) -> Entity | None:
    if not isinstance(data, dict):
        errors.append(f'{where}: expected an object {{"values": [...]}} or {{"type": "ANY" | "NONE"}}')
        return None
    before = len(errors)
    for key in data:
        if key not in ("type", "values"):
            errors.append(f"{where}: unknown key {key!r}; expected type and values")
    kind = data.get("type")
    if kind is None:
        kind = SOME
    elif kind not in TYPES:
        errors.append(f"{where}: unknown type {kind!r}; expected SOME, ANY or NONE")
    values = data.get("values")
    if kind != SOME:
        values = []  # ignored for ANY and NONE, as Mesos does
    elif values is None:
        values = []
    elif not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        errors.append(f"{where}: values must be a list of strings")
    if len(errors) > before:
        return None
    if kind == SOME and not values:
        warnings.append(f"{where}: SOME without values never matches")
    return Entity(kind, frozenset(values))
