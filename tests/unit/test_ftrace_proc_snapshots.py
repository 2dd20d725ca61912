"""Snapshots of /proc taken at decode time outlive what they describe."""

from __future__ import annotations

import os
import sys
import tempfile
import time

from hybridtrace import procfs
from hybridtrace.backends.ftrace.proc_snapshots import ProcSnapshots
from hybridtrace.backends.ftrace.raw_records import RawRecord
from hybridtrace.backends.ftrace.trace_record import EXIT, FIELDS


def _rec(tid: int, event: str, style: str, **args: object) -> RawRecord:
    return (1, 0, tid, event, style, dict(args), frozenset())  # type: ignore[arg-type]


def test_open_snapshot_survives_the_fd_being_closed() -> None:
    snaps = ProcSnapshots(execs=False, opens=True)
    with tempfile.NamedTemporaryFile() as tmp:
        fd = os.open(tmp.name, os.O_RDONLY)
        snaps.take([_rec(os.getpid(), "sys_openat", EXIT, ret=fd),
                    _rec(os.getpid(), "sys_openat", EXIT, ret=-2)])
        os.close(fd)
        lookup = snaps.lookup()
        assert lookup.fd_path(os.getpid(), fd) == os.fsencode(tmp.name)
        assert lookup.fd_flags(os.getpid(), fd) is not None
        assert procfs.fd_path(os.getpid(), fd) != os.fsencode(tmp.name)  # live /proc moved on


def test_exec_snapshot_and_fallback_to_live_proc() -> None:
    snaps = ProcSnapshots(execs=True, opens=False)
    snaps.take([_rec(os.getpid(), "sched_process_exec", FIELDS, pid=os.getpid(),
                     filename=b"/x")])
    after = time.monotonic_ns()
    lookup = snaps.lookup()
    assert lookup.image_read is not None
    exe, cwd, argv, read_ns = lookup.image_read(os.getpid())
    assert exe == os.fsencode(os.path.realpath(sys.executable))
    assert argv == procfs.cmdline(os.getpid())
    assert cwd == os.fsencode(os.getcwd())
    assert read_ns <= after  # when it was read, for the correlator's proof
    # no snapshot for pid 1: answered by /proc as it is now
    assert lookup.image_read(1)[2] == procfs.cmdline(1)
    assert lookup.image_read(1)[3] > after


def test_kinds_not_asked_for_are_not_read() -> None:
    snaps = ProcSnapshots(execs=False, opens=False)
    snaps.take([_rec(os.getpid(), "sched_process_exec", FIELDS, pid=os.getpid())])
    assert snaps._image == {} and snaps._fds == {}
