"""Opens made through io_uring, from io_uring's own tracepoints (binary records).

No open syscall carries them, so the ftrace tiers learn of them from io_uring's
static tracepoints, which every tier has (no probe needed):

- ``io_uring_submit_req`` (``io_uring_submit_sqe`` before 6.4): a request with
  its opcode, written by the task that submitted it (io_uring_enter), or by the
  ring's SQPOLL thread (``sq_thread``), which submits whatever anyone put in the
  ring: then no thread of the process is known to have made the call, and tid,
  comm and uid are None (pid is the SQPOLL thread's process, the ring owner's);
- ``io_uring_complete`` (or ``io_uring_cqe_overflow`` when the completion ring
  was full, matched by ring and user_data when exactly one request fits): the
  result, in whatever task completes it (often an io-wq worker, not the
  submitter), tied to the submission by the request's address, ring and
  user_data (after lost records, a completion is no proof: result unknown);
- ``io_uring_req_failed``: a request whose preparation failed, with its SQE's
  fields and its error, its result;
- ``io_uring_create`` and ``io_uring_register``: a ring made while tracing and
  never given a fixed file table (with no records lost since) opens only into fds,
  so its results are fds;
  any other ring's might be fixed-slot indexes, and a success says no fd.

No tracepoint record carries the path (it is in kernel memory), nor, before
completion, the flags; a failed request's SQE gives IORING_OP_OPENAT's flags and
mode. A request submitted with IOSQE_CQE_SKIP_SUCCESS posts no completion when it
succeeds: it is reported at submission, result unknown. Before 6.0 (Debian's 5.10)
``io_uring_complete`` names no request: it is tied by ring and user_data alone,
when exactly one pending request fits.

The kprobe and eprobe tiers add a probe that reads the kernel's copy of the path
(the request's ``struct filename``) and its dfd (probe_plan.uring_path_def):

- the kprobe tier, a kprobe on io_uring's open handler (``PATH_PROBE``), with the
  request's address. Its record is the path of the request at that address only
  while that request is pending: submitted, as its submit record showed, and not
  yet completed, with no records lost since (then a record at that address may be
  a later request's, and the path stays None). An open reported at submission
  (IOSQE_CQE_SKIP_SUCCESS, or under a pid filter) has no path: the handler runs
  after;
- the eprobe tier, an eprobe on the submit tracepoint (``SUBMIT_PROBE``) that
  copies the tracepoint's fields and adds the path: its record is the submit
  record (the tracepoint's own is not enabled), so the path is that request's by
  construction. (A tracepoint with a filter is written after the triggers that
  eprobes hang on, so an eprobe record beside it would come first or last
  depending on the kernel's buffering: no pairing of the two would be proof.)

A request refused while being prepared (``io_uring_req_failed``: O_CLOEXEC into a
fixed file slot is EINVAL there, after the path was copied) is never submitted and
never reaches the handler: its path is the caller's, read from the SQE's path
pointer by the task that submits it, dfd None:

- the eprobe tier, an eprobe on the failure tracepoint (``FAILED_PROBE``) that
  stands in for its records, the path by construction;
- the kprobe tier, kprobes on the open opcodes' preparation (``PREP_PROBES``): a
  record is the path of the writer's next refusal only when that is of the same
  request, and is forgotten at the writer's next submission and after lost
  records (a request refused before its preparation began has none: a reading at
  its address would be an earlier request's).

Where the instance records only the traced process's threads (``set_event_pid``
for a pid filter), io_uring's own threads are not among them: the kernel makes
them without a fork event, so event-fork never adds them. Completions on io-wq
workers are then never recorded, so every open is reported at submission with
its result unknown (``results=False``), and an SQPOLL ring made while tracing
(whose thread submits unrecorded) becomes a LostEvent of an unknown count.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import attrs

from hybridtrace import vocabulary
from hybridtrace.backends.ftrace.threads import ThreadGroups
from hybridtrace.backends.ftrace.trace_record import TraceLine
from hybridtrace.events import Event, LostEvent, OpenEvent, Source, make_open

SUBMIT_EVENTS = (vocabulary.IO_URING_SUBMIT, vocabulary.IO_URING_SUBMIT_OLD)
# Our probes (probes.py): a kprobe record with a request's path, and an eprobe on the
# submit tracepoint that stands in for its records, with the path.
PATH_PROBE = "ht_uring_path"
SUBMIT_PROBE = "ht_uring_submit"
# And for a request refused while being prepared (io_uring_req_failed), the caller's
# path: an eprobe on the failure tracepoint that stands in for its records, or
# kprobes on the open opcodes' preparation (vocabulary.IO_URING_OPEN_PREPS).
FAILED_PROBE = "ht_uring_failed"
PREP_PROBES = ("ht_uring_prep", "ht_uring_prep2")
FAILED_EVENT = vocabulary.IO_URING_FAILED
RING_EVENTS = (vocabulary.IO_URING_CREATE, vocabulary.IO_URING_REGISTER)
# Every io_uring event an open session enables where the kernel has it.
EVENTS = (*SUBMIT_EVENTS, vocabulary.IO_URING_COMPLETE, vocabulary.IO_URING_OVERFLOW,
          vocabulary.IO_URING_FAILED, *RING_EVENTS)
OPEN_OPS = tuple(vocabulary.IO_URING_OPEN_OPS)
REQ_F_CQE_SKIP = 1 << 6  # = IOSQE_CQE_SKIP_SUCCESS: no completion for a success
IORING_SETUP_SQPOLL = 1 << 1
SQPOLL_COMM = b"iou-sqp-"  # the SQPOLL thread's name (io_uring/sqpoll.c)
MAX_PENDING = 65536  # submitted io_uring opens awaiting their result; the oldest goes first
MAX_RINGS = 65536


def submit_filter() -> str:
    """The instance filter for the submit and failure events (and the submit probe,
    whose fields are the tracepoint's): open requests only."""
    return " || ".join(f"opcode == {op}" for op in OPEN_OPS)


@attrs.define
class _Submitted:
    ts: int
    tid: int
    sqpoll: bool
    comm: Optional[bytes]
    uid: Optional[int]
    ctx: int
    user_data: int
    direct_free: bool  # its ring has no fixed file table: a success is an fd
    # Records were lost since: its completion may be among them, and a completion at
    # its address may be a later request's. Its result is then unknown.
    uncertain: bool = False
    # Where comm and uid came from when not from records (the correlator's to judge).
    sources: object = None
    # The kernel's copy of the path and the dfd, from a path probe's record.
    path: Optional[bytes] = None
    dfd: Optional[int] = None
    path_refused: bool = False  # two readings disagreed: neither is proven
    source: Source = Source.KERNEL_COPY  # where path came from


def _int(line: TraceLine, name: str) -> Optional[int]:
    value = line.args.get(name)
    return value if isinstance(value, int) else None


def _signed32(value: Optional[int]) -> Optional[int]:
    if value is None:
        return None
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


class UringOpens:
    """Feeds io_uring records, yields OpenEvents (see the module docstring)."""

    def __init__(self, threads: ThreadGroups, results: bool = True) -> None:
        """``results``: completions are recorded whatever task makes them. A uid no
        task record proves stays None (/proc, read later, may show a later one)."""
        self.threads = threads
        self.results = results
        self.sources_of: Dict[int, object] = {}  # id(event) -> its submission's sources
        self.pending: Dict[int, _Submitted] = {}  # request address -> its submission
        self.rings: Dict[int, bool] = {}  # ring made while tracing -> may have fixed slots
        self.sqpoll_rings: Dict[int, bool] = {}  # ring made while tracing -> SQPOLL
        # task -> (request, the caller's path or None): its latest open preparation
        # (a prep probe's record), until its submission or refusal is seen
        self.prepared: Dict[int, Tuple[int, Optional[bytes]]] = {}
        self._lost_before = -1  # records before this time may be missing (lost())

    def feed(self, line: TraceLine, comm: Optional[bytes] = None,
             uid: Optional[int] = None, sources: object = None) -> List[Event]:
        """``comm`` and ``uid``: the writing thread's, from its task records (trace_pipe's
        comm cache is never believed); ``sources``, where they came from otherwise, is
        handed back with each event it made in ``sources_of`` (by id)."""
        event = line.event
        if event in SUBMIT_EVENTS or event == SUBMIT_PROBE:
            return self._submitted(line, comm, uid, sources)
        if event == PATH_PROBE:
            self.path_read(line)
            return []
        if event in PREP_PROBES:
            self._prepared(line)
            return []
        if event == vocabulary.IO_URING_COMPLETE:
            if "req" not in line.args:  # before 6.0: by ring and user_data
                return self._by_ring(line)
            return self._completed(line, self.pending.pop(_int(line, "req") or 0, None))
        if event == vocabulary.IO_URING_OVERFLOW:
            return self._by_ring(line)
        if event in (FAILED_EVENT, FAILED_PROBE):
            return self._failed(line, comm, uid, sources)
        ctx = _int(line, "ctx")
        if ctx is None:
            return []
        if event == vocabulary.IO_URING_CREATE:
            sqpoll = bool((_int(line, "flags") or 0) & IORING_SETUP_SQPOLL)
            # free of fixed slots unless a counted loss may lie after its creation
            self.rings[ctx] = line.timestamp_ns <= self._lost_before
            self.sqpoll_rings[ctx] = sqpoll
            for table in (self.rings, self.sqpoll_rings):
                while len(table) > MAX_RINGS:
                    del table[next(iter(table))]
            if sqpoll and not self.results:
                return [LostEvent(line.timestamp_ns, None, f"io_uring SQPOLL ring made by"
                                  f" thread {line.pid}: its thread's opens are not recorded"
                                  " under a pid filter", exact=False)]
        elif event == vocabulary.IO_URING_REGISTER and ctx in self.rings:
            self.rings[ctx] = True  # any registration: maybe a fixed file table now
        return []

    def path_read(self, line: TraceLine) -> None:
        """A path probe's record (``r`` request, ``d`` dfd, ``s`` the kernel's copy of
        the path): kept for the pending request at that address (module docstring)."""
        sub = self.pending.get(_int(line, "r") or 0)
        value = line.args.get("s")
        if sub is None or sub.uncertain or sub.path_refused or "s" in line.faults \
                or not isinstance(value, bytes):
            return
        dfd = _signed32(_int(line, "d"))
        if sub.path is not None and (sub.path, sub.dfd) != (value, dfd):
            sub.path_refused = True
            sub.path = sub.dfd = None
            return
        sub.path, sub.dfd = value, dfd

    def lost(self, before: int) -> None:
        """Records before ``before`` may be missing: no pending request's result can be
        trusted, and any ring may have been given a fixed file table (a lost
        io_uring_register), so a success of any ring may be a slot index (ground truth
        under overload: fd 0 reported for an open into slot 0). That holds too for
        any record read only later but written before ``before`` (a ring's creation,
        a submission, a preparation): the loss may lie after it (ground truth under
        overload again)."""
        for sub in self.pending.values():
            sub.uncertain = True
        self.prepared.clear()  # a preparation's refusal or submission may be among them
        for ctx in self.rings:
            self.rings[ctx] = True
        self._lost_before = max(self._lost_before, before)

    def _who(self, line: TraceLine, sqpoll: bool, comm: Optional[bytes],
             uid: Optional[int], sources: object) -> _Submitted:
        if sqpoll:
            return _Submitted(line.timestamp_ns, line.pid, True, None, None,
                              _int(line, "ctx") or 0, _int(line, "user_data") or 0, False)
        return _Submitted(line.timestamp_ns, line.pid, False, comm, uid,
                          _int(line, "ctx") or 0, _int(line, "user_data") or 0, False,
                          sources=sources)

    def _submitted(self, line: TraceLine, comm: Optional[bytes], uid: Optional[int],
                   sources: object) -> List[Event]:
        req = _int(line, "req")
        if req is None:
            return []
        self.prepared.pop(line.pid, None)  # its preparation ended in a submission
        self.pending.pop(req, None)  # a freed request at this address left nothing
        if _int(line, "opcode") not in OPEN_OPS:
            return []
        sub = self._who(line, bool(line.args.get("sq_thread")), comm, uid, sources)
        sub.direct_free = self.rings.get(sub.ctx) is False
        # written before a counted loss's bound: the loss may lie after it (see lost())
        sub.uncertain = line.timestamp_ns <= self._lost_before
        value = line.args.get("s")  # the eprobe's: this request's path, read as it entered
        if line.event == SUBMIT_PROBE and isinstance(value, bytes) and "s" not in line.faults:
            sub.path, sub.dfd = value, _signed32(_int(line, "d"))
        if (_int(line, "flags") or 0) & REQ_F_CQE_SKIP or not self.results:
            return [self._event(sub, line.timestamp_ns, None, known=False)]
        self.pending[req] = sub
        while len(self.pending) > MAX_PENDING:
            del self.pending[next(iter(self.pending))]
        return []

    def _completed(self, line: TraceLine, sub: Optional[_Submitted]) -> List[Event]:
        if sub is None or sub.ctx != _int(line, "ctx") or sub.user_data != _int(
                line, "user_data"):
            return []
        return [self._event(sub, line.timestamp_ns, _signed32(_int(line, "res")),
                            known=not sub.uncertain)]

    def _by_ring(self, line: TraceLine) -> List[Event]:
        ctx, user_data = _int(line, "ctx"), _int(line, "user_data")
        fits = [req for req, sub in self.pending.items()
                if sub.ctx == ctx and sub.user_data == user_data]
        if len(fits) != 1:
            return []  # none of ours, or which one completed is unknown
        return self._completed(line, self.pending.pop(fits[0]))

    def _prepared(self, line: TraceLine) -> None:
        """A prep probe's record (``r`` request, ``s`` the caller's path): the path of
        that request should its writer refuse it next (``_refused_path``)."""
        if line.timestamp_ns <= self._lost_before:
            return  # its writer's submission or refusal after it may be among the lost
        value = line.args.get("s")
        path = value if isinstance(value, bytes) and "s" not in line.faults else None
        self.prepared[line.pid] = (_int(line, "r") or 0, path)
        while len(self.prepared) > MAX_PENDING:
            del self.prepared[next(iter(self.prepared))]

    def _refused_path(self, line: TraceLine, req: int) -> Optional[bytes]:
        """The caller's path of a request refused while being prepared: the failure
        eprobe's own reading, or the writer's latest preparation when it was of this
        request (a request refused before its preparation began has none: any reading
        at its address would be an earlier request's)."""
        prepared = self.prepared.pop(line.pid, None)
        if line.event == FAILED_PROBE:
            value = line.args.get("s")
            return value if isinstance(value, bytes) and "s" not in line.faults else None
        return prepared[1] if prepared is not None and prepared[0] == req else None

    def _failed(self, line: TraceLine, comm: Optional[bytes], uid: Optional[int],
                sources: object) -> List[Event]:
        opcode = _int(line, "opcode")
        req = _int(line, "req") or 0
        self.pending.pop(req, None)
        path = self._refused_path(line, req)
        if opcode not in OPEN_OPS:
            return []
        ctx = _int(line, "ctx") or 0
        # No sq_thread field here: the SQPOLL thread is known by its ring or its name.
        sqpoll = self.sqpoll_rings.get(ctx, False) or comm is None \
            or comm.startswith(SQPOLL_COMM)
        sub = self._who(line, sqpoll, comm, uid, sources)
        sub.path, sub.source = path, Source.SYSCALL_ENTRY  # dfd: in no record
        flags = mode = None
        if opcode == vocabulary.IORING_OP_OPENAT:  # OPENAT2's are in user memory
            flags, mode = _int(line, "op_flags"), _int(line, "len")
        return [self._event(sub, line.timestamp_ns, _signed32(_int(line, "error")),
                            flags=flags, mode=mode)]

    def _event(self, sub: _Submitted, ts: int, res: Optional[int], known: bool = True,
               flags: Optional[int] = None, mode: Optional[int] = None) -> OpenEvent:
        pid = self.threads.tgid(sub.tid, sub.ts)
        uid = sub.uid
        fd = res if known and res is not None and res >= 0 and sub.direct_free else None
        err = -res if known and res is not None and res < 0 else None
        path = sub.path
        event = make_open(
            timestamp_ns=ts, pid=pid, tid=None if sub.sqpoll else sub.tid, uid=uid,
            comm=sub.comm, path=path, flags=flags, mode=mode, fd=fd, errno=err,
            path_source=None if path is None else sub.source, syscall=None,
            dfd=None if path is None else sub.dfd, via=vocabulary.VIA_IO_URING)
        if sub.sources is not None:
            self.sources_of[id(event)] = sub.sources
        return event
