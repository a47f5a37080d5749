"""A real ZooKeeper ensemble on loopback, from Debian's ``zookeeper`` package.

Each server runs ``QuorumPeerMain`` with its own temporary data directory and
loopback ports; servers are started and stopped by PID. A server is ready
when the ``srvr`` four-letter word answers with a ``Mode:`` line.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from twisted.internet import defer, threads

from tests.helpers.processes import free_port, wait_for

CLASSPATH = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
AVAILABLE = os.path.exists("/usr/share/java/zookeeper.jar") and shutil.which("java") is not None


def four_letter(port: int, word: bytes = b"srvr", timeout: float = 1.0) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(word)
        chunks = []
        while True:
            data = s.recv(4096)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def mode(port: int) -> str | None:
    """``leader``, ``follower`` or ``standalone`` once serving; None before."""
    try:
        answer = four_letter(port)
    except OSError:
        return None
    for line in answer.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


class ZooKeeperServer:
    def __init__(self, base: str, myid: int, client_port: int, peers: list[tuple[int, int]]):
        self.myid = myid
        self.client_port = client_port
        self.data_dir = os.path.join(base, f"zk{myid}")
        os.makedirs(self.data_dir)
        lines = ["tickTime=500", "initLimit=10", "syncLimit=5", f"dataDir={self.data_dir}",
                 f"clientPort={client_port}", "clientPortAddress=127.0.0.1", "minSessionTimeout=1000",
                 "maxSessionTimeout=60000", "4lw.commands.whitelist=*", "admin.enableServer=false"]
        if len(peers) > 1:
            for index, (peer, election) in enumerate(peers, start=1):
                lines.append(f"server.{index}=127.0.0.1:{peer}:{election}")
            with open(os.path.join(self.data_dir, "myid"), "w") as f:
                f.write(str(myid))
        self.config = os.path.join(self.data_dir, "zoo.cfg")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log_path = os.path.join(base, f"zk{myid}.log")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            ["java", "-Xmx256m", "-Dzookeeper.jmx.log4j.disable=true", "-cp", CLASSPATH,
             "org.apache.zookeeper.server.quorum.QuorumPeerMain", self.config],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def stop(self, signum: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)
            self.process.wait(30)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class ZooKeeperEnsemble:
    """``size`` servers on 127.0.0.1; ``connect`` is the client connection string."""

    def __init__(self, size: int = 3):
        self.base = tempfile.mkdtemp(prefix="mesostw-zk-")
        peers = [(free_port(), free_port()) for _ in range(size)]
        self.servers = [ZooKeeperServer(self.base, i + 1, free_port(), peers) for i in range(size)]

    @property
    def connect(self) -> str:
        return ",".join(f"127.0.0.1:{s.client_port}" for s in self.servers)

    def url(self, path: str = "/mesos") -> str:
        return f"zk://{self.connect}{path}"

    def start(self) -> defer.Deferred:
        for server in self.servers:
            server.start()
        return self.ready()

    def start_blocking(self, timeout: float = 60.0) -> None:
        """Start and wait until every server serves, blocking (for ``setUpClass``, before the reactor runs)."""
        for server in self.servers:
            server.start()
        deadline = time.monotonic() + timeout
        while not all(mode(s.client_port) for s in self.servers):
            if time.monotonic() > deadline or not all(s.running for s in self.servers):
                for server in self.servers:
                    server.stop()
                raise RuntimeError(f"ZooKeeper did not serve within {timeout}s (logs in {self.base})")
            time.sleep(0.1)

    def ready(self, servers: list[ZooKeeperServer] | None = None, timeout: float = 60.0) -> defer.Deferred:
        servers = [s for s in (servers or self.servers) if s.running]

        def check() -> defer.Deferred:
            return threads.deferToThread(lambda: all(mode(s.client_port) for s in servers))

        return wait_for(check, timeout, interval=0.2, what="ZooKeeper to serve")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def leader(self) -> ZooKeeperServer | None:
        for server in self.servers:
            if server.running and mode(server.client_port) == "leader":
                return server
        return None


