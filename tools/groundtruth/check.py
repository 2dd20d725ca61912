"""Differential check: run the ground-truth workload under one backend and judge every field.

Each logged operation is matched to the events of its kind whose tid is the
caller's (for a successful exec also the process's: the exec'd task is its
leader) and whose timestamp lies within the call's logged CLOCK_MONOTONIC
window. No event: *missing*; more than one: *ambiguous*. Each field of a
matched event is then *correct*, *None* or *WRONG* against what the
operation really did; which truth a string is judged against depends on the
source the event names (the caller's arguments, the kernel's copy of the
filename, the new image's argv, /proc). Events carrying one of this run's
markers that match no operation are *strays* (a wrong tid or time); they
count as WRONG too. LostEvents are counted, never turned into values.
A call of a syscall the architecture does not have (aarch64: open, creat; it
fails with ENOSYS) is owed no event: counted apart, and an event carrying its
marker is a stray.
"""

from __future__ import annotations

import collections
import contextlib
import errno as errno_mod
import os
import platform
import re
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import attrs

from hybridtrace.containers import container_id
from hybridtrace.events import (
    EXEC_ORIGIN_FIELDS,
    ORIGIN_FIELDS,
    Event,
    ExecEvent,
    LostEvent,
    OpenEvent,
    Source,
)
from hybridtrace.request import ARG_SIZE, DEFAULT_MAX_ARGS, PATH_SIZE
from hybridtrace.vocabulary import FIELD_IO_URING, FIELD_IO_URING_TEXT_READER, syscalls_on
from tools.groundtruth.workload import ExecOp, OpenOp, Origin, Workload

CORRECT, NONE, WRONG = "correct", "None", "WRONG"
EXEC_FIELDS = ("pid", "tid", "ppid", "uid", "comm", "filename", "argv", "argv_truncated",
               "retval", "syscall", *EXEC_ORIGIN_FIELDS)
OPEN_FIELDS = ("pid", "tid", "uid", "comm", "path", "path_truncated", "flags", "mode", "fd",
               "errno", "dfd", "syscall", "via", *ORIGIN_FIELDS)
# The windows are taken around the calls themselves; trace_pipe prints times in
# microseconds, rounded to the nearest one (the kernel's ns2usecs), so a text
# reader's event may show up to 500 ns outside its call's window.
TEXT_SLACK_NS = 500
_CALLER = (Source.SYSCALL_ENTRY, Source.LIBC_PROBE)


@attrs.frozen(slots=True)
class Target:
    """One backend as the API opens it."""

    backend: str  # "ebpf-core", "ebpf-bcc", "ftrace"
    mode: Optional[str] = None  # ebpf-core attach mode or ftrace tier
    reader: Optional[str] = None  # ftrace: "text" forces the trace_pipe reader

    @property
    def slack_ns(self) -> int:
        """How far outside its call's window this target's timestamps may fall."""
        return TEXT_SLACK_NS if self.reader == "text" else 0

    @property
    def label(self) -> str:
        label = f"{self.backend}/{self.mode}" if self.mode else self.backend
        return f"{label}+{self.reader}" if self.reader else label

    def open(self, kind: str, buffer_pages: Optional[int] = None) -> object:
        import hybridtrace

        if self.backend == "ebpf-core":
            return hybridtrace.trace(kind, self.backend, ebpf_attach=self.mode,
                                     buffer_pages=buffer_pages)
        # The label names the reader: without "+text" the binary one, whatever the
        # environment says.
        return hybridtrace.trace(kind, self.backend, tier=self.mode, buffer_pages=buffer_pages,
                                 ftrace_reader=self.reader or "raw")


# Best first; the ones a kernel lacks (kprobes, eprobes here) are skipped with why.
TARGETS = (Target("ebpf-core", "tracepoint"), Target("ebpf-core", "tp_btf"),
           Target("ebpf-core", "raw_tp"), Target("ebpf-bcc"), Target("ftrace", "kprobe"),
           Target("ftrace", "eprobe"), Target("ftrace", "uprobe"),
           Target("ftrace", "tracepoint"), Target("ftrace", "uprobe", "text"),
           Target("ftrace", "tracepoint", "text"))


class Shown(str):
    """A value as a report already showed it (read back from JSON): shown as is."""

    def __repr__(self) -> str:
        return str(self)


@attrs.define
class Mismatch:
    seq: int
    kind: str
    field: str
    expected: object
    got: object
    detail: str = ""

    def __str__(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return (f"seq {self.seq} {self.kind} {self.field}: expected {_show(self.expected)}, "
                f"got {_show(self.got)}{extra}")


def _show(value: object, room: int = 120) -> str:
    """A value short enough to read: long bytes as length plus both ends."""
    if isinstance(value, bytes) and len(value) > room:
        return f"<{len(value)} bytes {value[:50]!r}...{value[-50:]!r}>"
    if isinstance(value, tuple) and sum(len(v) for v in value if isinstance(v, bytes)) > room:
        return "(" + ", ".join(_show(v, 60) for v in value) + ")"
    text = repr(value)
    return text if len(text) <= 4 * room else text[:4 * room] + "..."


@attrs.define
class Result:
    target: str
    seed: int
    ops: int
    rate: float
    jobs: int = 1
    fields: Dict[Tuple[str, str], collections.Counter] = attrs.field(factory=dict)
    matched: collections.Counter = attrs.field(factory=collections.Counter)
    missing: collections.Counter = attrs.field(factory=collections.Counter)
    ambiguous: collections.Counter = attrs.field(factory=collections.Counter)
    strays: int = 0
    lost: int = 0
    lost_unknown: bool = False  # a LostEvent said events were lost without a count
    overload: bool = False  # the run starved the tracer on purpose (OVERLOAD)
    wrong: List[Mismatch] = attrs.field(factory=list)
    missing_ops: List[str] = attrs.field(factory=list)
    elapsed: float = 0.0
    # "kind.field" -> the shapes of the calls (shape()) whose field came back None:
    # what doctor's fidelity statement for that field must account for.
    nones: Dict[str, collections.Counter] = attrs.field(factory=dict)
    # "kind.field" -> what doctor said of it for this backend on this machine.
    claims: Dict[str, str] = attrs.field(factory=dict)
    # Whether the backend says it sees io_uring opens (doctor's "io_uring" field).
    # Those it says it cannot see are missing all the same, and counted here too:
    # a miss doctor owns up to does not fail the run, any other miss does.
    sees_io_uring: bool = True
    unseen_io_uring: int = 0
    # Calls of a syscall this architecture lacks (no event is due for them).
    not_on_arch: int = 0
    # Where the events were taken from: "api" (hybridtrace.trace), or the CLI's JSON
    # (via_cli.py), whose lines that failed to parse, validate or re-encode are bad_json.
    via: str = "api"
    bad_json: List[str] = attrs.field(factory=list)

    def count(self, kind: str, field: str, verdict: str, shape: str = "") -> None:
        self.fields.setdefault((kind, field), collections.Counter())[verdict] += 1
        if verdict == NONE:
            self.nones.setdefault(f"{kind}.{field}", collections.Counter())[shape] += 1

    @property
    def wrong_total(self) -> int:
        return sum(c[WRONG] for c in self.fields.values()) + self.strays

    @property
    def unexplained_missing(self) -> int:
        """Calls missing that the backend's doctor did not say it cannot see."""
        return sum(self.missing.values()) - self.unseen_io_uring

    @property
    def passed(self) -> bool:
        """No WRONG value, no stray or ambiguous event, nothing missing unless lost."""
        missing = self.unexplained_missing + len(
            [m for m in self.missing_ops if "no result" in m])
        return (self.wrong_total == 0 and not sum(self.ambiguous.values()) and not self.bad_json
                and (missing == 0 or self.lost > 0 or self.lost_unknown)
                and not claims_broken(self) and (self.lost > 0 or not self.overload))

    def to_dict(self) -> Dict[str, object]:
        """Everything the pages show, as JSON (values as the report shows them)."""
        return {
            "target": self.target, "seed": self.seed, "ops": self.ops, "rate": self.rate,
            "jobs": self.jobs, "passed": self.passed, "wrong_total": self.wrong_total,
            "fields": {f"{k}.{f}": dict(c) for (k, f), c in self.fields.items()},
            "matched": dict(self.matched), "missing": dict(self.missing),
            "ambiguous": dict(self.ambiguous), "strays": self.strays, "lost": self.lost,
            "lost_unknown": self.lost_unknown, "overload": self.overload,
            "wrong": [{"seq": m.seq, "kind": m.kind, "field": m.field,
                       "expected": _show(m.expected), "got": _show(m.got),
                       "detail": m.detail} for m in self.wrong],
            "missing_ops": self.missing_ops, "elapsed": round(self.elapsed, 1),
            "nones": {key: dict(c) for key, c in self.nones.items()},
            "claims": self.claims,
            "sees_io_uring": self.sees_io_uring, "unseen_io_uring": self.unseen_io_uring,
            "not_on_arch": self.not_on_arch, "via": self.via, "bad_json": self.bad_json,
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> Result:
        d = dict(data)
        fields = {tuple(key.split(".", 1)): collections.Counter(c)
                  for key, c in d.pop("fields").items()}
        wrong = [Mismatch(w["seq"], w["kind"], w["field"], Shown(w["expected"]),
                          Shown(w["got"]), w["detail"]) for w in d.pop("wrong")]
        for name in ("matched", "missing", "ambiguous"):
            d[name] = collections.Counter(d[name])
        d["nones"] = {key: collections.Counter(c) for key, c in d.get("nones", {}).items()}
        for name in ("passed", "wrong_total"):
            d.pop(name, None)
        return cls(fields=fields, wrong=wrong, **d)

    def summary(self) -> str:
        via = "" if self.via == "api" else f" ({self.via})"
        lines = [f"{self.target}{via}: seed {self.seed}, {self.ops} ops, rate "
                 f"{self.rate or 'max'}/s, {self.jobs} at once"
                 f"{', OVERLOAD (1-page buffers, reader stalls)' if self.overload else ''}, "
                 f"lost {self.lost}{' and an unknown number' if self.lost_unknown else ''}, "
                 f"strays {self.strays}, "
                 f"{self.elapsed:.1f}s"]
        for kind in ("exec", "open"):
            lines.append(f"  {kind}: matched {self.matched[kind]}, missing "
                         f"{self.missing[kind]}, ambiguous {self.ambiguous[kind]}"
                         + (f" (io_uring opens matched: {self.matched['io_uring']})"
                            if kind == "open" else ""))
            if kind == "open" and self.not_on_arch:
                lines.append(f"    calls of a syscall this architecture lacks (no event due):"
                             f" {self.not_on_arch}")
            if kind == "open" and not self.sees_io_uring:
                lines.append(f"    of those missing, io_uring opens doctor says this backend"
                             f" cannot see: {self.unseen_io_uring}")
            for field in EXEC_FIELDS if kind == "exec" else OPEN_FIELDS:
                c = self.fields.get((kind, field), collections.Counter())
                lines.append(f"    {field:15} correct {c[CORRECT]:6}  None {c[NONE]:6}  "
                             f"WRONG {c[WRONG]:4}")
        if self.via != "api":
            lines.append(f"  JSON lines that failed: {len(self.bad_json)}")
        for bad in self.bad_json[:20]:
            lines.append(f"  BAD JSON {bad}")
        for m in self.wrong[:40]:
            lines.append(f"  WRONG {m}")
        for m in self.missing_ops[:20]:
            lines.append(f"  missing {m}")
        for line in claims_broken(self):
            lines.append(f"  doctor overclaims {line}")
        return "\n".join(lines)


# ---- expected values ----

def judge_argv(got: Optional[Tuple[bytes, ...]], flag: bool, want: Tuple[bytes, ...],
               max_args: int = DEFAULT_MAX_ARGS) -> Tuple[str, str]:
    """(verdict for argv, verdict for argv_truncated).

    Correct: the whole argv unflagged, or a flagged cut of it: the first
    arguments in order, each whole or cut short (backends keep ARG_SIZE bytes;
    an area limit may cut sooner), none beyond max_args.
    """
    if got is None:
        return NONE, CORRECT  # no argv: the flag says nothing
    if got == want:
        return CORRECT, CORRECT if not flag else WRONG
    ok = len(got) <= min(len(want), max_args) and all(
        g == w or (len(g) < len(w) and w.startswith(g) and len(g) <= ARG_SIZE)
        for g, w in zip(got, want))
    if ok:
        return (CORRECT, CORRECT) if flag else (WRONG, WRONG)
    return WRONG, CORRECT


def _same(got: object, want: object) -> str:
    if got is None:
        return NONE
    return CORRECT if got == want else WRONG


def _in(got: object, wants: Sequence[object]) -> str:
    if got is None:
        return NONE
    return CORRECT if got in wants else WRONG


Judged = Dict[str, Tuple[str, object, object]]  # field -> (verdict, expected, got)


def _one_of(got: object, wants: Sequence[object]) -> str:
    """Like _in, but None may itself be the truth (no cgroup v2 path, no container)."""
    if got in wants:
        return CORRECT
    return NONE if got is None else WRONG


def judge_origin(origins: Sequence[Origin], ev: Union[ExecEvent, OpenEvent],
                 leader: bool = False, ppid: Optional[int] = None) -> Judged:
    """The event's origin fields (events.ORIGIN_FIELDS) against where the caller's
    thread said it was (each Origin it logged for the call: any one is the truth).

    ``leader``: a successful exec, whose thread became the process's leader (its
    ns_tid may be the ns_pid, as its tid may be the pid); ``ppid``: the caller's
    getppid(), which is the parent as seen in the caller's own pid namespace (an
    exec's ns_ppid). A cgroup_id is judged only where the workload could stat one.
    """
    out: Judged = {}

    def put(field: str, wants: Tuple[object, ...]) -> None:
        got = getattr(ev, field)
        want: object = wants[0] if len(wants) == 1 else wants
        out[field] = (_one_of(got, wants), want, got)

    def truths(*values: object) -> Tuple[object, ...]:
        return tuple(dict.fromkeys(values))  # in order, once each

    put("pidns", truths(*(o.pidns for o in origins)))
    put("mntns", truths(*(o.mntns for o in origins)))
    put("cgroup", truths(*(o.cgroup for o in origins)))
    ids = [o.cgroup_id for o in origins if o.cgroup_id is not None]
    if ids:
        put("cgroup_id", truths(*ids))
    put("container_id", truths(*(container_id(o.cgroup) for o in origins)))
    if ev.container_id is None and ev.cgroup is None and out["container_id"][0] == CORRECT:
        # "no container" is only shown with the path that names none: else not known
        out["container_id"] = (NONE, *out["container_id"][1:])
    put("ns_pid", truths(*(o.ns_pid for o in origins)))
    put("ns_tid", truths(*(o.ns_tid for o in origins),
                         *((o.ns_pid for o in origins) if leader else ())))
    if isinstance(ev, ExecEvent):
        put("ns_ppid", (ppid,))
    return out


def judge_exec(op: ExecOp, ev: ExecEvent) -> Judged:
    out: Judged = {}
    ok = op.retval == 0
    image = op.image

    def put(field: str, verdict: str, want: object, got: object) -> None:
        out[field] = (verdict, want, got)

    put("pid", _same(ev.pid, op.pid), op.pid, ev.pid)
    tids = (op.tid, op.pid) if ok else (op.tid,)
    put("tid", _in(ev.tid, tids), tids, ev.tid)
    put("ppid", _same(ev.ppid, op.ppid), op.ppid, ev.ppid)
    put("uid", _same(ev.uid, op.uid), op.uid, ev.uid)
    comm = image.comm if image is not None else op.comm
    put("comm", _same(ev.comm, comm), comm, ev.comm)
    # filename: the caller's argument, or the kernel's copy (bprm->filename)
    if ev.filename is None:
        put("filename", NONE, op.path, None)
    else:
        # ExecEvent has no flag for a cut filename: only the whole one is right.
        want_name = op.path if ev.filename_source in _CALLER else op.kernel_filename
        put("filename", _same(ev.filename, want_name), want_name, ev.filename)
    # argv: the caller's, or the new image's
    if ev.argv_source in _CALLER or ev.argv is None:
        want_argv: Optional[Tuple[bytes, ...]] = op.argv
    else:
        want_argv = image.argv if image is not None else None
    if want_argv is None:
        put("argv", WRONG, "no new image (the exec failed)", ev.argv)
        put("argv_truncated", CORRECT, None, ev.argv_truncated)
    else:
        a, t = judge_argv(ev.argv, ev.argv_truncated, want_argv)
        put("argv", a, want_argv, ev.argv)
        put("argv_truncated", t, "argv differs" if ev.argv != want_argv else False,
            ev.argv_truncated)
    put("retval", _same(ev.retval, op.retval), op.retval, ev.retval)
    put("syscall", _same(ev.syscall, op.syscall), op.syscall, ev.syscall)
    if op.origin is not None:  # the caller's before the call, and the new image's
        origins = [op.origin, *([image.origin] if image is not None and image.origin else [])]
        out.update(judge_origin(origins, ev, leader=ok, ppid=op.ppid))
    return out


def judge_open(op: OpenOp, ev: OpenEvent) -> Judged:
    out: Judged = {}

    def put(field: str, verdict: str, want: object, got: object) -> None:
        out[field] = (verdict, want, got)

    put("pid", _same(ev.pid, op.pid), op.pid, ev.pid)
    put("tid", _same(ev.tid, op.tid), op.tid, ev.tid)
    put("uid", _same(ev.uid, op.uid), op.uid, ev.uid)
    put("comm", _same(ev.comm, op.comm), op.comm, ev.comm)
    if ev.path is None:
        put("path", NONE, op.path, None)
        put("path_truncated", CORRECT, None, ev.path_truncated)
    elif ev.path_source == Source.PROCFS:
        put("path", _same(ev.path, op.resolved), op.resolved, ev.path)
        put("path_truncated", CORRECT if not ev.path_truncated else WRONG, False,
            ev.path_truncated)
    else:
        # The whole path unflagged (a probe may read more than PATH_SIZE), or a
        # flagged cut of at most PATH_SIZE bytes.
        whole = ev.path == op.path
        cut = not whole and len(ev.path) <= PATH_SIZE and op.path.startswith(ev.path)
        ok = (whole and not ev.path_truncated) or (cut and ev.path_truncated)
        put("path", CORRECT if ok else WRONG, op.path, ev.path)
        put("path_truncated", CORRECT if ok or not (whole or cut) else WRONG, not whole,
            ev.path_truncated)
    put("flags", _same(ev.flags, op.flags), op.flags, ev.flags)
    put("mode", _same(ev.mode, op.mode), op.mode, ev.mode)
    if ev.fd is None and ev.errno is None:
        put("fd", NONE, op.fd, None)
        put("errno", NONE, op.errno, None)
    else:
        put("fd", CORRECT if ev.fd == op.fd else WRONG, op.fd, ev.fd)
        put("errno", CORRECT if ev.errno == op.errno else WRONG,
            errno_mod.errorcode.get(op.errno or 0, op.errno), ev.errno)
    put("dfd", _same(ev.dfd, op.dfd), op.dfd, ev.dfd)
    put("syscall", _same(ev.syscall, op.syscall), op.syscall, ev.syscall)
    put("via", _same(ev.via, op.via), op.via, ev.via)
    if op.origin is not None:
        out.update(judge_origin([op.origin], ev))
    return out


def shape(op: object) -> str:
    """What kind of call ``op`` was, in the terms doctor's statements use: how it
    was made (libc or a raw syscall, which one), whether it failed, long strings."""
    parts = [str(getattr(op, "method", "?"))]
    failed = op.retval != 0 if isinstance(op, ExecOp) else getattr(op, "fd", None) is None
    if failed:
        parts.append("failed")
    if len(getattr(op, "path", b"")) >= PATH_SIZE:
        parts.append(f"path of {PATH_SIZE}+ bytes")
    if isinstance(op, ExecOp) and op.image is not None and op.image.argv != op.argv:
        parts.append("argv changed by the new image")
    return ", ".join(parts)


# ---- matching ----

def _markers(ev: Union[ExecEvent, OpenEvent], pattern: re.Pattern[bytes]) -> List[int]:
    strings: List[bytes] = []
    if isinstance(ev, OpenEvent):
        strings = [ev.path or b""]
    else:
        strings = [ev.filename or b"", *list(ev.argv or ())]
    return [int(m.group(1)) for s in strings for m in pattern.finditer(s)]


def compare(result: Result, ops: Sequence[object], events: Sequence[Event], nonce: str,
            slack_ns: int = 0, arch: Optional[str] = None) -> None:
    """Match ``events`` to ``ops`` and count every field into ``result``.

    ``slack_ns``: how far outside a call's window its event's timestamp may be;
    ``arch``: the machine the calls ran on (default: this one), whose syscalls are due.
    """
    have = syscalls_on(arch or platform.machine())
    by_tid: Dict[Tuple[str, Optional[int]], List[Union[ExecEvent, OpenEvent]]] = {}
    # io_uring opens by process: an SQPOLL submission has no thread of ours to go by.
    uring_by_pid: Dict[Optional[int], List[OpenEvent]] = {}
    for ev in events:
        if isinstance(ev, LostEvent):
            continue
        kind = "exec" if isinstance(ev, ExecEvent) else "open"
        by_tid.setdefault((kind, ev.tid), []).append(ev)
        if isinstance(ev, OpenEvent) and ev.via == "io_uring":
            uring_by_pid.setdefault(ev.pid, []).append(ev)
    for evs in by_tid.values():
        evs.sort(key=lambda e: e.timestamp_ns)
    used: set = set()
    for op in ops:
        if getattr(op, "syscall", None) not in (None, *have):
            result.not_on_arch += 1  # ENOSYS: nothing to trace; its marker would be a stray
            continue
        if isinstance(op, OpenOp):
            kind, tids, t0, t1 = "open", (op.tid,), op.t0, op.t1
        else:
            assert isinstance(op, ExecOp)
            if op.t1 is None:
                result.missing_ops.append(f"seq {op.seq}: the workload logged no result")
                continue
            kind, t0, t1 = "exec", op.t0, op.t1
            tids = (op.tid, op.pid) if op.retval == 0 else (op.tid,)
        if isinstance(op, OpenOp) and op.sqpoll:
            candidates: Sequence[Union[ExecEvent, OpenEvent]] = uring_by_pid.get(op.pid, [])
        else:
            candidates = [e for tid in set(tids) for e in by_tid.get((kind, tid), ())]
        found = [e for e in candidates if t0 - slack_ns <= e.timestamp_ns <= t1 + slack_ns]
        if not found and isinstance(op, OpenOp) and op.via == "io_uring" \
                and not result.sees_io_uring:
            result.unseen_io_uring += 1
            result.missing[kind] += 1
            continue
        if not found:
            result.missing[kind] += 1
            result.missing_ops.append(f"seq {op.seq} {kind} {getattr(op, 'method', '')} "
                                      f"tid {op.tid}")
            continue
        if len(found) > 1:
            result.ambiguous[kind] += 1
            result.wrong.append(Mismatch(op.seq, kind, "(event)", "one event",
                                         f"{len(found)} events"))
            used.update(id(e) for e in found)
            continue
        ev = found[0]
        used.add(id(ev))
        result.matched[kind] += 1
        if isinstance(op, OpenOp) and op.via == "io_uring":
            result.matched["io_uring"] += 1
        judged = judge_exec(op, ev) if isinstance(ev, ExecEvent) else \
            judge_open(op, ev)  # type: ignore[arg-type]
        form = shape(op)
        for field, (verdict, want, got) in judged.items():
            result.count(kind, field, verdict, form)
            if verdict == WRONG:
                result.wrong.append(Mismatch(
                    op.seq, kind, field, want, got,
                    f"{getattr(op, 'method', '')}, pid {op.pid} tid {op.tid}"))  # type: ignore
    # Strays: events with one of our markers that no operation claimed.
    open_mark = re.compile(b"o" + nonce.encode() + rb"-(\d+)")
    exec_mark = re.compile(b"[ax]" + nonce.encode() + rb"-(\d+)")
    for (kind, _tid), evs in by_tid.items():
        for ev in evs:
            if id(ev) in used:
                continue
            marks = _markers(ev, open_mark if kind == "open" else exec_mark)
            if marks:
                result.strays += 1
                result.wrong.append(Mismatch(marks[0], kind, "(stray event)", "no event",
                                             ev))


# ---- running ----

def _ours(ev: Event, nonce: bytes) -> bool:
    """Keep what may be the workload's: drops other processes' events early."""
    if isinstance(ev, LostEvent):
        return True
    strings = [ev.path] if isinstance(ev, OpenEvent) else [ev.filename, *(ev.argv or ())]
    if any(s is not None and nonce in s for s in strings):
        return True
    comm = ev.comm
    return comm is None or comm.startswith((b"gt", b"x", b"memfd:", b"mfd-")) \
        or comm.isdigit() or nonce in comm


# Overload: the smallest buffer (one page per CPU) read only every STALL_S seconds, so
# the kernel must drop events; what is lost is counted, what arrives must still be right.
OVERLOAD_BUFFER_PAGES = 1
STALL_S = 0.5


# Opens a session of one kind ("exec" or "open") with this many buffer pages (None:
# the backend's own): something with poll(timeout), drain(timeout) and close().
Opener = Callable[[str, Optional[int]], Any]


def run(target: Target, seed: int, ops: int, rate: float = 0.0, jobs: int = 1,
        progress: Optional[Callable[[str], None]] = None, overload: bool = False,
        opener: Optional[Opener] = None, via: str = "api") -> Result:
    """Trace one workload run with ``target`` (exec and open at once) and judge it.

    ``opener`` replaces ``target.open`` (via_cli.py: the CLI's JSON instead of the API's
    events); ``via`` names where the events came from in the result.
    """
    started = time.monotonic()
    work = Workload(seed, ops)
    result = Result(target.label, seed, work.plan.ops, rate, jobs, overload=overload,
                    sees_io_uring=sees_io_uring(target), via=via)
    open_session = opener or target.open
    pages = OVERLOAD_BUFFER_PAGES if overload else None
    nonce = work.plan.nonce.encode()
    events: List[Event] = []
    sessions: List[object] = []
    try:
        for kind in ("exec", "open"):
            sessions.append(open_session(kind, pages))
        failure: List[BaseException] = []

        def drive() -> None:
            try:
                work.run(rate, jobs)
            except BaseException as exc:
                failure.append(exc)

        runner = threading.Thread(target=drive, daemon=True)
        runner.start()
        while runner.is_alive():
            for s in sessions:
                events.extend(e for e in s.poll(0.05) if _ours(e, nonce))  # type: ignore
            if overload:
                time.sleep(STALL_S)
        if failure:
            raise failure[0]
        # The tail: ftrace holds records back until no CPU can deliver older ones.
        quiet_since = time.monotonic()
        deadline = time.monotonic() + 30
        while time.monotonic() - quiet_since < 2.0 and time.monotonic() < deadline:
            for s in sessions:
                batch = [e for e in s.poll(0.1) if _ours(e, nonce)]  # type: ignore
                if batch:
                    quiet_since = time.monotonic()
                events.extend(batch)
        for s in sessions:
            events.extend(e for e in s.drain(2.0) if _ours(e, nonce))  # type: ignore
        operations = work.operations()
    finally:
        for s in sessions:
            s.close()  # type: ignore[attr-defined]
        work.cleanup()
    losses = [e for e in events if isinstance(e, LostEvent)]
    result.lost = sum(e.count or 0 for e in losses)
    result.lost_unknown = any(e.count is None for e in losses)
    compare(result, operations, events, work.plan.nonce, target.slack_ns, work.plan.arch)
    result.claims = doctor_fields(target)
    result.elapsed = time.monotonic() - started
    if progress is not None:
        progress(result.summary())
    return result


def sees_io_uring(target: Target) -> bool:
    """What the backend claims (its candidate's io_uring field in doctor): visible or not."""
    from hybridtrace.capabilities import probe
    from hybridtrace.selector import decide

    if target.backend == "ebpf-core":
        decision = decide(probe(), "open", target.backend, None, target.mode)
    else:
        decision = decide(probe(), "open", target.backend, target.mode, None)
    chosen = decision.chosen
    claim = chosen.fields.get(io_uring_field(target, chosen.fields), "none") \
        if chosen is not None else "none"
    return not claim.startswith("none")


def io_uring_field(target: Target, fields: Dict[str, str]) -> str:
    """The doctor field that speaks for ``target``'s io_uring opens (its reader's own)."""
    if target.reader == "text" and FIELD_IO_URING_TEXT_READER in fields:
        return FIELD_IO_URING_TEXT_READER
    return FIELD_IO_URING


def available(target: Target) -> Tuple[bool, str]:
    """Whether ``target`` can open here (both kinds), and why not."""
    from hybridtrace.capabilities import probe
    from hybridtrace.selector import require

    caps = probe()
    try:
        for kind in ("exec", "open"):
            if target.backend == "ebpf-core":
                require(caps, kind, target.backend, None, target.mode)
            else:
                require(caps, kind, target.backend, target.mode, None)
    except Exception as exc:
        return False, str(exc)
    return True, ""


def doctor_fields(target: Target) -> Dict[str, str]:
    """What doctor says of each field for ``target``: "kind.field" -> statement."""
    from hybridtrace.capabilities import probe
    from hybridtrace.selector import require

    caps = probe()
    out: Dict[str, str] = {}
    for kind in ("exec", "open"):
        tier, attach = (None, target.mode) if target.backend == "ebpf-core" else \
            (target.mode, None)
        decision = require(caps, kind, target.backend, tier, attach)
        assert decision.chosen is not None
        fields = dict(decision.chosen.fields)
        if kind == "open":  # the statement for this target's reader, under one key
            fields[FIELD_IO_URING] = fields[io_uring_field(target, fields)]
            fields.pop(FIELD_IO_URING_TEXT_READER, None)
        out.update((f"{kind}.{field}", why) for field, why in fields.items())
    return out


def claims_broken(result: Result) -> List[str]:
    """Where doctor's statement about a field disagrees with the measured counts:
    "complete" yet some call's field came back None with nothing lost, or "none"
    yet some was given.
    ("partial: why" is checked by the why being true: a person reads the shapes.)
    Opens through io_uring answer to doctor's io_uring statement, not the
    per-field ones (which describe syscalls): "none" yet some were seen, or
    "with paths" yet one came without."""
    broken: List[str] = []
    if result.overload:  # doctor describes a tracer that keeps up; losses are reported
        return broken
    # Records lost leave values unproven (None), as a missing event is allowed then.
    lost = result.lost > 0 or result.lost_unknown
    for key, statement in result.claims.items():
        kind, field = key.split(".", 1)
        counts = result.fields.get((kind, field))
        if counts is None:
            continue
        nones = counts[NONE] - _io_uring_nones(result, key)
        if statement.startswith("complete") and nones and not lost:
            top = "; ".join(f"{n} x {s}" for s, n in none_shapes(result, key, 4)
                            if not s.startswith(IO_URING_SHAPE))
            broken.append(f"{key}: doctor says {statement!r}, but {nones} None ({top})")
        elif statement.startswith("none") and counts[CORRECT]:
            broken.append(f"{key}: doctor says {statement!r}, but {counts[CORRECT]} correct")
    uring = result.claims.get("open.io_uring")
    seen = result.matched["io_uring"]
    if uring is not None and uring.startswith("none") and seen:
        broken.append(f"open.io_uring: doctor says {uring!r}, but {seen} seen")
    pathless = _io_uring_nones(result, "open.path")
    if uring is not None and "with paths" in uring and pathless:
        broken.append(f"open.io_uring: doctor says {uring!r}, but {pathless} without a path")
    return broken


IO_URING_SHAPE = "uring_"  # how shape() begins for an open made through io_uring


def _io_uring_nones(result: Result, key: str) -> int:
    return sum(n for s, n in result.nones.get(key, collections.Counter()).items()
               if s.startswith(IO_URING_SHAPE))


def none_shapes(result: Result, key: str, most: int) -> List[Tuple[str, int]]:
    return result.nones.get(key, collections.Counter()).most_common(most)


def environment() -> None:
    """Mount tracefs (ebpf-core/tracepoint ids, ftrace); borrow BCC headers if needed."""
    from hybridtrace import tracefs

    with contextlib.suppress(tracefs.TracefsUnavailable):
        tracefs.ensure_mounted()
    if not os.path.exists(f"/lib/modules/{os.uname().release}/build") \
            and "HYBRIDTRACE_BCC_HEADERS" not in os.environ:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        import subprocess

        done = subprocess.run([os.path.join(here, "fetch_bcc_headers.sh")],
                              capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip():
            os.environ["HYBRIDTRACE_BCC_HEADERS"] = done.stdout.strip()
