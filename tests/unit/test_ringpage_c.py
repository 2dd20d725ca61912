"""The C page decoder (_ringpage.c) against the pure-Python one it must equal.

On every page recorded from real kernels (tests/fixtures/*-raw, made by
tools/record_ftrace_stream.py), and on those pages damaged at random (bytes
changed, cut short, read with another page layout or byte order): both give
the same records, counters and missed flags, or the same exception. More
rounds: HYBRIDTRACE_FUZZ_ROUNDS=100000.
"""

from __future__ import annotations

import os
import random
import struct
import zlib
from typing import Any, List, Optional, Tuple

import attrs
import pytest

from hybridtrace.backends.ftrace import raw_reader, raw_records
from hybridtrace.backends.ftrace.format import EventFormat, parse_format
from hybridtrace.backends.ftrace.raw_reader import Timeline
from hybridtrace.backends.ftrace.raw_records import RawRecord, RecordDecoder
from hybridtrace.backends.ftrace.ring_page import PageLayout
from tests.unit.c_modules import require_built
from tests.unit.test_ftrace_raw import DEMO_HEAD, load

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
ROUNDS = int(os.environ.get("HYBRIDTRACE_FUZZ_ROUNDS", "1500"))


def _recordings() -> List[Tuple[str, str]]:
    found = []
    for group in ("ftrace_stream", "ftrace_tasks"):
        top = os.path.join(FIXTURES, group)
        for name in sorted(os.listdir(top)):
            for kind in ("exec", "open"):
                pages = os.path.join(top, name, f"{kind}.pages")
                if name.endswith("-raw") and os.path.isdir(pages):
                    found.append((os.path.join(group, name), kind))
    return found


RECORDINGS = _recordings()


def _load(base: str, kind: str) -> Tuple[PageLayout, List[EventFormat], List[Tuple[int, bytes]]]:
    group, name = base.split("/")
    return load(name, kind, os.path.join(FIXTURES, group))


@pytest.fixture(autouse=True)
def _needs_c() -> None:
    require_built(raw_records.c_loop() is not None, "_ringpage")


def _both(formats: List[EventFormat], layout: PageLayout) -> Tuple[RecordDecoder, RecordDecoder]:
    py, c = RecordDecoder(formats, layout, use_c=False), RecordDecoder(formats, layout)
    assert c.compiled and not py.compiled
    return py, c


def _run(decoder: RecordDecoder, page: bytes, cpu: int) -> Tuple[Any, ...]:
    out: List[RawRecord] = []
    try:
        missed: Optional[int] = decoder.decode_page(page, cpu, out)
        error = None
    except Exception as exc:  # compared, not hidden
        missed, error = None, type(exc)
    return missed, error, out, decoder.unknown, decoder.short


def test_recordings_cover_both_tiers_and_kinds() -> None:
    assert len(RECORDINGS) >= 10


@pytest.mark.parametrize("base,kind", RECORDINGS)
def test_recorded_pages_decode_the_same(base: str, kind: str) -> None:
    layout, formats, pages = _load(base, kind)
    py, c = _both(formats, layout)
    total = 0
    for cpu, page in pages:
        want, got = _run(py, page, cpu), _run(c, page, cpu)
        assert got == want
        assert want[1] is None
        for a, b in zip(want[2], got[2]):  # same types too (bytes vs int, frozenset)
            assert [type(v) for v in a] == [type(v) for v in b]
            assert {k: type(v) for k, v in a[5].items()} == {k: type(v) for k, v in b[5].items()}
        total += len(want[2])
    assert total > 10


def _mutate(rng: random.Random, page: bytes, data_offset: int) -> bytes:
    data = bytearray(page)
    how = rng.randrange(5)
    if how == 0:  # random bytes anywhere
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif how == 1:  # an entry header's type_len or length word
        for _ in range(rng.randint(1, 4)):
            pos = data_offset + 4 * rng.randrange((len(data) - data_offset) // 4)
            kind = rng.choice((0, 1, 2, 28, 29, 30, 31, rng.randrange(32)))
            data[pos] = (data[pos] & 0xE0) | kind
            if rng.random() < 0.5 and pos + 8 <= len(data):
                data[pos + 4:pos + 8] = rng.randrange(1 << 32).to_bytes(4, "little")
    elif how == 2:  # the commit: missed flags, past the page, zero
        value = rng.choice((0, len(data), 1 << 31 | 40, 1 << 30, (1 << 32) - 1,
                            rng.randrange(1 << 64)))
        data[8:16] = value.to_bytes(8, "little")
    elif how == 3:  # a dynamic string's location word inside a record
        pos = rng.randrange(data_offset, len(data) - 4)
        loc = rng.randrange(1 << 16) << 16 | rng.randrange(1 << 16)
        data[pos:pos + 4] = loc.to_bytes(4, "little")
    else:  # the header's timestamp near the top of 64 bits
        data[0:8] = ((1 << 64) - rng.randrange(1 << 40)).to_bytes(8, "little")
    cut = len(data) if rng.random() < 0.6 else rng.randrange(0, len(data) + 1)
    return bytes(data[:cut])


@pytest.mark.parametrize("base,kind", RECORDINGS[:: max(1, len(RECORDINGS) // 4)])
def test_damaged_pages_give_the_same_or_the_same_error(base: str, kind: str) -> None:
    layout, formats, pages = _load(base, kind)
    layouts = [layout, attrs.evolve(layout, order=">"),
               PageLayout(commit_offset=8, commit_size=4, data_offset=12,
                          page_size=layout.page_size)]
    rng = random.Random(zlib.crc32(f"{base}/{kind}".encode()))
    decoders = [_both(formats, lay) for lay in layouts]
    for _ in range(ROUNDS):
        cpu, page = rng.choice(pages)
        py, c = rng.choice(decoders)
        damaged = _mutate(rng, page, py.layout.data_offset)
        assert _run(c, damaged, cpu) == _run(py, damaged, cpu)


_DEMO = parse_format(
    DEMO_HEAD +
    "\tfield:__data_loc char[] s;\toffset:8;\tsize:4;\tsigned:0;\n"
    "\tfield:char c[4];\toffset:12;\tsize:4;\tsigned:0;\n"
    "\tfield:s8 b;\toffset:16;\tsize:1;\tsigned:1;\n"
    "\tfield:s16 h;\toffset:18;\tsize:2;\tsigned:1;\n"
    "\tfield:u64 q;\toffset:20;\tsize:8;\tsigned:0;\n\n"
    'print fmt: "%s", __get_str(s)\n', "demo")


def _page(order: str, stamp: int, deltas: List[int], string: bytes) -> bytes:
    """A page of demo records, each ``deltas[i]`` after the one before."""
    body = b""
    for delta in deltas:
        rec = struct.pack(order + "HxxiI4sbxhQ", 9, -5, len(string) << 16 | 28, b"ab\0d", -3,
                          -2, (1 << 64) - 1) + string
        rec += b"\0" * (-len(rec) % 4)
        body += struct.pack(order + "I", (delta << 5) | (len(rec) // 4)) + rec
    head = struct.pack(order + "QQ", stamp, len(body) | 1 << 31)
    return (head + body).ljust(4096, b"\0")


@pytest.mark.parametrize("order", ["<", ">"])
def test_every_field_kind_both_byte_orders_and_time_past_64_bits(order: str) -> None:
    layout = PageLayout(order=order)
    py, c = _both([_DEMO], layout)
    page = _page(order, (1 << 64) - 3, [1, 2, (1 << 27) - 1], b"hi\0")
    want, got = _run(py, page, 1), _run(c, page, 1)
    assert got == want
    missed, _, records, _, _ = got
    assert missed == 1 << 31
    assert [r[0] for r in records] == [(1 << 64) - 2, 1 << 64, (1 << 64) + (1 << 27) - 1]
    assert records[0][2] == -5
    assert records[0][5] == {"s": b"hi", "c": b"ab", "b": -3, "h": -2, "q": (1 << 64) - 1}
    faulted = _page(order, 5, [1], b"")  # a dynamic string of length 0: a fetch fault
    assert _run(c, faulted, 0) == _run(py, faulted, 0)
    assert _run(c, faulted, 0)[2][0][6] == frozenset({"s"})


def test_a_read_shorter_than_the_header_is_counted_not_raised() -> None:
    py, c = _both([_DEMO], PageLayout())
    for cut in (0, 1, 15):
        assert _run(c, b"\1" * cut, 0) == _run(py, b"\1" * cut, 0)
    assert c.short == 3 and c.unknown == 0


@pytest.mark.parametrize("base,kind", RECORDINGS[:2])
def test_timeline_lines_are_the_python_ones(base: str, kind: str) -> None:
    layout, formats, pages = _load(base, kind)
    records: List[RawRecord] = []
    decoder = RecordDecoder(formats, layout)
    for cpu, page in pages:
        decoder.decode_page(page, cpu, records)
    py, c = Timeline(use_c=False), Timeline()
    assert raw_reader._liner() is not None
    want, got = py.add(list(records), None), c.add(list(records), None)
    assert got == want and len(got) == len(records)
    for a, b in zip(want, got):
        assert type(b) is type(a)
        for field in attrs.fields(type(a)):
            assert getattr(b, field.name) == getattr(a, field.name)
            assert type(getattr(b, field.name)) is type(getattr(a, field.name))
    got[0].comm = b"x"  # a plain instance: settable as the Python-built ones
    assert got[0].comm == b"x"


def test_the_built_module_is_not_older_than_its_source() -> None:
    module = raw_records.c_loop()
    assert module is not None
    source = os.path.join(os.path.dirname(raw_records.__file__), "_ringpage.c")
    if os.path.exists(source) and os.path.dirname(module.__file__) == os.path.dirname(source):
        assert os.path.getmtime(module.__file__) >= os.path.getmtime(source), (
            "_ringpage.c changed since it was built: pip install -e . (tools/setup.sh)")
