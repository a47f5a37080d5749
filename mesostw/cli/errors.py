"""The two ways a command fails on purpose: a bad command line (exit 2) or a runtime problem (exit 1)."""

from __future__ import annotations


class CLIError(Exception):
    """An expected failure, reported as one line ``mesostw <cmd>: <message>``."""

    exit_code = 1

    def __init__(self, message: str, command: str | None = None):
        super().__init__(message)
        self.message = message
        self.command = command  # who reports it, when not the running command itself


class UsageError(CLIError):
    """The command line itself is wrong."""

    exit_code = 2
