"""The agent's sandbox file API, driven through a real twisted.web Site over an in-memory transport."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from urllib.parse import urlencode

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from twisted.internet import _producer_helpers, task
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web import server

from mesostw.agent.files import MAX_READ, SandboxFiles
from mesostw.http.router import Router
from tests.helpers.clocktest import ClockTestCase

SECRET = b"TOPSECRET-CONTENT"
STDOUT = b"hello\nworld\n"
ENDPOINTS = ("browse", "read", "download")


class Reply:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.code = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def json(self):
        return json.loads(self.body)


class Client:
    """Sends HTTP/1.0 requests to a Site on a StringTransport; streaming runs on a Clock-driven Cooperator."""

    def __init__(self, testcase: ClockTestCase, router: Router) -> None:
        self.clock = testcase.makeClock()
        self.site = server.Site(router, reactor=self.clock)
        cooperator = task.Cooperator(scheduler=lambda work: self.clock.callLater(0, work))
        testcase.patch(_producer_helpers, "cooperate", cooperator.cooperate)

    def start(self, endpoint: str, method: str = "GET", version: str = "HTTP/1.0",
              **params: object) -> tuple[StringTransport, object]:
        channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport()
        channel.makeConnection(transport)
        target = f"/files/{endpoint}" + (f"?{urlencode(params)}" if params else "")
        channel.dataReceived(f"{method} {target} {version}\r\nHost: agent\r\n\r\n".encode())
        return transport, channel

    def finish(self, transport: StringTransport, channel) -> Reply:
        for _ in range(10000):
            if transport.disconnecting:
                break
            self.clock.advance(0)
        assert transport.disconnecting, "the response never finished"
        channel.connectionLost(Failure(ConnectionDone()))
        return Reply(transport.value())

    def get(self, endpoint: str, method: str = "GET", **params: object) -> Reply:
        return self.finish(*self.start(endpoint, method, **params))


class SandboxFilesTests(ClockTestCase):
    def setUp(self) -> None:
        base = tempfile.mkdtemp(prefix="mesostw-files-")
        self.addCleanup(shutil.rmtree, base)
        self.root = os.path.join(base, "work", "slaves")
        self.sandbox = os.path.join(self.root, "A1", "frameworks", "F1", "executors", "E1", "runs", "C1")
        os.makedirs(os.path.join(self.sandbox, "sub", "deeper"))
        os.symlink("C1", os.path.join(os.path.dirname(self.sandbox), "latest"))
        os.symlink("A1", os.path.join(self.root, "latest"))
        self.write("stdout", STDOUT)
        self.write("stderr", b"")
        self.write("notes.txt", b"some notes\n")
        self.write("bad.log", b"ok \xff\xfe end")
        self.big = bytes(range(256)) * 1000  # 256,000 bytes, well over one 64 KiB read
        self.write("big.bin", self.big)
        self.write("sub/inner.txt", b"inner")
        self.outside = os.path.join(base, "outside")
        os.makedirs(self.outside)
        with open(os.path.join(self.outside, "hidden-file"), "wb") as f:
            f.write(SECRET)
        evil = self.root + "-evil"  # shares the root's string prefix, but is not below it
        os.makedirs(evil)
        with open(os.path.join(evil, "hidden-file"), "wb") as f:
            f.write(SECRET)
        os.symlink("/etc", os.path.join(self.sandbox, "etc"))
        os.symlink(self.outside, os.path.join(self.sandbox, "escape"))
        os.symlink(os.path.join(self.outside, "hidden-file"), os.path.join(self.sandbox, "escape-file"))
        os.symlink("../../../../../../../../outside", os.path.join(self.sandbox, "up"))
        os.symlink("stdout", os.path.join(self.sandbox, "inside-link"))
        self.router = Router()
        SandboxFiles(self.root).install(self.router)
        self.client = Client(self, self.router)

    def write(self, name: str, data: bytes) -> None:
        with open(os.path.join(self.sandbox, name), "wb") as f:
            f.write(data)

    def path(self, *names: str) -> str:
        return os.path.join(self.sandbox, *names)

    def assertRefused(self, reply: Reply, code: int) -> None:
        self.assertEqual(reply.code, code, reply.body)
        self.assertEqual(reply.headers["content-type"], "application/json")
        self.assertIn("message", reply.json())
        for leak in (SECRET, b"hidden-file", b"root:", self.outside.encode()):
            self.assertNotIn(leak, reply.body)

    # -- install

    def test_install_registers_every_endpoint(self) -> None:
        """install() adds browse, read, download and debug, each with a .json alias."""
        names = [f"/files/{n}{s}" for n in ("browse", "read", "download", "debug") for s in ("", ".json")]
        self.assertEqual(sorted(names), self.router.routes())

    # -- browse

    def test_browse_lists_fields_sorted(self) -> None:
        """browse lists every entry with Mesos's fields, sorted by path."""
        reply = self.client.get("browse.json", path=self.sandbox)
        self.assertEqual(reply.code, 200)
        listing = reply.json()
        paths = [entry["path"] for entry in listing]
        self.assertEqual(paths, sorted(paths))
        self.assertIn(self.path("stdout"), paths)
        entry = {e["path"]: e for e in listing}[self.path("stdout")]
        st_ = os.stat(self.path("stdout"))
        self.assertEqual(set(entry), {"path", "nlink", "size", "mtime", "mode", "uid", "gid"})
        self.assertEqual(entry["size"], len(STDOUT))
        self.assertEqual(entry["nlink"], st_.st_nlink)
        self.assertEqual(entry["mtime"], int(st_.st_mtime))
        self.assertEqual(entry["mode"], stat.filemode(st_.st_mode))
        self.assertIsInstance(entry["uid"], str)
        self.assertIsInstance(entry["gid"], str)
        self.assertTrue({e["path"]: e for e in listing}[self.path("sub")]["mode"].startswith("d"))

    def test_browse_trailing_slash_joins_cleanly(self) -> None:
        """A trailing slash on the directory does not double up in the entries' paths."""
        reply = self.client.get("browse", path=self.sandbox + "/sub/")
        self.assertEqual([e["path"] for e in reply.json()], [self.path("sub", "deeper"), self.path("sub", "inner.txt")])

    def test_browse_follows_inside_symlinks_only(self) -> None:
        """A symlink inside the root shows its target's metadata; one leading outside shows only the link."""
        entries = {e["path"]: e for e in self.client.get("browse", path=self.sandbox).json()}
        self.assertEqual(entries[self.path("inside-link")]["size"], len(STDOUT))
        self.assertTrue(entries[self.path("inside-link")]["mode"].startswith("-"))
        for name in ("etc", "escape", "escape-file", "up"):
            self.assertTrue(entries[self.path(name)]["mode"].startswith("l"), name)

    def test_browse_root_and_latest_links(self) -> None:
        """The root itself and paths through the agent's 'latest' links can be browsed."""
        self.assertEqual(self.client.get("browse", path=self.root).code, 200)
        latest = os.path.join(self.root, "latest", "frameworks", "F1", "executors", "E1", "runs", "latest")
        reply = self.client.get("browse", path=latest)
        self.assertEqual(reply.code, 200)
        self.assertIn(latest + "/stdout", [e["path"] for e in reply.json()])

    def test_browse_file_gives_its_entry(self) -> None:
        """Browsing a file lists just that file."""
        reply = self.client.get("browse", path=self.path("stdout"))
        self.assertEqual([e["path"] for e in reply.json()], [self.path("stdout")])

    def test_browse_missing_path(self) -> None:
        """browse without a path, or with an empty one, is a 400."""
        self.assertRefused(self.client.get("browse"), 400)
        self.assertRefused(self.client.get("browse", path=""), 400)

    def test_browse_unknown_path(self) -> None:
        """browse of a path that does not exist is a 404."""
        self.assertRefused(self.client.get("browse", path=self.path("nope")), 404)

    # -- read

    def test_read_without_offset_gives_size(self) -> None:
        """Without an offset, read answers no data and the file's size as the offset."""
        self.assertEqual(self.client.get("read", path=self.path("stdout")).json(), {"data": "", "offset": 12})

    def test_read_offset_minus_one_gives_size(self) -> None:
        """offset=-1 answers no data and the file's size, whatever the length."""
        reply = self.client.get("read.json", path=self.path("stdout"), offset=-1, length=5)
        self.assertEqual(reply.json(), {"data": "", "offset": len(STDOUT)})

    def test_read_offset_and_length(self) -> None:
        """read returns length bytes from offset, and echoes the offset."""
        reply = self.client.get("read", path=self.path("stdout"), offset=6, length=3)
        self.assertEqual(reply.json(), {"data": "wor", "offset": 6})

    def test_read_without_length_reads_to_eof(self) -> None:
        """Without a length (or with Mesos's -1), read goes to the end of the file."""
        self.assertEqual(self.client.get("read", path=self.path("stdout"), offset=6).json()["data"], "world\n")
        reply = self.client.get("read", path=self.path("stdout"), offset=0, length=-1)
        self.assertEqual(reply.json()["data"], STDOUT.decode())

    def test_read_zero_length(self) -> None:
        """length=0 reads nothing at the given offset."""
        self.assertEqual(self.client.get("read", path=self.path("stdout"), offset=2, length=0).json(),
                         {"data": "", "offset": 2})

    def test_read_offset_beyond_eof(self) -> None:
        """An offset at or past the end answers the file's size and no data."""
        for offset in (12, 13, 10**18):
            reply = self.client.get("read", path=self.path("stdout"), offset=offset, length=10)
            self.assertEqual(reply.json(), {"offset": len(STDOUT), "data": ""})

    def test_read_length_is_capped(self) -> None:
        """One read returns at most 16 pages (64 KiB)."""
        self.write("text.log", b"x" * (3 * MAX_READ))
        for length in (None, 10 * MAX_READ):
            params = {"path": self.path("text.log"), "offset": 5}
            if length is not None:
                params["length"] = length
            reply = self.client.get("read", **params)
            self.assertEqual(reply.json(), {"data": "x" * MAX_READ, "offset": 5})
        self.assertEqual(MAX_READ, 65536)

    def test_read_invalid_utf8_is_replaced(self) -> None:
        """Bytes that are not UTF-8 come back as U+FFFD rather than breaking the JSON."""
        reply = self.client.get("read", path=self.path("bad.log"), offset=0)
        self.assertEqual(reply.json()["data"], "ok \ufffd\ufffd end")

    def test_read_bad_numbers(self) -> None:
        """Non-integer offsets or lengths, and negatives other than -1, are 400s."""
        for name, value in [("offset", "abc"), ("offset", "1.5"), ("offset", ""), ("offset", "1_0"),
                            ("offset", "-2"), ("offset", "9" * 30), ("length", "x"), ("length", "-2"),
                            ("length", " 3")]:
            reply = self.client.get("read", path=self.path("stdout"), **{name: value})
            self.assertRefused(reply, 400)
            self.assertNotIn(b"hello", reply.body)

    def test_read_missing_path(self) -> None:
        """read without a path is a 400."""
        self.assertRefused(self.client.get("read", offset=0), 400)

    def test_read_unknown_file(self) -> None:
        """read of a file that does not exist is a 404."""
        self.assertRefused(self.client.get("read", path=self.path("nope"), offset=0), 404)
        self.assertRefused(self.client.get("read", path=self.path("stdout", "below-a-file"), offset=0), 404)

    def test_read_directory(self) -> None:
        """read of a directory is a 400."""
        self.assertRefused(self.client.get("read", path=self.path("sub"), offset=0), 400)

    def test_read_fifo_is_refused_without_blocking(self) -> None:
        """A FIFO in a sandbox is refused with a 400 instead of hanging the reactor."""
        os.mkfifo(self.path("pipe"))
        self.assertRefused(self.client.get("read", path=self.path("pipe"), offset=0), 400)
        self.assertRefused(self.client.get("download", path=self.path("pipe")), 400)

    def test_read_through_links_inside_root(self) -> None:
        """Symlinks that stay inside the root, including the 'latest' links, are followed."""
        reply = self.client.get("read", path=self.path("inside-link"), offset=0)
        self.assertEqual(reply.json()["data"], STDOUT.decode())
        latest = os.path.join(self.root, "latest", "frameworks", "F1", "executors", "E1", "runs", "latest", "stdout")
        self.assertEqual(self.client.get("read", path=latest, offset=0).json()["data"], STDOUT.decode())

    # -- download

    def test_download_large_file(self) -> None:
        """download streams the whole file with its length, type and attachment name."""
        reply = self.client.get("download", path=self.path("big.bin"))
        self.assertEqual(reply.code, 200)
        self.assertEqual(reply.body, self.big)
        self.assertEqual(reply.headers["content-length"], str(len(self.big)))
        self.assertEqual(reply.headers["content-type"], "application/octet-stream")
        self.assertEqual(reply.headers["content-disposition"], "attachment; filename=big.bin")

    def test_download_guesses_content_type(self) -> None:
        """The Content-Type comes from the extension; a name without one is application/octet-stream."""
        reply = self.client.get("download.json", path=self.path("notes.txt"))
        self.assertEqual((reply.headers["content-type"], reply.body), ("text/plain", b"some notes\n"))
        reply = self.client.get("download", path=self.path("stdout"))
        self.assertEqual((reply.headers["content-type"], reply.body), ("application/octet-stream", STDOUT))
        reply = self.client.get("download", path=self.path("stderr"))
        self.assertEqual((reply.code, reply.body, reply.headers["content-length"]), (200, b"", "0"))

    def test_download_odd_name(self) -> None:
        """A name that is not a plain token is quoted, with an RFC 5987 form for non-ASCII."""
        self.write('wé "x".txt', b"odd")
        reply = self.client.get("download", path=self.path('wé "x".txt'))
        self.assertEqual(reply.body, b"odd")
        self.assertEqual(reply.headers["content-disposition"],
                         "attachment; filename=\"w_ _x_.txt\"; filename*=UTF-8''w%C3%A9%20%22x%22.txt")

    def test_download_head(self) -> None:
        """HEAD gives download's headers and no body."""
        reply = self.client.get("download", method="HEAD", path=self.path("big.bin"))
        self.assertEqual((reply.code, reply.body), (200, b""))
        self.assertEqual(reply.headers["content-length"], str(len(self.big)))

    def test_download_sends_the_size_it_announced(self) -> None:
        """A file that grows during a download is sent up to the size announced in Content-Length."""
        transport, channel = self.client.start("download", path=self.path("big.bin"))
        with open(self.path("big.bin"), "ab") as f:
            f.write(b"appended later")
        reply = self.client.finish(transport, channel)
        self.assertEqual(reply.body, self.big)

    def test_download_of_a_file_that_shrinks_ends(self) -> None:
        """A file truncated during a download ends the response and closes the connection."""
        transport, channel = self.client.start("download", path=self.path("big.bin"))
        os.truncate(self.path("big.bin"), 1000)
        reply = self.client.finish(transport, channel)
        self.assertTrue(self.big.startswith(reply.body))
        self.assertLess(len(reply.body), len(self.big))

    def test_download_short_of_its_length_drops_a_kept_alive_connection(self) -> None:
        """On HTTP/1.1 a body cut short by truncation closes the connection, so it cannot be misread."""
        transport, channel = self.client.start("download", version="HTTP/1.1", path=self.path("big.bin"))
        os.truncate(self.path("big.bin"), 1000)
        reply = self.client.finish(transport, channel)
        self.assertEqual(reply.headers["content-length"], str(len(self.big)))
        self.assertTrue(self.big.startswith(reply.body))

    def test_download_keeps_a_complete_connection_open(self) -> None:
        """On HTTP/1.1 a complete download leaves the connection open for the next request."""
        transport, channel = self.client.start("download", version="HTTP/1.1", path=self.path("stdout"))
        for _ in range(100):
            self.client.clock.advance(0)
        self.assertFalse(transport.disconnecting)
        self.assertTrue(transport.value().endswith(b"\r\n\r\n" + STDOUT))
        channel.connectionLost(Failure(ConnectionDone()))

    def test_download_directory(self) -> None:
        """download of a directory is a 400."""
        self.assertRefused(self.client.get("download", path=self.path("sub")), 400)

    def test_download_missing_and_unknown(self) -> None:
        """download without a path is a 400, of an unknown file a 404."""
        self.assertRefused(self.client.get("download"), 400)
        self.assertRefused(self.client.get("download", path=self.path("nope")), 404)

    # -- debug

    def test_debug_maps_root(self) -> None:
        """debug maps the served root to its real path."""
        self.assertEqual(self.client.get("debug").json(), {self.root: os.path.realpath(self.root)})
        self.assertEqual(self.client.get("debug.json").code, 200)

    # -- confinement

    def test_escapes_are_refused(self) -> None:
        """Every way out of the root is a 403 on every endpoint, and reveals nothing."""
        escapes = [
            "/etc/passwd",
            "/etc",
            self.path("etc", "passwd"),
            self.path("etc"),
            self.path("escape", "hidden-file"),
            self.path("escape"),
            self.path("escape-file"),
            self.path("up", "hidden-file"),
            self.path("..", "..", "..", "..", "..", "..", "..", "..", "..", "..", "etc", "passwd"),
            self.root + "/..",
            self.path("sub", "..", "stdout"),
            self.root + "-evil/hidden-file",
            self.root + "-evil",
            os.path.join(self.outside, "hidden-file"),
        ]
        for endpoint in ENDPOINTS:
            for path in escapes:
                reply = self.client.get(endpoint, path=path, offset=0)
                self.assertRefused(reply, 403)

    def test_malformed_paths_are_refused(self) -> None:
        """NUL bytes, relative paths and paths over 4096 bytes are 400s."""
        malformed = [
            self.path("stdout") + "\x00.txt",
            "\x00/etc/passwd",
            "stdout",
            "etc/passwd",
            "../../etc/passwd",
            self.sandbox + "/" + "a" * 5000,
            self.sandbox + "/" + "é" * 2100,  # under 4096 characters, over 4096 bytes
        ]
        for endpoint in ENDPOINTS:
            for path in malformed:
                self.assertRefused(self.client.get(endpoint, path=path, offset=0), 400)

    def test_overlong_component_is_refused(self) -> None:
        """A path component longer than the filesystem allows is a 4xx, not a 500."""
        reply = self.client.get("read", path=self.path("x" * 300), offset=0)
        self.assertIn(reply.code, (400, 404))

    def test_symlink_swapped_in_after_the_check(self) -> None:
        """Even if resolution was fooled, opening never follows a symlink out of the root."""
        os.symlink(self.outside, self.path("swapped"))
        self.patch(os.path, "realpath", os.path.abspath)  # stale resolution: it sees no symlinks
        for endpoint in ENDPOINTS:
            for path in (self.path("swapped", "hidden-file"), self.path("escape-file")):
                self.assertRefused(self.client.get(endpoint, path=path, offset=0), 403)

    @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        prefix=st.sampled_from(["", "/", "ROOT", "SANDBOX", "SANDBOX", "LATEST", "/etc", "OUTSIDE"]),
        parts=st.lists(
            st.one_of(
                *[st.sampled_from([".", "", "stdout", "sub", "inner.txt", "deeper", "inside-link", "latest"])] * 4,
                st.sampled_from(["..", "etc", "passwd", "escape", "escape-file", "up", "hidden-file",
                                 "\x00", "é", "☃", "-evil", "/"]),
                st.text(max_size=6),
            ),
            max_size=4,
        ),
        endpoint=st.sampled_from(ENDPOINTS),
    )
    def test_random_paths_never_leave_the_root(self, prefix: str, parts: list[str], endpoint: str) -> None:
        """No path string, however built, gets a 200 for anything outside the root or leaks its content."""
        latest = os.path.join(self.root, "latest", "frameworks", "F1", "executors", "E1", "runs", "latest")
        prefix = {"ROOT": self.root, "SANDBOX": self.sandbox, "LATEST": latest, "OUTSIDE": self.outside}.get(
            prefix, prefix)
        path = prefix + "/" + "/".join(parts) if parts else prefix
        reply = self.client.get(endpoint, path=path, offset=0)
        event(f"{endpoint} {reply.code}")
        self.assertLess(reply.code, 500, reply.body)
        self.assertNotIn(SECRET, reply.body)
        self.assertNotIn(b"hidden-file", reply.body)
        if reply.code == 200:
            real_root = os.path.realpath(self.root)
            real = os.path.realpath(path)
            self.assertEqual(os.path.commonpath([real, real_root]), real_root)
            self.assertNotIn("\x00", path)
            self.assertNotIn("..", path.split("/"))
