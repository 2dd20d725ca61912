"""The binary reader's parts on pages recorded from a real kernel (no root needed).

tests/fixtures/ftrace_stream/*-raw/ hold whole ring-buffer pages as
trace_pipe_raw handed them out (tools/record_ftrace_stream.py), with the
format files and header_page of that session.
"""

from __future__ import annotations

import os
import random
from typing import Dict, List, Optional, Tuple

import pytest

from hybridtrace.backends.ftrace.format import EventFormat, parse_format, read_format
from hybridtrace.backends.ftrace.pipe import ENTER, EXIT, FIELDS
from hybridtrace.backends.ftrace.raw_reader import Timeline
from hybridtrace.backends.ftrace.raw_records import RawRecord, RecordDecoder, compile_decoder
from hybridtrace.backends.ftrace.ring_page import (
    PageFormatError,
    PageLayout,
    page_records,
    parse_header_page,
    read_page_files,
)
from hybridtrace.backends.ftrace.tasks import TaskTracker

ROOT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "ftrace_stream")


def raw_recordings() -> List[Tuple[str, str]]:
    return [(name, kind) for name in sorted(os.listdir(ROOT)) if name.endswith("-raw")
            for kind in ("exec", "open") if os.path.isdir(os.path.join(ROOT, name,
                                                                         f"{kind}.pages"))]


def load(name: str, kind: str) -> Tuple[PageLayout, List[EventFormat], List[Tuple[int, bytes]]]:
    import json

    base = os.path.join(ROOT, name)
    with open(os.path.join(base, f"{kind}.json"), encoding="utf-8") as handle:
        meta = json.load(handle)
    formats = [read_format(os.path.join(base, f"{kind}.formats"), s, n)
               for s, n in meta["formats"]]
    layout, pages = read_page_files(os.path.join(base, f"{kind}.pages"))
    assert all(len(page) == layout.page_size for _, page in pages)
    return layout, formats, pages


RECORDINGS = raw_recordings()


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
    decoder = RecordDecoder(formats, layout)
    records: List[RawRecord] = []
    for cpu, page in pages:
        decoder.decode_page(page, cpu, records)
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
        "name: demo\nID: 9\nformat:\n"
        "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
        "\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
        "\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
        "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n"
        "\tfield:unsigned long args[6];\toffset:8;\tsize:48;\tsigned:0;\n"
        "\tfield:__rel_loc char[] s;\toffset:56;\tsize:4;\tsigned:0;\n"
        "\tfield:s64 v;\toffset:60;\tsize:8;\tsigned:1;\n\n"
        'print fmt: "%s", __get_rel_str(s)\n', "demo")
    dec = compile_decoder(fmt)
    assert dec.names == ("s", "v") and [s[0] for s in dec.strings] == ["s"]
    assert dec.event == "demo" and dec.style == FIELDS


# -- Timeline: merging CPUs, holding back, comm and uid -----------------------------

def _rec(ts: int, tid: int, event: str, style: str = FIELDS, **args: object) -> RawRecord:
    return (ts, 0, tid, event, style, dict(args), frozenset())  # type: ignore[arg-type]


def test_timeline_orders_cpus_and_holds_back_what_is_not_due() -> None:
    line = Timeline(TaskTracker(comm=lambda tid: b"old", uid=lambda tid: 1000))
    got = line.add([_rec(30, 5, "sys_openat", EXIT, ret=3),
                    _rec(10, 5, "sys_openat", ENTER, filename=1)], horizon=20)
    assert [(g.timestamp_ns, g.style) for g in got] == [(10, ENTER)]
    assert line.later().fds == frozenset({(5, 3)})  # held back, not forgotten
    got = line.add([_rec(25, 6, "x")], horizon=None)
    assert [g.timestamp_ns for g in got] == [25, 30] and not line.pending


def test_timeline_comm_and_uid_follow_the_task_records() -> None:
    uids = {1: 1000}
    line = Timeline(TaskTracker(comm=lambda tid: b"bash" if tid == 1 else None,
                                uid=uids.get))
    got = line.add([
        _rec(1, 1, "task_newtask", pid=2, comm=b"bash"),
        _rec(2, 2, "sys_execve", ENTER, argv=1),
        _rec(3, 2, "task_rename", pid=2, oldcomm=b"bash", newcomm=b"cat"),
        _rec(4, 2, "sched_process_exec", filename=b"/bin/cat", pid=2, old_pid=2),
        _rec(5, 2, "sys_setuid", EXIT, ret=0),
        _rec(6, 2, "sys_openat", ENTER, filename=1),
    ], horizon=None)
    seen = [(g.event, g.comm, g.uid) for g in got if not g.event.startswith("task_")]
    # pid 2 is gone from /proc (uids has no entry): its uid is its creator's until setuid
    assert seen[:2] == [("sys_execve", b"bash", 1000), ("sched_process_exec", b"cat", 1000)]
    assert seen[-1] == ("sys_openat", b"cat", None)


def test_exec_from_a_non_leader_thread_keeps_that_threads_uid() -> None:
    # Ground truth (tools/groundtruth): thread 11 of process 10 set its own uid (raw
    # setuid syscall) and exec'd; the new image (pid 10) was reported with the old
    # leader's uid 0 instead of 65534.
    line = Timeline(TaskTracker(comm=lambda tid: b"gt", uid={10: 0}.get))
    got = line.add([
        _rec(1, 10, "task_newtask", pid=11, comm=b"gt"),
        _rec(2, 11, "sys_setuid", ENTER, uid=65534),
        _rec(3, 11, "sys_setuid", EXIT, ret=0),
        _rec(4, 11, "sys_execve", ENTER, argv=1),
        _rec(5, 10, "task_rename", pid=10, oldcomm=b"gt", newcomm=b"new"),
        _rec(6, 10, "sched_process_exec", filename=b"/bin/new", pid=10, old_pid=11),
        _rec(7, 10, "sys_openat", ENTER, filename=1),
    ], horizon=None)
    seen = [(g.event, g.pid, g.comm, g.uid) for g in got if not g.event.startswith("task_")]
    assert seen[-2:] == [("sched_process_exec", 10, b"new", 65534),
                         ("sys_openat", 10, b"new", 65534)]


def test_task_tracker_is_bounded() -> None:
    tracker = TaskTracker(comm=lambda tid: None, uid=lambda tid: None, limit=3)
    for tid in range(10):
        tracker.renamed(tid, b"t%d" % tid)
    assert tracker.comm(9) == b"t9" and len(tracker._tasks) == 3
    assert tracker.comm(0) is None  # forgotten, read again (and gone)




def test_setuid_family_sets_the_real_uid_it_can() -> None:
    line = Timeline(TaskTracker(comm=lambda tid: b"x", uid={1: 0, 2: 1000, 3: 0}.get))
    got = line.add([
        _rec(1, 1, "sys_setuid", ENTER, uid=7),  # root: setuid sets the real uid
        _rec(2, 1, "sys_setuid", EXIT, ret=0),
        _rec(3, 1, "sys_openat", ENTER, filename=1),
        _rec(4, 2, "sys_setresuid", ENTER, ruid=0xFFFFFFFF, euid=5, suid=5),  # -1: unchanged
        _rec(5, 2, "sys_setresuid", EXIT, ret=0),
        _rec(6, 2, "sys_openat", ENTER, filename=1),
        _rec(7, 2, "sys_setreuid", ENTER, ruid=9, euid=9),
        _rec(8, 2, "sys_setreuid", EXIT, ret=-1),  # refused: nothing changes
        _rec(9, 2, "sys_openat", ENTER, filename=1),
        _rec(10, 3, "sys_setreuid", ENTER, ruid=11, euid=11),
        _rec(11, 3, "sys_setreuid", EXIT, ret=0),
        _rec(12, 3, "sys_openat", ENTER, filename=1),
    ], horizon=None)
    assert [(g.pid, g.uid) for g in got if g.event == "sys_openat"] == [(1, 7), (2, 1000),
                                                                        (2, 1000), (3, 11)]


def test_setuid_without_privilege_makes_the_uid_unknown() -> None:
    reads: List[int] = []

    def uid(tid: int) -> Optional[int]:
        reads.append(tid)
        return 1000 if len(reads) == 1 else 5

    line = Timeline(TaskTracker(comm=lambda tid: b"x", uid=uid))
    got = line.add([_rec(1, 4, "sys_openat", ENTER, filename=1),
                    _rec(2, 4, "sys_setuid", ENTER, uid=5),
                    _rec(3, 4, "sys_setuid", EXIT, ret=0),
                    _rec(4, 4, "sys_openat", ENTER, filename=1)], horizon=None)
    assert [g.uid for g in got if g.event == "sys_openat"] == [1000, 5]
    assert reads == [4, 4]  # read again from /proc: no record says which uid changed
