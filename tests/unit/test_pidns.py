"""Pids in the tracer's own pid namespace (hybridtrace.pidns)."""

from __future__ import annotations

import attrs

from hybridtrace.events import ExecEvent, OpenEvent
from hybridtrace.filtering import matches
from hybridtrace.pidns import in_view, nested
from hybridtrace.request import Filters
from hybridtrace.vocabulary import INIT_PIDNS_INODE

OURS, OTHER = 4026532245, 4026532999

EXEC = ExecEvent(1, 31000, 31000, 30990, 0, b"cat", b"/usr/bin/cat", (b"cat",), 0,
                 pidns=OURS, ns_pid=7, ns_tid=7, ns_ppid=3)
OPEN = OpenEvent(1, 31000, 31002, 0, b"cat", b"/x", 0, 0, 3, None,
                 pidns=OURS, ns_pid=7, ns_tid=9)


def test_host_namespace_is_not_nested() -> None:
    assert not nested(INIT_PIDNS_INODE) and not nested(None) and nested(OURS)


def test_a_process_of_our_namespace_shows_its_pids_there() -> None:
    exec_here = in_view(EXEC, OURS)
    assert (exec_here.pid, exec_here.tid, exec_here.ppid) == (7, 7, 3)
    open_here = in_view(OPEN, OURS)
    assert (open_here.pid, open_here.tid) == (7, 9)
    # Everything else is left as the kernel said.
    assert attrs.evolve(exec_here, pid=31000, tid=31000, ppid=30990) == EXEC


def test_a_process_elsewhere_has_no_pid_here() -> None:
    for event in (EXEC, OPEN):
        moved = in_view(attrs.evolve(event, pidns=OTHER), OURS)
        assert (moved.pid, moved.tid) == (None, None)
        assert moved.ns_pid == event.ns_pid  # its own namespace's view is kept
    unknown = in_view(attrs.evolve(EXEC, pidns=None), OURS)
    assert (unknown.pid, unknown.tid, unknown.ppid) == (None, None, None)


def test_a_parent_outside_and_an_unproven_pid_stay_unknown() -> None:
    orphan = in_view(attrs.evolve(EXEC, ns_ppid=0), OURS)  # getppid() is 0 there
    assert orphan.ppid is None and orphan.pid == 7
    unproven = in_view(attrs.evolve(OPEN, pid=None), OURS)
    assert unproven.pid is None and unproven.tid == 9


def test_pid_filters_match_the_namespace_pids() -> None:
    here = in_view(EXEC, OURS)
    assert matches(here, Filters(pid=7)) and not matches(here, Filters(pid=31000))
    assert matches(here, Filters(ppid=3))
    elsewhere = in_view(attrs.evolve(EXEC, pidns=OTHER), OURS)
    assert not matches(elsewhere, Filters(pid=7))
