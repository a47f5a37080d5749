"""Layering: the master is a leaf. Nothing that agents, drivers, executors, tools, stores or frameworks
are built from imports ``mesostw.master``, so each can be shipped and reasoned about without it."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator

from twisted.trial import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: Packages and modules that must not import the master (paths relative to the repository).
GUARDED = ("mesostw/zk", "mesostw/store", "mesostw/agent", "mesostw/scheduler", "mesostw/executor",
           "mesostw/cli", "mesostw/model", "mesostw/wire", "mesostw/detector.py", "mesostw/daemon.py",
           "mesostw/version.py", "mesostw/metrics.py", "mesostw/interfaces.py", "frameworks")
#: Being rewritten to depend on a narrow endpoint instead of the master's core.
EXEMPT = {"mesostw/scheduler/local.py"}
FORBIDDEN = "mesostw.master"


def sources(path: str, root: str = ROOT) -> Iterator[str]:
    full = os.path.join(root, path)
    if os.path.isfile(full):
        yield path
        return
    for directory, _, files in os.walk(full):
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.relpath(os.path.join(directory, name), root)


def module_name(path: str) -> str:
    parts = path[:-3].split(os.sep)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: str, source: str) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in ``source``, relative ones resolved against ``path``."""
    package = module_name(path).split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[:len(package) - node.level + 1], *([base] if base else [])])
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def offenders(paths: tuple[str, ...], root: str = ROOT, forbidden: str = FORBIDDEN,
              exempt: set[str] = EXEMPT) -> list[str]:
    found = []
    for top in paths:
        for path in sources(top, root):
            if path in exempt:
                continue
            with open(os.path.join(root, path), encoding="utf-8") as f:
                source = f.read()
            for line, module in imported(path, source):
                if module == forbidden or module.startswith(forbidden + "."):
                    found.append(f"{path}:{line} imports {module}")
    return sorted(set(found))


class LayeringTests(unittest.TestCase):
    def test_nothing_outside_the_master_imports_it(self) -> None:
        """No guarded package or module imports mesostw.master (the offenders are listed)."""
        found = offenders(GUARDED)
        self.assertEqual(found, [], "these import the master:\n" + "\n".join(found))

    def test_the_scan_finds_every_form(self) -> None:
        """The scan sees plain, from-, aliased, nested and relative imports of the master."""
        source = ("import mesostw.master.registry\nfrom mesostw.master import registry\n"
                  "from mesostw import master as m\nfrom .. import master\nfrom ..master.flags import X\n"
                  "def f():\n    import mesostw.master\n")
        modules = [module for _, module in imported(os.path.join("mesostw", "agent", "x.py"), source)]
        hits = [module for module in modules if module == FORBIDDEN or module.startswith(FORBIDDEN + ".")]
        self.assertEqual(hits, ["mesostw.master.registry", "mesostw.master", "mesostw.master.registry",
                                "mesostw.master", "mesostw.master", "mesostw.master.flags",
                                "mesostw.master.flags.X", "mesostw.master"])

    def test_the_scan_reports_an_offender(self) -> None:
        """A guarded module importing the master is reported with its path and line; exempt ones are not."""
        root = self.mktemp()
        os.makedirs(os.path.join(root, "mesostw", "agent"))
        for name in ("good.py", "bad.py", "exempt.py"):
            with open(os.path.join(root, "mesostw", "agent", name), "w") as f:
                f.write("import os\n" if name == "good.py" else "import os\nfrom mesostw.master.flags import X\n")
        found = offenders(("mesostw/agent", "frameworks"), root, exempt={"mesostw/agent/exempt.py"})
        self.assertEqual(found, ["mesostw/agent/bad.py:2 imports mesostw.master.flags",
                                 "mesostw/agent/bad.py:2 imports mesostw.master.flags.X"])
