"""The binary reader's parts on pages recorded from a real kernel (no root needed).

tests/fixtures/ftrace_stream/*-raw/ hold whole ring-buffer pages as
trace_pipe_raw handed them out (tools/record_ftrace_stream.py), with the
format files and header_page of that session.
"""

from __future__ import annotations

import os
import random
import shutil
from typing import Any, Dict, List, Tuple

import pytest

from hybridtrace.backends.ftrace.format import EventFormat, parse_format, read_format
from hybridtrace.backends.ftrace.raw_reader import RawReader, Timeline
from hybridtrace.backends.ftrace.raw_records import RawRecord, RecordDecoder, compile_decoder
from hybridtrace.backends.ftrace.ring_page import (
    PageFormatError,
    PageLayout,
    page_records,
    parse_header_page,
    read_page_files,
)
from hybridtrace.backends.ftrace.trace_record import ENTER, EXIT, FIELDS
from tests.unit.ftrace_fixtures import decode_all

ROOT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "ftrace_stream")


def raw_recordings() -> List[Tuple[str, str]]:
    return [(name, kind) for name in sorted(os.listdir(ROOT)) if name.endswith("-raw")
            for kind in ("exec", "open") if os.path.isdir(os.path.join(ROOT, name,
                                                                         f"{kind}.pages"))]


def load(name: str, kind: str, root: str = ROOT
         ) -> Tuple[PageLayout, List[EventFormat], List[Tuple[int, bytes]]]:
    import json

    base = os.path.join(root, name)
    with open(os.path.join(base, f"{kind}.json"), encoding="utf-8") as handle:
        meta = json.load(handle)
    formats = [read_format(os.path.join(base, f"{kind}.formats"), s, n)
               for s, n in meta["formats"]]
    layout, pages = read_page_files(os.path.join(base, f"{kind}.pages"))
    assert all(len(page) == layout.page_size for _, page in pages)
    return layout, formats, pages


RECORDINGS = raw_recordings()
# A made-up event "demo" (id 9), up to its own fields: the fields every event starts with.
DEMO_HEAD = (
    "name: demo\nID: 9\nformat:\n"
    "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
    "\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
    "\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
    "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n"
)


def test_recordings_exist() -> None:
    assert len(RECORDINGS) >= 4  # uprobe and tracepoint tiers, exec and open, on this host


@pytest.mark.parametrize("name,kind", RECORDINGS)
def test_pages_split_into_records_within_bounds_and_in_time_order(name: str, kind: str) -> None:
    layout, formats, pages = load(name, kind)
    ids = {f.id for f in formats}
    for _cpu, page in pages:
        spans: List[Tuple[int, int, int]] = []
        page_records(page, layout, spans)
        assert spans, "a page handed out holds at least one record"
        stamps = [ts for ts, _, _ in spans]
        assert stamps == sorted(stamps)
        assert stamps[0] >= int.from_bytes(page[:8], "little")
        for _ts, start, end in spans:
            assert layout.data_offset < start < end <= len(page)
            # every record is one of the events the session enabled
            assert int.from_bytes(page[start:start + 2], "little") in ids


@pytest.mark.parametrize("name,kind", RECORDINGS)
def test_every_record_decodes_with_its_format(name: str, kind: str) -> None:
    layout, formats, pages = load(name, kind)
    decoder, records = decode_all(formats, layout, pages)
    assert records and decoder.unknown == 0 and decoder.short == 0
    by_event: Dict[Tuple[str, str], int] = {}
    for _ts, _cpu, tid, event, style, args, _faults in records:
        by_event[(event, style)] = by_event.get((event, style), 0) + 1
        assert tid > 0
        if style == EXIT:
            assert set(args) == {"ret"} and isinstance(args["ret"], int)
        if style == ENTER and event in ("sys_openat", "sys_execve"):
            assert isinstance(args.get("filename"), int)  # the user pointer
        if event == "sched_process_exec":
            assert isinstance(args["filename"], bytes) and args["filename"].startswith(b"/")
            assert not args["filename"].endswith(b"\0")
        if event == "task_rename":
            assert isinstance(args["newcomm"], bytes) and b"\0" not in args["newcomm"]
    assert any(style == ENTER for _, style in by_event)
    assert any(style == EXIT for _, style in by_event)


@pytest.mark.parametrize("name,kind", RECORDINGS)
def test_damaged_pages_never_read_outside_the_page(name: str, kind: str) -> None:
    layout, formats, pages = load(name, kind)
    decoder = RecordDecoder(formats, layout)
    rng = random.Random(7)
    for _cpu, page in pages[:8]:
        for _ in range(40):
            data = bytearray(page)
            for _ in range(rng.randint(1, 12)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            cut = bytes(data[: rng.randrange(16, len(data) + 1)])
            spans: List[Tuple[int, int, int]] = []
            page_records(cut, layout, spans)
            assert all(0 <= s < e <= len(cut) for _, s, e in spans)
            out: List[RawRecord] = []
            decoder.decode_page(cut, 0, out)  # must not raise


def test_header_page_of_this_layout_and_refusals() -> None:
    _, _, _ = load(*RECORDINGS[0])
    text = ("\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n"
            "\tfield: local_t commit;\toffset:8;\tsize:4;\tsigned:1;\n"
            "\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n"
            "\tfield: char data;\toffset:12;\tsize:4084;\tsigned:0;\n")
    layout = parse_header_page(text)  # a 32-bit kernel's local_t
    assert (layout.commit_size, layout.data_offset, layout.page_size) == (4, 12, 4096)
    with pytest.raises(PageFormatError):
        parse_header_page("field: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n")


def test_decoder_skips_arrays_and_reads_rel_loc() -> None:
    fmt = parse_format(
        DEMO_HEAD +
        "\tfield:unsigned long args[6];\toffset:8;\tsize:48;\tsigned:0;\n"
        "\tfield:__rel_loc char[] s;\toffset:56;\tsize:4;\tsigned:0;\n"
        "\tfield:s64 v;\toffset:60;\tsize:8;\tsigned:1;\n\n"
        'print fmt: "%s", __get_rel_str(s)\n', "demo")
    dec = compile_decoder(fmt)
    assert dec.names == ("s", "v") and [s[0] for s in dec.strings] == ["s"]
    assert dec.event == "demo" and dec.style == FIELDS


# -- Timeline: merging CPUs, holding back -------------------------------------------

def _rec(ts: int, tid: int, event: str, style: str = FIELDS, **args: object) -> RawRecord:
    return (ts, 0, tid, event, style, dict(args), frozenset())  # type: ignore[arg-type]


def test_timeline_orders_cpus_and_holds_back_what_is_not_due() -> None:
    line = Timeline()
    got = line.add([_rec(30, 5, "sys_openat", EXIT, ret=3),
                    _rec(10, 5, "sys_openat", ENTER, filename=1)], horizon=20)
    assert [(g.timestamp_ns, g.style) for g in got] == [(10, ENTER)]
    assert line.later().fds == frozenset({(5, 3)})  # held back, not forgotten
    got = line.add([_rec(25, 6, "x")], horizon=None)
    assert [g.timestamp_ns for g in got] == [25, 30] and not line.pending


# -- RawReader: reading CPUs in step ------------------------------------------------


def _instance(tmp: str, name: str, kind: str) -> List[EventFormat]:
    """An instance directory holding a recording's pages as its per-CPU buffers."""
    _layout, formats, pages = load(name, kind)
    src = os.path.join(ROOT, name, f"{kind}.pages")
    os.makedirs(os.path.join(tmp, "events"))
    shutil.copy(os.path.join(src, "header_page"), os.path.join(tmp, "events"))
    for cpu in {cpu for cpu, _ in pages}:
        os.makedirs(os.path.join(tmp, "per_cpu", f"cpu{cpu}"))
        with open(os.path.join(tmp, "per_cpu", f"cpu{cpu}", "trace_pipe_raw"), "wb") as f:
            f.write(b"".join(page for c, page in pages if c == cpu))
    return formats


@pytest.mark.parametrize("name", [n for n, k in RECORDINGS if k == "open"])
def test_cpus_read_in_step_give_every_record_once_in_order(name: str, tmp_path: Any) -> None:
    """A page per CPU per round: a CPU whose last record is newer than one still
    catching up is left unread (raw_reader.RawReader.read) until that one is past it;
    every record still comes out once, in time order, and only what is due."""
    formats = _instance(str(tmp_path), name, "open")
    reader = RawReader(str(tmp_path), formats, monotonic=True)
    page = reader.page_size
    out: List[int] = []
    try:
        for _ in range(64):
            out += [line.timestamp_ns for line in reader.read(2 * page)]
            assert not reader.pending or min(r[0] for r in reader.pending) >= max(out or [0])
        reader.stopped = True
        out += [line.timestamp_ns for line in reader.read(2 * page)]
    finally:
        reader.close()
    _layout, _formats, pages = load(name, "open")
    every: List[Tuple[int, int, int]] = []
    for _cpu, raw in pages:
        page_records(raw, _layout, every)
    assert sorted(out) == out and len(out) == len(every)
