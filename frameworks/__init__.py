"""Frameworks bundled with mesostw (``cron``: Chronos-like; ``service``: Marathon-like)."""
