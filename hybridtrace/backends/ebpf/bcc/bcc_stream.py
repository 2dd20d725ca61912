"""The ebpf-bcc stream: compile the BCC program for one request, attach it, read records.

Kernel resources (programs, tracepoint attachments, maps, the ring or perf
buffer) all belong to one BCC ``BPF`` object and go away with ``close()``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import time
import weakref
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import attrs

from hybridtrace import buffer_size, procfs, tracefs, vocabulary
from hybridtrace.backends.base import BackendError, EventStream, StreamStats, Unread
from hybridtrace.backends.ebpf.bcc import (
    bcc_compile,
    bcc_program,
    bcc_records,
    bcc_scope,
    bcc_uring,
    headers,
)
from hybridtrace.backends.ebpf.bcc.bcc_import import import_bcc
from hybridtrace.btf_offsets import BtfError, task_offsets
from hybridtrace.capabilities.model import Capabilities
from hybridtrace.events import Event, ExecEvent, LostEvent
from hybridtrace.origin import CgroupNames
from hybridtrace.request import Kind, TraceRequest

DEFAULT_RINGBUF_PAGES = 256  # 1 MiB with 4 KiB pages
PERF_PAGES_PER_CPU = 64
WAIT_SLICE_MS = 250  # a blocking poll wakes this often to look at the loss counter
# Under a perf buffer, the kernel-side loss count is only of these (open.c).
LOST_URING_UNMATCHED = "io_uring completion no pending open could be told apart"

# --descendants-of keeps the followed set with these (common.c), attached before seeding.
FOLLOW_ATTACH: List[Tuple[str, Optional[str]]] = [
    ("sched:sched_process_fork", "HT_FOLLOW"), ("sched:sched_process_exit", "HT_FOLLOW")]
# The tracepoints each program attaches to: the optional ones only when compiled in.
ATTACH: Dict[Kind, List[Tuple[str, Optional[str]]]] = {
    Kind.EXEC: [
        ("syscalls:sys_enter_execve", None),
        ("syscalls:sys_exit_execve", None),
        ("sched:sched_process_exec", None),
        ("syscalls:sys_enter_execveat", "HT_HAVE_EXECVEAT"),
        ("syscalls:sys_exit_execveat", "HT_HAVE_EXECVEAT"),
        *FOLLOW_ATTACH,
    ],
    Kind.OPEN: [
        ("syscalls:sys_enter_openat", None),
        ("syscalls:sys_exit_openat", None),
        ("syscalls:sys_enter_open", "HT_HAVE_OPEN"),
        ("syscalls:sys_exit_open", "HT_HAVE_OPEN"),
        ("syscalls:sys_enter_openat2", "HT_HAVE_OPENAT2"),
        ("syscalls:sys_exit_openat2", "HT_HAVE_OPENAT2"),
        ("syscalls:sys_enter_creat", "HT_HAVE_CREAT"),
        ("syscalls:sys_exit_creat", "HT_HAVE_CREAT"),
        *bcc_uring.ATTACH,
        *FOLLOW_ATTACH,
        ("sched:sched_process_exec", "HT_FOLLOW"),
    ],
}


def _present_tracepoints(request: TraceRequest) -> Tuple[List[str], Callable[[str], bool]]:
    """(The optional tracepoints this kernel has, a test for any "group/event")."""
    path, _ = tracefs.ensure_mounted()  # TracefsUnavailable is a BackendError

    def has(tp: str) -> bool:
        return os.path.isdir(os.path.join(path, "events", tp))

    for tp in vocabulary.required_tracepoints(request.kind.value):
        if not has(tp):
            raise BackendError(f"tracepoint {tp} is missing from this kernel")
    return [tp for tp in bcc_program.OPTIONAL_TRACEPOINTS[request.kind].values() if has(tp)], has


def choose_layout(tree: headers.HeaderTree, btf_path: Optional[str]) -> Tuple[
        bcc_program.Layout, str]:
    """How the program reaches task_struct, and a phrase for the description."""
    if tree.exact:
        return bcc_program.Layout(True, None), "task_struct from the headers"
    if btf_path is not None:
        try:
            return (bcc_program.Layout(False, task_offsets(btf_path)),
                    f"task_struct offsets from BTF ({btf_path})")
        except BtfError as exc:
            why = str(exc)
    else:
        why = "no kernel BTF"
    return (bcc_program.Layout(False, None),
            f"ppid from /proc and the argv re-read from the new image OFF ({why})")


class _Sink:
    """Where BCC's callbacks put decoded events. Separate from the stream so the
    callbacks BCC keeps do not keep the stream alive (its finalizer can run)."""

    def __init__(self, decode: Callable[[bytes], Event]) -> None:
        self.decode = decode
        self.pending: List[Event] = []
        self.lost = 0

    def on_record(self, _ctx: object, data: int, size: int) -> int:
        # Called from inside BCC's poll through ctypes: must never raise.
        try:
            self.pending.append(self.decode(ctypes.string_at(data, size)))
        except Exception:
            self.pending.append(LostEvent(time.monotonic_ns(), 1, "undecodable record"))
            self.lost += 1
        return 0

    def on_perf_record(self, _cpu: int, data: int, size: int) -> None:
        self.on_record(None, data, size)

    def on_lost(self, count: int) -> None:
        self.pending.append(LostEvent(time.monotonic_ns(), int(count), "perf buffer"))
        self.lost += int(count)


class _NoAutoload:
    """Mixin: attach tracepoints ourselves, so a failure can still clean up."""

    def _trace_autoload(self) -> None:
        return None


class BccStream:
    """One compiled BCC program, its buffer and its loss accounting."""

    def __init__(self, request: TraceRequest, caps: Capabilities,
                 ringbuf_pages: Optional[int] = DEFAULT_RINGBUF_PAGES,
                 perf_pages: int = PERF_PAGES_PER_CPU) -> None:
        self._request = request
        self._captured = 0
        self._lost_seen: Dict[str, int] = {}  # loss counter -> its total already reported
        self._sink = _Sink(_decoder(request, CgroupNames()))
        self._bpf: Any = None
        present, has = _present_tracepoints(request)
        try:
            tree = headers.locate(caps.kernel.release, caps.headers.build,
                                  caps.headers.kheaders)
        except headers.HeadersError as exc:
            raise BackendError(str(exc)) from None
        layout, layout_note = choose_layout(tree, caps.btf.path)
        self.task_reads = layout.task_reads
        bcc = import_bcc(caps.bcc.location)
        use_ring = ringbuf_pages is not None and caps.bpf.ringbuf is not False
        pages = ringbuf_pages if use_ring else None
        for count in (pages, perf_pages):
            if count is not None and (count <= 0 or count & (count - 1)):
                raise BackendError(f"buffer pages must be a power of two, not {count}")
        self._perf_pages = perf_pages
        flags = bcc_program.cflags(request, layout, present, os.getpid(), pages)
        origin = bcc_scope.choose(tree.exact, layout.task_reads, caps.btf.path,
                                  caps.kernel.version)
        flags += bcc_scope.cflags(request, origin)
        # Filters the program applies exactly: the session need not judge them again.
        self.kernel_filters = bcc_scope.kernel_filters(request)
        # Why opens made through io_uring are not seen (None: they are).
        self.io_uring_unseen: Optional[str] = None
        if request.kind is Kind.OPEN:
            uring, self.io_uring_unseen = bcc_uring.uring_flags(has, caps.btf.path)
            flags += uring
        self._bpf = self._load(bcc, tree, flags, request)
        self._finalizer = weakref.finalize(self, _cleanup, self._bpf)
        self._follow_lost: Any = None  # ht_follow_lost, when following a process tree
        seeded = 0
        if request.filters.descendants_of is not None:
            try:
                seeded = bcc_scope.seed(self._bpf, request)
            except BackendError:
                self.close()
                raise
            self._follow_lost = self._bpf[b"ht_follow_lost"]
        try:
            self._open_buffer(use_ring)
        except Exception as exc:
            self.close()
            raise BackendError(f"BCC could not open its buffer: {exc}") from None
        buffer = f"ring buffer {pages} pages" if use_ring else (
            f"perf buffer {perf_pages} pages/cpu")
        fit = "for this kernel" if tree.exact else f"BORROWED for {caps.kernel.release}"
        uring_note = "" if request.kind is not Kind.OPEN else (
            "; io_uring opens: seen (io_uring's tracepoints, request offsets from BTF)"
            if self.io_uring_unseen is None else
            f"; io_uring opens: NOT seen ({self.io_uring_unseen})")
        self.description = (
            f"ebpf-bcc: BCC {getattr(bcc, '__version__', '?')}, {buffer}, headers"
            f" {tree.release} {fit} ({tree.origin}), {layout_note}; {origin.note()}"
            f"{uring_note}"
        )
        if seeded:
            self.description += f"; following {seeded} tasks and their children"

    def _load(self, bcc: ModuleType, tree: headers.HeaderTree, flags: List[str],
              request: TraceRequest) -> Any:
        kind = request.kind
        cls = type("HtBPF", (_NoAutoload, bcc.BPF), {})
        bpf: Any = None
        with bcc_compile.captured_output() as lines:
            try:
                with bcc_compile.kernel_source(tree.source):
                    bpf = cls(text=bcc_program.source(kind).encode(), cflags=flags)
                bcc_scope.fill(bpf, request)
                for tp, macro in ATTACH[kind]:
                    if macro is None or f"-D{macro}" in flags:
                        name = "tracepoint__" + tp.replace(":", "__")
                        fn = bpf.load_func(name.encode(), bcc.BPF.TRACEPOINT)
                        bpf.attach_tracepoint(tp=tp.encode(), fn_name=fn.name)
            except Exception as exc:
                failure: Optional[Exception] = exc
            else:
                failure = None
        if failure is not None:
            if bpf is not None:
                _cleanup(bpf)
            stage = "compile" if bpf is None else "load/attach"
            raise bcc_compile.explain(
                f"BCC could not {stage} the {kind.value} program", failure, lines)
        return bpf

    def _open_buffer(self, use_ring: bool) -> None:
        table = self._bpf[b"ht_events"]
        if use_ring:
            table.open_ring_buffer(self._sink.on_record)
        else:
            table.open_perf_buffer(self._sink.on_perf_record, page_cnt=self._perf_pages,
                                   lost_cb=self._sink.on_lost)
        # The kernel-side count (common.c): with a perf buffer, only io_uring completions
        # that no pending open could be told apart (the buffer reports its own losses).
        self._lost_table: Any = self._bpf[b"ht_lost"]
        self._lost_where = "ring buffer reserve" if use_ring else LOST_URING_UNMATCHED
        self._use_ring = use_ring

    def _losses(self) -> None:
        """A LostEvent for each in-kernel loss counter that moved since the last look."""
        for counter, where, exact in (
                (self._lost_table, self._lost_where, True),
                # Children of followed tasks with no room to be followed: what they did
                # is missing, and not counted.
                (self._follow_lost, "followed-task table full: a child of a followed task"
                 " (and what it does) may be missing", False)):
            if counter is None:
                continue
            total = sum(int(v) for v in counter[counter.Key(0)])
            delta = total - self._lost_seen.get(where, 0)
            if delta > 0:
                self._lost_seen[where] = total
                self._sink.lost += delta
                self._sink.pending.append(
                    LostEvent(time.monotonic_ns(), delta, where, exact=exact))

    def _poll_once(self, timeout_ms: int) -> None:
        if self._use_ring:
            self._bpf.ring_buffer_poll(timeout_ms)
        else:
            self._bpf.perf_buffer_poll(timeout_ms)
        self._losses()

    def poll(self, timeout: Optional[float]) -> Sequence[Event]:
        if self._bpf is None:
            return []
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        self._poll_once(0)
        while not self._sink.pending:
            left = WAIT_SLICE_MS if deadline is None else int(
                (deadline - time.monotonic()) * 1000)
            if left <= 0:
                break
            self._poll_once(min(left, WAIT_SLICE_MS))
        out, self._sink.pending = self._sink.pending, []
        if not self.task_reads:
            out = [_ppid_from_proc(e) for e in out]
        self._captured += sum(1 for e in out if not isinstance(e, LostEvent))
        return out

    @property
    def stats(self) -> StreamStats:
        return StreamStats(self._captured, self._sink.lost)

    def stop(self) -> None:
        """Detach the tracepoints: nothing new is recorded, the buffer stays readable."""
        bpf = self._bpf
        if bpf is None:
            return
        for tp in list(getattr(bpf, "tracepoint_fds", {})):  # BCC's own attachment table
            with contextlib.suppress(Exception):  # BCC raises plain Exception
                bpf.detach_tracepoint(tp)

    def unread(self) -> Unread:
        # As ebpf-core: once detached, the buffer poll empties is all the kernel holds.
        return Unread()

    def close(self) -> None:
        bpf, self._bpf = self._bpf, None
        if bpf is not None:
            self._finalizer.detach()
            _cleanup(bpf)


def _ppid_from_proc(event: Event) -> Event:
    """Without task_struct reads, ppid comes from /proc while the process lives
    (None once it is gone): partial, as requirements.assess_bcc says."""
    if isinstance(event, ExecEvent) and event.ppid is None and event.pid is not None:
        return attrs.evolve(event, ppid=procfs.ppid(event.pid))
    return event


def _decoder(request: TraceRequest, names: CgroupNames) -> Callable[[bytes], Event]:
    max_args = request.max_args
    if request.kind is Kind.EXEC:
        return lambda raw: bcc_records.decode_exec(raw, max_args, names)
    return lambda raw: bcc_records.decode_open(raw, names)


def _cleanup(bpf: Any) -> None:
    """Detach and unload everything; drop BCC's own exit hook for this object."""
    try:
        bpf.cleanup()
    finally:
        atexit.unregister(bpf.cleanup)


def open_bcc_stream(request: TraceRequest, caps: Capabilities, *,
                    ringbuf_pages: Optional[int] = DEFAULT_RINGBUF_PAGES,
                    perf_pages: int = PERF_PAGES_PER_CPU) -> EventStream:
    """Compile, load and attach the BCC program for ``request``.

    ``ringbuf_pages=None`` selects the perf buffer (``perf_pages`` per CPU), as
    on kernels before 5.8 which lack the ring buffer. The request's
    ``buffer_pages`` (per CPU) sets both, as hybridtrace.buffer_size says.
    BackendError says what is missing.
    """
    if request.buffer_pages is not None:
        perf_pages = request.buffer_pages
        if ringbuf_pages is not None:
            ringbuf_pages = buffer_size.ring_pages(request.buffer_pages,
                                                   buffer_size.possible_cpus())
    return BccStream(request, caps, ringbuf_pages, perf_pages)
