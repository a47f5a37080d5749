"""The bundled ``cron`` framework: Chronos's job scheduler and REST API on the framework-hosting contract."""
