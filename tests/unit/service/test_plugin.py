"""The plugin contract hosts rely on, and the framework's registration with the master."""

from __future__ import annotations

from twisted.application.service import IService
from twisted.python import usage
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from frameworks.service import plugin
from mesostw import flags as flaglib
from mesostw.flags import Flag
from tests.helpers.cluster import Cluster
from tests.helpers.hosting import ClusterHost
from tests.helpers.service import config


class PluginContractTests(unittest.TestCase):
    def test_module_attributes(self) -> None:
        """NAME, DESCRIPTION, DEFAULT_PORT, FLAGS and makeService are what hosts read."""
        self.assertEqual((plugin.NAME, plugin.DEFAULT_PORT), ("service", 8080))
        self.assertIsInstance(plugin.DESCRIPTION, str)
        self.assertTrue(all(isinstance(f, Flag) for f in plugin.FLAGS))
        names = [f.name for f in plugin.FLAGS]
        self.assertEqual(len(names), len(set(names)))
        self.assertIn("framework_name", names)
        self.assertFalse(any(n.startswith("service_") for n in names), "hosts add the prefix")

    def test_flags_parse_and_refuse(self) -> None:
        """Flags parse from the command line and bad values are refused with the flag's name."""
        options = flaglib.options_for(plugin.FLAGS, "", environ={})()
        options.parseOptions(["--framework_name=svc", "--failover_timeout=1hrs", "--no-strict_compat"])
        self.assertEqual((options.config.framework_name, options.config.failover_timeout,
                          options.config.strict_compat), ("svc", 3600.0, False))
        bad = flaglib.options_for(plugin.FLAGS, "", environ={})()
        with self.assertRaises(usage.UsageError) as caught:
            bad.parseOptions(["--local_port_min=70000"])
        self.assertIn("--local_port_min=70000", str(caught.exception))

    def test_make_service_registers_as_marathon(self) -> None:
        """The service waits for leadership, then registers checkpointing, with its failover
        timeout, partition awareness and the API as web UI."""
        cluster = Cluster(agents=1)
        self.addCleanup(cluster.stop)
        host = ClusterHost(cluster, "service")
        service = plugin.makeService(host, config(failover_timeout=120.0))
        verifyObject(IService, service)
        self.assertIn("/v2/apps", host.router.routes())
        service.startService()
        self.addCleanup(service.stopService)
        cluster.settle()
        (framework,) = cluster.master.frameworks.values()
        info = framework.info
        self.assertEqual((info.name, info.checkpoint, info.failover_timeout), ("marathon", True, 120.0))
        self.assertIn("PARTITION_AWARE", info.capabilities)
        self.assertEqual(info.webui_url, host.api_url)
        self.assertEqual(self.successResultOf(host.backing.get("frameworks/service/framework_id")), framework.id.encode())
