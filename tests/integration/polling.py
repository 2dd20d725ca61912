"""Helpers the backend test modules share: poll until done, pick a pid's events, let a
waiting child go."""

from __future__ import annotations

import subprocess
import time
from typing import Callable, List, Optional, Protocol, Sequence, Union

from hybridtrace.events import Event, ExecEvent, OpenEvent


class Pollable(Protocol):
    def poll(self, timeout: Optional[float]) -> Sequence[Event]: ...


def collect(source: Pollable, done: Callable[[List[Event]], bool],
            timeout: float = 10.0, strict: bool = False) -> List[Event]:
    """Poll until ``done(events so far)`` or the timeout; returns everything seen.

    ``strict``: reaching the timeout without ``done`` fails the test (say so
    where the events are what is being tested; leave it off to gather a while)."""
    seen: List[Event] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done(seen):
        seen += source.poll(0.2)
    if strict and not done(seen):
        raise AssertionError(f"wanted events not seen within {timeout}s ({len(seen)} seen)")
    return seen


def exec_of(source: Pollable, argv: Sequence[Union[str, bytes]]) -> ExecEvent:
    """Runs ``argv`` to its end while ``source`` traces: its one exec event."""
    child = subprocess.Popen(argv)
    child.wait()
    events = collect(source, lambda ev: bool(execs_of(ev, child.pid)))
    (ev,) = execs_of(events, child.pid)
    return ev


def release(child: subprocess.Popen[bytes]) -> int:
    """Lets a child that waits for a line on its stdin go on; waits for its exit status."""
    assert child.stdin is not None
    child.stdin.write(b"go\n")
    child.stdin.close()
    return child.wait()


def execs_of(events: Sequence[Event], pid: int) -> List[ExecEvent]:
    return [e for e in events if isinstance(e, ExecEvent) and e.pid == pid]


def opens_of(events: Sequence[Event], pid: int) -> List[OpenEvent]:
    return [e for e in events if isinstance(e, OpenEvent) and e.pid == pid]
