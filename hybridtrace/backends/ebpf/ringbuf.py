"""Read a BPF ring buffer map directly through mmap, many records per call.

Layout (kernel/bpf/ringbuf.c): page 0 holds the consumer position (ours to
write), page 1 the producer position, then the data pages, mapped twice in a
row so a record that wraps is still contiguous. Each record has an 8-byte
header: length with BUSY (not yet committed) and DISCARD bits, then a page
offset; records are 8-byte aligned. Decoding in bulk here, instead of one
libbpf callback into Python per record, is what lets Python keep up.

x86 keeps loads in order, so reading the producer position before the record
headers is enough; weaker architectures would need acquire loads Python can't
express, so the stream only uses this reader where the order is guaranteed.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import platform
import select
import struct
import time
from typing import Callable, Generic, List, Optional, Tuple, TypeVar

T = TypeVar("T")
# decode(buffer, offset, length): one record's body, read in place.
Decode = Callable[[mmap.mmap, int, int], Optional[T]]
# scan(buffer, base, mask, cons, prod, limit, out) -> (cons, records consumed):
# decode committed records from position cons on into out, stopping at prod, at
# a record still being written (BUSY) or after limit records.
Scan = Callable[[mmap.mmap, int, int, int, int, int, List[T]], Tuple[int, int]]

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HDR_SIZE = 8
# Native format: CPython copies native integers with one memcpy (a single load
# on x86), while "<Q" goes byte by byte and could read a torn position. The
# consumer position is written through ctypes, never struct.pack_into: that
# zero-fills first, and a consumer position of 0 seen by the kernel for an
# instant makes the ring look full (reserve fails, events are lost).
_U64 = struct.Struct("@Q")
_U32 = struct.Struct("@I")

# A backlog smaller than this is left to grow for up to GATHER_S before a
# read that may wait takes it (see RingReader.read): about 600 open records,
# a few milliseconds of added latency, far from filling any ring.
GATHER_BYTES = 64 << 10
GATHER_S = 0.004

ORDERED_LOADS = platform.machine() in ("x86_64", "i686", "i386", "AMD64")
# Records between publishing the consumer position, so a long drain hands
# space back to the kernel as it goes.
PUBLISH_EVERY = 1024


def scanner(decode: Decode[T]) -> Scan[T]:
    """The generic scan: one ``decode(buffer, offset, length)`` call per record.

    The buffer is the mapping itself (slices are bytes: one copy per string);
    decode must copy what it keeps, as the space goes back to the kernel.
    """
    header = _U32.unpack_from

    def scan(data: mmap.mmap, base: int, mask: int, cons: int, prod: int, limit: int,
             out: List[T]) -> Tuple[int, int]:
        append, count = out.append, 0
        while cons < prod and count < limit:
            off = base + (cons & mask)
            length = header(data, off)[0]
            if length & BUSY_BIT:
                break
            cons += (HDR_SIZE + 7 + (length & ~DISCARD_BIT)) & ~7
            count += 1
            if not length & DISCARD_BIT:
                item = decode(data, off + HDR_SIZE, length)
                if item is not None:
                    append(item)
        return cons, count

    return scan


class RingReader(Generic[T]):
    """The consumer side of one ring buffer map of ``size`` data bytes."""

    def __init__(self, map_fd: int, size: int, scan: Scan[T],
                 batch: int = 65536, gather: float = GATHER_S) -> None:
        page = mmap.PAGESIZE
        self._scan = scan
        self._gather = gather
        self._gather_bytes = min(GATHER_BYTES, size // 4)
        self._batch = batch  # records per read, so one read never holds the ring long
        self._fd = map_fd
        self._mask = size - 1
        self._cons = mmap.mmap(map_fd, page, mmap.MAP_SHARED,
                               mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        try:
            self._prod = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ,
                                   offset=page)
        except OSError:
            self._cons.close()
            raise
        self._base = page  # data pages start after the producer page
        self._cons_pos = ctypes.c_uint64.from_buffer(self._cons)
        self._closed = False
        self._poller = select.poll()
        self._poller.register(map_fd, select.POLLIN)

    def pending(self) -> bool:
        return self._waiting() > 0

    def _waiting(self) -> int:
        """Bytes the kernel has produced that we have not consumed."""
        return int(_U64.unpack_from(self._prod, 0)[0] - self._cons_pos.value)

    def wait(self, timeout: Optional[float]) -> None:
        """Block until the kernel signals data, or ``timeout`` seconds (None: forever)."""
        ms = -1 if timeout is None else max(0, int(timeout * 1000))
        self._poller.poll(ms)

    def read(self, timeout: Optional[float], out: List[T]) -> None:
        """Append decoded records; wait up to ``timeout`` (None: forever) when none are ready.

        A read that may wait lets a small backlog grow for up to ``gather``
        seconds first: every batch costs syscalls here and a write in the
        caller, and at tens of thousands of records a second a consumer that
        takes whatever is there ends up paying that per handful of records.
        """
        if timeout == 0:
            self._drain(out)
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            waiting = self._waiting()
            if waiting:
                if waiting < self._gather_bytes and self._gather > 0:
                    room = self._gather if deadline is None else deadline - time.monotonic()
                    if room > 0:
                        time.sleep(min(self._gather, room))
                if self._drain(out):
                    return
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            self.wait(left)

    def _drain(self, out: List[T]) -> int:
        """Decode committed records into ``out``; returns how many records were consumed."""
        scan, left = self._scan, self._batch
        cons = self._cons_pos.value
        prod = _U64.unpack_from(self._prod, 0)[0]
        total = 0
        while left > 0:
            step = min(left, PUBLISH_EVERY)
            cons, count = scan(self._prod, self._base, self._mask, cons, prod, step, out)
            self._cons_pos.value = cons
            total += count
            left -= count
            if count < step:
                break
        return total

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        del self._cons_pos  # drop the exported buffer so the mapping can close
        with contextlib.suppress(KeyError, ValueError):
            self._poller.unregister(self._fd)
        self._prod.close()
        self._cons.close()
