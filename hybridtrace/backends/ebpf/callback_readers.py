"""Readers that let libbpf drive the buffer and call back into Python per record.

Slower than the mmap ring reader (one ctypes callback per event), so they are
the fallbacks: ``PerfReader`` for kernels without the BPF ring buffer (per-CPU
perf buffers), ``LibbpfRingReader`` for
architectures where reading the ring directly from Python is not safe.
"""

from __future__ import annotations

import ctypes
import time
from typing import Callable, List, Optional, TypeVar

from hybridtrace.backends.base import BackendError
from hybridtrace.backends.ebpf.libbpf import Libbpf

T = TypeVar("T")
Decode = Callable[[memoryview, int, int], Optional[T]]

_PERF_SAMPLE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                ctypes.c_uint32)
_PERF_LOST = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64)
_RING_SAMPLE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


def _declare(lib: Libbpf) -> None:
    vp, ci = ctypes.c_void_p, ctypes.c_int
    table = {
        "perf_buffer__new": (vp, [ci, ctypes.c_size_t, _PERF_SAMPLE, _PERF_LOST, vp, vp]),
        "perf_buffer__poll": (ci, [vp, ci]),
        "perf_buffer__free": (None, [vp]),
        "ring_buffer__new": (vp, [ci, _RING_SAMPLE, vp, vp]),
        "ring_buffer__poll": (ci, [vp, ci]),
        "ring_buffer__free": (None, [vp]),
    }
    for name, (restype, argtypes) in table.items():
        fn = getattr(lib.lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


def _ms(timeout: Optional[float]) -> int:
    return -1 if timeout is None else max(0, int(timeout * 1000))


class _CallbackReader:
    """Shared loop: poll libbpf until a record (or loss) arrives or time runs out."""

    def __init__(self, lib: Libbpf, decode: Decode[T]) -> None:
        _declare(lib)
        self._lib = lib
        self._decode = decode
        self._out: Optional[List[object]] = None

    def _take(self, ptr: int, size: int) -> None:
        if self._out is None:
            return
        view = memoryview((ctypes.c_char * size).from_address(ptr)).cast("B")
        item = self._decode(view, 0, size)
        if item is not None:
            self._out.append(item)

    # Set by each subclass: the libbpf handle, its poll and free functions, and its name.
    _handle: Optional[int]
    _poll_name: str
    _free_name: str
    _what: str

    def _poll_once(self, ms: int) -> int:
        if not self._handle:
            raise BackendError(f"{self._what} is closed")
        return int(getattr(self._lib.lib, self._poll_name)(self._handle, ms))

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle:
            getattr(self._lib.lib, self._free_name)(handle)

    def read(self, timeout: Optional[float], out: List[object]) -> None:
        self._out = out
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                self._poll_once(_ms(left))
                if out or (left is not None and left <= 0):
                    return
        finally:
            self._out = None


class PerfReader(_CallbackReader):
    """Per-CPU perf buffers of ``pages`` pages each (a power of two)."""

    def __init__(self, lib: Libbpf, map_fd: int, pages: int, decode: Decode[T]) -> None:
        super().__init__(lib, decode)
        self._sample = _PERF_SAMPLE(lambda _ctx, _cpu, data, size: self._take(data, size))
        # No lost callback: the BPF side counts failed outputs as they happen
        # (perf's own loss records come late, with the next sample that fits).
        ctypes.set_errno(0)
        self._handle = lib.lib.perf_buffer__new(map_fd, pages, self._sample,
                                                _PERF_LOST(), None, None)
        if not self._handle:
            raise lib.errno_error("cannot open the perf buffers")

    _poll_name, _free_name, _what = "perf_buffer__poll", "perf_buffer__free", "perf buffer"


class LibbpfRingReader(_CallbackReader):
    """The BPF ring buffer through libbpf's own consumer (ordering done in C)."""

    def __init__(self, lib: Libbpf, map_fd: int, decode: Decode[T]) -> None:
        super().__init__(lib, decode)
        self._sample = _RING_SAMPLE(self._on_sample)
        ctypes.set_errno(0)
        self._handle = lib.lib.ring_buffer__new(map_fd, self._sample, None, None)
        if not self._handle:
            raise lib.errno_error("cannot open the ring buffer")

    def _on_sample(self, _ctx: object, data: int, size: int) -> int:
        self._take(data, size)
        return 0

    _poll_name, _free_name, _what = "ring_buffer__poll", "ring_buffer__free", "ring buffer"
