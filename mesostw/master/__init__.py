"""The master: agents, frameworks, offers and tasks, and the adapters that reach it."""
