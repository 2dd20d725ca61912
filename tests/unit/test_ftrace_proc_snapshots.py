"""Snapshots of /proc taken at decode time outlive what they describe."""

from __future__ import annotations

import os
import sys
import tempfile

from hybridtrace import procfs
from hybridtrace.backends.ftrace.pipe import EXIT, FIELDS
from hybridtrace.backends.ftrace.proc_snapshots import ProcSnapshots
from hybridtrace.backends.ftrace.raw_records import RawRecord


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
    lookup = snaps.lookup()
    assert lookup.exe(os.getpid()) == os.fsencode(os.path.realpath(sys.executable))
    assert lookup.cmdline(os.getpid()) == procfs.cmdline(os.getpid())
    assert lookup.cwd(os.getpid()) == os.fsencode(os.getcwd())
    # no snapshot for pid 1: answered by /proc as it is now
    assert lookup.cmdline(1) == procfs.cmdline(1)


def test_kinds_not_asked_for_are_not_read() -> None:
    snaps = ProcSnapshots(execs=False, opens=False)
    snaps.take([_rec(os.getpid(), "sched_process_exec", FIELDS, pid=os.getpid())])
    assert snaps._image == {} and snaps._fds == {}
