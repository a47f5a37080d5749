"""Mesos's zk:// URL grammar (``zookeeper/url.hpp``): hosts, path, credentials, ``file://`` indirection."""

from __future__ import annotations

import os
import shutil
import string
import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from mesostw.zk.url import ZkUrl, is_zk, parse_zk_url


class HostsAndPathTests(unittest.TestCase):
    def test_single_host_and_path(self) -> None:
        """One host:port and a path give those hosts and that path, without credentials."""
        url = parse_zk_url("zk://127.0.0.1:2181/mesos")
        self.assertEqual(url, ZkUrl("127.0.0.1:2181", "/mesos"))
        self.assertIsNone(url.auth)

    def test_several_hosts_are_kept_verbatim(self) -> None:
        """A comma-separated host list is kazoo's connection string as written."""
        url = parse_zk_url("zk://h1:2181,h2:2182,10.0.0.3:2183/mesos")
        self.assertEqual(url.hosts, "h1:2181,h2:2182,10.0.0.3:2183")
        self.assertEqual(url.path, "/mesos")

    def test_ipv6_host(self) -> None:
        """A bracketed IPv6 address is split at its last colon."""
        self.assertEqual(parse_zk_url("zk://[::1]:2181/m").hosts, "[::1]:2181")

    def test_default_path_is_root(self) -> None:
        """Without a path (or with a lone slash) the path is ``/``."""
        self.assertEqual(parse_zk_url("zk://h:2181").path, "/")
        self.assertEqual(parse_zk_url("zk://h:2181/").path, "/")

    def test_trailing_and_repeated_slashes_are_dropped(self) -> None:
        """``/a//b/`` is the znode ``/a/b``: ZooKeeper refuses empty components and trailing slashes."""
        self.assertEqual(parse_zk_url("zk://h:2181/mesos/").path, "/mesos")
        self.assertEqual(parse_zk_url("zk://h:2181//a//b/").path, "/a/b")

    def test_nested_path(self) -> None:
        """Everything from the first slash is the path, slashes included."""
        self.assertEqual(parse_zk_url("zk://h:2181/dc1/prod/mesos").path, "/dc1/prod/mesos")

    def test_at_sign_in_the_path_is_part_of_the_path(self) -> None:
        """As in Mesos, the path starts at the first slash, so it may hold ``@``."""
        url = parse_zk_url("zk://h:2181/mesos@dc1")
        self.assertEqual((url.hosts, url.path, url.username), ("h:2181", "/mesos@dc1", None))

    def test_surrounding_whitespace_is_trimmed(self) -> None:
        """The URL is trimmed first, as Mesos does."""
        self.assertEqual(parse_zk_url("  zk://h:2181/mesos\n"), ZkUrl("h:2181", "/mesos"))

    def test_str_shows_the_url(self) -> None:
        """``str`` renders the normalised URL."""
        self.assertEqual(str(parse_zk_url("zk://h:1,g:2/a/")), "zk://h:1,g:2/a")


class CredentialTests(unittest.TestCase):
    def test_user_and_password(self) -> None:
        """``user:pass@`` gives ZooKeeper digest credentials."""
        url = parse_zk_url("zk://alice:secret@h1:2181,h2:2181/mesos")
        self.assertEqual((url.username, url.password, url.hosts, url.path),
                         ("alice", "secret", "h1:2181,h2:2181", "/mesos"))
        self.assertEqual(url.auth, ("digest", "alice:secret"))

    def test_last_at_sign_ends_the_credentials(self) -> None:
        """The password may hold ``@``: the credentials end at the last ``@`` before the path."""
        url = parse_zk_url("zk://alice:p@ss@word@h:2181/mesos")
        self.assertEqual((url.username, url.password, url.hosts), ("alice", "p@ss@word", "h:2181"))

    def test_password_may_hold_colons(self) -> None:
        """The user name ends at the first colon; the rest, colons included, is the password."""
        url = parse_zk_url("zk://alice:a:b:c@h:2181/")
        self.assertEqual((url.username, url.password), ("alice", "a:b:c"))
        self.assertEqual(url.auth, ("digest", "alice:a:b:c"))

    def test_user_without_password(self) -> None:
        """``user@`` is a user with an empty password."""
        url = parse_zk_url("zk://alice@h:2181/mesos")
        self.assertEqual(url.username, "alice")
        self.assertEqual(url.auth, ("digest", "alice:"))

    def test_str_hides_the_password(self) -> None:
        """Rendering a URL (e.g. in logs) never shows the password."""
        rendered = str(parse_zk_url("zk://alice:hunter2@h:2181/mesos"))
        self.assertEqual(rendered, "zk://alice:***@h:2181/mesos")
        self.assertNotIn("hunter2", rendered)


class ErrorTests(unittest.TestCase):
    def assertRefused(self, text: str, *fragments: str) -> None:
        with self.assertRaises(ValueError) as caught:
            parse_zk_url(text)
        for fragment in fragments:
            self.assertIn(fragment, str(caught.exception))

    def test_not_zk_scheme(self) -> None:
        """Anything but zk:// (or file://) is refused, naming what was given."""
        self.assertRefused("http://h:2181/mesos", "expecting a zk:// URL", "http://h:2181/mesos")
        self.assertRefused("h:2181/mesos", "expecting a zk:// URL")
        self.assertRefused("ZK://h:2181/mesos", "expecting a zk:// URL")

    def test_no_hosts(self) -> None:
        """A URL without hosts is refused."""
        self.assertRefused("zk:///mesos", "at least one host:port")
        self.assertRefused("zk://", "at least one host:port")
        self.assertRefused("zk://alice:pw@/mesos", "at least one host:port")

    def test_bad_ports(self) -> None:
        """A missing, non-numeric or out-of-range port names the offending server."""
        self.assertRefused("zk://h/mesos", "'h'", "host:port")
        self.assertRefused("zk://h:abc/mesos", "'h:abc'")
        self.assertRefused("zk://h:0/mesos", "'h:0'")
        self.assertRefused("zk://h:65536/mesos", "'h:65536'")
        self.assertRefused("zk://h:/mesos", "'h:'")
        self.assertRefused("zk://:2181/mesos", "':2181'")

    def test_empty_host_in_list(self) -> None:
        """An empty entry in the host list is refused."""
        self.assertRefused("zk://h1:2181,,h2:2181/mesos", "''")

    def test_credentials_without_user(self) -> None:
        """Credentials need a user name."""
        self.assertRefused("zk://:pw@h:2181/mesos", "user name")
        self.assertRefused("zk://@h:2181/mesos", "user name")

    def test_relative_path_components(self) -> None:
        """``.`` and ``..`` components, which ZooKeeper refuses, are refused here with the path."""
        self.assertRefused("zk://h:2181/a/../b", "relative", "/a/../b")
        self.assertRefused("zk://h:2181/./a", "relative")


class FileIndirectionTests(unittest.TestCase):
    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="mesostw-zk-url-")
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.files = 0

    def write(self, content: str) -> str:
        self.files += 1
        path = os.path.join(self.directory, f"zk{self.files}")
        with open(path, "w") as f:
            f.write(content)
        return path

    def test_file_holding_a_url(self) -> None:
        """``file:///path`` reads the URL from that file (whitespace and newline trimmed)."""
        path = self.write("  zk://alice:pw@h1:2181,h2:2181/mesos\n")
        url = parse_zk_url(f"file://{path}")
        self.assertEqual(url, ZkUrl("h1:2181,h2:2181", "/mesos", "alice", "pw"))
        self.assertTrue(is_zk(f"file://{path}"))

    def test_missing_file(self) -> None:
        """A file that cannot be read is an error naming it; ``is_zk`` says no."""
        path = os.path.join(self.directory, "missing")
        with self.assertRaises(ValueError) as caught:
            parse_zk_url(f"file://{path}")
        self.assertIn(path, str(caught.exception))
        self.assertFalse(is_zk(f"file://{path}"))

    def test_file_holding_another_file_url(self) -> None:
        """Indirection is one level deep: a file holding a file:// URL is refused."""
        inner = self.write("zk://h:2181/mesos")
        outer = self.write(f"file://{inner}")
        with self.assertRaises(ValueError) as caught:
            parse_zk_url(f"file://{outer}")
        self.assertIn("file://", str(caught.exception))
        self.assertFalse(is_zk(f"file://{outer}"))

    def test_file_holding_a_plain_address(self) -> None:
        """A file holding ``host:port`` is not a ZooKeeper URL."""
        path = self.write("127.0.0.1:5050\n")
        self.assertFalse(is_zk(f"file://{path}"))
        with self.assertRaises(ValueError):
            parse_zk_url(f"file://{path}")


class IsZkTests(unittest.TestCase):
    def test_is_zk(self) -> None:
        """``is_zk`` tells a ZooKeeper ``--master`` from a plain address, ignoring whitespace."""
        self.assertTrue(is_zk("zk://h:2181/mesos"))
        self.assertTrue(is_zk("  zk://h:2181/mesos "))
        self.assertFalse(is_zk("127.0.0.1:5050"))
        self.assertFalse(is_zk("http://h:5050"))
        self.assertFalse(is_zk(""))
        self.assertFalse(is_zk(None))


# -- property: generated valid URLs parse back into their parts ---------------------------

_NAME = string.ascii_lowercase + string.digits + "-"
hostnames = st.one_of(
    st.builds(".".join, st.lists(st.text(_NAME, min_size=1, max_size=8), min_size=1, max_size=3)),
    st.builds(lambda a, b, c, d: f"{a}.{b}.{c}.{d}", *[st.integers(0, 255)] * 4),
)
servers = st.builds(lambda host, port: f"{host}:{port}", hostnames, st.integers(1, 65535))
components = st.text(string.ascii_letters + string.digits + "-_.@:", min_size=1, max_size=8).filter(
    lambda c: c not in (".", ".."))
paths = st.lists(components, max_size=4)
usernames = st.text(string.ascii_letters + string.digits + "_-.@", min_size=1, max_size=8)
passwords = st.text(string.ascii_letters + string.digits + "_-.:@!", max_size=12)


class RoundTripTests(unittest.TestCase):
    @settings(max_examples=150, deadline=None)
    @given(st.lists(servers, min_size=1, max_size=4), paths, st.none() | st.tuples(usernames, passwords),
           st.booleans())
    def test_round_trip(self, hosts: list[str], parts: list[str], credentials: tuple[str, str] | None,
                        trailing_slash: bool) -> None:
        """Any valid URL built from hosts, path and credentials parses back into exactly those."""
        path = "/" + "/".join(parts)
        text = f"zk://{':'.join(credentials) + '@' if credentials else ''}{','.join(hosts)}"
        text += path + ("/" if trailing_slash and parts else "")
        url = parse_zk_url(text)
        self.assertEqual(url.hosts, ",".join(hosts))
        self.assertEqual(url.path, path)
        if credentials is None:
            self.assertIsNone(url.username)
            self.assertIsNone(url.auth)
        else:
            self.assertEqual((url.username, url.password), credentials)
            self.assertEqual(url.auth, ("digest", ":".join(credentials)))
        self.assertTrue(is_zk(text))
        # The rendering (password hidden) parses back to the same hosts and path.
        again = parse_zk_url(str(url))
        self.assertEqual((again.hosts, again.path, again.username), (url.hosts, url.path, url.username))
