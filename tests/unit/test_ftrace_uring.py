"""io_uring opens from io_uring's tracepoints (ftrace/uring.py), records made up here.

Field names and kinds are those of this kernel's format files (binary reader):
the ring and request addresses, user_data, opcode, req->flags, sq_thread.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from hybridtrace.backends.ftrace.correlate import Correlator, ProcLookup
from hybridtrace.backends.ftrace.probes import URING, Role
from hybridtrace.backends.ftrace.threads import ThreadGroups
from hybridtrace.backends.ftrace.trace_record import TraceLine
from hybridtrace.backends.ftrace.uring import (
    FAILED_PROBE,
    PATH_PROBE,
    PREP_PROBES,
    REQ_F_CQE_SKIP,
    SUBMIT_PROBE,
    UringOpens,
    submit_filter,
)
from hybridtrace.events import Event, LostEvent, OpenEvent, Source
from hybridtrace.request import Kind

RING, OTHER_RING = 0xFFFF0001, 0xFFFF0002
CLONE_THREAD_FLAGS = 0x3D0F00  # pthread_create's, CLONE_THREAD among them


def line(ts: int, tid: int, event: str, comm: bytes = b"gt", **args: int) -> TraceLine:
    return TraceLine(comm, tid, 0, ts, event, args, b"", "fields")


def submit(ts: int, tid: int, req: int, opcode: int = 18, flags: int = 0, sq: int = 0,
           ring: int = RING, user_data: int = 7, **kw: object) -> TraceLine:
    return line(ts, tid, "io_uring_submit_req", ctx=ring, req=req, user_data=user_data,
                opcode=opcode, flags=flags, sq_thread=sq, **kw)  # type: ignore[arg-type]


def complete(ts: int, tid: int, req: int, res: int, ring: int = RING,
             user_data: int = 7) -> TraceLine:
    return line(ts, tid, "io_uring_complete", b"iou-wrk-100", ctx=ring, req=req,
                user_data=user_data, res=res & 0xFFFFFFFF, cflags=0)


def opens(threads: Optional[Dict[int, int]] = None, results: bool = True) -> UringOpens:
    groups = ThreadGroups(lambda tid: None)
    for tid, tgid in (threads or {100: 100, 101: 100, 102: 100}).items():
        groups.created(tid, tgid, CLONE_THREAD_FLAGS if tid != tgid else 0, 0)
    return UringOpens(groups, results)


def feed(uring: UringOpens, lines: List[TraceLine]) -> List[Event]:
    out: List[Event] = []
    for ln in lines:  # the line's comm stands for what task records proved, with uid 0
        out += uring.feed(ln, ln.comm or None, 0 if ln.comm else None)
    return out


def test_submitter_and_result_from_two_records_on_different_threads() -> None:
    uring = opens()
    out = feed(uring, [line(1, 100, "io_uring_create", ctx=RING, flags=0, fd=3),
                       submit(2, 101, 0xA0), complete(3, 102, 0xA0, 5),
                       submit(4, 101, 0xA0, opcode=28), complete(5, 100, 0xA0, -2)])
    ok, bad = out
    assert isinstance(ok, OpenEvent) and isinstance(bad, OpenEvent)
    assert (ok.pid, ok.tid, ok.comm, ok.uid, ok.fd, ok.errno) == (100, 101, b"gt", 0, 5, None)
    assert ok.via == "io_uring" and ok.syscall is None and ok.timestamp_ns == 3
    assert ok.path is None and ok.flags is None and ok.dfd is None
    assert (bad.fd, bad.errno) == (None, 2)
    assert not uring.pending


def test_a_success_is_an_fd_only_on_a_ring_that_cannot_have_fixed_slots() -> None:
    uring = opens()
    out = feed(uring, [submit(1, 101, 0xA0, ring=OTHER_RING),  # made before tracing
                       complete(2, 102, 0xA0, 0, ring=OTHER_RING),
                       line(3, 100, "io_uring_create", ctx=RING, flags=0, fd=3),
                       line(4, 100, "io_uring_register", ctx=RING, opcode=13, nr_files=4,
                            nr_bufs=0, ret=0),
                       submit(5, 101, 0xA1), complete(6, 102, 0xA1, 0),
                       submit(7, 101, 0xA2), complete(8, 102, 0xA2, -22)])
    assert [(e.fd, e.errno) for e in out if isinstance(e, OpenEvent)] == [
        (None, None), (None, None), (None, 22)]


def test_sqpoll_submissions_belong_to_the_process_but_to_no_thread() -> None:
    uring = opens({100: 100, 103: 100})
    out = feed(uring, [submit(1, 103, 0xB0, sq=1, comm=b""), complete(2, 103, 0xB0, 4)])
    (ev,) = out
    assert isinstance(ev, OpenEvent)
    assert (ev.pid, ev.tid, ev.comm, ev.uid) == (100, None, None, None)


def test_results_go_to_the_request_they_belong_to_or_to_none() -> None:
    uring = opens()
    out = feed(uring, [
        submit(1, 101, 0xC0, user_data=1),
        complete(2, 102, 0xC0, 9, user_data=2),  # another request at that address: not it
        submit(3, 101, 0xC1, opcode=22),  # a read reusing a pending open's address clears it
        submit(4, 101, 0xC2, opcode=18, user_data=5),
        submit(4, 101, 0xC2, opcode=1),
        complete(5, 102, 0xC2, 3, user_data=5),
    ])
    assert out == []
    assert not uring.pending


def test_cqe_skip_is_reported_at_submission_result_unknown() -> None:
    uring = opens()
    (ev,) = feed(uring, [submit(1, 101, 0xD0, flags=REQ_F_CQE_SKIP),
                         complete(2, 102, 0xD0, -2)])
    assert isinstance(ev, OpenEvent) and ev.timestamp_ns == 1
    assert ev.fd is None and ev.errno is None


def test_overflowed_completion_matched_by_ring_and_user_data_when_unique() -> None:
    uring = opens()
    overflow = line(4, 102, "io_uring_cqe_overflow", ctx=RING, user_data=7, res=3, cflags=0,
                    ocqe=0)
    one = feed(uring, [submit(1, 101, 0xE0), overflow])
    assert len(one) == 1 and isinstance(one[0], OpenEvent) and one[0].errno is None
    two = feed(uring, [submit(1, 101, 0xE1), submit(2, 101, 0xE2), overflow])
    assert two == [] and len(uring.pending) == 2  # which one completed is unknown


def test_after_lost_records_a_completion_proves_no_result() -> None:
    uring = opens()
    feed(uring, [line(0, 100, "io_uring_create", ctx=RING, flags=0, fd=3), submit(1, 101, 0xF0)])
    uring.lost(1)
    (ev,) = feed(uring, [complete(2, 102, 0xF0, 3)])
    assert isinstance(ev, OpenEvent) and ev.fd is None and ev.errno is None


def test_after_lost_records_no_ring_is_known_free_of_fixed_slots() -> None:
    """Ground truth under overload: the ring's io_uring_register was among the lost
    records, and a later open into fixed slot 0 came out as fd 0."""
    uring = opens()
    feed(uring, [line(0, 100, "io_uring_create", ctx=RING, flags=0, fd=3)])
    (known,) = feed(uring, [submit(1, 101, 0xF1), complete(2, 102, 0xF1, 4)])
    assert isinstance(known, OpenEvent) and known.fd == 4  # no table: the result is an fd
    uring.lost(2)
    (later,) = feed(uring, [submit(3, 101, 0xF2), complete(4, 102, 0xF2, 0)])
    assert isinstance(later, OpenEvent) and later.fd is None and later.errno is None


def test_a_ring_created_before_a_loss_is_not_free_even_if_read_after_it() -> None:
    """Ground truth under overload: the loss was counted (at time 10) before the
    ring's creation record (time 5) was fed, and its io_uring_register lay among
    the lost records; an open into fixed slot 0 then came out as fd 0."""
    uring = opens()
    uring.lost(10)
    (ev,) = feed(uring, [line(5, 100, "io_uring_create", ctx=RING, flags=0, fd=3),
                         submit(11, 101, 0xF3), complete(12, 102, 0xF3, 0)])
    assert isinstance(ev, OpenEvent) and ev.fd is None and ev.errno is None
    # made after the loss's bound: no loss can lie between its creation and its opens
    (fd,) = feed(uring, [line(13, 100, "io_uring_create", ctx=OTHER_RING, flags=0, fd=4),
                         submit(14, 101, 0xF4, ring=OTHER_RING),
                         complete(15, 102, 0xF4, 0, ring=OTHER_RING)])
    assert isinstance(fd, OpenEvent) and fd.fd == 0


def test_records_written_before_a_loss_but_read_after_it_prove_nothing_later() -> None:
    """A submission, or a preparation, written before the counted loss's bound may
    have a loss after it: its completion, or its writer's submission, may be among
    the lost, and a later record at its address another request's."""
    uring = opens()
    uring.lost(10)
    feed(uring, [submit(5, 101, 0xF5), prep(6, 102, 0xF6, b"/before")])
    (ev,) = feed(uring, [complete(11, 102, 0xF5, -2)])
    assert isinstance(ev, OpenEvent) and ev.errno is None and ev.fd is None
    (refusal,) = feed(uring, [refused(12, 102, 0xF6)])
    assert isinstance(refusal, OpenEvent) and refusal.path is None and refusal.errno == 22


def test_failed_preparation_has_its_error_and_openat_flags() -> None:
    uring = opens()
    failed = line(1, 101, "io_uring_req_failed", ctx=RING, req=0x10, user_data=7, opcode=18,
                  flags=0, op_flags=0o2000101, len=0o600, file_index=1, error=-22)
    sqpoll = line(2, 103, "io_uring_req_failed", b"iou-sqp-100", ctx=RING, req=0x11,
                  user_data=7, opcode=28, op_flags=0, len=24, error=-22)
    a, b = feed(uring, [failed, sqpoll])
    assert isinstance(a, OpenEvent) and isinstance(b, OpenEvent)
    assert (a.tid, a.errno, a.flags, a.mode) == (101, 22, 0o2000101, 0o600)
    assert (b.tid, b.comm, b.errno, b.flags, b.mode) == (None, None, 22, None, None)


def test_followed_pid_reports_at_submission_and_sqpoll_rings_as_lost() -> None:
    uring = opens(results=False)
    out = feed(uring, [line(1, 100, "io_uring_create", ctx=RING, flags=2, fd=3),
                       submit(2, 101, 0xA0), complete(3, 101, 0xA0, 4)])
    lost, ev = out
    assert isinstance(lost, LostEvent) and lost.count is None and not lost.exact
    assert isinstance(ev, OpenEvent) and ev.timestamp_ns == 2
    assert ev.fd is None and ev.errno is None and ev.tid == 101


def test_correlator_hands_io_uring_records_over_and_forgets_on_loss() -> None:
    corr = Correlator(Kind.OPEN, {}, None, 20, ProcLookup())
    corr.threads.created(101, 100, CLONE_THREAD_FLAGS, 0)
    events = corr.feed_all([submit(1, 101, 0xA0), complete(2, 102, 0xA0, -13)])
    assert [(e.tid, e.errno) for e in events if isinstance(e, OpenEvent)] == [(101, 13)]
    corr.feed_all([submit(3, 101, 0xA1)])
    corr.gap(0, 10)
    (late,) = corr.feed_all([complete(11, 102, 0xA1, 5)])
    assert isinstance(late, OpenEvent) and late.fd is None and late.errno is None


def test_submit_filter_names_both_open_opcodes() -> None:
    assert submit_filter() == "opcode == 18 || opcode == 28"


def path_rec(ts: int, tid: int, req: int, path: bytes, dfd: int = -100,
             fault: bool = False) -> TraceLine:
    """A path probe's record (probes.uring_kprobe_def / uring_eprobe_def fields)."""
    args = {"r": req, "d": dfd & 0xFFFFFFFF, "s": path}
    return TraceLine(b"iou-wrk-100", tid, 0, ts, PATH_PROBE, args, b"", "fields",
                     frozenset({"s"}) if fault else frozenset())


def test_path_probe_record_gives_the_pending_request_its_path_and_dfd() -> None:
    uring = opens()
    feed(uring, [submit(1, 101, 0xA0)])
    uring.path_read(path_rec(2, 101, 0xA0, b"/a"))  # inline (would block), then on a worker
    uring.path_read(path_rec(3, 102, 0xA0, b"/a"))
    (ev,) = feed(uring, [complete(4, 102, 0xA0, -2)])
    assert isinstance(ev, OpenEvent) and (ev.path, ev.dfd, ev.errno) == (b"/a", -100, 2)
    assert ev.path_source == Source.KERNEL_COPY and ev.flags is None


def test_path_probe_records_prove_nothing_outside_a_pending_request() -> None:
    uring = opens()
    uring.path_read(path_rec(1, 102, 0xB0, b"/before-submit"))  # no pending request there
    feed(uring, [submit(2, 101, 0xB0)])
    uring.path_read(path_rec(3, 102, 0xB1, b"/other-address"))
    uring.path_read(path_rec(4, 102, 0xB0, b"/faulted", fault=True))
    (none,) = feed(uring, [complete(5, 102, 0xB0, 3)])
    assert isinstance(none, OpenEvent) and none.path is None and none.dfd is None
    uring.path_read(path_rec(6, 102, 0xB0, b"/after-completion"))
    assert not uring.pending
    feed(uring, [submit(7, 101, 0xB2)])
    uring.lost(7)  # a record at that address may now be a later request's
    uring.path_read(path_rec(8, 102, 0xB2, b"/after-loss"))
    feed(uring, [submit(9, 101, 0xB3)])
    uring.path_read(path_rec(10, 101, 0xB3, b"/x", dfd=3))
    uring.path_read(path_rec(11, 102, 0xB3, b"/y", dfd=3))  # disagreeing readings
    lost, doubted = feed(uring, [complete(12, 102, 0xB2, 3), complete(13, 102, 0xB3, 4)])
    assert isinstance(lost, OpenEvent) and lost.path is None
    assert isinstance(doubted, OpenEvent) and doubted.path is None and doubted.fd is None
    assert doubted.errno is None  # the result stands


def test_completion_without_a_request_field_is_tied_by_ring_and_user_data() -> None:
    """5.10 (Debian's, with 5.15's io_uring): io_uring_complete(ctx, user_data, res, cflags)."""
    uring = opens()
    old = line(3, 102, "io_uring_complete", b"iou-wrk-100", ctx=RING, user_data=7,
               res=0xFFFFFFFE, cflags=0)
    feed(uring, [submit(1, 101, 0xC0)])
    uring.path_read(path_rec(2, 102, 0xC0, b"/old"))
    (ev,) = feed(uring, [old])
    assert isinstance(ev, OpenEvent) and (ev.tid, ev.errno, ev.path) == (101, 2, b"/old")
    assert feed(uring, [submit(4, 101, 0xC1), submit(5, 101, 0xC2), old]) == []


def test_correlator_routes_path_probe_records_to_io_uring() -> None:
    corr = Correlator(Kind.OPEN, {PATH_PROBE: Role(URING)}, Source.SYSCALL_ENTRY, 20,
                      ProcLookup())
    corr.threads.created(101, 100, CLONE_THREAD_FLAGS, 0)
    events = corr.feed_all([submit(1, 101, 0xA0), path_rec(2, 102, 0xA0, b"rel", dfd=5),
                            complete(3, 102, 0xA0, 4)])
    assert [(e.path, e.dfd) for e in events if isinstance(e, OpenEvent)] == [(b"rel", 5)]


def test_submit_probe_record_is_the_submission_with_its_path() -> None:
    """The eprobe tier's: the tracepoint's fields and the path, in one record."""
    uring = opens(results=False)  # even reported at submission, the path is there
    probe = submit(1, 101, 0xD0, d=5, s=b"rel/name")
    probe = TraceLine(b"gt", 101, 0, 1, SUBMIT_PROBE, probe.args, b"", "fields")
    (ev,) = feed(uring, [probe])
    assert isinstance(ev, OpenEvent) and (ev.path, ev.dfd, ev.tid) == (b"rel/name", 5, 101)
    faulted = TraceLine(b"gt", 101, 0, 2, SUBMIT_PROBE, dict(probe.args, req=0xD1), b"",
                        "fields", frozenset({"s"}))
    (none,) = feed(uring, [faulted])
    assert isinstance(none, OpenEvent) and none.path is None and none.dfd is None
    corr = Correlator(Kind.OPEN, {SUBMIT_PROBE: Role(URING)}, Source.SYSCALL_ENTRY, 20,
                      ProcLookup())
    corr.threads.created(101, 100, CLONE_THREAD_FLAGS, 0)
    events = corr.feed_all([probe, complete(3, 102, 0xD0, -2)])
    assert [(e.path, e.errno) for e in events if isinstance(e, OpenEvent)] == [(b"rel/name", 2)]


def refused(ts: int, tid: int, req: int, event: str = "io_uring_req_failed",
            **kw: object) -> TraceLine:
    """io_uring_req_failed's record (or the failure eprobe's, with ``s``): O_CLOEXEC
    into a fixed slot, which the kernel refuses while preparing the request."""
    args = dict(ctx=RING, req=req, user_data=7, opcode=18, op_flags=0o2000000, len=0,
                error=-22 & 0xFFFFFFFF, **kw)
    return TraceLine(b"gt", tid, 0, ts, event, args, b"", "fields",
                     frozenset({"s"}) if kw.get("s") is None and "s" in kw else frozenset())


def prep(ts: int, tid: int, req: int, path: bytes, fault: bool = False) -> TraceLine:
    """A prep probe's record (probes.uring_prep_kprobe_defs): request, caller's path."""
    return TraceLine(b"gt", tid, 0, ts, PREP_PROBES[0], {"r": req, "s": path}, b"", "fields",
                     frozenset({"s"}) if fault else frozenset())


def test_refused_request_has_the_callers_path_from_its_own_preparation() -> None:
    uring = opens()
    (ev,) = feed(uring, [prep(1, 101, 0xE0, b"/r"), refused(2, 101, 0xE0)])
    assert isinstance(ev, OpenEvent) and (ev.path, ev.errno, ev.dfd) == (b"/r", 22, None)
    assert ev.path_source == Source.SYSCALL_ENTRY
    # refused before its preparation began: the address's last preparation was another's
    events = feed(uring, [prep(3, 101, 0xE1, b"/submitted"), submit(4, 101, 0xE1),
                          refused(5, 101, 0xE1),
                          prep(6, 101, 0xE2, b"/other-request"), refused(7, 101, 0xE3),
                          prep(8, 102, 0xE4, b"/other-thread"), refused(9, 101, 0xE4),
                          prep(10, 101, 0xE5, b"/faulted", fault=True), refused(11, 101, 0xE5),
                          prep(12, 101, 0xE6, b"/before-loss")])
    uring.lost(12)
    events += feed(uring, [refused(13, 101, 0xE6)])
    assert [(e.path, e.errno) for e in events if isinstance(e, OpenEvent)] == [(None, 22)] * 5


def test_failure_eprobe_record_is_the_refusal_with_the_callers_path() -> None:
    uring = opens()
    ev, none = feed(uring, [refused(1, 101, 0xF0, FAILED_PROBE, s=b"rel"),
                            refused(2, 101, 0xF1, FAILED_PROBE, s=None)])
    assert isinstance(ev, OpenEvent) and (ev.path, ev.errno, ev.flags) == (b"rel", 22, 0o2000000)
    assert ev.path_source == Source.SYSCALL_ENTRY and ev.dfd is None
    assert isinstance(none, OpenEvent) and none.path is None and none.path_source is None
