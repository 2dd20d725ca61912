"""Session.drain_batches: what the kernel still holds at the end, a batch at a time, so the
CLI writes each out instead of holding all of it (peak memory under overload)."""

from __future__ import annotations

import time
from typing import List, Optional, Sequence

from hybridtrace.backends.base import Unread
from hybridtrace.events import Event, ExecEvent, LostEvent
from hybridtrace.request import TraceRequest
from tests.unit.fake_streams import StreamStub, fake_session


class Backlog(StreamStub):
    """A stopped stream with ``batches`` left to read, each read taking ``read_s``."""

    def __init__(self, batches: int, read_s: float = 0.0, unread: int = 0) -> None:
        self.left = batches
        self.read_s = read_s
        self.stopped = False
        self.after_stop: List[int] = []
        self._unread = unread

    def stop(self) -> None:
        self.stopped = True

    def poll(self, timeout: Optional[float]) -> Sequence[Event]:
        if not self.stopped or self.left == 0:
            return []
        time.sleep(self.read_s)
        self.left -= 1
        self.after_stop.append(self.left)
        return [ExecEvent(self.left * 10 + i, 7, 7, 1, 0, b"sh", b"/bin/sh", (b"sh",), 0)
                for i in range(10)]

    def unread(self) -> Unread:
        return Unread(self.left + self._unread)


def test_each_batch_comes_out_on_its_own_then_what_was_left() -> None:
    stream = Backlog(4, unread=3)
    session = fake_session(stream, TraceRequest("exec"))
    sizes = []
    for batch in session.drain_batches(grace=5.0):
        sizes.append(len(batch))
        lost = [e for e in batch if isinstance(e, LostEvent)]
        assert not lost or batch == lost
    assert stream.stopped and sizes == [10, 10, 10, 10, 1]
    assert session.stats.lost == 3 and session.stats.captured == 40


def test_grace_counts_reading_not_the_caller_s_writing() -> None:
    """A slow writer (here 0.1 s per batch) must not turn the backlog into losses."""
    stream = Backlog(5)
    session = fake_session(stream, TraceRequest("exec"))
    got = 0
    for batch in session.drain_batches(grace=0.2):
        got += len(batch)
        time.sleep(0.1)
    assert got == 50 and session.stats.lost == 0


def test_slow_reading_stops_at_grace_and_the_rest_is_lost_not_dropped() -> None:
    stream = Backlog(10, read_s=0.05)
    session = fake_session(stream, TraceRequest("exec"))
    events = session.drain(grace=0.12)
    shown = [e for e in events if isinstance(e, ExecEvent)]
    lost = [e for e in events if isinstance(e, LostEvent)]
    assert 20 <= len(shown) <= 40 and len(lost) == 1
    assert lost[0].count == stream.left and len(shown) + 10 * stream.left == 100
