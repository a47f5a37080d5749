"""Mesos-style flags: ``--name=value`` on the command line or ``MESOS_NAME`` in the environment.

Each daemon declares its flags once as :class:`Flag` records; from them come
the ``usage.Options`` class twistd shows with ``--help``, the environment
fallback, conversion into typed values (every error reported at once) and the
string rendering ``/flags`` endpoints serve.
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any, Callable, Mapping, Sequence

import attrs
from twisted.python import usage

from mesostw.model.units import format_duration, parse_duration

ENV_PREFIX = "MESOS_"
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def parse_bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected true or false, not {text!r}")


def read_value(text: str) -> str:
    """Resolve Mesos's ``file:///path`` indirection for flags that accept it."""
    if text.startswith("file://"):
        return read_file(text, "flag value")[1].strip()
    return text


def read_file(value: str, what: str) -> tuple[str, str]:
    """Read the file a flag names (``/path`` or ``file:///path``); returns (path, text) or raises a
    ValueError saying which ``what`` file could not be read."""
    value = value.strip()
    path = value[len("file://"):] if value.startswith("file://") else value
    if not path:
        raise ValueError(f"no {what} file given")
    try:
        with open(path, encoding="utf-8") as f:
            return path, f.read()
    except OSError as exc:
        raise ValueError(f"cannot read {what} file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"invalid {what} file {path}: not UTF-8 text") from None


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


@attrs.frozen
class Flag:
    """One flag: its name, default, help text, and how its text becomes a value."""

    name: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str
    render: Callable[[Any], str] = _render
    aliases: tuple[str, ...] = ()
    boolean: bool = False

    @classmethod
    def duration(cls, name: str, default: float | None, help: str, **kw: Any) -> Flag:
        return cls(name, default, help, parse_duration, lambda v: "" if v is None else format_duration(v), **kw)

    @classmethod
    def bool(cls, name: str, default: bool, help: str, **kw: Any) -> Flag:
        return cls(name, default, help, parse_bool, boolean=True, **kw)

    @classmethod
    def int(cls, name: str, default: int | None, help: str, **kw: Any) -> Flag:
        return cls(name, default, help, int, **kw)

    @classmethod
    def float(cls, name: str, default: float | None, help: str, **kw: Any) -> Flag:
        return cls(name, default, help, float, **kw)


class FlagOptions(usage.Options):
    """Base for daemon options built from :class:`Flag` lists (see :func:`options_for`)."""

    flags: Sequence[Flag] = ()
    environ: Mapping[str, str] = os.environ

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        import sys

        argv = list(sys.argv[1:] if options is None else options)
        super().parseOptions(self._normalize(argv))

    def _normalize(self, argv: list[str]) -> list[str]:
        """Accept Mesos's ``--flag`` / ``--no-flag`` booleans and old flag names."""
        by_name = {}
        for flag in self.flags:
            for name in (flag.name, *flag.aliases):
                by_name[name] = flag
        out = []
        for arg in argv:
            if arg.startswith("--") and arg != "--":
                name, sep, value = arg[2:].partition("=")
                negated = name.startswith("no-") and name[3:] in by_name and by_name[name[3:]].boolean
                known = by_name.get(name[3:] if negated else name)
                if known is not None:
                    if known.boolean and not sep:
                        arg = f"--{known.name}={'false' if negated else 'true'}"
                    else:
                        arg = f"--{known.name}{sep}{value}"
            out.append(arg)
        return out

    def postOptions(self) -> None:
        errors = []
        values = {}
        given = {}
        for flag in self.flags:
            key = flag.name
            text = self.get(key)
            if text is None:
                for name in (flag.name, *flag.aliases):
                    env = self.environ.get(ENV_PREFIX + name.upper())
                    if env is not None:
                        text = env
                        break
            if text is None:
                values[key] = flag.default
                continue
            try:
                values[key] = flag.parse(text)
                given[key] = text
            except (ValueError, TypeError) as exc:
                errors.append(f"--{key}={text}: {exc}")
        if errors:
            raise usage.UsageError("invalid flags:\n  " + "\n  ".join(errors))
        self.config = Config(self.flags, values)
        self.check(self.config, errors)
        if errors:
            raise usage.UsageError("invalid flags:\n  " + "\n  ".join(errors))

    def check(self, config: Config, errors: list[str]) -> None:
        """Cross-flag validation; append problems to ``errors``."""


def options_for(flags: Sequence[Flag], synopsis: str, base: type[FlagOptions] = FlagOptions,
                **attributes: Any) -> type[FlagOptions]:
    """Build a ``usage.Options`` subclass that documents and parses ``flags``."""
    params = []
    for flag in flags:
        doc = flag.help
        if flag.aliases:
            doc += " (also --" + ", --".join(flag.aliases) + ")"
        doc += f" [env {ENV_PREFIX}{flag.name.upper()}]"
        params.append([flag.name, None, None, doc + (f" [default: {flag.render(flag.default)}]"
                                                     if flag.default not in (None, "") else "")])
    attributes.update(flags=tuple(flags), optParameters=params, synopsis=synopsis)
    return type(base.__name__, (base,), attributes)


class Config(SimpleNamespace):
    """Typed flag values by attribute, plus their Mesos string rendering."""

    def __init__(self, flags: Sequence[Flag], values: Mapping[str, Any]):
        super().__init__(**values)
        self._flags = {f.name: f for f in flags}

    def rendered(self) -> dict[str, str]:
        """Every flag as the string ``/flags`` endpoints show."""
        return {name: flag.render(getattr(self, name)) for name, flag in sorted(self._flags.items())}

    def replace(self, **changes: Any) -> Config:
        values = {name: getattr(self, name) for name in self._flags}
        values.update(changes)
        return Config(list(self._flags.values()), values)


def defaults(flags: Sequence[Flag], **overrides: Any) -> Config:
    """A :class:`Config` of every default with ``overrides`` applied (for tests and embedding)."""
    values = {flag.name: flag.default for flag in flags}
    unknown = set(overrides) - set(values)
    if unknown:
        raise TypeError(f"unknown flags: {', '.join(sorted(unknown))}")
    values.update(overrides)
    return Config(flags, values)
