"""The agent: advertises a machine's resources and runs executors in sandboxes."""
