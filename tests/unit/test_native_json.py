"""The native command executor's JSON and RecordIO handling (``codec.c``), through ctypes:
it reads what Python's :mod:`json` reads, refuses what it refuses, and splits a stream into records as
:class:`mesostw.executor.command.RecordReader` does.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from mesostw.executor import native
from mesostw.executor.command import RecordReader, record

#: JSON values (no NaN: it is not equal to itself; the parser is checked on it separately).
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10 ** 30), 10 ** 30) | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30)

#: Text made of JSON's own characters, which is JSON now and then.
JSONISH = st.text(alphabet=list('{}[]",:0123456789.eE+- \t\n\\/tfrulnsaNIiybu\u00e9\U0001f600'), max_size=40)


def same(a: Any, b: Any) -> bool:
    """Equal JSON values (floats compared as JSON writes them: -0.0 and 0.0 alike)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def python_reads(text: bytes) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


class NativeJSONTests(unittest.TestCase):
    def setUp(self) -> None:
        native.library()  # built with the native command executor (pip install -e .)

    @settings(max_examples=300, deadline=None)
    @given(values, st.booleans())
    def test_round_trip(self, value: Any, ascii_only: bool) -> None:
        """What json.dumps writes (escaped to ASCII or not) the library reads back as the same value."""
        text = json.dumps(value, ensure_ascii=ascii_only).encode()
        again = native.reencode(text)
        self.assertIsNotNone(again, text)
        assert again is not None
        self.assertTrue(same(json.loads(again), value), (text, again))

    @settings(max_examples=500, deadline=None)
    @given(JSONISH)
    def test_reads_what_python_reads(self, text: str) -> None:
        """JSON-like text is read by the library exactly when Python's json reads it, as the same value."""
        data = text.encode()
        again = native.reencode(data)
        self.assertEqual(again is not None, python_reads(data), data)
        if again is not None:
            expected = json.loads(data)
            got = json.loads(again)
            self.assertTrue(same(got, expected) or (isinstance(expected, float) and math.isnan(expected)), data)

    @settings(max_examples=300, deadline=None)
    @given(values, st.data())
    def test_damaged_json_is_refused_or_read_as_python_reads_it(self, value: Any, data: st.DataObject) -> None:
        """A valid text cut short or with a byte replaced: refused when Python refuses it, without crashing."""
        text = json.dumps(value).encode()
        where = data.draw(st.integers(0, len(text)))
        damaged = data.draw(st.sampled_from([text[:where], text[:where] + b"\xff" + text[where + 1:],
                                             text[:where] + b"\x01" + text[where:],
                                             text[:where] + b"\\" + text[where:]]))
        assume(b"\x00" not in damaged)
        self.assertEqual(native.reencode(damaged) is not None, python_reads(damaged), damaged)

    def test_strings(self) -> None:
        """Escapes (surrogate pairs included) are decoded to UTF-8; control characters, bad escapes and
        invalid UTF-8 are refused; a lone surrogate becomes U+FFFD."""
        self.assertEqual(native.reencode(rb'"a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00\u0000"'),
                         '"a\\"\\\\/\\b\\f\\n\\r\\t\u00e9\U0001f600\\u0000"'.encode())
        self.assertEqual(native.reencode(rb'"\ud800x"'), '"\ufffdx"'.encode())
        for bad in (b'"\x01"', rb'"\x"', rb'"\u12"', b'"\xc3"', b'"\xc0\x80"', b'"abc', b'"\xf5\x80\x80\x80"'):
            self.assertIsNone(native.reencode(bad), bad)

    def test_numbers_and_literals(self) -> None:
        """Numbers as JSON writes them, and Python's NaN and Infinity; nothing else."""
        for good in (b"0", b"-0", b"1.5e-3", b"-12E+4", b"NaN", b"-Infinity", b" [true, false, null] "):
            self.assertIsNotNone(native.reencode(good), good)
        for bad in (b"01", b"1.", b".5", b"+1", b"1e", b"-", b"tru", b"nul", b"[1,]", b'{"a" 1}', b"{1: 2}",
                    b"1 2", b"", b"[", b"]"):
            self.assertIsNone(native.reencode(bad), bad)

    def test_nesting_is_bounded(self) -> None:
        """Deep nesting is refused, not a crash (Python's json refuses it too, by recursion)."""
        self.assertIsNotNone(native.reencode(b"[" * 500 + b"]" * 500))
        self.assertIsNone(native.reencode(b"[" * 100_000 + b"]" * 100_000))
        self.assertIsNone(native.reencode(b"[" * 100_000))

    def test_duplicate_keys_last_wins(self) -> None:
        """An object keeps every member as written (the executor looks up the last one of a name, as a
        Python dict keeps it)."""
        self.assertEqual(native.reencode(b'{"a": 1, "a": 2}'), b'{"a":1,"a":2}')


class NativeRecordIOTests(unittest.TestCase):
    def setUp(self) -> None:
        native.library()  # built with the native command executor (pip install -e .)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(values, max_size=6), st.data())
    def test_records_as_the_python_reader_reads_them(self, items: list[Any], data: st.DataObject) -> None:
        """A stream of records (the last maybe cut short) gives the same values as RecordReader, and the
        bytes of the unfinished record wait."""
        stream = b"".join(record(json.dumps(item).encode()) for item in items)
        cut = data.draw(st.integers(0, len(stream)))
        reader = RecordReader()
        expected = reader.feed(stream[:cut])
        result = native.records(stream[:cut])
        self.assertIsNotNone(result)
        assert result is not None
        got, rest = result
        self.assertEqual(len(got), len(expected))
        for text, value in zip(got, expected, strict=True):
            self.assertTrue(same(json.loads(text), value))
        self.assertEqual(rest, len(reader.buffer))

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=40))
    def test_malformed_streams_end_as_in_python(self, stream: bytes) -> None:
        """Any bytes: the library refuses the stream exactly when RecordReader raises ValueError (a
        malformed record ends the stream), or reads as many records."""
        assume(len(stream) < 30 or b"\n" in stream[:30])  # the library refuses headers of 64 bytes or more
        try:
            expected: list[Any] | None = RecordReader().feed(stream)
        except (ValueError, RecursionError):
            expected = None
        result = native.records(stream)
        if expected is None:
            self.assertIsNone(result, stream)
        else:
            self.assertIsNotNone(result, stream)
            assert result is not None
            self.assertEqual(len(result[0]), len(expected), stream)

    def test_headers(self) -> None:
        """A header is a decimal length with blanks around it, as Python's int() reads it; a negative,
        missing or overlong one ends the stream."""
        self.assertEqual(native.records(b" 2 \n{}"), ([b"{}"], 0))
        self.assertEqual(native.records(b"\x0b+1_0\x0c\n[1,2,3,45]"), ([b"[1,2,3,45]"], 0))
        self.assertEqual(native.records(b"2\n{}3\n[1"), ([b"{}"], 4))
        for bad in (b"-2\n{}", b"x\n{}", b"\n{}", b"1" * 70, b"99999999999\n", b"1__0\n", b"_1\n", b"1_\n"):
            self.assertIsNone(native.records(bad), bad)

    def test_one_bad_record_loses_the_batch(self) -> None:
        """A malformed record after good ones: the whole batch is refused (RecordReader.feed raises)."""
        self.assertIsNone(native.records(b"2\n{}2\n{]"))
