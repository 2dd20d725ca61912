"""execsnoop and opensnoop print what BCC 0.26's tools print, and take their options.

Every expected line here comes from BCC's own printf-style format strings
(tests/reference_formats.py), never from our formatter.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import subprocess
import sys
import time
from typing import List, Optional, Tuple

import pytest

from hybridtrace import buffer_size
from hybridtrace.api import trace
from hybridtrace.cli import execsnoop, opensnoop
from hybridtrace.cli.common import UsageError
from hybridtrace.cli.common import where_filters as execsnoop_where
from hybridtrace.cli.main import build_parser
from hybridtrace.errors import RequestError
from hybridtrace.events import ExecEvent, OpenEvent
from hybridtrace.output.columns import ExecFormat, OpenFormat, WallClock, args_bytes
from hybridtrace.request import TraceRequest
from tests.reference_formats import (
    bcc_exec_args,
    bcc_exec_header,
    bcc_exec_line,
    bcc_open_header,
    bcc_open_line,
)

FLAGS3 = list(itertools.product((False, True), repeat=3))
FLAGS4 = list(itertools.product((False, True), repeat=4))


def parse(argv: List[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def exec_event(filename: Optional[bytes], argv: Optional[Tuple[bytes, ...]], **kw: object
               ) -> ExecEvent:
    base = dict(timestamp_ns=7 * 10**9, pid=4194303, tid=4194303, ppid=1, uid=1000,
                comm=b"cat", filename=filename, argv=argv, retval=0)
    base.update(kw)
    return ExecEvent(**base)  # type: ignore[arg-type]


def open_event(ts_ns: int, **kw: object) -> OpenEvent:
    base = dict(timestamp_ns=ts_ns, pid=812, tid=815, uid=0, comm=b"systemd-journal",
                path=b"/etc/hostname", flags=0o2000000, mode=0, fd=3, errno=None)
    base.update(kw)
    return OpenEvent(**base)  # type: ignore[arg-type]


# ------------------------------------------------------------------ headers


@pytest.mark.parametrize(("wall", "elapsed", "uid"), FLAGS3)
def test_execsnoop_header_is_bccs(wall: bool, elapsed: bool, uid: bool) -> None:
    assert ExecFormat(wall=wall, elapsed=elapsed, show_uid=uid).header() == bcc_exec_header(
        wall, elapsed, uid)


@pytest.mark.parametrize(("elapsed", "uid", "tid", "extended"), FLAGS4)
def test_opensnoop_header_is_bccs(elapsed: bool, uid: bool, tid: bool, extended: bool) -> None:
    fmt = OpenFormat(elapsed=elapsed, show_uid=uid, show_tid=tid, extended=extended)
    assert fmt.header() == bcc_open_header(elapsed, uid, tid, extended)


def test_known_header_bytes() -> None:
    # Spelled out once, so a change to the reference module cannot pass unnoticed.
    assert ExecFormat(wall=True, elapsed=True, show_uid=True).header() == (
        "TIME     TIME(s) UID   PCOMM            PID     PPID    RET ARGS")
    assert OpenFormat(elapsed=True, show_uid=True, show_tid=True, extended=True).header() == (
        "TIME(s)       UID   TID    COMM               FD ERR FLAGS    PATH")


# ------------------------------------------------------------------ execsnoop lines


@pytest.mark.parametrize(("wall", "elapsed", "uid"), FLAGS3)
@pytest.mark.parametrize("quote", [False, True])
def test_execsnoop_line_is_bccs(wall: bool, elapsed: bool, uid: bool, quote: bool) -> None:
    clock = WallClock(wall_offset_ns=0)
    fmt = ExecFormat(wall=wall, elapsed=elapsed, show_uid=uid, quote=quote, start_ns=10**9,
                     clock=clock)
    cases = [
        # (event, BCC's words for ARGS)
        (exec_event(b"/usr/bin/cat", (b"cat", b"/etc/hostname")),
         [b"/usr/bin/cat", b"/etc/hostname"]),
        (exec_event(b"/bin/sh", (b"sh", b"-c", b'echo "a b"'), comm=b"sh", ppid=None, uid=0),
         [b"/bin/sh", b"-c", b'echo "a b"']),
        (exec_event(b"/nope", (b"nope", b"x"), retval=-2, uid=100000, comm=b"fifteen-chars-x"),
         [b"/nope", b"x"]),
        (exec_event(b"/bin/echo", (b"echo", b"a"), argv_truncated=True),
         [b"/bin/echo", b"a", b"..."]),
        (exec_event(b"./run", (), timestamp_ns=1235 * 10**9), [b"./run"]),  # argc 0
    ]
    for ev, words in cases:
        hhmmss = time.strftime("%H:%M:%S", time.localtime(ev.timestamp_ns // 10**9))
        seconds = (ev.timestamp_ns - 10**9) / 1e9
        want = bcc_exec_line(hhmmss if wall else None, seconds if elapsed else None,
                             ev.uid if uid else None, (ev.comm or b"").decode(), ev.pid,
                             ev.ppid, ev.retval or 0, bcc_exec_args(words, quote))
        assert fmt.line(ev) == want


def test_execsnoop_args_is_the_path_then_argv_from_1() -> None:
    fmt = ExecFormat()
    ev = exec_event(b"/usr/bin/cat", (b"cat", b"/etc/hostname"))
    assert fmt.line(ev).endswith(" 0 /usr/bin/cat /etc/hostname")
    assert args_bytes(ev) == b"/usr/bin/cat /etc/hostname"


def test_execsnoop_unknown_path_is_not_argv0() -> None:
    ev = exec_event(None, (b"cat", b"/etc/hostname"))
    line = ExecFormat().line(ev)
    assert line.endswith(" 0 ? /etc/hostname") and " cat /etc" not in line
    assert ExecFormat(quote=True).line(ev).endswith(' 0 ? "/etc/hostname"')
    assert ExecFormat().line(exec_event(None, None)).endswith(" 0 ? [argv unavailable]")
    assert ExecFormat().line(exec_event(b"/x", None)).endswith(" 0 /x [argv unavailable]")


def test_execsnoop_quote_and_ellipsis_as_bcc() -> None:
    ev = exec_event(b"/bin/echo", (b"echo", b'say "hi"'), argv_truncated=True)
    assert ExecFormat(quote=True).line(ev).endswith(' "/bin/echo" "say \\"hi\\"" "..."')


# ------------------------------------------------------------------ execsnoop options


@pytest.mark.parametrize(("argv", "time_on", "stamp_on"), [
    (["-T"], True, False), (["--time"], True, False),
    (["-t"], False, True), (["--timestamp"], False, True),  # BCC's meaning of --timestamp
    (["--relative-time"], False, True),  # our old spelling of -t, same meaning
    (["-T", "-t"], True, True), (["-Tt"], True, True), ([], False, False),
])
def test_execsnoop_time_options(argv: List[str], time_on: bool, stamp_on: bool) -> None:
    args = parse(["execsnoop", *argv])
    assert (args.time, args.timestamp) == (time_on, stamp_on)


def test_execsnoop_bcc_long_options() -> None:
    args = parse(["execsnoop", "--fails", "--uid", "root", "--quote", "--name", "a",
                  "--line", "b", "--print-uid", "--max-args", "7", "--ppid", "9"])
    assert (args.fails, args.uid, args.quote, args.name, args.line, args.print_uid,
            args.max_args, args.ppid) == (True, "root", True, "a", "b", True, 7, 9)


def test_execsnoop_line_regex_searches_path_and_argv_from_1() -> None:
    keep = execsnoop.event_filter(parse(["execsnoop", "-l", "^/usr/bin/cat /etc"]))
    assert keep(exec_event(b"/usr/bin/cat", (b"cat", b"/etc/hostname")))
    assert not keep(exec_event(b"/usr/bin/dog", (b"cat", b"/etc/hostname")))
    # argv[0] is not searched (BCC never sees it)
    only_argv0 = execsnoop.event_filter(parse(["execsnoop", "-l", "argv0-only"]))
    assert not only_argv0(exec_event(b"/bin/x", (b"argv0-only", b"y")))
    dots = execsnoop.event_filter(parse(["execsnoop", "-l", r"a \.\.\.$"]))
    assert dots(exec_event(b"/bin/x", (b"x", b"a"), argv_truncated=True))


def test_execsnoop_name_and_fails() -> None:
    keep = execsnoop.event_filter(parse(["execsnoop", "-n", "^ca"]))
    assert keep(exec_event(b"/bin/cat", (b"cat",)))
    assert not keep(exec_event(b"/bin/cat", (b"cat",), comm=b"dog"))
    assert not keep(exec_event(b"/nope", (b"nope",), retval=-2))
    assert execsnoop.event_filter(parse(["execsnoop", "-x"]))(
        exec_event(b"/nope", (b"nope",), retval=-2))


# ------------------------------------------------------------------ opensnoop lines


@pytest.mark.parametrize(("elapsed", "uid", "tid", "extended"), FLAGS4)
def test_opensnoop_lines_are_bccs(elapsed: bool, uid: bool, tid: bool, extended: bool) -> None:
    fmt = OpenFormat(elapsed=elapsed, show_uid=uid, show_tid=tid, extended=extended)
    first = 5_000_000_123_456
    events = [
        (open_event(first), 3),
        (open_event(first + 133_999, uid=100000, pid=4194303, tid=4194303), 3),
        (open_event(first + 2_500_000_000, fd=None, errno=2, path=b"/nope"), -2),
        (open_event(first + 3_000_000_000, fd=1023, flags=0o101), 1023),
    ]
    for ev, ret in events:
        delta_us = ev.timestamp_ns // 1000 - first // 1000
        want = bcc_open_line(delta_us if elapsed else None, ev.uid if uid else None,
                             ev.tid if tid else (ev.pid or 0), (ev.comm or b"").decode(), ret,
                             ev.flags if extended else None, (ev.path or b"").decode())
        assert fmt.line(ev, ev.path) == want


def test_opensnoop_time_has_bccs_nine_decimals_of_microseconds() -> None:
    fmt = OpenFormat(elapsed=True)
    first = 10**12 + 999
    assert fmt.line(open_event(first), b"/a").startswith("0.000000000   812 ")
    # each timestamp is cut to microseconds first, as BCC's are in the kernel
    assert fmt.line(open_event(first + 133_001), b"/a").startswith("0.000134000   812 ")
    assert fmt.line(open_event(first + 12 * 10**9), b"/a").startswith("12.000000000  812 ")


def test_opensnoop_unseen_result_is_not_a_failure() -> None:
    line = OpenFormat().line(open_event(1, fd=None, errno=None), b"/a")
    assert re.match(r"^812 +systemd-journal +\? +\? /a$", line), line


# ------------------------------------------------------------------ opensnoop options


def test_opensnoop_bcc_and_dash_spellings() -> None:
    for spelling in ("-e", "--extended_fields", "--extended-fields"):
        assert parse(["opensnoop", spelling]).extended_fields
    for spelling in ("-f", "--flag_filter", "--flag-filter"):
        assert parse(["opensnoop", spelling, "O_RDWR"]).flag_filter == ["O_RDWR"]
    for spelling in ("-b", "--buffer-pages"):
        assert parse(["opensnoop", spelling, "64"]).buffer_pages == 64
    args = parse(["opensnoop", "--timestamp", "--print-uid", "--failed", "--pid", "1",
                  "--tid", "2", "--uid", "0", "--duration", "3", "--name", "x", "--full-path"])
    assert (args.timestamp, args.print_uid, args.failed, args.pid, args.tid, args.uid,
            args.duration, args.name, args.full_path) == (
        True, True, True, 1, 2, "0", 3.0, "x", True)


def test_opensnoop_tid_trumps_pid_as_in_bcc() -> None:
    assert opensnoop.session_filters(parse(["opensnoop", "-p", "5", "-t", "6"])) == {
        "uid": None, "pid": None, "tid": 6, "failed_only": False, "cgroup": None,
        "container": None, "mntns": None, "descendants_of": None, "cgroupmap": None,
        "mntnsmap": None}
    assert opensnoop.session_filters(parse(["opensnoop", "-p", "5", "-x"]))["pid"] == 5


@pytest.mark.parametrize("pages", ["0", "3", "-4", "x"])
def test_buffer_pages_must_be_a_power_of_two(pages: str) -> None:
    with pytest.raises(UsageError, match="buffer-pages"):
        parse(["opensnoop", "-b", pages])


@pytest.mark.parametrize(("argv", "option"), [
    (["execsnoop", "--cgroupmap", "/sys/fs/bpf/m"], "--cgroupmap"),
    (["execsnoop", "--mntnsmap", "/sys/fs/bpf/m"], "--mntnsmap"),
    (["opensnoop", "--cgroupmap", "/sys/fs/bpf/m"], "--cgroupmap"),
    (["opensnoop", "--mntnsmap", "/sys/fs/bpf/m"], "--mntnsmap"),
])
def test_a_missing_pinned_map_is_one_line_not_ignored(argv: List[str], option: str) -> None:
    """BCC's pinned-map filters are checked before anything is traced: a map that is
    not there never means "trace everything"."""
    result = subprocess.run([sys.executable, "-m", "hybridtrace", *argv], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"hybridtrace: {option}: ") and result.stderr.count("\n") == 1


def test_execsnoop_c_is_libbpf_tools_cgroup() -> None:
    args = parse(["execsnoop", "-c", "/sys/fs/cgroup/x", "--container", "ab12",
                  "--descendants-of", "7", "--mntns", "4026531832"])
    assert execsnoop_where(args) == {"cgroup": "/sys/fs/cgroup/x", "container": "ab12",
                                     "mntns": 4026531832, "descendants_of": 7,
                                     "cgroupmap": None, "mntnsmap": None}
    with pytest.raises(UsageError, match="descendants-of"):
        parse(["execsnoop", "--descendants-of", "0"])


# ------------------------------------------------------------------ buffer sizes


def test_buffer_pages_in_the_request_and_the_api() -> None:
    assert TraceRequest("open", buffer_pages=64).buffer_pages == 64
    for bad in (0, 3, 1 << 19, True, 2.0):
        with pytest.raises(RequestError, match="buffer_pages"):
            TraceRequest("open", buffer_pages=bad)  # type: ignore[arg-type]
    with pytest.raises(RequestError, match="power of two"):
        trace("open", buffer_pages=48)  # refused before anything is probed


def test_ftrace_reader_is_checked_before_anything_is_probed() -> None:
    assert TraceRequest("open", ftrace_reader="text").ftrace_reader == "text"
    assert parse(["opensnoop", "--ftrace-reader", "text"]).ftrace_reader == "text"
    with pytest.raises(RequestError, match="ftrace_reader must be one of raw, text, not 'pipe'"):
        trace("open", ftrace_reader="pipe")
    with pytest.raises(UsageError, match="ftrace-reader"):
        parse(["execsnoop", "--ftrace-reader", "pipe"])


def test_buffer_size_per_backend() -> None:
    assert buffer_size.parse_cpu_list("0-1\n") == 2
    assert buffer_size.parse_cpu_list("0-3,8,10-11") == 7
    assert buffer_size.ring_pages(64, 2) == 128  # same memory as 2 perf buffers of 64
    assert buffer_size.ring_pages(64, 3) == 256  # rounded up to a power of two
    assert buffer_size.ftrace_kb(64) == 64 * os.sysconf("SC_PAGE_SIZE") // 1024
