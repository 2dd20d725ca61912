"""Streams without a kernel, to drive Session, the fallback loop and the CLI loop."""

from __future__ import annotations

import time
from typing import List, Optional, Sequence

from hybridtrace import api
from hybridtrace.backends.base import StreamStats, Unread
from hybridtrace.events import Event, ExecEvent
from hybridtrace.request import TraceRequest
from hybridtrace.selector import decide
from tests.unit.kernel_trees import probe_tree

HOST = "host-6.18-root"  # ebpf-core, then ftrace/uprobe and ftrace/tracepoint are usable


class StreamStub:
    """What every EventStream has beyond poll(), doing nothing."""

    description = "stub"

    @property
    def stats(self) -> StreamStats:
        return StreamStats()

    def stop(self) -> None:
        pass

    def unread(self) -> Unread:
        return Unread()

    def close(self) -> None:
        pass


class Replay(StreamStub):
    """A stream that hands out a fixed batch once."""

    description = "replay"

    def __init__(self, events: Sequence[Event]) -> None:
        self.events: List[Event] = list(events)

    def poll(self, timeout: Optional[float]) -> Sequence[Event]:
        out, self.events = self.events, []
        return out


class FakeStream(StreamStub):
    """Yields one ExecEvent per poll, after waiting; flags misuse instead of crashing later."""

    description = "fake stream"

    def __init__(self, wait: float = 0.02) -> None:
        self.wait = wait
        self.closed = False
        self.polling = 0
        self.misuse: List[str] = []
        self.count = 0

    def poll(self, timeout: Optional[float]) -> Sequence[Event]:
        if self.closed:
            self.misuse.append("poll after close")
            return []
        self.polling += 1
        try:
            if self.polling > 1:
                self.misuse.append("concurrent poll")
            time.sleep(min(self.wait, timeout if timeout is not None else self.wait))
            if self.closed:
                self.misuse.append("closed during poll")
            self.count += 1
            return [ExecEvent(self.count, 100, 100, 1, 0, b"sh", b"/bin/sh", (b"sh",), 0)]
        finally:
            self.polling -= 1

    @property
    def stats(self) -> StreamStats:
        return StreamStats(self.count, 0)

    def close(self) -> None:
        if self.polling:
            self.misuse.append("closed during poll")
        self.closed = True


def fake_session(stream: object, request: TraceRequest) -> api.Session:
    """A Session over ``stream`` as the selector would open it on the recorded host."""
    return api.Session(decide(probe_tree(HOST), request.kind.value), stream,  # type: ignore[arg-type]
                       request, [])
