"""The mmap ring reader and the fused open scan, on a fake ring in a memfd.

The layout is the kernel's (consumer page, producer page, data mapped twice),
written by hand: records, BUSY and DISCARD bits, wrapping at the end.
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import Any, Iterator, List, Tuple

import pytest

from hybridtrace.backends.ebpf import records
from hybridtrace.backends.ebpf.ringbuf import BUSY_BIT, DISCARD_BIT, RingReader, scanner
from hybridtrace.events import OpenEvent, Source
from hybridtrace.request import PATH_SIZE

PAGE = mmap.PAGESIZE
SIZE = 2 * PAGE  # data bytes: small, so records wrap quickly


class FakeRing:
    """A memfd laid out like a BPF ring buffer map as user space maps it."""

    def __init__(self) -> None:
        self.fd = os.memfd_create("ht-fake-ring")
        os.ftruncate(self.fd, 2 * PAGE + 2 * SIZE)
        self.map = mmap.mmap(self.fd, 2 * PAGE + 2 * SIZE)
        self.prod = 0

    def start_at(self, pos: int) -> None:
        self.prod = pos
        struct.pack_into("@Q", self.map, 0, pos)
        struct.pack_into("@Q", self.map, PAGE, pos)

    def put(self, body: bytes, bits: int = 0) -> int:
        """Append one record (both copies of the data); returns its position."""
        rec = struct.pack("@II", len(body) | bits, 0) + body
        rec += b"\0" * (-len(rec) % 8)
        for copy in (0, SIZE):
            off = 2 * PAGE + copy + self.prod % SIZE
            end = min(len(rec), 2 * PAGE + 2 * SIZE - off)
            self.map[off:off + end] = rec[:end]
        pos, self.prod = self.prod, self.prod + len(rec)
        struct.pack_into("@Q", self.map, PAGE, self.prod)
        return pos

    def set_bits(self, pos: int, bits: int) -> None:
        for copy in (0, SIZE):
            off = 2 * PAGE + copy + pos % SIZE
            length = struct.unpack_from("@I", self.map, off)[0]
            struct.pack_into("@I", self.map, off, (length & ~(BUSY_BIT | DISCARD_BIT)) | bits)

    @property
    def consumed(self) -> int:
        return int(struct.unpack_from("@Q", self.map, 0)[0])

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


@pytest.fixture
def ring() -> Iterator[FakeRing]:
    fake = FakeRing()
    yield fake
    fake.close()


def open_body(i: int, path: bytes = b"", path_len: int = -1, ret: int = 3,
              sysno: int = 1, flags: int = 0) -> bytes:
    raw = path + b"\0" if path_len < 0 else path
    n = len(raw) if path_len < 0 else path_len
    return records.OPEN.pack(1000 + i, 2, 10 + i, 20 + i, 1, 0, flags, b"comm%d" % i,
                             100 + i, 4026531832, 4026531836, 10 + i, 20 + i, 1, ret, -100,
                             0o100, 0o644, sysno, n) + raw


BODIES = [
    open_body(0, b"/etc/passwd"),
    open_body(1, b"/no/such", ret=-2),
    open_body(2, b"", path_len=0, ret=-14),  # path unreadable
    open_body(3, b"x" * (PATH_SIZE + 1), ret=-36),  # one byte over: cut
    open_body(4, b"x" * PATH_SIZE),  # exactly fits
    open_body(5, b"/bad\xff\nutf8", sysno=9),  # unknown syscall number: None, never a guess
    # namespaces and cgroup not read: None, not 0
    open_body(6, b"/x", flags=records.F_MNTNS_UNKNOWN | records.F_NSPID_UNKNOWN
              | records.F_CGROUP_UNKNOWN),
    # io_uring requests: kernel's copy of the path; SQPOLL; a fixed slot; result unknown
    open_body(7, b"/u", flags=records.F_IO_URING | records.F_KERNEL_COPY),
    open_body(8, b"/u", flags=records.F_IO_URING | records.F_NO_THREAD, ret=-2),
    open_body(9, b"", path_len=0, flags=records.F_IO_URING | records.F_FIXED_SLOT | 4, ret=0),
    open_body(10, b"/u", flags=records.F_IO_URING | records.F_NO_RESULT | records.F_ARGS_FAULT),
]


def reader(fake: FakeRing, fused: bool, batch: int = 65536) -> RingReader[OpenEvent]:
    scan = records.scan_opens if fused else scanner(records.decode_open)
    return RingReader(fake.fd, SIZE, scan, batch=batch, gather=0)


def read_all(fake: FakeRing, fused: bool, batch: int = 65536) -> Tuple[List[OpenEvent], int]:
    rr = reader(fake, fused, batch)
    try:
        out: List[OpenEvent] = []
        rr.read(0, out)
        return out, fake.consumed
    finally:
        rr.close()


def read_every_body(ring: FakeRing, fused: bool) -> List[Any]:
    """Put BODIES in the ring, read them back: each decoded as decode_open would, all consumed."""
    for body in BODIES:
        ring.put(body)
    out, consumed = read_all(ring, fused)
    assert out == [records.decode_open(memoryview(b), 0) for b in BODIES]
    assert consumed == ring.prod
    return out


@pytest.mark.parametrize("fused", [False, True])
def test_records_decode_like_decode_open(ring: FakeRing, fused: bool) -> None:
    out = read_every_body(ring, fused)
    assert out[3].path_truncated and out[3].path == b"x" * PATH_SIZE
    assert not out[4].path_truncated and out[4].path == b"x" * PATH_SIZE
    assert out[2].path is None and out[2].errno == 14 and out[2].fd is None
    assert out[5].syscall is None and out[5].path == b"/bad\xff\nutf8"
    assert all(e.via == "io_uring" and e.syscall is None for e in out[7:])
    assert all(e.via == "syscall" for e in out[:7])
    assert out[7].path_source is Source.KERNEL_COPY and out[7].fd == 3 and out[7].tid == 27
    assert (out[8].tid, out[8].uid, out[8].comm, out[8].pid) == (None, None, None, 18)
    assert out[8].errno == 2 and out[8].path_source is Source.SYSCALL_ENTRY
    assert out[9].fd is None and out[9].errno is None and out[9].path is None
    assert out[10].fd is None and out[10].errno is None and out[10].flags is None
    assert out[10].mode is None and out[10].path == b"/u"


@pytest.mark.parametrize("fused", [False, True])
def test_discarded_skipped_busy_stops(ring: FakeRing, fused: bool) -> None:
    ring.put(BODIES[0])
    ring.put(BODIES[1], DISCARD_BIT)
    ring.put(BODIES[2])
    busy = ring.put(BODIES[3], BUSY_BIT)
    ring.put(BODIES[4])  # committed, but behind a busy record
    out, consumed = read_all(ring, fused)
    assert [e.pid for e in out] == [10, 12]
    assert consumed == busy  # everything before the busy record goes back, nothing after
    ring.set_bits(busy, 0)  # now committed
    out, consumed = read_all(ring, fused)
    assert [e.pid for e in out] == [13, 14]
    assert consumed == ring.prod


@pytest.mark.parametrize("fused", [False, True])
def test_records_wrap_around_the_end(ring: FakeRing, fused: bool) -> None:
    ring.start_at(3 * SIZE - 40)  # positions keep growing; the next record straddles the end
    read_every_body(ring, fused)


@pytest.mark.parametrize("fused", [False, True])
def test_batch_limit_leaves_the_rest(ring: FakeRing, fused: bool) -> None:
    for body in BODIES:
        ring.put(body)
    first, consumed = read_all(ring, fused, batch=4)
    assert len(first) == 4 and 0 < consumed < ring.prod
    rest: List[OpenEvent] = []
    while consumed < ring.prod:
        more, consumed = read_all(ring, fused, batch=4)
        assert 0 < len(more) <= 4
        rest += more
    assert first + rest == [records.decode_open(memoryview(b), 0) for b in BODIES]


def test_waiting_read_returns_a_small_backlog(ring: FakeRing) -> None:
    ring.put(BODIES[0])
    rr = RingReader(ring.fd, SIZE, records.scan_opens)  # default gather
    try:
        out: List[OpenEvent] = []
        rr.read(1.0, out)
        assert [e.pid for e in out] == [10]
        assert ring.consumed == ring.prod
    finally:
        rr.close()
