"""An installed mesostw works: a wheel of the checkout, installed with its dependencies into a fresh
virtualenv (no editable install, no system site-packages), imports every module and runs its commands.

The dependencies come from ``.venv/wheelhouse`` (filled by ``tools/wheelhouse.sh``, which ``make test``
runs), so the wheel is built and installed offline in a few seconds. Everything runs with a working
directory outside the checkout and without PYTHONPATH, so the source tree is never on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any

from twisted.trial import unittest

from tests.helpers.processes import REPO

#: The packages whose every module must import from an installed wheel.
PACKAGES = ("mesostw", "frameworks")
#: twistd plugins that must be listed whatever the dropins declare besides.
PLUGINS = ("mesos-master", "mesos-slave", "mesos-agent", "mesos-local")
WHEELHOUSE = os.path.join(sys.prefix, "wheelhouse")
#: What a copy of the checkout leaves out (build products and local state).
#: The native command executor's library too: the wheel must build its own.
IGNORED = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis",
                                 "_trial_temp*", ".mypy_cache", ".ruff_cache", ".pytest_cache", "dropin.cache",
                                 "*.so")

#: Run inside the fresh virtualenv: import every module of the installed packages (found by walking
#: them where they are installed) and every module the checkout has; print what happened as JSON.
IMPORT_ALL = r"""
import importlib, json, pkgutil, sys, traceback
expected, packages = json.loads(sys.argv[1]), json.loads(sys.argv[2])
found, failed = {}, {}

def load(name):
    try:
        module = importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=3)
        return
    found[name] = getattr(module, "__file__", None)

for top in packages:
    try:
        package = importlib.import_module(top)
    except ModuleNotFoundError:
        continue
    found[top] = package.__file__
    for info in pkgutil.walk_packages(package.__path__, top + ".", onerror=lambda name: load(name)):
        load(info.name)
for name in expected:
    if name not in found and name not in failed:
        load(name)
print(json.dumps({"found": found, "failed": failed, "prefix": sys.prefix}))
"""

#: Run inside the fresh virtualenv: the twistd plugins each installed dropin of the checkout declares.
DECLARED_PLUGINS = r"""
import importlib, json, sys
from twisted.application.service import IServiceMaker
names = []
for dropin in json.loads(sys.argv[1]):
    module = importlib.import_module("twisted.plugins." + dropin)
    names += [value.tapname for value in vars(module).values() if IServiceMaker.providedBy(value)]
print(json.dumps(names))
"""


def checkout_modules(root: str = REPO) -> list[str]:
    """Dotted names of every Python module under the checkout's :data:`PACKAGES`."""
    names = []
    for top in PACKAGES:
        base = os.path.join(root, top)
        for directory, subdirs, files in os.walk(base):
            subdirs[:] = [d for d in subdirs if d != "__pycache__"]
            parts = os.path.relpath(directory, root).split(os.sep)
            for name in files:
                if name.endswith(".py"):
                    stem = name[:-3]
                    names.append(".".join(parts if stem == "__init__" else [*parts, stem]))
    return sorted(names)


def checkout_dropins(root: str = REPO) -> list[str]:
    """Module names of the twistd plugin dropins in the checkout's ``twisted/plugins``."""
    directory = os.path.join(root, "twisted", "plugins")
    return sorted(name[:-3] for name in os.listdir(directory) if name.endswith(".py") and name != "__init__.py")


def hermetic_environment() -> dict[str, str]:
    """The environment without pip's configuration (no index, no extra find-links) and without PYTHONPATH."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV", "MESOS_", "LIBPROCESS_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run(argv: list[str], cwd: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run a command to completion; its output, or an AssertionError with that output if it failed."""
    done = subprocess.run(argv, cwd=cwd, env=env or hermetic_environment(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout)
    output = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited with {done.returncode}:\n{output[-4000:]}")
    return output


class Installation:
    """A fresh virtualenv with a wheel of ``source`` and its dependencies installed, under ``base``."""

    def __init__(self, base: str, source: str = REPO, wheelhouse: str = WHEELHOUSE):
        self.base = base
        self.source = source
        self.wheelhouse = wheelhouse
        self.venv = os.path.join(base, "venv")
        self.bin = os.path.join(self.venv, "bin")
        self.python = os.path.join(self.bin, "python")
        #: a working directory far from the checkout
        self.cwd = os.path.join(base, "elsewhere")

    def build(self) -> Installation:
        if not os.path.exists(os.path.join(self.wheelhouse, ".complete")):
            run([os.path.join(REPO, "tools", "wheelhouse.sh"), sys.prefix], REPO, dict(os.environ))
        tree = os.path.join(self.base, "src")
        dist = os.path.join(self.base, "dist")
        os.makedirs(self.cwd)
        # A copy keeps the build's egg-info and build/ out of the checkout (whose editable install uses them).
        shutil.copytree(self.source, tree, ignore=IGNORED)
        offline = ["--no-index", "--find-links", self.wheelhouse]
        run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *offline, "-w", dist, tree], self.cwd)
        run([sys.executable, "-m", "venv", "--without-pip", self.venv], self.cwd)
        # --no-compile: byte-compiling every dependency would double the install's time for nothing checked here.
        run([sys.executable, "-m", "pip", "--python", self.python, "install", "-q", "--no-compile", *offline,
             "--find-links", dist, "mesostw"], self.cwd)
        return self

    def run(self, *argv: str) -> str:
        return run([*argv], self.cwd)


class InstallTests(unittest.TestCase):
    """``pip install`` of a wheel gives working modules, plugins and commands."""

    installation: Installation

    @classmethod
    def setUpClass(cls) -> None:
        cls.base = tempfile.mkdtemp(prefix="mesostw-install-")
        try:
            cls.installation = Installation(cls.base).build()
        except BaseException:
            shutil.rmtree(cls.base, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.base, ignore_errors=True)

    def test_every_module_imports(self) -> None:
        """Every module the checkout has imports from the installed wheel, and from there only."""
        expected = checkout_modules()
        self.assertIn("mesostw.scheduler.driver", expected)
        packages = json.dumps(PACKAGES)
        report: dict[str, Any] = json.loads(self.installation.run(self.installation.python, "-c", IMPORT_ALL,
                                                                  json.dumps(expected), packages))
        self.assertEqual(report["failed"], {})
        self.assertEqual(sorted(set(expected) - set(report["found"])), [])
        site = os.path.realpath(report["prefix"])
        elsewhere = {name: path for name, path in report["found"].items()
                     if not os.path.realpath(path).startswith(site + os.sep)}
        self.assertEqual(elsewhere, {})

    def test_twistd_lists_the_plugins(self) -> None:
        """``twistd --help`` lists mesos-master, mesos-slave, mesos-agent, mesos-local and every plugin the
        checkout's dropins declare."""
        declared = json.loads(self.installation.run(self.installation.python, "-c", DECLARED_PLUGINS,
                                                    json.dumps(checkout_dropins())))
        listed = {line.split()[0] for line in self.installation.run(os.path.join(self.installation.bin, "twistd"),
                                                                     "--help").splitlines()
                  if line.startswith("    ") and line.split()}
        self.assertEqual(sorted((set(PLUGINS) | set(declared)) - listed), [])

    def test_twistd_master_help(self) -> None:
        """``twistd mesos-master --help`` describes the master's flags."""
        output = self.installation.run(os.path.join(self.installation.bin, "twistd"), "mesos-master", "--help")
        self.assertIn("--work_dir", output)

    def test_cli_help(self) -> None:
        """``mesostw --help`` exits 0 and lists the subcommands."""
        output = self.installation.run(os.path.join(self.installation.bin, "mesostw"), "--help")
        self.assertIn("execute", output)

    def test_the_web_ui_is_installed(self) -> None:
        """The wheel carries the web UI: the page and every asset the checkout has, under the installed package."""
        code = ("import json, mesostw.ui as ui; a = ui.Assets(); "
                "print(json.dumps({'static': ui.STATIC, 'files': sorted(a.files)}))")
        report = json.loads(self.installation.run(self.installation.python, "-c", code))
        checkout = os.path.join(REPO, "mesostw", "ui", "static")
        expected = sorted(os.path.relpath(os.path.join(d, f), checkout).replace(os.sep, "/")
                          for d, _, files in os.walk(checkout) for f in files)
        self.assertIn("index.html", report["files"])
        self.assertEqual(report["files"], expected)
        self.assertNotEqual(os.path.realpath(report["static"]), os.path.realpath(checkout))

    def test_the_native_command_executor_is_built_and_shipped(self) -> None:
        """The wheel builds the native command executor (its program and its codec library) and installs
        them in the package, where the program runs and the library loads."""
        code = ("import json, sys; from mesostw.executor import native; "
                "print(json.dumps({'program': native.PROGRAM, 'available': native.available(), "
                "'version': native.library().mesostw_native_version().decode(), 'prefix': sys.prefix}))")
        report = json.loads(self.installation.run(self.installation.python, "-c", code))
        self.assertTrue(os.path.realpath(report["program"]).startswith(os.path.realpath(report["prefix"]) + os.sep))
        self.assertEqual((report["available"], report["version"]), (True, "mesostw-native-1"))
        done = subprocess.run([report["program"]], stderr=subprocess.PIPE, timeout=30)
        self.assertEqual((done.returncode, done.stderr),
                         (2, b"mesos-executor: only the agent's launcher starts it\n"))
