"""Executor secrets: how an agent knows that a call comes from the executor it names.

As Mesos's executor tokens (``--authenticate_http_executors``, ``MESOS_EXECUTOR_AUTHENTICATION_TOKEN``),
each executor gets a secret in its environment when it is launched, and presents it with every
SUBSCRIBE (and, over HTTP, with every call, as ``Authorization: Bearer <secret>``). The secret is
``HMAC-SHA256(key, framework ID, executor ID, container ID)`` under a key only the agent knows, so the
agent keeps no table of secrets: a container ID (a random UUID per executor run) is all it needs to
check one, before and after a restart, as long as the key survives too. The key lives in
``<work_dir>/meta/executor_secret_key`` (mode 0600; created on the agent's first start), or in the
file ``--executor_secret_key`` names.

Pure: no sockets, no clock. :class:`~mesostw.agent.session.ExecutorSession` asks :meth:`ExecutorSecrets.check`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

#: The variable an executor finds its secret in (Mesos's name).
ENVIRONMENT_VARIABLE = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"
#: Where the key is kept below the agent's ``--work_dir``.
KEY_PATH = os.path.join("meta", "executor_secret_key")
KEY_BYTES = 32


class ExecutorSecrets:
    """Issues and checks per-executor secrets under one key."""

    def __init__(self, key: bytes):
        if len(key) < 16:
            raise ValueError("an executor secret key needs at least 16 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "<ExecutorSecrets>"

    @classmethod
    def generate(cls) -> ExecutorSecrets:
        """Secrets under a fresh key that lives as long as this object (an agent without a work_dir)."""
        return cls(os.urandom(KEY_BYTES))

    @classmethod
    def from_file(cls, path: str, create: bool = False) -> ExecutorSecrets:
        """Secrets under the key in ``path``; with ``create``, a new key is written there (0600)
        when the file does not exist yet."""
        try:
            with open(path, "rb") as f:
                return cls(f.read())
        except FileNotFoundError:
            if not create:
                raise
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        key = os.urandom(KEY_BYTES)
        temporary = f"{path}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        return cls(key)

    def secret(self, framework_id: str, executor_id: str, container_id: str) -> str:
        """The secret of one executor run (URL-safe text, no padding)."""
        message = "\0".join((framework_id, executor_id, container_id)).encode("utf-8", "surrogatepass")
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def check(self, framework_id: str, executor_id: str, container_id: str, presented: str | None) -> bool:
        """Whether ``presented`` is the secret of that executor run (in constant time)."""
        if not presented:
            return False
        expected = self.secret(framework_id, executor_id, container_id)
        return hmac.compare_digest(expected.encode("ascii"), presented.encode("utf-8", "replace"))


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None
