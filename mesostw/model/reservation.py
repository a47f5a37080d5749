"""What sets a resource apart from others of its name: its reservations, and its disk (a persistent volume).

A resource's *reservation stack* (Mesos's ``Resource.reservations``) says whom it is reserved for, oldest
first: an optional STATIC reservation (the agent's ``--resources``), then DYNAMIC ones (RESERVE
operations), each one *refining* the one below it to a sub-role (``eng`` then ``eng/web``). The
resource's role is the top reservation's role, ``*`` when it has none. A disk resource may carry a
:class:`DiskInfo`: a persistent volume has a persistence ID and a ``container_path``.

:class:`~mesostw.model.resources.Resources` keys a resource by ``(name, role)`` when it is unreserved or
reserved statically for ``role`` alone without a DiskInfo (the common case, kept small because every
offer and every launch does arithmetic on these keys), and by ``(name, role, meta)`` otherwise, where
``meta`` is a :class:`Meta` holding the whole stack and the DiskInfo. :func:`make_key` is the one place
that decides between the two, so equal resources always get equal keys.

Roles (``mesos:src/common/roles.cpp``): ``*``, or ``/``-separated components, none empty, ``.``, ``..`` or
``*``, none starting with ``-`` or holding whitespace; ``eng/web`` is a sub-role of ``eng``.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Union

from mesostw.model.validation import Reader, validate_id

UNRESERVED = "*"
STATIC, DYNAMIC = "STATIC", "DYNAMIC"
RESERVATION_TYPES = (STATIC, DYNAMIC)
RW, RO = "RW", "RO"
#: How many reservations a stack may hold (one per level of a role's path is the most that makes sense).
MAX_RESERVATIONS = 64

_INVALID_ROLE_CHARACTERS = frozenset("\\\x08\x09\x0a\x0b\x0c\x0d\x20\x7f")


def validate_role(role: str) -> str | None:
    """Return why ``role`` is not a valid role name, or ``None`` (as Mesos's ``roles::validate``, which
    also refuses backslashes and backspaces here: a role names directories on agents)."""
    if role == UNRESERVED:
        return None
    if not role:
        return "role must not be empty"
    if len(role) > 255:
        return f"invalid role {role[:40]!r}...: longer than 255 characters"
    if role.startswith("/") or role.endswith("/") or "//" in role:
        return f"invalid role {role!r}: no leading, trailing or double slash"
    for component in role.split("/"):
        if component in (".", "..", "*"):
            return f"invalid role {role!r}: {component!r} cannot be a component"
        if component.startswith("-"):
            return f"invalid role {role!r}: a component cannot start with '-'"
        if any(c in _INVALID_ROLE_CHARACTERS for c in component):
            return f"invalid role {role!r}: no whitespace, backslash or backspace"
    return None


def is_strict_subrole(role: str, ancestor: str) -> bool:
    """Whether ``role`` lies below ``ancestor`` in the role tree (``eng/web`` below ``eng``)."""
    return len(role) > len(ancestor) and role[len(ancestor)] == "/" and role.startswith(ancestor)


def is_allocatable_to(reserved_for: str, role: str) -> bool:
    """Whether resources reserved for ``reserved_for`` may be offered to ``role``: unreserved ones to
    anyone, reserved ones to their role and its sub-roles (Mesos's ``Resources::allocatableTo``)."""
    return reserved_for == UNRESERVED or reserved_for == role or is_strict_subrole(role, reserved_for)


def ancestors(role: str) -> list[str]:
    """``a/b/c`` -> ``["a/b", "a"]``: the roles above ``role``, nearest first."""
    parts = role.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


Labels = tuple[tuple[str, Union[str, None]], ...]


class Reservation(NamedTuple):
    """One entry of a reservation stack (Mesos's ``Resource.ReservationInfo``)."""

    type: str
    role: str
    principal: str | None = None
    labels: Labels = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "role": self.role}
        if self.principal is not None:
            out["principal"] = self.principal
        if self.labels:
            out["labels"] = labels_json(self.labels)
        return out

    def __str__(self) -> str:
        parts = [self.type, self.role]
        if self.principal is not None:
            parts.append(self.principal)
        if self.labels:
            parts.append("{" + ", ".join(k if v is None else f"{k}: {v}" for k, v in self.labels) + "}")
        return "(" + ",".join(parts) + ")"


class DiskInfo(NamedTuple):
    """A disk resource's ``DiskInfo``: a persistent volume's ID, its creator, and where tasks see it."""

    persistence_id: str | None = None
    principal: str | None = None
    container_path: str | None = None
    mode: str | None = None

    @property
    def persistent(self) -> bool:
        return self.persistence_id is not None

    def stripped(self) -> DiskInfo | None:
        """The disk without its persistence and volume (what creating a volume consumed): None here,
        since mesostw knows no disk sources."""
        return None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.persistence_id is not None:
            persistence: dict[str, Any] = {"id": self.persistence_id}
            if self.principal is not None:
                persistence["principal"] = self.principal
            out["persistence"] = persistence
        if self.container_path is not None:
            out["volume"] = {"container_path": self.container_path, "mode": self.mode or RW}
        return out

    def __str__(self) -> str:
        text = self.persistence_id or ""
        if self.container_path is not None:
            text += f":{self.container_path}"
        return text


class Meta:
    """The reservation stack and DiskInfo of a resource keyed ``(name, role, meta)``; immutable, hashed once."""

    __slots__ = ("reservations", "disk", "_hash")

    def __init__(self, reservations: tuple[Reservation, ...], disk: DiskInfo | None):
        self.reservations = reservations
        self.disk = disk
        self._hash = hash((reservations, disk))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Meta) and self._hash == other._hash
                                 and self.reservations == other.reservations and self.disk == other.disk)

    def __lt__(self, other: Meta) -> bool:
        """An arbitrary but stable order, so that keys sort (for display and JSON)."""
        return repr(self) < repr(other)

    def __repr__(self) -> str:
        return f"Meta({self.reservations!r}, {self.disk!r})"

    @property
    def volume(self) -> bool:
        """Whether this is a persistent volume."""
        return self.disk is not None and self.disk.persistence_id is not None


#: ``(name, role)`` or ``(name, role, Meta)``
Key = tuple


def make_key(name: str, reservations: tuple[Reservation, ...], disk: DiskInfo | None = None) -> Key:
    """The canonical key of a resource: short unless it has more than one static reservation's worth
    of information."""
    if disk is None:
        if not reservations:
            return (name, UNRESERVED)
        if len(reservations) == 1 and reservations[0].type == STATIC:
            return (name, reservations[0].role)
    return (name, reservations[-1].role if reservations else UNRESERVED, Meta(reservations, disk))


def reservations_of(key: Key) -> tuple[Reservation, ...]:
    if len(key) == 3:
        return key[2].reservations
    return () if key[1] == UNRESERVED else (Reservation(STATIC, key[1]),)


def disk_of(key: Key) -> DiskInfo | None:
    return key[2].disk if len(key) == 3 else None


def is_dynamic(key: Key) -> bool:
    """Whether the top reservation is dynamic (made by a RESERVE operation)."""
    return len(key) == 3 and bool(key[2].reservations) and key[2].reservations[-1].type == DYNAMIC


def is_refined(key: Key) -> bool:
    """Whether the resource carries more than one reservation (a refinement)."""
    return len(key) == 3 and len(key[2].reservations) > 1


def is_volume(key: Key) -> bool:
    return len(key) == 3 and key[2].volume


def needs_checkpointing(key: Key) -> bool:
    """What agents checkpoint and the registry keeps: dynamically reserved resources and persistent
    volumes (Mesos's ``needCheckpointing``); the rest comes from the agent's ``--resources``."""
    return len(key) == 3 and ((bool(key[2].reservations) and key[2].reservations[-1].type == DYNAMIC)
                              or key[2].volume)


def pushed(key: Key, reservation: Reservation) -> Key:
    return make_key(key[0], reservations_of(key) + (reservation,), disk_of(key))


def popped(key: Key) -> Key:
    """The key with its top reservation removed (what unreserving gives back)."""
    return make_key(key[0], reservations_of(key)[:-1], disk_of(key))


def without_volume(key: Key) -> Key:
    """The key of the disk a volume was created from."""
    disk = disk_of(key)
    return make_key(key[0], reservations_of(key), disk.stripped() if disk is not None else None)


def static_of(key: Key) -> Key:
    """What the agent's ``--resources`` gave: no dynamic reservation, no volume."""
    reservations = reservations_of(key)
    while reservations and reservations[-1].type == DYNAMIC:
        reservations = reservations[:-1]
    disk = disk_of(key)
    return make_key(key[0], reservations, disk.stripped() if disk is not None else None)


def container_path_problem(path: str) -> str | None:
    """Why a volume cannot appear at ``path`` in a sandbox (absolute, empty, or climbing out), or None."""
    if not path or path.startswith("/"):
        return f"container_path {path!r} must be a relative path in the sandbox"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return f"container_path {path!r} must not hold empty, '.' or '..' components"
    return None


# -- JSON ---------------------------------------------------------------------------------------

def labels_json(labels: Labels) -> dict[str, Any]:
    return {"labels": [{"key": k} if v is None else {"key": k, "value": v} for k, v in labels]}


def read_labels(reader: Reader | None) -> Labels:
    if reader is None:
        return ()
    out = []
    for label in reader.objs("labels", max_items=1024):
        key = label.str("key", required=True, max_len=4096)
        value = label.str("value", max_len=64 * 1024)
        if key is not None:
            out.append((key, value))
    return tuple(out)


def read_stack(res: Reader) -> tuple[Reservation, ...] | None:
    """The reservation stack of a v1 Resource, in either of Mesos's formats: ``reservations`` (since
    reservation refinement) or ``role`` and ``reservation`` (before it; a ``reservation`` makes it dynamic).
    Problems are recorded on ``res``; None when there were any."""
    before = len(res.errors)
    stack: list[Reservation] = []
    if res.has("reservations"):
        for item in res.objs("reservations", max_items=MAX_RESERVATIONS):
            kind = item.enum("type", RESERVATION_TYPES, required=True)
            role = item.str("role", required=True, max_len=1024)
            if isinstance(role, str):
                problem = validate_role(role)
                if problem:
                    item.error(problem, "role")
                elif role == UNRESERVED:
                    item.error('cannot be "*": "*" means unreserved', "role")
            principal = item.str("principal", max_len=1024)
            labels = read_labels(item.obj("labels"))
            if kind is not None and isinstance(role, str):
                stack.append(Reservation(kind, role, principal, labels))
        for below, above in zip(stack, stack[1:], strict=False):
            if above.type == STATIC:
                res.error("a refined reservation cannot be STATIC", "reservations")
            if not is_strict_subrole(above.role, below.role):
                res.error(f"role {above.role!r} is not a refinement of {below.role!r}", "reservations")
        if res.has("role") and stack and res.raw("role") != stack[-1].role:
            res.error("does not match the reservations", "role")
    else:
        role = res.str("role", UNRESERVED, max_len=1024)
        if isinstance(role, str):
            problem = validate_role(role)
            if problem:
                res.error(problem, "role")
            reservation = res.obj("reservation")
            if reservation is not None:
                if reservation.has("type") or reservation.has("role"):
                    reservation.error("must not set type or role (they belong in 'reservations')")
                if role == UNRESERVED:
                    res.error('"*" cannot be dynamically reserved', "role")
                stack.append(Reservation(DYNAMIC, role, reservation.str("principal", max_len=1024),
                                         read_labels(reservation.obj("labels"))))
            elif role != UNRESERVED:
                stack.append(Reservation(STATIC, role))
    return tuple(stack) if len(res.errors) == before else None


_NO_DISK: Any = object()


def read_disk(res: Reader, name: str) -> DiskInfo | None | Any:
    """The DiskInfo of a v1 Resource (None without one); problems are recorded on ``res``, and the
    answer is then a sentinel that is not a DiskInfo."""
    holder = res.obj("disk")
    if holder is None:
        return None
    before = len(res.errors)
    if name != "disk":
        res.error(f"is only for disk resources, not {name}", "disk")
    if holder.has("source"):
        holder.error("is not supported: mesostw knows one disk per agent, its work_dir's", "source")
    persistence, volume = holder.obj("persistence"), holder.obj("volume")
    persistence_id = principal = container_path = mode = None
    if persistence is not None:
        persistence_id = persistence.str("id", required=True, max_len=1024)
        if isinstance(persistence_id, str):
            problem = validate_id(persistence_id)
            if problem:
                persistence.error(problem, "id")
        principal = persistence.str("principal", max_len=1024)
    if volume is not None:
        container_path = volume.str("container_path", required=True, max_len=4096)
        mode = volume.enum("mode", (RW, RO), required=True)
        if volume.has("host_path"):
            volume.error("must not be set for a persistent volume", "host_path")
        if persistence is None:
            holder.error("is not supported without a persistence (only persistent volumes are)", "volume")
    if len(res.errors) > before:
        return _NO_DISK
    if persistence_id is None and container_path is None:
        return None
    return DiskInfo(persistence_id, principal, container_path, mode)


def stack_json(out: dict[str, Any], key: Key) -> None:
    """Add the reservation and disk fields of ``key`` to a v1 Resource, in Mesos's endpoint format: the
    ``reservations`` stack, plus ``role`` (and ``reservation`` for a dynamic one) when there is one
    reservation at most, so that clients of either format understand it."""
    if len(key) == 2:
        out["role"] = key[1]
        if key[1] != UNRESERVED:
            out["reservations"] = [{"type": STATIC, "role": key[1]}]
        return
    meta: Meta = key[2]
    stack = meta.reservations
    if len(stack) <= 1:
        out["role"] = key[1]
        if stack and stack[0].type == DYNAMIC:
            top = stack[0]
            reservation: dict[str, Any] = {}
            if top.principal is not None:
                reservation["principal"] = top.principal
            if top.labels:
                reservation["labels"] = labels_json(top.labels)
            out["reservation"] = reservation
    if stack:
        out["reservations"] = [r.to_json() for r in stack]
    if meta.disk is not None:
        out["disk"] = meta.disk.to_json()


def describe(key: Key) -> str:
    """A key as Mesos prints a resource's name: ``cpus``, ``cpus(eng)``, or
    ``disk(reservations: [(STATIC,eng),(DYNAMIC,eng/web,ops)])[vol1:data]``."""
    if len(key) == 2:
        return key[0] if key[1] == UNRESERVED else f"{key[0]}({key[1]})"
    meta: Meta = key[2]
    text = key[0]
    if meta.reservations:
        text += "(reservations: [" + ",".join(str(r) for r in meta.reservations) + "])"
    if meta.disk is not None:
        text += f"[{meta.disk}]"
    return text
