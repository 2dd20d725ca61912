"""The ebpf-core stream: shipped CO-RE objects, loaded by libbpf, read in bulk.

No compiler and no headers at run time: the objects in bpf/ were built once
from vmlinux.h and libbpf relocates them against this kernel's BTF. Programs
attach to classic tracepoints (ids from an already mounted tracefs) or, with
no tracefs at all, to raw tracepoints by BTF name (tp_btf). Events
come through the BPF ring buffer (read directly via mmap where the CPU orders
loads, through libbpf otherwise) or, before 5.8, per-CPU perf buffers.
"""

from __future__ import annotations

import errno
import mmap
import os
import time
import weakref
from typing import Callable, List, Optional, Sequence, Tuple, Union

from hybridtrace import buffer_size, tracefs
from hybridtrace.backends.base import BackendError, EventStream, StreamStats, Unread
from hybridtrace.backends.ebpf import core_scope, libbpf, records, uring_programs
from hybridtrace.backends.ebpf.callback_readers import LibbpfRingReader, PerfReader
from hybridtrace.backends.ebpf.loader import BpfObject, read_percpu_u64_sum
from hybridtrace.backends.ebpf.requirements import TASK_BTF_SINCE
from hybridtrace.backends.ebpf.ringbuf import ORDERED_LOADS, RingReader, Scan, scanner
from hybridtrace.capabilities.model import Capabilities
from hybridtrace.events import Event, ExecEvent, LostEvent, OpenEvent
from hybridtrace.origin import CgroupNames
from hybridtrace.request import Kind, TraceRequest
from hybridtrace.vocabulary import (
    CORE_ARCHES,
    CORE_ATTACH_MODES,
    IO_URING_EVENTS,
    required_tracepoints,
)

DEFAULT_BUFFER_SIZE = 8 << 20
# Biggest record (struct ht_exec) must fit a per-CPU perf buffer.
MIN_PERF_PAGES = {Kind.EXEC: 16, Kind.OPEN: 1}
TRANSPORTS = ("ring", "ring-libbpf", "perf")
# Execs come a few thousand a second at most, so ringbuf.GATHER_S would wake the reader
# every dozen records; each batch has a fixed cost (a wake-up, the loss counters, a
# write) that longer gathering spreads over ~100 of them, for 25 ms of added latency.
EXEC_GATHER_S = 0.025
NO_PREALLOC_SINCE = (6, 1, 0)
PREALLOC_PENDING = 256  # execs in flight at once (~35 KB each, allocated at load)
PREALLOC_URING = 1024  # io_uring opens in flight at once (~600 bytes each)
# The io_uring programs of the open objects (bpf/open.bpf.c): tp_btf on io_uring's
# tracepoints, in every attach mode but raw_tp (they need BTF).
IO_URING_SECTION = "tp_btf/io_uring_"
# Out of file descriptors or memory: a load without io_uring's programs is no cure.
EXHAUSTED = (errno.EMFILE, errno.ENFILE, errno.ENOMEM)

Decoded = Union[ExecEvent, OpenEvent]
Reader = Union["RingReader[Decoded]", LibbpfRingReader, PerfReader]


def ring_size(requested: Optional[int]) -> int:
    """A power of two of at least one page, as the kernel requires."""
    return buffer_size.pow2(max(requested or DEFAULT_BUFFER_SIZE, os.sysconf("SC_PAGE_SIZE")))


def config_bytes(request: TraceRequest, self_tgid: int, kernel_reads: bool = True) -> bytes:
    f = request.filters
    comm = (f.comm or b"")[:16]
    # ppid filters execs only (filtering.matches): opens must not be narrowed by it.
    ppid = f.ppid if request.kind is Kind.EXEC else None
    return records.CONFIG.pack(
        self_tgid, f.pid or 0, f.tid or 0, f.uid or 0, ppid or 0, request.max_args,
        f.pid is not None, f.tid is not None, f.uid is not None, ppid is not None,
        f.comm is not None, f.failed_only, kernel_reads, f.mntns is not None, comm,
        *core_scope.rodata_fields(request), request.pid_view or 0,
    )


def choose_transport(caps: Optional[Capabilities]) -> str:
    if caps is not None and caps.bpf.ringbuf is False:
        return "perf"
    return "ring" if ORDERED_LOADS else "ring-libbpf"


def object_name(kind: Kind, transport: str, attach: str, machine: str = "x86_64") -> str:
    """The shipped object (tools/build_bpf.py FLAVOURS x TARGETS) for one kind,
    transport, attach mode and machine."""
    if machine not in CORE_ARCHES:
        raise BackendError(f"ebpf-core ships BPF objects for {', '.join(CORE_ARCHES)},"
                           f" not {machine}")
    return (f"{kind.value}{'' if attach == 'tracepoint' else '.' + attach}"
            f"{'.perf' if transport == 'perf' else ''}{CORE_ARCHES[machine]}.bpf.o")


def _object_image(name: str) -> bytes:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bpf", name)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise BackendError(f"the installed hybridtrace lacks its BPF object {name}"
                           f" ({exc.strerror}): reinstall the package") from None


class CoreStream:
    """One loaded object, its buffer reader and its loss counter."""

    def __init__(self, request: TraceRequest, transport: str,
                 buffer_bytes: Optional[int] = None, attach: str = "tracepoint",
                 kernel_reads: bool = True, prealloc_pending: bool = False,
                 io_uring_off: Optional[str] = None) -> None:
        """``io_uring_off``: why not to try io_uring's opens here (None: try)."""
        if transport not in TRANSPORTS:
            raise BackendError(f"unknown transport {transport!r}; one of {TRANSPORTS}")
        if attach not in CORE_ATTACH_MODES:
            raise BackendError(f"unknown attach mode {attach!r}; one of {CORE_ATTACH_MODES}")
        self._request = request
        self._transport = transport
        self._attach = attach
        self._stats = StreamStats()
        self._lost_seen = [0, 0, 0]  # per ht_lost slot
        self._names = CgroupNames()
        self.kernel_filters = core_scope.kernel_filters(request)
        self._reader: Optional[Reader] = None
        lib = libbpf.get()
        self._lib = lib
        self._ncpus = max(1, int(lib.lib.libbpf_num_possible_cpus()))
        path = self._tracefs() if attach == "tracepoint" else None
        if buffer_bytes is None and request.buffer_pages is not None:
            buffer_bytes = (buffer_size.ring_pages(request.buffer_pages, self._ncpus)
                            * buffer_size.PAGE_SIZE)
        size = ring_size(buffer_bytes)
        name = object_name(request.kind, transport, attach, os.uname().machine)
        # Why opens made through io_uring are not seen (None: they are); raw_tp
        # objects have no io_uring programs (they need BTF).
        self.io_uring_unseen: Optional[str] = None
        self._uring_left_out: List[str] = []
        if request.kind is Kind.OPEN:
            self.io_uring_unseen, self._uring_left_out = (
                (io_uring_off, []) if io_uring_off else io_uring_unseen(lib, attach))
        holder: List[Optional[Reader]] = [None]
        self._obj: Optional[BpfObject] = None
        self._seeded = 0  # tasks --descendants-of started with (core_scope.seed)
        objects: List[Optional[BpfObject]] = [None]  # the finalizer's view of self._obj
        self._finalizer = weakref.finalize(self, _release, objects, holder)
        try:
            try:
                obj = self._obj = objects[0] = self._load(name, size, path, kernel_reads,
                                                          prealloc_pending)
            except BackendError as exc:
                if (request.kind is not Kind.OPEN or attach == "raw_tp"
                        or self.io_uring_unseen is not None or exc.errno in EXHAUSTED):
                    raise  # nothing of io_uring's to leave out, or it would fail again
                # The io_uring hooks are the newest part: without them, syscall
                # opens are still seen. Say why, and try again.
                self.io_uring_unseen = f"its hooks did not load here ({exc})"
                obj = self._obj = objects[0] = self._load(name, size, path, kernel_reads,
                                                          prealloc_pending)
            self._lost_fd = obj.map_fd("ht_lost")
            try:
                self._reader = holder[0] = self._open_reader(obj.map_fd("ht_events"), size)
            except OSError as exc:  # mapping the buffer, an epoll fd: out of fds or memory
                raise BackendError(f"cannot read the event buffer: {exc.strerror}") from exc
        except BaseException:
            self.close()
            raise
        skipped = f"; not loaded (no tracepoint): {', '.join(obj.skipped)}" if obj.skipped else ""
        if request.kind is Kind.OPEN:
            skipped += ("; io_uring opens: seen (io_uring tracepoints by BTF name)"
                        if self.io_uring_unseen is None
                        else f"; io_uring opens: NOT seen ({self.io_uring_unseen})")
        buffer = (f"perf buffers {self._perf_pages(size)} pages per CPU" if transport == "perf"
                  else f"ring buffer {size >> 10} KiB")
        how = {"tracepoint": "classic tracepoints",
               "tp_btf": "raw tracepoints by BTF name (tp_btf), no tracefs",
               "raw_tp": "raw tracepoints without BTF (raw_tp), no tracefs"}[attach]
        reads = "" if kernel_reads else "; no kernel-memory reads"
        seeded = self._seeded
        follow = f"; following {seeded} tasks and their children" if seeded else ""
        self.description = (f"ebpf-core: {how}, libbpf {lib.path}, {buffer}{reads}{follow}"
                            f"{skipped}")

    def _load(self, name: str, size: int, path: Optional[str], kernel_reads: bool,
              prealloc_pending: bool) -> BpfObject:
        """Open, configure, load and attach the object; closed again if any step fails."""
        request = self._request
        obj = BpfObject(self._lib, _object_image(name), f"ht_{request.kind.value}",
                        keep_user_reads=self._attach == "tp_btf" and not kernel_reads)
        try:
            obj.set_rodata(config_bytes(request, os.getpid(), kernel_reads))
            if self._transport != "perf":
                obj.set_max_entries("ht_events", size)
            if request.kind is Kind.EXEC:
                if prealloc_pending:
                    for table in ("ht_execs", "ht_execs_small"):
                        obj.set_map_flags(table, 0)
                        obj.set_max_entries(table, PREALLOC_PENDING)
                obj.set_max_entries("ht_exec_buf", self._ncpus)
                obj.set_max_entries("ht_skip_buf", self._ncpus)
            if request.kind is Kind.OPEN and self._attach != "raw_tp":
                leave_out_io_uring(obj, self.io_uring_unseen, self._uring_left_out)
                if prealloc_pending:
                    obj.set_map_flags("ht_uring", 0)
                    obj.set_max_entries("ht_uring", PREALLOC_URING)
            if path is not None:
                events = os.path.join(path, "events")
                obj.skip_missing(lambda tp: os.path.isdir(os.path.join(events, tp)))
            core_scope.configure(obj, request)
            obj.load()
            core_scope.fill(obj, self._lib, request)
            obj.attach_all()
            self._seeded = core_scope.seed(obj, self._lib, request)
        except BaseException:
            obj.close()
            raise
        return obj

    def _tracefs(self) -> str:
        """Where tracepoint ids are; never mounted here (tp_btf needs no tracefs)."""
        path = tracefs.find()
        if path is None:
            raise BackendError("tracefs is not mounted, and classic tracepoints need it"
                               " (attach mode tp_btf does not)")
        for tp in required_tracepoints(self._request.kind.value):
            if not os.path.isdir(os.path.join(path, "events", tp)):
                raise BackendError(f"tracepoint {tp} is missing from this kernel")
        return path

    def _perf_pages(self, size: int) -> int:
        """Pages per CPU: the request's buffer_pages, else ``size`` shared out; never fewer
        than the biggest record needs."""
        pages = self._request.buffer_pages or size // buffer_size.PAGE_SIZE // self._ncpus
        return buffer_size.pow2(max(pages, MIN_PERF_PAGES[self._request.kind]))

    def _open_reader(self, fd: int, size: int) -> Reader:
        max_args = self._request.max_args
        names = self._names

        def decode_exec(view: records.Buffer, off: int, _len: int) -> Optional[Decoded]:
            return records.decode_exec(view, off, max_args, names)

        def decode_open(view: records.Buffer, off: int, _len: int) -> Optional[Decoded]:
            return records.decode_open(view, off, _len, names)

        def scan_opens(data: mmap.mmap, base: int, mask: int, cons: int, prod: int, limit: int,
                       out: List[OpenEvent]) -> Tuple[int, int]:
            return records.scan_opens(data, base, mask, cons, prod, limit, out, names)

        decode: Callable[[records.Buffer, int, int], Optional[Decoded]] = (
            decode_exec if self._request.kind is Kind.EXEC else decode_open)
        if self._transport == "perf":
            return PerfReader(self._lib, fd, self._perf_pages(size), decode)
        if self._transport == "ring-libbpf":
            return LibbpfRingReader(self._lib, fd, decode)
        # Opens are the high-rate kind: their scan decodes without a call per record.
        scan: Scan[Decoded] = (scanner(decode_exec) if self._request.kind is Kind.EXEC
                               else scan_opens)  # type: ignore[assignment]
        if self._request.kind is Kind.EXEC:
            return RingReader(fd, size, scan, batch=16384, gather=EXEC_GATHER_S)
        return RingReader(fd, size, scan, batch=16384)

    def poll(self, timeout: Optional[float]) -> Sequence[Event]:
        reader = self._reader
        if reader is None:
            return []
        out: List[Event] = []
        reader.read(timeout, out)  # type: ignore[arg-type]
        self._stats.captured += len(out)
        self._losses(out)
        return out

    def _losses(self, out: List[Event]) -> None:
        """Append a LostEvent for each loss counter that moved since the last look."""
        buffer = "perf buffer output" if self._transport == "perf" else "ring buffer reserve"
        for slot, where, exact in (
                (records.LOST_EVENT, buffer, True),
                (records.LOST_PENDING, "pending-exec table full: failed execs may be missing",
                 False),
                (records.LOST_FOLLOW, "followed-task table full: a child of a followed task"
                 " (and what it does) may be missing", False)):
            if slot == records.LOST_FOLLOW and self._request.filters.descendants_of is None:
                continue  # nothing follows tasks, so nothing counts there: a syscall saved
            try:
                total = read_percpu_u64_sum(self._lib, self._lost_fd, self._ncpus, slot)
            except OSError:
                continue
            delta = total - self._lost_seen[slot]
            if delta > 0:
                self._lost_seen[slot] = total
                self._stats.lost += delta
                out.append(LostEvent(time.monotonic_ns(), delta, where, exact=exact))

    @property
    def stats(self) -> StreamStats:
        return StreamStats(self._stats.captured, self._stats.lost)

    def stop(self) -> None:
        """Detach the programs: nothing new is recorded, the ring stays readable."""
        if self._obj is not None:
            self._obj.detach()

    def unread(self) -> Unread:
        # The ring (or perf buffer) is the only place the kernel holds our
        # events, and once stop() detached the programs nothing refills it:
        # Session.drain reads it empty (a few MB, read at over 100k records/s)
        # well inside its grace.
        return Unread()

    def close(self) -> None:
        reader, self._reader = self._reader, None
        obj, self._obj = self._obj, None
        if reader is not None:
            reader.close()
        if obj is not None:
            obj.close()
        self._finalizer.detach()


def _release(objects: List[Optional[BpfObject]], readers: List[Optional[Reader]]) -> None:
    """Finalizer: a stream dropped without close() still unloads everything."""
    for reader in readers:
        if reader is not None:
            reader.close()
    for obj in objects:
        if obj is not None:
            obj.close()


def leave_out_io_uring(obj: BpfObject, unseen: Optional[str], programs: Sequence[str]) -> None:
    """Don't load the io_uring programs this kernel's tracepoints do not fit
    (``programs``), nor any of them when its io_uring opens cannot be seen (``unseen``)."""
    if unseen is not None:
        obj.disable(lambda sec: sec.startswith(IO_URING_SECTION))
    else:
        obj.leave_out(programs)


def io_uring_unseen(lib: libbpf.Libbpf, attach: str) -> Tuple[Optional[str], List[str]]:
    """(Why this kernel's io_uring opens cannot be seen, or None; the io_uring
    programs its tracepoints do not fit, which are left out: uring_programs.py)."""
    if attach == "raw_tp":
        return "raw_tp objects have no io_uring programs: they need the kernel's BTF", []
    return uring_programs.choose(lib.tracepoint_args(IO_URING_EVENTS))


def open_core_stream(request: TraceRequest, caps: Optional[Capabilities],
                     buffer_bytes: Optional[int] = None,
                     transport: Optional[str] = None,
                     attach: str = "tracepoint") -> EventStream:
    """Load and attach the engine for ``request``; BackendError says why it can't.

    ``buffer_bytes`` sizes the ring buffer (or all perf buffers together);
    ``transport`` forces "ring", "ring-libbpf" or "perf" (tests, benchmarks);
    ``attach`` is "tracepoint" (classic, ids from tracefs), "tp_btf" or "raw_tp".
    Kernel-memory reads are left out of the programs where probe saw them refused.
    """
    kernel_reads = caps is None or caps.bpf.kernel_read is not False
    core_scope.check(request, attach, kernel_reads)
    if request.kind is Kind.EXEC and request.filters.ppid is not None and not knows_ppid(
            attach, kernel_reads, caps):
        # The in-kernel filter would drop every exec: let the next backend do it.
        raise BackendError(f"ebpf-core/{attach} cannot read the parent here, so it cannot"
                           " filter by ppid")
    # Before 6.1 a tracing program with a map allocated at run time makes the kernel warn
    # (WARN_ONCE, tainting it): a smaller table, preallocated, leaves it as it was.
    prealloc = caps is not None and caps.kernel.version < NO_PREALLOC_SINCE
    return CoreStream(request, transport or choose_transport(caps), buffer_bytes, attach,
                      kernel_reads, prealloc)


def knows_ppid(attach: str, kernel_reads: bool, caps: Optional[Capabilities]) -> bool:
    """Mirrors ht_ppid() in bpf/common.h: a BTF task walk, else a kernel read."""
    if attach == "raw_tp":
        return False
    btf_task = attach == "tp_btf" and (caps is None or caps.kernel.version >= TASK_BTF_SINCE)
    return btf_task or kernel_reads
