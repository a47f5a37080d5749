"""Mesos credentials files: the master's ``--credentials`` (many) and an agent's or framework's
``--credential`` (one).

Both flags name a file, as ``/path`` or ``file:///path``, in one of two formats (``mesos:src/master/flags.hpp``):

* JSON, decided by a leading ``{``: ``{"credentials": [{"principal": "p", "secret": "s"}, ...]}`` for
  ``--credentials``, ``{"principal": "p", "secret": "s"}`` for ``--credential``. Unknown keys are ignored,
  as protobuf's JSON reader does.
* Plain text: one ``principal secret`` pair per line, separated by whitespace. Blank lines and lines whose
  first non-blank character is ``#`` are skipped; there are no trailing comments, since a secret may hold
  ``#``.

Stricter than Mesos, on purpose: every credential needs a non-empty secret (Mesos lets it be absent, which
would make the empty string a password), a principal is a non-empty string without whitespace or control
characters (the CRAM-MD5 response is ``"<principal> <digest>"``, so such a principal could never log in),
a principal appears once, and a file without any credential is an error. Every problem in a file is
reported at once in one :class:`ValueError` naming the file and the line (or JSON entry); a secret never
appears in an error message or a repr.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from mesostw.flags import read_file

__all__ = ["Credential", "load_credential", "load_credentials"]


@attrs.frozen
class Credential:
    """One principal and its secret: what an agent or a scheduler driver authenticates with."""

    principal: str
    secret: str = attrs.field(repr=False)


# An entry read from a file: where it was (for messages), its principal and its secret (None on errors).
_Entry = tuple[str, str, str]


def load_credentials(value: str) -> dict[str, str]:
    """Read a master's ``--credentials`` file into ``{principal: secret}``, in file order."""
    path, entries, errors = _load(value, "credentials", many=True)
    result: dict[str, str] = {}
    first: dict[str, str] = {}
    for where, principal, secret in entries:
        if principal in first:
            errors.append(f"{where}: duplicate principal {principal!r} (first at {first[principal]})")
            continue
        first[principal] = where
        result[principal] = secret
    if not entries and not errors:
        errors.append("holds no credentials")
    _raise(path, "credentials", errors)
    return result


def load_credential(value: str) -> Credential:
    """Read an agent's or framework's ``--credential`` file: exactly one credential."""
    path, entries, errors = _load(value, "credential", many=False)
    if not entries and not errors:
        errors.append("holds no credential")
    elif len(entries) > 1:
        errors.append(f"holds {len(entries)} credentials, expected one (at {', '.join(e[0] for e in entries)})")
    _raise(path, "credential", errors)
    _, principal, secret = entries[0]
    return Credential(principal, secret)


def _raise(path: str, what: str, errors: list[str]) -> None:
    if errors:
        raise ValueError(f"invalid {what} file {path}: " + "; ".join(errors))


def _load(value: str, what: str, many: bool) -> tuple[str, list[_Entry], list[str]]:
    """Read the file ``value`` names; return its path, the well-formed entries and the problems found."""
    path, text = read_file(value, what)
    errors: list[str] = []
    if text.lstrip().startswith("{"):
        entries = _from_json(text, many, errors)
    else:
        entries = _from_text(text, errors)
    return path, entries, errors


def _from_json(text: str, many: bool, errors: list[str]) -> list[_Entry]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # The message of a JSONDecodeError names the problem and the place, never the document's text.
        errors.append(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
        return []
    except RecursionError:
        errors.append("invalid JSON: nested too deeply")
        return []
    if not many:
        entry = _from_object(data, "the credential", errors)
        return [entry] if entry else []
    if not isinstance(data, dict) or not isinstance(data.get("credentials"), list):
        errors.append('expected a JSON object {"credentials": [{"principal": ..., "secret": ...}, ...]}')
        return []
    found = (_from_object(item, f"credentials[{i}]", errors) for i, item in enumerate(data["credentials"]))
    return [entry for entry in found if entry]


def _from_object(data: Any, where: str, errors: list[str]) -> _Entry | None:
    if not isinstance(data, dict):
        errors.append(f'{where}: expected an object {{"principal": ..., "secret": ...}}')
        return None
    before = len(errors)
    principal = data.get("principal")
    if principal is None:
        errors.append(f"{where}: has no principal")
    elif not isinstance(principal, str):
        errors.append(f"{where}: the principal must be a string")
    elif problem := _principal_problem(principal):
        errors.append(f"{where}: the principal {problem}")
    secret = data.get("secret")
    if secret is None:
        errors.append(f"{where}: has no secret")
    elif not isinstance(secret, str):
        errors.append(f"{where}: the secret must be a string")
    elif not secret:
        errors.append(f"{where}: has an empty secret")
    if len(errors) > before or not isinstance(principal, str) or not isinstance(secret, str):
        return None
    return where, principal, secret


def _from_text(text: str, errors: list[str]) -> list[_Entry]:
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"line {number}"
        # Never echo the fields: a misplaced secret must not end up in a log.
        if len(fields) == 1:
            errors.append(f"{where}: expected 'principal secret', found no secret")
        elif len(fields) > 2:
            errors.append(f"{where}: expected 'principal secret', found {len(fields)} fields")
        elif problem := _principal_problem(fields[0]):
            errors.append(f"{where}: the principal {problem}")
        else:
            entries.append((where, fields[0], fields[1]))
    return entries


def _principal_problem(principal: str) -> str | None:
    if not principal:
        return "must not be empty"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in principal):
        return "must not contain whitespace or control characters"
    return None
