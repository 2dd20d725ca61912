"""What the ebpf-core and ebpf-bcc tests check alike: every open syscall, BPF objects held.

Both engines run the same BPF logic, so the same workload must come out the
same; each test module adds only what its engine promises beyond that.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from typing import Dict, List, NamedTuple, Set

from hybridtrace import kernel_state
from hybridtrace.events import OpenEvent
from hybridtrace.request import PATH_SIZE
from tests.integration.polling import Pollable, collect

# x86_64 syscall numbers: 437 openat2, 85 creat, 2 open, 257 openat. One fd
# (or -1) per line, in this order.
OPEN_SCRIPT = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "d = os.fsencode(sys.argv[1])\n"
    "class How(ctypes.Structure):\n"
    "    _fields_ = [('flags', ctypes.c_uint64), ('mode', ctypes.c_uint64),"
    " ('resolve', ctypes.c_uint64)]\n"
    "how = How(os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640, 0)\n"
    "p2 = d + b'/via-openat2'\n"
    "print(libc.syscall(437, -100, p2, ctypes.byref(how), ctypes.sizeof(how)))\n"
    "print(libc.syscall(437, -100, p2, ctypes.byref(how), ctypes.sizeof(how)))\n"
    "print(libc.syscall(85, d + b'/via-creat', 0o604))\n"
    "print(libc.syscall(2, d + b'/via-open', os.O_RDWR | os.O_CREAT, 0o600))\n"
    "print(libc.syscall(2, os.fsencode(sys.argv[2]), os.O_RDONLY, 0))\n"
    "print(os.open(d + b'/via-openat', os.O_RDONLY | os.O_CREAT, 0o611))\n"
    "print(libc.syscall(257, -100, d + b'/missing', os.O_RDONLY, 0))\n"
)
LONG_PATH = b"/" + b"L" * (PATH_SIZE + 40)


class OpenRun(NamedTuple):
    """The workload's opens as traced, by role, and the fds it printed."""

    events: Dict[str, OpenEvent]
    fds: List[int]
    dir: bytes


def run_every_open_syscall(source: Pollable, tmp_path: os.PathLike[str]) -> OpenRun:
    """Run OPEN_SCRIPT (in a directory with a hostile name) while ``source`` traces."""
    d = os.path.join(str(tmp_path), os.fsdecode(b"d-\xff\n"))
    os.mkdir(d)
    db = os.fsencode(d)
    want = {db + b"/via-openat2", db + b"/via-creat", db + b"/via-open",
            LONG_PATH[:PATH_SIZE], db + b"/via-openat", db + b"/missing"}
    child = subprocess.run(["/usr/bin/python3", "-c", OPEN_SCRIPT, d, os.fsdecode(LONG_PATH)],
                           capture_output=True, check=True)
    events = collect(source, lambda ev: {e.path for e in ev if isinstance(e, OpenEvent)}
                     >= want)
    by: Dict[str, List[OpenEvent]] = {}
    for e in events:
        if isinstance(e, OpenEvent) and e.path in want:
            by.setdefault(e.syscall, []).append(e)
    ok2, dup2 = by["openat2"]
    (creat,) = by["creat"]
    made, toolong = sorted(by["open"], key=lambda e: e.path_truncated)
    ok, missing = sorted(by["openat"], key=lambda e: e.fd is None)
    roles = {"openat2": ok2, "openat2-exists": dup2, "creat": creat, "open": made,
             "open-too-long": toolong, "openat": ok, "openat-missing": missing}
    return OpenRun(roles, [int(x) for x in child.stdout.split()], db)


def check_every_open_syscall(run: OpenRun) -> None:
    """What both engines must get right about each call of OPEN_SCRIPT."""
    ev, fds = run.events, run.fds
    assert ev["openat2"].fd == fds[0] and ev["openat2"].mode == 0o640
    assert ev["openat2"].flags == os.O_WRONLY | os.O_CREAT | os.O_EXCL
    assert ev["openat2-exists"].fd is None and ev["openat2-exists"].errno == errno.EEXIST
    assert ev["creat"].fd == fds[2] and ev["creat"].mode == 0o604
    assert ev["creat"].flags == os.O_CREAT | os.O_WRONLY | os.O_TRUNC
    assert ev["open"].fd == fds[3] and ev["open"].dfd == -100
    toolong = ev["open-too-long"]
    assert toolong.errno == errno.ENAMETOOLONG
    assert toolong.path_truncated and toolong.path == LONG_PATH[:PATH_SIZE]
    ok = ev["openat"]
    assert ok.fd == fds[5] and ok.mode == 0o611 and ok.flags is not None
    assert ok.flags & os.O_ACCMODE == os.O_RDONLY and ok.flags & os.O_CREAT
    missing = ev["openat-missing"]
    assert missing.errno == errno.ENOENT and missing.path == run.dir + b"/missing"
    assert not ev["open"].path_truncated and not ok.path_truncated


def held_ids(kind: str) -> Set[int]:
    """Ids of the BPF objects of ``kind`` ("prog", "map", "link") this process holds."""
    return {int(item.name) for item in kernel_state.bpf_held(os.getpid())
            if item.kind == f"bpf-{kind}"}


def loaded_ids(what: str) -> Set[int]:
    """Ids of every BPF program or map in the kernel, per bpftool."""
    out = subprocess.run(["bpftool", what, "show", "-j"], capture_output=True, text=True,
                         check=True)
    return {int(o["id"]) for o in json.loads(out.stdout or "[]")}
