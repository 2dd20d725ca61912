"""Helpers the backend test modules share: poll until done, pick a pid's events."""

from __future__ import annotations

import time
from typing import Callable, List, Optional, Protocol, Sequence

from hybridtrace.events import Event, ExecEvent, OpenEvent


class Pollable(Protocol):
    def poll(self, timeout: Optional[float]) -> Sequence[Event]: ...


def collect(source: Pollable, done: Callable[[List[Event]], bool],
            timeout: float = 10.0) -> List[Event]:
    """Poll until ``done(events so far)`` or the timeout; returns everything seen."""
    seen: List[Event] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done(seen):
        seen += source.poll(0.2)
    return seen


def execs_of(events: Sequence[Event], pid: int) -> List[ExecEvent]:
    return [e for e in events if isinstance(e, ExecEvent) and e.pid == pid]


def opens_of(events: Sequence[Event], pid: int) -> List[OpenEvent]:
    return [e for e in events if isinstance(e, OpenEvent) and e.pid == pid]
