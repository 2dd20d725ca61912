"""`hybridtrace execsnoop` / `opensnoop` against Debian's libbpf-tools, same workload.

Both sides run at once with the same kernel-side uid filter, so the volume is
small and neither may lose anything: the events must be the same (JSON against
their lines), and the text output must have BCC's headers and columns, which
differ from libbpf-tools' only where their format strings do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import Dict, List, Set, Tuple

import pytest

from hybridtrace.output.jsonl import decode_bytes
from tests.integration.test_cli import Tracer
from tests.integration.test_ebpf_core import Reference
from tests.reference_formats import (
    bcc_exec_header,
    bcc_exec_line,
    bcc_open_header,
    bcc_open_line,
    column_starts,
    libbpf_exec_header,
    libbpf_open_header,
)

# A uid no user of this machine has (root may setuid to any): every event of that uid
# is the workload's, whatever else runs as nobody meanwhile.
WORKLOAD_UID = 40000 + os.getpid() % 20000
SCRIPT = ("for i in 1 2 3; do cat /etc/hostname /ht-cli-nope-$i; /ht-cli-missing-$i a$i;"
          " /bin/true arg$i; done; exit 0")


def snoop(name: str) -> str:
    path = shutil.which(name) or f"/usr/sbin/{name}"
    if not os.path.exists(path):
        pytest.fail(f"libbpf-tools {name} is needed: tools/setup.sh installs it")
    return path


def run_workload() -> int:
    work = subprocess.Popen(["/bin/sh", "-c", SCRIPT], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=lambda: os.setuid(WORKLOAD_UID))
    assert work.wait(timeout=60) == 0
    return work.pid


def side_by_side(tool: str) -> Tuple[int, List[dict], List[bytes]]:  # type: ignore[type-arg]
    """Run the workload under `hybridtrace TOOL -x` and libbpf-tools' TOOL -x at once.

    Returns the workload's pid, our JSON records of that kind, their output lines;
    neither side may have lost anything.
    """
    ref = Reference([snoop(tool), "-x", "-u", str(WORKLOAD_UID)])
    tracer = Tracer([tool, "-x", "-u", str(WORKLOAD_UID), "--json"])
    try:
        sh = run_workload()
    finally:
        out, _ = tracer.stop()
        theirs = ref.stop()
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert not [r for r in records if r["type"] == "lost"]
    kind = "exec" if tool == "execsnoop" else "open"
    return sh, [r for r in records if r["type"] == kind], theirs


def test_execsnoop_x_matches_libbpf_tools() -> None:
    sh, events, theirs_lines = side_by_side("execsnoop")
    pids: Set[int] = {sh} | {e["pid"] for e in events if e["ppid"] == sh}
    mine: List[Tuple[int, int, bytes]] = []
    for e in events:
        if e["pid"] in pids:
            argv = [decode_bytes(a) for a in e["argv"]]
            # the reference prints the filename where argv[0] is
            shown = b" ".join([decode_bytes(e["filename"]), *argv[1:]])
            mine.append((e["pid"], e["retval"], shown))
    theirs = [(int(f[1]), int(f[3]), f[4].rstrip(b" ") if len(f) > 4 else b"")
              for f in (line.split(None, 4) for line in theirs_lines)
              if len(f) >= 4 and f[1].isdigit() and int(f[1]) in pids]
    assert len(mine) == 10  # sh, 3 cat, 3 failed execs, 3 true
    assert sorted(mine) == sorted(theirs)
    assert sum(1 for e in events if e["pid"] in pids and e["retval"] < 0) == 3


def test_opensnoop_x_matches_libbpf_tools() -> None:
    sh, events, theirs_lines = side_by_side("opensnoop")
    # the workload's failed opens: cat's three /ht-cli-nope-N (and whatever the
    # loader and sh fail to open, the same on both sides)
    mine = sorted((e["pid"], decode_bytes(e["path"]), e["errno"]) for e in events)
    # opensnoop: PID COMM FD ERR PATH
    theirs = sorted((int(f[0]), f[4], int(f[3])) for f in
                    (line.split(None, 4) for line in theirs_lines)
                    if len(f) == 5 and f[0].isdigit())
    nope = [m for m in mine if m[1].startswith(b"/ht-cli-nope-")]
    assert len(nope) == 3 and all(m[2] == 2 for m in nope)
    assert sh > 0 and mine == theirs


# ------------------------------------------------------------------ columns, side by side
#
# Each flag set runs in both tools at once, over one workload run as WORKLOAD_UID
# (so every line of both outputs is the workload's). Our header must be
# BCC's (tests/reference_formats.py), libbpf-tools' header what its source prints
# (so the references are right), and every column of ours must start where
# libbpf-tools' does, except where libbpf-tools' widths differ from BCC's (we
# follow BCC). Every event line of ours must be the line BCC's format strings make
# of the fields libbpf-tools printed for the same event.

EXEC_FLAGSETS = [[], ["-T"], ["-t"], ["-U"], ["-T", "-t", "-U"], ["-q"]]
OPEN_FLAGSETS = [[], ["-U"], ["-e"], ["-T"], ["-T", "-U", "-e"]]
# Under 128 bytes, no byte either tool escapes: BCC and libbpf-tools cut each argument
# at 128 bytes (we keep 256); BCC prints a backslash raw (we double it).
COLS_SCRIPT = ("for i in 1 2; do /bin/cat /etc/hostname /ht-cols-nope-$i;"
               " /bin/echo 'two words' 'q\"uote' x$i; /ht-cols-missing-$i a$i; done; :")
# BCC's width minus libbpf-tools' width of each header word's cell. TIME(s) and UID:
# libbpf-tools puts a space after the header cell but none after the data cell, so
# its header is a column off its own data; BCC's is not. opensnoop's TIME: libbpf-tools'
# -T is a wall clock, BCC's (and ours) seconds since the first event, TIME(s).
EXEC_WIDER = {"TIME(s)": -1, "UID": -1, "PID": 1, "PPID": 1}
OPEN_WIDER = {"TIME": 5, "UID": -2, "FD": 1}
RIGHT_ALIGNED = {"RET", "FD", "ERR"}


def _run_side_by_side(tool: str, flagsets: List[List[str]]
                      ) -> List[Tuple[List[str], str, List[bytes]]]:
    """[(flags, our stdout, libbpf-tools' lines)] for one workload seen by all at once."""
    uid = str(WORKLOAD_UID)
    base = ["-x", "-u", uid] if tool == "execsnoop" else ["-u", uid]
    refs = [Reference([snoop(tool), *base, *flags]) for flags in flagsets]
    ours = [Tracer([tool, *base, *flags]) for flags in flagsets]
    try:
        work = subprocess.Popen(["/bin/sh", "-c", COLS_SCRIPT], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                                preexec_fn=lambda: os.setuid(int(uid)))
        assert work.wait(timeout=60) == 0
    finally:
        outs = [t.stop()[0] for t in ours]
        theirs = [[r.header, *r.stop()] for r in refs]
    return list(zip(flagsets, outs, theirs))


def _shifted(starts: List[int], words: List[str], wider: Dict[str, int]) -> List[int]:
    """libbpf-tools' column starts moved by the width differences: a wider left-aligned
    cell moves the columns after it, a wider right-aligned one moves its own word too."""
    out, shift = [], 0
    for start, word in zip(starts, words):
        if word in RIGHT_ALIGNED:
            shift += wider.get(word, 0)
            out.append(start + shift)
        else:
            out.append(start + shift)
            shift += wider.get(word, 0)
    return out


def _check_headers(ours: str, theirs: bytes, bcc: str, libbpf: str,
                   wider: Dict[str, int], renamed: Dict[str, str]) -> None:
    text = theirs.decode().rstrip("\n")
    assert ours == bcc, (ours, bcc)
    assert text == libbpf, (text, libbpf)
    words = text.split()
    assert ours.split() == [renamed.get(w, w) for w in words]
    assert column_starts(ours) == _shifted(column_starts(text), words, wider), (ours, text)


EXEC_LIBBPF_LINE = re.compile(r"^(?P<comm>.{16}) (?P<pid>\d+) +(?P<ppid>\d+) +(?P<ret>-?\d+)"
                              r" (?P<args>.*) $")  # libbpf-tools ends ARGS with a space


def test_execsnoop_columns_side_by_side_with_libbpf_tools() -> None:
    for flags, out, theirs in _run_side_by_side("execsnoop", EXEC_FLAGSETS):
        wall, stamp, uid = "-T" in flags, "-t" in flags, "-U" in flags
        ours = out.splitlines()
        _check_headers(ours[0], theirs[0], bcc_exec_header(wall, stamp, uid),
                       libbpf_exec_header(wall, stamp, uid), EXEC_WIDER, {})
        head = 9 * wall + 8 * stamp  # the time cells: same widths in both, values differ
        expected = []
        for raw in theirs[1:]:
            line = raw.decode()
            m = EXEC_LIBBPF_LINE.match(line[head + 6 * uid:])
            assert m, line
            f = m.groupdict()
            expected.append(bcc_exec_line(
                None, None, int(line[head:head + 6]) if uid else None, f["comm"].rstrip(),
                int(f["pid"]), int(f["ppid"]), int(f["ret"]), f["args"]))
        mine = [line[head:] for line in ours[1:]]
        assert len(mine) == 7, (flags, out)  # sh, then twice cat, echo and a failed exec
        assert sorted(mine) == sorted(expected), flags
        for line in ours[1:]:
            if wall:
                assert re.fullmatch(r"\d\d:\d\d:\d\d ", line[:9]), line
            if stamp:
                assert re.fullmatch(r"\d+\.\d{3} *", line[9 * wall:head]), line
        quoted = '"/bin/echo" "two words" "q\\"uote"' if "-q" in flags else (
            '/bin/echo two words q"uote')
        assert sum(quoted in line for line in mine) == 2, (flags, out)


OPEN_LIBBPF_LINE = re.compile(r"^(?P<pid>\d+) +(?P<comm>\S+) +(?P<fd>-?\d+) +(?P<err>\d+) "
                              r"(?P<rest>.*)$")


def test_opensnoop_columns_side_by_side_with_libbpf_tools() -> None:
    for flags, out, theirs in _run_side_by_side("opensnoop", OPEN_FLAGSETS):
        stamp, uid, ext = "-T" in flags, "-U" in flags, "-e" in flags
        ours = out.splitlines()
        _check_headers(ours[0], theirs[0], bcc_open_header(stamp, uid, False, ext),
                       libbpf_open_header(stamp, uid, ext), OPEN_WIDER, {"TIME": "TIME(s)"})
        expected = []
        for raw in theirs[1:]:
            line = raw.decode()
            cut = 9 * stamp + 8 * uid  # libbpf-tools: "%-8s " wall clock, "%-7d " uid
            m = OPEN_LIBBPF_LINE.match(line[cut:])
            assert m, line
            f = m.groupdict()
            flag_cell, path = f["rest"].split(" ", 1) if ext else (None, f["rest"])
            ret = int(f["fd"]) if f["fd"] != "-1" else -int(f["err"])
            expected.append(bcc_open_line(
                None, int(line[9 * stamp:cut]) if uid else None, int(f["pid"]), f["comm"],
                ret, int(flag_cell, 8) if flag_cell else None, path))
        mine = [line[14 * stamp:] for line in ours[1:]]
        assert sum("/ht-cols-nope-" in line for line in mine) == 2, (flags, out)
        assert sorted(mine) == sorted(expected), flags
        if stamp:
            cells = [line[:14] for line in ours[1:]]
            assert cells[0] == "0.000000000   ", cells
            assert all(re.fullmatch(r"\d+\.\d{9} *", c) for c in cells), cells
