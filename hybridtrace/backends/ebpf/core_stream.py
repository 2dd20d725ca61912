"""The ebpf-core stream: shipped CO-RE objects, loaded by libbpf, read in bulk.

No compiler and no headers at run time: the objects in bpf/ were built once
from vmlinux.h and libbpf relocates them against this kernel's BTF.
"""

from __future__ import annotations

import os
import time
import weakref
from importlib import resources
from typing import Callable, List, Optional, Sequence, Union

from hybridtrace import tracefs
from hybridtrace.backends.base import BackendError, EventStream, StreamStats
from hybridtrace.backends.ebpf import libbpf, records
from hybridtrace.backends.ebpf.loader import BpfObject, read_percpu_u64_sum
from hybridtrace.backends.ebpf.ringbuf import ORDERED_LOADS, RingReader
from hybridtrace.capabilities.model import Capabilities
from hybridtrace.events import Event, ExecEvent, LostEvent, OpenEvent
from hybridtrace.request import Kind, TraceRequest

DEFAULT_RING_SIZE = 8 << 20
MAX_BATCH = 65536  # records decoded per poll, so one poll never holds the ring for long
OBJECTS = {Kind.EXEC: "exec.bpf.o", Kind.OPEN: "open.bpf.o"}
REQUIRED = {
    Kind.EXEC: ("sched/sched_process_exec",),
    Kind.OPEN: ("syscalls/sys_enter_openat", "syscalls/sys_exit_openat"),
}

Decoded = Union[ExecEvent, OpenEvent]


def ring_size(requested: Optional[int]) -> int:
    """A power of two of at least one page, as the kernel requires."""
    want = max(requested or DEFAULT_RING_SIZE, os.sysconf("SC_PAGE_SIZE"))
    size = 1
    while size < want:
        size <<= 1
    return size


def config_bytes(request: TraceRequest, self_tgid: int) -> bytes:
    f = request.filters
    comm = (f.comm or b"")[:16]
    return records.CONFIG.pack(
        self_tgid, f.pid or 0, f.tid or 0, f.uid or 0, f.ppid or 0, request.max_args,
        f.pid is not None, f.tid is not None, f.uid is not None, f.ppid is not None,
        f.comm is not None, f.failed_only, comm,
    )


def _object_image(name: str) -> bytes:
    try:
        return (resources.files("hybridtrace.backends.ebpf") / "bpf" / name).read_bytes()
    except AttributeError:  # Python < 3.9
        with open(os.path.join(os.path.dirname(__file__), "bpf", name), "rb") as f:
            return f.read()
    except OSError as exc:
        raise BackendError(f"shipped BPF object {name} is missing ({exc.strerror});"
                           " rebuild with tools/build_bpf.py") from None


class CoreStream:
    """One loaded object, its ring buffer reader and its loss counter."""

    def __init__(self, request: TraceRequest, ring_bytes: Optional[int] = None) -> None:
        self._request = request
        self._stats = StreamStats()
        self._obj: Optional[BpfObject] = None
        self._ring: Optional[RingReader] = None
        self._lost_seen = 0
        lib = libbpf.get()
        self._lib = lib
        self._ncpus = max(1, int(lib.lib.libbpf_num_possible_cpus()))
        path = self._tracefs()
        size = ring_size(ring_bytes)
        obj = BpfObject(lib, _object_image(OBJECTS[request.kind]), f"ht_{request.kind.value}")
        self._obj = obj
        self._finalizer = weakref.finalize(self, _release, obj, [None])
        try:
            obj.set_rodata(config_bytes(request, os.getpid()))
            obj.set_max_entries("ht_events", size)
            if request.kind is Kind.EXEC:
                obj.set_max_entries("ht_exec_buf", self._ncpus)
            obj.skip_missing(lambda tp: os.path.isdir(os.path.join(path, "events", tp)))
            obj.load()
            obj.attach_all()
            self._lost_fd = obj.map_fd("ht_lost")
            self._ring = RingReader(obj.map_fd("ht_events"), size)
            self._finalizer.detach()
            self._finalizer = weakref.finalize(self, _release, obj, [self._ring])
        except BaseException:
            self.close()
            raise
        self._decode = self._decoder()
        skipped = f"; not loaded (no tracepoint): {', '.join(obj.skipped)}" if obj.skipped else ""
        self.description = (f"ebpf-core: libbpf {lib.path}, ring buffer {size >> 10} KiB"
                            f"{skipped}")

    def _tracefs(self) -> str:
        try:
            path, _ = tracefs.ensure_mounted()
        except tracefs.TracefsUnavailable as exc:
            raise BackendError(str(exc)) from None
        for tp in REQUIRED[self._request.kind]:
            if not os.path.isdir(os.path.join(path, "events", tp)):
                raise BackendError(f"tracepoint {tp} is missing from this kernel")
        return path

    def _decoder(self) -> Callable[[memoryview, int, int], Optional[Decoded]]:
        max_args = self._request.max_args
        exec_kind = self._request.kind is Kind.EXEC

        def decode(view: memoryview, off: int, _length: int) -> Optional[Decoded]:
            if exec_kind:
                return records.decode_exec(view, off, max_args)
            return records.decode_open(view, off)

        return decode

    def poll(self, timeout: Optional[float]) -> Sequence[Event]:
        ring = self._ring
        if ring is None:
            return []
        out: List[Event] = []
        ring.drain(self._decode, MAX_BATCH, out)  # type: ignore[arg-type]
        if not out and timeout != 0:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not out:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                ring.wait(left)
                ring.drain(self._decode, MAX_BATCH, out)  # type: ignore[arg-type]
                if self._lost_delta(out):
                    break
        self._stats.captured += len(out)
        self._lost_delta(out)
        return out

    def _lost_delta(self, out: List[Event]) -> int:
        """Append a LostEvent for losses counted in the kernel since the last look."""
        try:
            total = read_percpu_u64_sum(self._lib, self._lost_fd, self._ncpus)
        except OSError:
            return 0
        delta = total - self._lost_seen
        if delta > 0:
            self._lost_seen = total
            self._stats.lost += delta
            out.append(LostEvent(time.monotonic_ns(), delta, "ring buffer reserve"))
        return delta

    def stats(self) -> StreamStats:
        return StreamStats(self._stats.captured, self._stats.lost)

    def close(self) -> None:
        ring, self._ring = self._ring, None
        obj, self._obj = self._obj, None
        if ring is not None:
            ring.close()
        if obj is not None:
            obj.close()
        self._finalizer.detach()


def _release(obj: BpfObject, rings: List[Optional[RingReader]]) -> None:
    """Finalizer: a stream dropped without close() still unloads everything."""
    for ring in rings:
        if ring is not None:
            ring.close()
    obj.close()


def open_core_stream(request: TraceRequest, caps: Capabilities,
                     ring_bytes: Optional[int] = None) -> EventStream:
    """Load and attach the engine for ``request``; BackendError says why it can't."""
    if not ORDERED_LOADS:
        raise BackendError("ebpf-core reads the ring buffer directly, which needs x86's"
                           " load ordering; this architecture is not supported yet")
    del caps  # the live load is the probe; requirements.py already judged caps
    return CoreStream(request, ring_bytes)
