"""A plugin package holding the probe's declarations, for ``getPlugins(IFrameworkPlugin, probe_plugins)``
in the test process (daemons find the same objects through ``tests/plugins/twisted/plugins``)."""
