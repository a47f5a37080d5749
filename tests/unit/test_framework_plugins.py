"""Framework plugins: lazy declarations found by getPlugins, skipped when they cannot load, and
their flags on the hosts (prefixed in the master, unprefixed standalone)."""

from __future__ import annotations

import ast
import fnmatch
import os
import sys
import types

from twisted.application.service import IServiceMaker
from twisted.logger import globalLogPublisher
from twisted.plugin import IPlugin, getPlugins
from twisted.python import usage
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mesostw import flags as flaglib
from mesostw.flags import Flag
from mesostw.interfaces import IFrameworkPlugin
from mesostw.local import LOCAL_FLAGS, LocalOptions
from mesostw.master.flags import MASTER_FLAGS, MasterOptions
from mesostw.master.service import MasterService
from mesostw.scheduler import plugins as P
from mesostw.scheduler import standalone_tap
from mesostw.scheduler.hosted_flags import hosting_options, parse_names
from tests.helpers.probe import probe_package, probe_plugin
from tests.helpers.processes import REPO


def fake_module(name: str, **attributes: object) -> str:
    """Register an importable module ``name`` with ``attributes``; removed again by the caller's cleanup."""
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return name


class LazyPluginTests(unittest.TestCase):
    def tearDown(self) -> None:
        for name in [n for n in sys.modules if n.startswith("fake_framework")]:
            del sys.modules[name]

    def test_declaring_imports_nothing_and_using_loads_the_module(self) -> None:
        """A FrameworkPlugin names its module without importing it; flags and makeService import it."""
        plugin = P.FrameworkPlugin("fake", "fake_framework_lazy", "A fake", 1234)
        self.assertNotIn("fake_framework_lazy", sys.modules)
        built = []
        fake_module("fake_framework_lazy", FLAGS=(Flag("color", "red", "A color"),),
                    makeService=lambda host, config: built.append((host, config)) or "service")
        self.assertEqual([f.name for f in plugin.flags], ["color"])
        self.assertEqual(plugin.makeService("host", "config"), "service")
        self.assertEqual(built, [("host", "config")])
        verifyObject(IFrameworkPlugin, plugin)
        self.assertTrue(IPlugin.providedBy(plugin))

    def test_a_missing_module_is_unavailable_with_the_reason(self) -> None:
        """A plugin whose module cannot be imported raises PluginUnavailable naming the module."""
        plugin = P.FrameworkPlugin("ghost", "fake_framework_absent.plugin", "Absent", 1)
        with self.assertRaises(P.PluginUnavailable) as caught:
            plugin.makeService(None, None)
        self.assertIn("fake_framework_absent.plugin", str(caught.exception))
        self.assertIn("'ghost'", str(caught.exception))

    def test_a_module_without_the_contract_is_unavailable(self) -> None:
        """A module lacking FLAGS or makeService, or declaring a flag its hosts own, cannot be used."""
        fake_module("fake_framework_bare", FLAGS=())
        with self.assertRaises(P.PluginUnavailable) as caught:
            P.FrameworkPlugin("bare", "fake_framework_bare", "Bare", 1).load()
        self.assertIn("lacks makeService", str(caught.exception))
        fake_module("fake_framework_greedy", FLAGS=(Flag("http_port", 1, "mine"), Flag("zk", None, "mine too")),
                    makeService=lambda host, config: None)
        with self.assertRaises(P.PluginUnavailable) as caught:
            P.FrameworkPlugin("greedy", "fake_framework_greedy", "Greedy", 1).load()
        self.assertIn("http_port, zk", str(caught.exception))

    def test_reserved_names_are_the_standalone_hosts_flags(self) -> None:
        """RESERVED lists exactly the standalone host's flags (which share a namespace with a plugin's)."""
        names = {flag.name for flag in standalone_tap.host_flags(probe_plugin())}
        self.assertEqual(names, set(P.RESERVED))


class DiscoveryTests(unittest.TestCase):
    def test_bundled_frameworks_are_declared_in_the_dropin(self) -> None:
        """getPlugins finds cron and service as IFrameworkPlugins and mesos-cron/mesos-service as twistd
        commands, whether or not their packages are installed yet."""
        declared = {p.name: p for p in getPlugins(IFrameworkPlugin)}
        self.assertLessEqual({"cron", "service"}, set(declared))
        self.assertEqual((declared["cron"].default_port, declared["service"].default_port), (4400, 8080))
        makers = {m.tapname for m in getPlugins(IServiceMaker)}
        self.assertLessEqual({"mesos-cron", "mesos-service", "mesos-master", "mesos-local"}, makers)

    def test_the_probe_is_found_in_its_package_and_provides_the_interface(self) -> None:
        """The test plugin is found in its own plugin package; it provides IFrameworkPlugin fully."""
        plugin = probe_plugin()
        verifyObject(IFrameworkPlugin, plugin)
        self.assertEqual((plugin.name, plugin.default_port), ("probe", 4499))
        self.assertIn("task_resources", [f.name for f in plugin.flags])

    def test_unloadable_plugins_are_skipped_with_a_log_line(self) -> None:
        """framework_plugins keeps what loads and skips the rest, saying why in the log."""
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        found, skipped = P.framework_plugins()
        missing = {name for name in ("cron", "service") if name not in found}
        self.assertEqual(set(skipped), missing)
        for name in missing:
            self.assertIn(f"frameworks.{name}.plugin", skipped[name])
            lines = [e for e in events if e.get("name") == name and "Skipping" in e.get("log_format", "")]
            self.assertEqual(len(lines), 1, f"one log line for skipping {name}")
        found, skipped = P.framework_plugins(probe_package())
        self.assertEqual((list(found), skipped), (["probe"], {}))

    def test_dropins_are_shipped_and_plugins_is_no_package(self) -> None:
        """setup.py ships every dropin in twisted/plugins, which has no __init__.py."""
        directory = os.path.join(REPO, "twisted", "plugins")
        self.assertFalse(os.path.exists(os.path.join(directory, "__init__.py")))
        with open(os.path.join(REPO, "setup.py")) as f:
            tree = ast.parse(f.read())
        patterns: list[str] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "package_data":
                data = ast.literal_eval(node.value)
                patterns = [f"plugins/{p}" for p in data.get("twisted.plugins", [])] + data.get("twisted", [])
        for name in (n for n in os.listdir(directory) if n.endswith(".py")):
            self.assertTrue(any(fnmatch.fnmatch(f"plugins/{name}", p) for p in patterns), f"{name} is not shipped")


def parse(options_class: type, argv: list[str], environ: dict[str, str] | None = None) -> flaglib.Config:
    options = options_class()
    options.environ = environ or {}
    options.parseOptions(argv)
    return options.config


class MasterFlagsTests(unittest.TestCase):
    def setUp(self) -> None:
        self.Options = hosting_options(MASTER_FLAGS, MasterOptions, "none", package=probe_package())

    def test_each_plugin_gets_prefixed_flags_and_a_port_and_principal(self) -> None:
        """--probe_* flags carry the plugin's flags; http_port and principal default to the plugin's."""
        config = parse(self.Options, ["--frameworks=probe", "--probe_command=exit 3"])
        self.assertEqual(config.frameworks, ("probe",))
        self.assertEqual((config.probe_http_port, config.probe_principal, config.probe_command),
                         (4499, "probe", "exit 3"))
        self.assertEqual(flaglib.unprefixed(config, probe_plugin().flags, "probe").command, "exit 3")
        self.assertEqual(config.rendered()["frameworks"], "probe")

    def test_environment_sets_hosted_flags(self) -> None:
        """MESOS_FRAMEWORKS and MESOS_PROBE_<FLAG> work as every flag's variable does."""
        config = parse(self.Options, [], {"MESOS_FRAMEWORKS": "probe", "MESOS_PROBE_HTTP_PORT": "4600",
                                          "MESOS_PROBE_ROLE": "ops"})
        self.assertEqual((config.frameworks, config.probe_http_port, config.probe_role), (("probe",), 4600, "ops"))

    def test_master_hosts_nothing_by_default_and_help_shows_the_flags(self) -> None:
        """mesos-master runs no framework unless asked; --help lists every plugin's flags."""
        self.assertEqual(parse(self.Options, []).frameworks, ())
        text = str(self.Options())
        for flag in ("--frameworks=", "--probe_http_port=", "--probe_principal=", "--probe_task_resources="):
            self.assertIn(flag, text)

    def test_unknown_and_unloadable_frameworks_are_flag_errors(self) -> None:
        """An unknown name lists what is installed; a skipped one says why it cannot load."""
        with self.assertRaises(usage.UsageError) as caught:
            parse(self.Options, ["--frameworks=probe,nope"])
        self.assertIn("no framework plugin named 'nope' is installed (installed: probe)", str(caught.exception))
        Options = hosting_options(MASTER_FLAGS, MasterOptions, "none")
        found, skipped = P.framework_plugins()
        if "cron" not in found:
            with self.assertRaises(usage.UsageError) as caught:
                parse(Options, ["--frameworks=cron"])
            self.assertIn("frameworks.cron.plugin", str(caught.exception))
        with self.assertRaises(usage.UsageError) as caught:
            parse(self.Options, ["--frameworks=Bad Name"])
        self.assertIn("is not a framework name", str(caught.exception))

    def test_framework_ports_must_not_collide(self) -> None:
        """A framework port equal to the master's port is refused; so is one out of range."""
        with self.assertRaises(usage.UsageError) as caught:
            parse(self.Options, ["--frameworks=probe", "--port=4499"])
        self.assertIn("--probe_http_port=4499 is already the port of --port", str(caught.exception))
        with self.assertRaises(usage.UsageError) as caught:
            parse(self.Options, ["--frameworks=probe", "--probe_http_port=70000"])
        self.assertIn("is not a port number", str(caught.exception))

    def test_a_plugins_own_check_is_a_flag_error_naming_the_prefixed_flags(self) -> None:
        """What a plugin's check() finds is reported with the flags as the master offers them."""
        Options = hosting_options(MASTER_FLAGS, MasterOptions, "none")
        if "cron" not in P.framework_plugins()[0]:
            raise unittest.SkipTest("the cron framework is not installed")
        with self.assertRaises(usage.UsageError) as caught:
            parse(Options, ["--frameworks=cron", "--cron_job_history_limit=0", "--cron_failure_retry=-1"])
        self.assertIn("--cron_job_history_limit must be at least 1", str(caught.exception))
        self.assertIn("--cron_failure_retry must not be negative", str(caught.exception))
        self.assertEqual(parse(Options, ["--cron_job_history_limit=0"]).frameworks, (), "unselected: unchecked")

    def test_a_framework_refusing_its_flags_ends_the_master_with_a_usage_message(self) -> None:
        """A plugin without check() whose makeService raises ValueError ends twistd mesos-master with the
        message (exit status 1), not a traceback."""
        from mesostw.master import tap

        options = self.Options()
        options.environ = {}
        options.parseOptions(["--frameworks=probe", "--probe_task_resources=cpus:x", "--probe_http_port=0"])
        options.plugins = {"probe": probe_plugin()}
        with self.assertRaises(SystemExit) as caught:
            tap.makeService(options)
        message = str(caught.exception.code)
        self.assertTrue(message.startswith("twistd mesos-master: invalid flags: framework 'probe': bad resource"),
                        message)

    def test_names_are_parsed_in_order_once(self) -> None:
        """--frameworks keeps the given order, drops repeats and blanks."""
        self.assertEqual(parse_names(" probe, ,cron,probe"), ("probe", "cron"))
        self.assertEqual(parse_names(""), ())


class LocalFlagsTests(unittest.TestCase):
    def test_local_hosts_every_installed_plugin_unless_told_otherwise(self) -> None:
        """mesos-local defaults --frameworks to every installed plugin; --frameworks= runs none."""
        Options = hosting_options(LOCAL_FLAGS, LocalOptions, "all", package=probe_package())
        work_dir = self.mktemp()
        args = [f"--work_dir={work_dir}", "--resources=cpus:1;mem:128"]
        self.assertEqual(parse(Options, args).frameworks, ("probe",))
        self.assertEqual(parse(Options, [*args, "--frameworks="]).frameworks, ())

    def test_local_service_hosts_the_frameworks(self) -> None:
        """mesos-local's master is built with the hosted frameworks and their flags."""
        from mesostw import local

        Options = hosting_options(LOCAL_FLAGS, LocalOptions, "all", package=probe_package())
        options = Options()
        options.environ = {}
        options.parseOptions([f"--work_dir={self.mktemp()}", "--resources=cpus:1;mem:128", "--probe_http_port=0",
                              "--probe_role=ops"])
        root = local.makeService(options)
        master = next(child for child in root if isinstance(child, MasterService))
        self.assertEqual(list(master.frameworks.hosts), ["probe"])
        self.assertEqual(master.frameworks.frameworks["probe"].config.role, "ops")


class StandaloneFlagsTests(unittest.TestCase):
    def setUp(self) -> None:
        self.Options = standalone_tap.options_for(probe_plugin())

    def test_plugin_flags_are_unprefixed_and_env_is_the_frameworks_own(self) -> None:
        """Standalone, a plugin's flags have no prefix; variables are MESOS_<NAME>_<FLAG>, so a
        master's or agent's MESOS_ZK or MESOS_WORK_DIR on the same machine is not taken."""
        config = parse(self.Options, ["--master=127.0.0.1:5050", "--command=exit 2"],
                       {"MESOS_ZK": "zk://127.0.0.1:2181/mesos", "MESOS_WORK_DIR": "/var/lib/mesos",
                        "MESOS_PROBE_HTTP_PORT": "4700"})
        self.assertEqual((config.command, config.zk, config.work_dir, config.http_port), ("exit 2", None, None, 4700))
        self.assertEqual(config.hostname, "127.0.0.1")
        self.assertIn("[env MESOS_PROBE_MASTER]", str(self.Options()))

    def test_bad_combinations_are_reported_together(self) -> None:
        """No --master, --secret with --credential, and a --principal that is not the credential's all fail."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("ops s3cret\n")
        with self.assertRaises(usage.UsageError) as caught:
            parse(self.Options, [f"--credential={path}", "--secret=x", "--principal=dev"])
        message = str(caught.exception)
        self.assertIn("--master is required", message)
        self.assertIn("either --secret or --credential", message)
        self.assertIn("--principal=dev differs from the principal of --credential (ops)", message)

    def test_secret_may_come_from_a_file_and_is_not_shown(self) -> None:
        """--secret=file://... is read; /flags renders it masked."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("s3cret\n")
        config = parse(self.Options, ["--master=127.0.0.1:5050", f"--secret=file://{path}"])
        self.assertEqual(config.secret, "s3cret")
        self.assertNotIn("s3cret", str(config.rendered()))

    def test_the_plugins_own_check_is_a_usage_error(self) -> None:
        """twistd mesos-cron --job_history_limit=0 is refused as it parses, with the flag's own name."""
        cron = next((p for p in P.framework_plugins()[0].values() if p.name == "cron"), None)
        if cron is None:
            raise unittest.SkipTest("the cron framework is not installed")
        with self.assertRaises(usage.UsageError) as caught:
            parse(standalone_tap.options_for(cron), ["--master=127.0.0.1:5050", "--job_history_limit=0"])
        self.assertIn("  --job_history_limit must be at least 1", str(caught.exception))

    def test_a_framework_refusing_its_flags_ends_the_process_with_a_usage_message(self) -> None:
        """A plugin whose makeService raises ValueError ends twistd mesos-probe with the message."""
        options = self.Options()
        options.environ = {}
        options.parseOptions(["--master=127.0.0.1:5050", "--task_resources=cpus:x"])
        with self.assertRaises(SystemExit) as caught:
            standalone_tap.makeService(options)
        self.assertIn("twistd mesos-probe: invalid flags: framework 'probe': bad resource", str(caught.exception.code))

    def test_an_unavailable_framework_is_a_usage_error(self) -> None:
        """twistd mesos-cron without the cron package says so instead of a traceback."""
        maker = P.StandaloneMaker(P.FrameworkPlugin("gone", "fake_framework_gone.plugin", "Gone", 1), "mesos-gone")
        verifyObject(IServiceMaker, maker)
        with self.assertRaises(usage.UsageError) as caught:
            maker.options().parseOptions(["--master=127.0.0.1:5050"])
        self.assertIn("fake_framework_gone.plugin", str(caught.exception))


class CheckTests(unittest.TestCase):
    def tearDown(self) -> None:
        for name in [n for n in sys.modules if n.startswith("fake_framework")]:
            del sys.modules[name]

    def test_check_names_flags_with_the_hosts_prefix(self) -> None:
        """check_framework renames --flag to --<prefix>_flag, the longest name first; without check()
        a plugin has nothing to say."""
        flags = (Flag("limit", "1", "a"), Flag("limit_max", "2", "b"))
        module = fake_module("fake_framework_checked", FLAGS=flags, makeService=lambda host, config: None,
                             check=lambda config: ["--limit must be positive", "--limit_max is below --limit"])
        plugin = P.FrameworkPlugin("fake", module, "Fake", 1)
        config = flaglib.defaults(flags)
        self.assertEqual(P.check_framework(plugin, config, "fake"),
                         ["--fake_limit must be positive", "--fake_limit_max is below --fake_limit"])
        self.assertEqual(P.check_framework(plugin, config),
                         ["--limit must be positive", "--limit_max is below --limit"])
        bare = P.FrameworkPlugin("bare", fake_module("fake_framework_bare", FLAGS=flags,
                                                     makeService=lambda host, config: None), "Bare", 1)
        self.assertEqual(P.check_framework(bare, config, "bare"), [])


class PrefixTests(unittest.TestCase):
    def test_prefixed_renames_flags_and_aliases(self) -> None:
        """prefixed() renames a flag and its aliases and keeps its parser and default."""
        flags = (Flag.int("limit", 3, "A limit", aliases=("max",)),)
        (renamed,) = flaglib.prefixed(flags, "cron")
        self.assertEqual((renamed.name, renamed.aliases, renamed.default, renamed.parse("7")),
                         ("cron_limit", ("cron_max",), 3, 7))
        options = flaglib.options_for((renamed,), "test")()
        options.environ = {}
        options.parseOptions(["--cron_max=9"])
        self.assertEqual(flaglib.unprefixed(options.config, flags, "cron").limit, 9)
