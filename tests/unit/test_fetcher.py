"""The fetcher's blocking core on local files: archives, executables, output files, the cache, refusals.

(http(s) URIs are fetched in the integration tests, from a real server on loopback.)
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
import zipfile

from twisted.trial import unittest

from mesostw.agent.fetcher import URI, Cache, FetchError, fetch_all


class FetcherTests(unittest.TestCase):
    def setUp(self) -> None:
        self.source = os.path.abspath(self.mktemp())
        self.sandbox = os.path.abspath(self.mktemp())
        os.makedirs(self.source)
        os.makedirs(self.sandbox)

    def file(self, name: str, data: bytes) -> str:
        path = os.path.join(self.source, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def tarball(self, name: str, members: dict[str, bytes]) -> str:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for member, data in members.items():
                info = tarfile.TarInfo(member)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return self.file(name, buffer.getvalue())

    def fetch(self, *uris: URI, cache: Cache | None = None, home: str | None = None) -> None:
        fetch_all(list(uris), self.sandbox, None, cache, home)

    def read(self, name: str) -> bytes:
        with open(os.path.join(self.sandbox, name), "rb") as f:
            return f.read()

    def test_archives_are_extracted(self) -> None:
        """tar.gz, zip and gz archives are extracted into the sandbox (the archive kept), unless extract is off."""
        tgz = self.tarball("app.tgz", {"app/run.sh": b"run"})
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as bundle:
            bundle.writestr("lib/x.txt", "x")
        archive = self.file("lib.zip", buffer.getvalue())
        packed = self.file("notes.txt.gz", gzip.compress(b"notes"))
        kept = self.tarball("raw.tar.gz", {"inside": b"i"})
        self.fetch(URI(f"file://{tgz}"), URI(archive), URI(packed), URI(kept, extract=False))
        self.assertEqual(self.read("app/run.sh"), b"run")
        self.assertEqual(self.read("lib/x.txt"), b"x")
        self.assertEqual(self.read("notes.txt"), b"notes")
        self.assertTrue(os.path.exists(os.path.join(self.sandbox, "raw.tar.gz")))
        self.assertFalse(os.path.exists(os.path.join(self.sandbox, "inside")))

    def test_executable_and_output_file(self) -> None:
        """executable marks the file executable (and never extracts it); output_file names it."""
        script = self.file("tool.tar.gz", b"#!/bin/sh\n")
        self.fetch(URI(script, executable=True, output_file="bin/tool"))
        mode = os.stat(os.path.join(self.sandbox, "bin/tool")).st_mode
        self.assertTrue(mode & stat.S_IXUSR)

    def test_nothing_lands_outside_the_sandbox(self) -> None:
        """Archive members and output files that would escape the sandbox are refused."""
        evil = self.tarball("evil.tar.gz", {"../escaped": b"x"})
        with self.assertRaises(FetchError) as raised:
            self.fetch(URI(evil))
        self.assertIn("Failed to fetch", str(raised.exception))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as bundle:
            bundle.writestr("../../escaped.txt", "x")
        with self.assertRaises(FetchError) as raised:
            self.fetch(URI(self.file("evil.zip", buffer.getvalue())))
        self.assertIn("outside the sandbox", str(raised.exception))
        for bad in ("../x", "/etc/x", "a//b"):
            with self.assertRaises(FetchError):
                URI.from_json({"value": "file:///x", "output_file": bad})
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(self.sandbox), "escaped")))

    def test_unfetchable_uris_say_why(self) -> None:
        """A missing file, an unsupported scheme and a relative path without --frameworks_home each fail
        with the URI and the reason; relative paths are taken under --frameworks_home."""
        for uri, words in ((URI("/nonexistent/x.txt"), "no such file"), (URI("ftp://h/x"), "unsupported scheme"),
                           (URI("x.txt"), "--frameworks_home")):
            with self.assertRaises(FetchError) as raised:
                self.fetch(uri)
            self.assertIn(f"Failed to fetch '{uri.value}'", str(raised.exception))
            self.assertIn(words, str(raised.exception))
        self.file("relative.txt", b"r")
        self.fetch(URI("relative.txt"), home=self.source)
        self.assertEqual(self.read("relative.txt"), b"r")

    def test_cache_serves_again_and_stays_bounded(self) -> None:
        """Cached URIs are served from the cache after the first fetch; least recently used entries go first
        when it is full; a file larger than the whole cache is used without being kept."""
        cache = Cache(os.path.abspath(self.mktemp()), max_bytes=10)
        a, b, c = (self.file(n, b"x" * 4) for n in ("a.bin", "b.bin", "c.bin"))
        big = self.file("big.bin", b"y" * 20)
        self.fetch(URI(a, cache=True), URI(b, cache=True), cache=cache)
        os.unlink(a)  # served from the cache from now on
        self.fetch(URI(a, cache=True), cache=cache)
        self.fetch(URI(c, cache=True), cache=cache)  # evicts b, the least recently used
        self.assertEqual(cache.size, 8)
        self.assertIsNone(cache.get(Cache.key(None, b)))
        self.assertIsNotNone(cache.get(Cache.key(None, a)))
        self.fetch(URI(big, cache=True), cache=cache)
        self.assertEqual(self.read("big.bin"), b"y" * 20)
        self.assertEqual(cache.size, 8)
        self.assertEqual(Cache(cache.directory, 10).size, 8)  # an agent restart finds the cache as it was
