"""comm and uid from the task records (tasks.py), through the correlator both readers feed.

Records here are written as the binary reader decodes them (ints); the
recorded trace_pipe text of the same situations is replayed in
test_ftrace_text_tasks.py. /proc is a table: (start ticks, comm, real uid)
per tid, or nothing for a task that is gone.
"""

from __future__ import annotations

import os
import pathlib
from typing import Dict, List, Optional, Tuple

import attrs
import pytest

from hybridtrace import procfs
from hybridtrace.backends.ftrace.correlate import Correlator, ProcLookup
from hybridtrace.backends.ftrace.fd_ledger import INF
from hybridtrace.backends.ftrace.probes import ARG, FN, MORE, Role
from hybridtrace.backends.ftrace.tasks import TaskTracker
from hybridtrace.backends.ftrace.threads import TICK_NS, Listing
from hybridtrace.backends.ftrace.trace_record import ENTER, EXIT, FIELDS, TraceLine
from hybridtrace.events import Event, ExecEvent, OpenEvent, Source
from hybridtrace.request import Kind

BOOT = 100 * TICK_NS  # CLOCK_BOOTTIME - CLOCK_MONOTONIC: start tick 0 is long before ts 0
State = Tuple[int, bytes, Optional[int]]


def _none(*_args: object) -> None:
    return None


def line(ts: int, tid: int, event: str, style: str = FIELDS, **args: object) -> TraceLine:
    return TraceLine(b"", tid, 0, ts, event, args, b"", style)  # type: ignore[arg-type]


def opened(ts: int, tid: int, fd: int = 3) -> List[TraceLine]:
    return [line(ts, tid, "sys_openat", ENTER, dfd=-100, filename=1, flags=0, mode=0),
            line(ts + 1, tid, "sys_openat", EXIT, ret=fd)]


def correlator(kind: Kind, proc: Dict[int, State], clock: int = 0) -> Correlator:
    lookup = ProcLookup(cmdline=_none, ppid=_none, exe=_none, cwd=_none, fd_path=_none,
                        fd_flags=_none, task_state=proc.get, thread_identity=_none)
    corr = Correlator(kind, {}, None, 20, lookup, BOOT)
    if clock:
        corr.tasks = TaskTracker(proc.get, BOOT, clock=lambda: clock)
    return corr


def run(kind: Kind, lines: List[TraceLine], proc: Dict[int, State]) -> List[Event]:
    corr = correlator(kind, proc)
    return corr.feed_all(lines, complete=INF) + corr.flush()


def who(events: List[Event]) -> List[Tuple[int, Optional[bytes], Optional[int]]]:
    return [(e.tid, e.comm, e.uid) for e in events if isinstance(e, (ExecEvent, OpenEvent))]


def test_comm_and_uid_follow_the_task_records() -> None:
    events = run(Kind.EXEC, [
        line(1, 1, "task_newtask", pid=2, comm=b"bash", clone_flags=0x11),
        line(2, 2, "sys_execve", ENTER, argv=1),
        line(3, 2, "task_rename", pid=2, oldcomm=b"bash", newcomm=b"cat"),
        line(4, 2, "sched_process_exec", filename=b"/bin/cat", pid=2, old_pid=2),
        line(5, 2, "sys_execve", ENTER, argv=2),
        line(6, 2, "sys_execve", EXIT, ret=-2),
    ], {1: (0, b"bash", 1000)})  # pid 2 is gone from /proc: all it has is from records
    assert who(events) == [(2, b"cat", 1000), (2, b"cat", 1000)]


def test_exec_from_a_non_leader_thread_keeps_that_threads_uid() -> None:
    # Ground truth (tools/groundtruth): thread 11 of process 10 set its own uid (raw
    # setuid syscall) and exec'd; the new image (pid 10) was reported with the old
    # leader's uid 0 instead of 65534.
    events = run(Kind.OPEN, [
        line(1, 9, "task_newtask", pid=10, comm=b"gt", clone_flags=0x11),
        line(2, 10, "sys_setresuid", ENTER, ruid=0, euid=0, suid=0),  # the uid, from a record
        line(3, 10, "sys_setresuid", EXIT, ret=0),
        line(4, 10, "task_newtask", pid=11, comm=b"gt", clone_flags=0x3d0f00),
        line(5, 11, "sys_setuid", ENTER, uid=65534),
        line(6, 11, "sys_setuid", EXIT, ret=0),
        line(7, 10, "task_rename", pid=10, oldcomm=b"gt", newcomm=b"new"),
        line(8, 10, "sched_process_exec", filename=b"/bin/new", pid=10, old_pid=11),
        *opened(9, 10),
    ], {})  # all gone: every value comes from the records
    assert who(events) == [(10, b"new", 65534)]


def test_task_tracker_is_bounded() -> None:
    tracker = TaskTracker(_none, None, limit=3)
    for tid in range(10):
        tracker.renamed(tid, b"t%d" % tid, tid)
    assert tracker.get(9, 10).comm == b"t9" and len(tracker._tasks) == 3
    assert tracker.get(0, 10).comm is None  # forgotten: nothing proves a reading


def test_setuid_family_sets_the_real_uid_it_can() -> None:
    def created(ts: int, tid: int, uid: int) -> List[TraceLine]:  # with a uid from records
        return [line(ts, 99, "task_newtask", pid=tid, comm=b"x", clone_flags=0x11),
                line(ts, tid, "sys_setresuid", ENTER, ruid=uid, euid=uid, suid=uid),
                line(ts, tid, "sys_setresuid", EXIT, ret=0)]

    events = run(Kind.OPEN, [
        *created(0, 1, 0), *created(0, 2, 1000), *created(0, 3, 0),
        line(1, 1, "sys_setuid", ENTER, uid=7),  # root: setuid sets the real uid
        line(2, 1, "sys_setuid", EXIT, ret=0),
        *opened(3, 1),
        line(5, 2, "sys_setresuid", ENTER, ruid=0xFFFFFFFF, euid=5, suid=5),  # -1: unchanged
        line(6, 2, "sys_setresuid", EXIT, ret=0),
        *opened(7, 2),
        line(9, 2, "sys_setreuid", ENTER, ruid=9, euid=9),
        line(10, 2, "sys_setreuid", EXIT, ret=-1),  # refused: nothing changes
        *opened(11, 2),
        line(13, 3, "sys_setreuid", ENTER, ruid=11, euid=11),
        line(14, 3, "sys_setreuid", EXIT, ret=0),
        *opened(15, 3),
    ], {})
    assert [(tid, uid) for tid, _c, uid in who(events)] == [(1, 7), (2, 1000), (2, 1000),
                                                           (3, 11)]


def test_setuid_without_privilege_makes_the_uid_unknown_until_proven() -> None:
    proc = {4: (0, b"x", 1000)}
    corr = correlator(Kind.OPEN, proc)
    out = corr.feed_all(opened(1, 4), complete=INF)  # read, then proven
    out += corr.feed_all([line(3, 4, "sys_setuid", ENTER, uid=5),
                          line(4, 4, "sys_setuid", EXIT, ret=0)], complete=INF)
    proc[4] = (0, b"x", 5)  # what /proc shows now: no record said which uid changed
    out += corr.feed_all(opened(5, 4), complete=INF)
    assert [uid for _t, _c, uid in who(out)] == [1000, 5]
    assert corr.tasks.readings == 2


def test_setuid_before_the_uid_was_proven_reads_it_again() -> None:
    # A thread older than the session: its uid is read at its first record, and that
    # reading is not proven when it calls setuid(5). Whether it was root (so the real
    # uid is now 5) is not known then: the uid after the call is read anew.
    proc = {4: (0, b"x", 0)}
    corr = correlator(Kind.OPEN, proc)
    out = corr.feed_all([*opened(1, 4), line(3, 4, "sys_setuid", ENTER, uid=5)],
                        complete=0)
    assert out == []  # its uid waits for the records up to the reading
    proc[4] = (0, b"x", 5)
    out += corr.feed_all([line(4, 4, "sys_setuid", EXIT, ret=0), *opened(5, 4)],
                         complete=INF)
    assert [uid for _t, _c, uid in who(out)] == [None, 5]  # the first reading was spoiled


def test_a_reading_a_later_record_changed_is_dropped() -> None:
    # A thread older than the session opens, then renames itself (prctl or exec) and
    # sets its uid before its records are correlated: /proc shows the new values,
    # which were not the open's. The records between say so: None, never those.
    proc = {7: (0, b"after", 5)}
    corr = correlator(Kind.OPEN, proc, clock=100)
    out = corr.feed_all([*opened(1, 7), line(50, 7, "task_rename", pid=7, oldcomm=b"before",
                                             newcomm=b"after")], complete=40)
    assert out == []  # read at 100: records up to then may still change it
    out = corr.feed_all([line(60, 7, "sys_setreuid", ENTER, ruid=5, euid=5),
                         line(61, 7, "sys_setreuid", EXIT, ret=0), *opened(70, 7)],
                        complete=INF)
    assert who(out) == [(7, None, None), (7, b"after", 5)]


def test_a_reading_nothing_changed_is_kept_and_waits_for_its_proof() -> None:
    proc = {7: (0, b"daemon", 0)}
    corr = correlator(Kind.OPEN, proc, clock=100)
    assert corr.feed_all(opened(1, 7), complete=50) == []
    (ev,) = corr.feed_all([], complete=100 + 1000)
    assert who([ev]) == [(7, b"daemon", 0)]


def test_a_reading_of_a_task_that_started_after_the_record_is_not_believed() -> None:
    # The thread exited and its id went to a new task before /proc was read.
    proc = {7: (BOOT // TICK_NS + 5, b"other", 1000)}  # started 5 ticks after ts 0
    assert who(run(Kind.OPEN, opened(1, 7), proc)) == [(7, None, None)]


def test_a_reading_over_lost_records_is_not_believed() -> None:
    proc = {7: (0, b"daemon", 0)}
    corr = correlator(Kind.OPEN, proc, clock=100)
    out = corr.feed_all(opened(1, 7), complete=50)
    corr.gap(-INF, 80)  # the buffer overran: a rename may be among what was lost
    out += corr.feed_all([], complete=INF)
    assert who(out) == [(7, None, None)]


def test_values_inherited_from_a_reading_share_its_fate() -> None:
    # The creator's uid came from /proc, and a setuid of its own before the reading
    # spoiled it: its child inherited that unproven value, so the child's is None too.
    proc = {1: (0, b"sh", 0)}
    corr = correlator(Kind.OPEN, proc, clock=100)
    out = corr.feed_all([
        line(1, 1, "task_newtask", pid=2, comm=b"sh", clone_flags=0x11),
        line(2, 1, "sys_setresuid", ENTER, ruid=5, euid=5, suid=5),
        line(3, 1, "sys_setresuid", EXIT, ret=0),
        *opened(4, 2),
    ], complete=INF)
    assert who(out) == [(2, b"sh", None)]


def test_trace_pipe_comm_column_is_never_taken() -> None:
    # trace_pipe prints the comm its cache holds when the text is formatted: after an
    # exec, the new image's name for the old image's records (ground truth: an open by
    # "gt" printed as "memfd:mfd-x..."). The task records decide.
    lines = [attrs.evolve(rec, comm=b"memfd:mfd-x") for rec in [
        line(1, 1, "task_newtask", pid=2, comm=b"gt", clone_flags=0x11), *opened(2, 2)]]
    assert who(run(Kind.OPEN, lines, {1: (0, b"gt", 0)})) == [(2, b"gt", 0)]


def test_argv_read_after_another_exec_of_the_same_file_is_dropped() -> None:
    # Ground truth (tracepoint tier, text reader): a process exec'd gt-static, and the new
    # image exec'd gt-static again before the first exec was correlated; /proc showed the
    # second argv, same executable, so it was taken for the first. The second exec's
    # record, between the first one and the reading, now says so.
    def image(pid: int) -> Tuple[bytes, bytes, Tuple[bytes, ...], int]:
        return b"/opt/gt", b"/", (b"gt", b"second"), 100

    corr = correlator(Kind.EXEC, {})
    corr.proc = attrs.evolve(corr.proc, image_read=image)

    def exec_done(ts: int) -> TraceLine:
        return line(ts, 5, "sched_process_exec", filename=b"/opt/gt", pid=5, old_pid=5)

    out = corr.feed_all([exec_done(10)], complete=50)
    out += corr.feed_all([exec_done(60)], complete=INF)
    assert [(e.timestamp_ns, e.argv) for e in out if isinstance(e, ExecEvent)] == [
        (10, None), (60, (b"gt", b"second"))]
    # Nothing between: the reading is the exec's own.
    corr = correlator(Kind.EXEC, {})
    corr.proc = attrs.evolve(corr.proc, image_read=image)
    (ev,) = corr.feed_all([exec_done(10)], complete=INF)
    assert isinstance(ev, ExecEvent) and ev.argv == (b"gt", b"second")


@pytest.mark.parametrize("entry_read_first", [True, False])
def test_argv_of_a_threads_raw_exec_is_not_the_next_execs(tmp_path: pathlib.Path,
                                                          entry_read_first: bool) -> None:
    # Ground truth (Debian 6.1 VM, uprobe tier, seed 671218134, seq 8933): thread 7290 of
    # 7289 exec'd x-8933 by a raw execve (no libc: no probe, argv from /proc), and that
    # image exec'd x-8934 by a raw execveat; both are symlinks to one static binary. /proc
    # was read after the kernel had given 7289 the second image but before its
    # sched_process_exec was written, so nothing between the first exec and the reading
    # said so: the first exec got the second's argv. The second exec's entry, before the
    # reading, now spoils it, whether it was fed before the reading or after.
    static = tmp_path / "gt-static"
    static.write_bytes(b"")
    for name in ("x-8933", "x-8934"):
        (tmp_path / name).symlink_to(static)
    second = (b"x-8934", b"a-8934", b"", b"", b"arg270")
    readings = iter([10_000, 40_000])

    def image(pid: int) -> Tuple[bytes, bytes, Tuple[bytes, ...], int]:
        assert pid == 7289
        return os.fsencode(os.path.realpath(static)), os.fsencode(tmp_path), second, \
            next(readings)

    corr = correlator(Kind.EXEC, {})
    corr.proc = attrs.evolve(corr.proc, image_read=image)
    first = [
        line(1_000, 7288, "task_newtask", pid=7289, comm=b"gt", clone_flags=0x11),
        line(1_100, 7289, "task_newtask", pid=7290, comm=b"gt", clone_flags=0x3d0f00),
        line(2_000, 7290, "sys_execve", ENTER, argv=0x7f00),
        line(3_000, 7289, "sched_process_exec", filename=os.fsencode(tmp_path / "x-8933"),
             pid=7289, old_pid=7290),
        line(3_100, 7289, "sys_execve", EXIT, ret=0),
    ]
    entry = line(5_000, 7289, "sys_execveat", ENTER, argv=0x7ffc)
    done = [line(30_000, 7289, "sched_process_exec", filename=os.fsencode(tmp_path / "x-8934"),
                 pid=7289, old_pid=7289),
            line(30_100, 7289, "sys_execveat", EXIT, ret=0)]
    if entry_read_first:
        out = corr.feed_all([*first, entry], complete=5_000)
        out += corr.feed_all(done, complete=INF)
    else:
        out = corr.feed_all(first, complete=3_100)
        out += corr.feed_all([entry, *done], complete=INF)
    execs = [e for e in out if isinstance(e, ExecEvent)]
    assert [(e.pid, e.tid, e.argv) for e in execs] == [(7289, 7289, None),
                                                        (7289, 7289, second)]
    assert execs[1].argv_source is Source.PROCFS


def test_an_exec_cut_short_by_exit_ends_there() -> None:
    # Thread 5's execve entry has no exit record (lost), then the thread exits: its call
    # ends there, unknown, instead of standing for an exec in flight of a process nobody
    # knows any more (which would keep every later exec from reading its argv).
    def image(pid: int) -> Tuple[bytes, bytes, Tuple[bytes, ...], int]:
        return os.path.realpath(b"/bin/true"), b"/", (b"true", b"six"), 10_000

    corr = correlator(Kind.EXEC, {})
    corr.proc = attrs.evolve(corr.proc, image_read=image)
    out = corr.feed_all([
        line(1_000, 1, "task_newtask", pid=5, comm=b"sh", clone_flags=0x11),
        line(1_100, 5, "sys_execve", ENTER, argv=0x10),
        line(2_000, 5, "sched_process_exit", pid=5),
        line(3_000, 1, "task_newtask", pid=6, comm=b"sh", clone_flags=0x11),
        line(4_000, 6, "sched_process_exec", filename=b"/bin/true", pid=6, old_pid=6),
    ], complete=INF)
    assert [(e.tid, e.retval, e.argv) for e in out if isinstance(e, ExecEvent)] == [
        (5, None, None), (6, 0, (b"true", b"six"))]


@pytest.mark.parametrize("more", ["lost", 0x7ff0, 0])
def test_argv_without_its_past_the_end_slot_is_not_known_to_be_whole(more: object) -> None:
    # Ground truth under overload (uprobe tier, seed 77): an exec with 32 arguments came
    # out with the first 20 (max_args) and argv_truncated False: the record of slot 20,
    # which says whether argv goes on, was lost. Without it argv is None, not "whole".
    roles = {"ht_exec_argv": Role(ARG, 0), "ht_exec_more": Role(MORE, 2)}
    lookup = ProcLookup(cmdline=_none, ppid=_none, exe=_none, cwd=_none, fd_path=_none,
                        fd_flags=_none, task_state=_none, thread_identity=_none)
    corr = Correlator(Kind.EXEC, roles, Source.LIBC_PROBE, 2, lookup, BOOT)
    records = [line(1, 5, "ht_exec_argv", k=0x100, i=0, p=0x200, s=b"x"),
               line(2, 5, "ht_exec_argv", k=0x100, i=1, p=0x208, s=b"many0")]
    if more != "lost":
        records.append(line(3, 5, "ht_exec_more", k=0x100, p=more))
    records += [line(4, 5, "sys_execve", ENTER, argv=0x100),
                line(5, 5, "sched_process_exec", filename=b"/bin/x", pid=5, old_pid=5)]
    (ev,) = corr.feed_all(records, complete=INF)
    assert isinstance(ev, ExecEvent)
    want = {"lost": (None, False), 0x7ff0: ((b"x", b"many0"), True),
            0: ((b"x", b"many0"), False)}[more]  # type: ignore[index]
    assert (ev.argv, ev.argv_truncated) == want


def test_probe_strings_of_a_call_whose_syscall_records_were_lost_stay_its_own() -> None:
    # Under overload: a failed execve's probe records were read but its entry and exit
    # were lost; the thread's next execve uses the same argv array (one pointer, ``k``),
    # and its file name record is lost. The first call's name is not the second's.
    roles = {"ht_exec_fn": Role(FN), "ht_exec_argv": Role(ARG, 0),
             "ht_exec_more": Role(MORE, 2)}
    lookup = ProcLookup(cmdline=_none, ppid=_none, exe=_none, cwd=_none, fd_path=_none,
                        fd_flags=_none, task_state=_none, thread_identity=_none)
    corr = Correlator(Kind.EXEC, roles, Source.LIBC_PROBE, 2, lookup, BOOT)

    def probes(ts: int, fn: Optional[bytes], arg1: bytes) -> List[TraceLine]:
        out = [] if fn is None else [line(ts, 5, "ht_exec_fn", k=0x100, p=0x50, s=fn)]
        return [*out, line(ts + 1, 5, "ht_exec_argv", k=0x100, i=0, p=0x200, s=b"x"),
                line(ts + 2, 5, "ht_exec_argv", k=0x100, i=1, p=0x208, s=arg1),
                line(ts + 3, 5, "ht_exec_more", k=0x100, p=0)]

    (ev,) = corr.feed_all([*probes(10, b"/first", b"one"), *probes(100, None, b"two"),
                           line(110, 5, "sys_execve", ENTER, argv=0x100),
                           line(120, 5, "sys_execve", EXIT, ret=-2)], complete=INF)
    assert isinstance(ev, ExecEvent)
    assert (ev.filename, ev.argv, ev.retval) == (None, (b"x", b"two"), -2)


def test_an_exec_whose_rename_was_lost_is_not_named_after_the_last_one() -> None:
    # Ground truth under overload (tracepoint tier, seed 77, seq 1281): a process exec'd
    # x-1280 and that image exec'd x-1281 by execveat relative to a dirfd; the second
    # exec's task_rename was lost and it was reported as x-1280 (and so would its opens).
    def run_execs(lost: bool, second: bytes) -> List[Event]:
        corr = correlator(Kind.EXEC, {})
        records = [line(1, 1, "task_newtask", pid=5, comm=b"gt", clone_flags=0x11),
                   line(10, 5, "task_rename", pid=5, oldcomm=b"gt", newcomm=b"x-1280"),
                   line(11, 5, "sched_process_exec", filename=b"/t/x-1280", pid=5, old_pid=5)]
        out = corr.feed_all(records, complete=11)
        if lost:  # the second exec's task_rename was among the records lost
            corr.gap(-INF, 15)
        else:
            out += corr.feed_all([line(2020, 5, "task_rename", pid=5, oldcomm=b"x-1280",
                                       newcomm=b"sleep")], complete=2020)
        # (after the loss by more than the microsecond trace_pipe's times may be off)
        return out + corr.feed_all([line(2021, 5, "sched_process_exec", filename=second,
                                          pid=5, old_pid=5)], complete=INF)

    # The kernel names an image after the file it was given: no record needed.
    assert [e.comm for e in run_execs(True, b"/dev/fd/3/x-1281")  # type: ignore[union-attr]
            ] == [b"x-1280", b"x-1281"]
    # fexecve: only its own rename says (the file's name since 6.14), if surely its own.
    assert [e.comm for e in run_execs(True, b"/dev/fd/3")  # type: ignore[union-attr]
            ] == [b"x-1280", None]
    assert [e.comm for e in run_execs(False, b"/dev/fd/3")  # type: ignore[union-attr]
            ] == [b"x-1280", b"sleep"]


@pytest.mark.parametrize("lost", [False, True])
def test_an_entry_is_not_paired_with_an_end_across_lost_records(lost: bool) -> None:
    # Ground truth under overload (seed 91): a thread's execveat entry waited (its end
    # lost), then its fexecve/execve's entry was lost too, and the exec was reported
    # with the first call's syscall. Across a loss, an entry and an end are not paired:
    # the end says what its record says (one event per call, never two).
    def run_exec(end: TraceLine) -> List[Tuple[Optional[int], Optional[str]]]:
        corr = correlator(Kind.EXEC, {})
        out = corr.feed_all([line(1, 1, "task_newtask", pid=5, comm=b"gt", clone_flags=0x11),
                             line(10, 5, "sys_execveat", ENTER, argv=0x10)], complete=10)
        if lost:
            corr.gap(-INF, 15)
        out += corr.feed_all([end], complete=INF)
        return [(e.retval, e.syscall) for e in out if isinstance(e, ExecEvent)]

    done = line(20, 5, "sched_process_exec", filename=b"/bin/x", pid=5, old_pid=5)
    failed = line(20, 5, "sys_execveat", EXIT, ret=-2)
    if lost:
        assert run_exec(done) == [(0, None)]
        assert run_exec(failed) == [(-2, "execveat")]
    else:
        assert run_exec(done) == [(0, "execveat")]
        assert run_exec(failed) == [(-2, "execveat")]


def test_comm_held_from_records_is_not_kept_across_lost_records() -> None:
    # Ground truth under overload (uprobe tier, seed 77, seq 800): gt exec'd x-798 and
    # opened; the exec's records were lost and the open came out with comm "gt".
    corr = correlator(Kind.OPEN, {5: (0, b"x-798", 0)}, clock=100)
    out = corr.feed_all([line(1, 1, "task_newtask", pid=5, comm=b"gt", clone_flags=0x11),
                         *opened(2, 5)], complete=3)
    corr.gap(-INF, 50)  # the exec's sched_process_exec and task_rename were lost
    out += corr.feed_all(opened(40, 5, fd=4), complete=INF)
    assert who(out) == [(5, b"gt", None), (5, None, None)]


def test_a_child_dropping_root_gets_the_uid_it_asked_for() -> None:
    # A daemon older than the session (its uid read from /proc, not yet proven) forks a
    # child that calls setuid(65534) and exits at once: the child's uid follows from
    # the daemon's (root: setuid sets the real uid), and is proven with it.
    proc = {1: (0, b"daemon", 0)}
    corr = correlator(Kind.OPEN, proc, clock=100)
    out = corr.feed_all([
        line(1, 1, "task_newtask", pid=2, comm=b"daemon", clone_flags=0x11),
        line(2, 2, "sys_setuid", ENTER, uid=65534),
        line(3, 2, "sys_setuid", EXIT, ret=0),
        *opened(4, 2),
    ], complete=50)
    assert out == []
    out = corr.feed_all([], complete=INF)
    assert who(out) == [(2, b"daemon", 65534)]


def test_threads_listed_at_the_start_need_no_reading_later() -> None:
    # Listed once every record was enabled (at 10, read by 20): a thread renamed at 15
    # was listed with its new name, so its records before 15 get None; others keep theirs.
    listing = Listing({7: procfs.ThreadNow(0, 7, b"after", 0),
                       8: procfs.ThreadNow(0, 8, b"idle", 1000)}, since=10, read_ns=20)
    lookup = ProcLookup(cmdline=_none, ppid=_none, exe=_none, cwd=_none, fd_path=_none,
                        fd_flags=_none, task_state=_none, thread_identity=_none)
    corr = Correlator(Kind.OPEN, {}, None, 20, lookup, BOOT, threads=listing)
    out = corr.feed_all([*opened(12, 7), *opened(12, 8),
                         line(15, 7, "task_rename", pid=7, oldcomm=b"before", newcomm=b"after"),
                         *opened(30, 7)], complete=INF)
    assert who(out) == [(7, None, 0), (8, b"idle", 1000), (7, b"after", 0)]
    assert [e.pid for e in out if isinstance(e, OpenEvent)] == [7, 8, 7]
    assert corr.tasks.readings == 0  # nothing read from /proc after the listing


def test_a_value_taught_before_the_loss_horizon_is_not_held() -> None:
    # Ground truth under overload (tracepoint tier, seed 4242, seq 935): a child forked
    # as "gt" exec'd x-931 and opened a file; the exec's records were lost and the loss
    # was found in the batch that held the fork, so the fork taught "gt" after the
    # tracker forgot, and the open was reported as gt's.
    corr = correlator(Kind.OPEN, {})
    corr.gap(-INF, 5000)  # found while reading the batch below
    corr.feed_all([line(100, 1, "task_newtask", pid=7, comm=b"gt", clone_flags=0x11)],
                  complete=100)
    task = corr.tasks.get(7, 200)
    assert task.comm is None  # the fork's "gt" may have been renamed by a lost record
    corr.feed_all([line(9000, 7, "task_rename", pid=7, oldcomm=b"gt", newcomm=b"x-1")],
                  complete=9000)
    assert corr.tasks.get(7, 9100).comm == b"x-1"  # taught after the horizon: held
