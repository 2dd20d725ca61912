#!/usr/bin/env python3
"""The process tools/record_trace_pipe.py traces: known execs and opens with hostile names.

Run by the recorder as ``trace_pipe_workload.py EXPECTED_JSON TMPDIR``: it waits
for one byte on stdin (the recorder's go, once tracing is on), renames itself
to a comm with spaces and dashes, opens and execs things whose names hold
spaces, quotes, ``=``, newlines, escape sequences, invalid UTF-8, long strings
and whole fake trace records, and writes what it actually did (pids, argv,
paths, flags, results; strings hex-encoded) to EXPECTED_JSON.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import sys
import time
from typing import Any, Dict, List, Tuple

PR_SET_NAME = 15
WORKLOAD_COMM = b"ht rec-1 -x"
SPIN_S = 0.4
ARGV_SLOTS = 8  # probes read argv[0..7]
# Whole fake records a traced process can put in its strings after a newline.
FAKE_OPEN = (b"            bash-1       [000] .....     1.000001: u_open: (0x1)"
             b' path="etc-shadow" flags=0x0 mode=0x0')
FAKE_EXEC = (b"            bash-1       [000] .....     1.000002: sched_process_exec:"
             b" filename=/bin/evil pid=1 old_pid=1")


def hexb(data: bytes) -> str:
    return data.hex()


# ---------------------------------------------------------------- workload


def _set_comm(name: bytes) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)


def _exec_child(filename: bytes, argv: List[bytes], fexec: bool) -> Tuple[int, int]:
    """Fork, exec in the child; return (child pid, 0 or -errno of the exec)."""
    rfd, wfd = os.pipe()  # close-on-exec: empty read means the exec succeeded
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        try:
            if fexec:
                fd = os.open(filename, os.O_RDONLY)
                os.execve(fd, argv, {"PATH": "/usr/bin:/bin"})
            os.execv(filename, argv)
        except OSError as exc:
            os.write(wfd, str(exc.errno).encode())
        os._exit(127)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as reader:
        err = reader.read()
    os.waitpid(pid, 0)
    return pid, -int(err) if err else 0


def _opens(tmp: bytes) -> List[Dict[str, Any]]:
    names = [
        b'sp ace"q=1 a="b',
        b"nl\nline",
        b"esc\x1b[31m\\x\\n",
        b"bad\xff\xfe\x80",
        b"tab\there",
        b"L" * 200,
        b"x\n            bash-1       [000] .....     1.000001: sys_openat(dfd: 0x1)",
        b"inj\n" + FAKE_OPEN + b"\nend",
    ]
    out: List[Dict[str, Any]] = []
    dfd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
    creat = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    for name in names:
        path = tmp + b"/" + name
        fd = os.open(path, creat, 0o600)  # libc open()
        out.append({"via": "open", "path": hexb(path), "flags": creat, "mode": 0o600,
                    "result": fd})
        os.close(fd)
        flags = os.O_RDONLY | os.O_CLOEXEC
        fd = os.open(name, flags, dir_fd=dfd)  # libc openat()
        out.append({"via": "openat", "dfd": dfd, "path": hexb(name), "flags": flags,
                    "mode": 0, "result": fd})
        os.close(fd)
    missing = tmp + b"/missing \x01file"
    flags = os.O_RDONLY | os.O_CLOEXEC  # Python adds O_CLOEXEC anyway: say so
    try:
        os.close(os.open(missing, flags))
        result = 0
    except OSError as exc:
        result = -exc.errno
    out.append({"via": "open", "path": hexb(missing), "flags": flags, "mode": 0,
                "result": result})
    os.close(dfd)
    return out


def _execs(tmp: bytes) -> List[Dict[str, Any]]:
    true = b"/bin/true"
    link = tmp + b"/my -prog 1-2"
    os.symlink(true, link)
    noexec = tmp + b"/not-exec"
    with open(noexec, "wb") as handle:
        handle.write(b"#!/bin/true\n")
    specs: List[Tuple[bytes, List[bytes], bool]] = [
        (true, [b"tr ue", b'q"x= y', b"a\nb", b"esc\x1b[0m\\n", b"\xff\xfe\x80",
                b'k=v a1="z"', b"", b"end"], False),
        (true, [b"true", b"A" * 3000], False),
        (true, [b"true", b"B" * 5000, b"after"], False),
        (true, [b"wide"] + [bytes([0x61 + i]) * 500 for i in range(7)], False),
        (true, [b"inject", b"arg\n" + FAKE_EXEC + b"\nmore", b'q" a2="x'], False),
        (link, [b"my -prog 1-2", b"x"], False),
        (tmp + b"/no such-prog", [b"no such-prog", b"arg"], False),
        (noexec, [b"not-exec"], False),
        (true, [b"fexec", b"y z"], True),
    ]
    out: List[Dict[str, Any]] = []
    for filename, argv, fexec in specs:
        pid, result = _exec_child(filename, argv, fexec)
        out.append({"pid": pid, "filename": hexb(filename), "argv": [hexb(a) for a in argv],
                    "result": result, "via": "fexecve" if fexec else "execv"})
    return out


def _spinner(tmp: bytes) -> int:
    """A child that opens a file and then runs without sleeping while the recorder
    reads: the kernel has not saved its comm yet, so its records print as <...>."""
    pid = os.fork()
    if pid == 0:
        try:
            os.close(os.open(tmp + b"/spinner", os.O_RDONLY | os.O_CREAT, 0o600))
        finally:
            end = time.monotonic() + SPIN_S
            while time.monotonic() < end:
                pass
            os._exit(0)
    os.waitpid(pid, 0)
    return pid


def run_workload(out_json: str, tmpdir: str) -> int:
    """The traced process: wait for the go byte, then exec and open known things."""
    sys.stdin.buffer.read(1)
    _set_comm(WORKLOAD_COMM)
    tmp = os.fsencode(tmpdir)
    record: Dict[str, Any] = {"pid": os.getpid(), "comm": hexb(WORKLOAD_COMM),
                              "tmpdir": hexb(tmp)}
    record["spinner"] = _spinner(tmp)
    record["opens"] = _opens(tmp)
    record["execs"] = _execs(tmp)
    with open(out_json, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: trace_pipe_workload.py EXPECTED_JSON TMPDIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(run_workload(sys.argv[1], sys.argv[2]))
