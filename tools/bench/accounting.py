"""Match what a tracer printed against what the workload did, and count.

A workload event is *captured* when the tracer printed it, recognised by the
unique marker in its argv or path, or (when the marker itself was not
captured intact) by the workload's pid / the child's unique name. It is
*correct* when the whole argv or path equals what the workload passed.
Losses a tracer reports are machine-wide (they may include other processes'
events), so events it neither printed nor reported lost are
``max(0, produced - captured - lost)``.
"""

from __future__ import annotations

import os
from typing import Iterable, Optional, Set, Tuple

import attrs

from tools.bench.observed import Observed


@attrs.frozen(slots=True)
class Tally:
    produced: int
    captured: int
    correct: int
    duplicates: int
    lost: int

    @property
    def missed(self) -> int:
        return self.produced - self.captured

    @property
    def unaccounted(self) -> int:
        return max(0, self.missed - self.lost)

    @property
    def correct_share(self) -> Optional[float]:
        return None if self.captured == 0 else self.correct / self.captured

    @property
    def captured_share(self) -> Optional[float]:
        return None if self.produced == 0 else self.captured / self.produced


@attrs.frozen(slots=True)
class OpenExpectation:
    """Open loop: paths ``prefix + seq`` opened by one process."""

    prefix: bytes
    produced: int
    pid: int


@attrs.frozen(slots=True)
class ExecExpectation:
    """Exec loops: ``[child, token, seq, pad]`` executed as ``child``."""

    child: bytes
    token: bytes
    pad: bytes
    produced: int

    @property
    def comm(self) -> bytes:
        return os.path.basename(self.child)[:15]

    def argv(self, seq: int) -> Tuple[bytes, ...]:
        return (self.child, self.token, str(seq).encode(), self.pad)


def _finish(seqs: Set[int], correct: int, dups: int, stray: int, produced: int,
            lost: int) -> Tally:
    captured = len(seqs) + min(stray, max(0, produced - len(seqs)))
    return Tally(produced=produced, captured=min(captured, produced), correct=correct,
                 duplicates=dups, lost=lost)


def tally_open(events: Iterable[Observed], want: OpenExpectation, lost: int) -> Tally:
    seqs: Set[int] = set()
    correct = dups = stray = 0
    folder = os.path.dirname(want.prefix)
    for ev in events:
        if ev.kind != "open":
            continue
        path = ev.path or b""
        tail = path[len(want.prefix):] if path.startswith(want.prefix) else b""
        if tail.isdigit() and int(tail) < want.produced:
            seq = int(tail)
            if seq in seqs:
                dups += 1
                continue
            seqs.add(seq)
            correct += 1
        elif ev.pid == want.pid and not ev.ok and (ev.path is None or ev.path.startswith(folder)):
            # the loop's open (they all fail: ENOENT), its path lost or mangled;
            # ld.so's opens of the loop succeed and are not workload events
            stray += 1
    return _finish(seqs, correct, dups, stray, want.produced, lost)


def marker_seq(argv: Optional[Tuple[bytes, ...]], token: bytes) -> Optional[int]:
    if argv is None or len(argv) < 3 or argv[1] != token or not argv[2].isdigit():
        return None
    return int(argv[2])


def tally_exec(events: Iterable[Observed], want: ExecExpectation, lost: int) -> Tally:
    seqs: Set[int] = set()
    correct = dups = stray = 0
    name = os.path.basename(want.child)
    for ev in events:
        if ev.kind != "exec" or not ev.ok:
            continue
        seq = marker_seq(ev.argv, want.token)
        if seq is not None:
            if seq in seqs:
                dups += 1
                continue
            seqs.add(seq)
            correct += ev.argv == want.argv(seq)
        elif ev.comm == want.comm or (ev.path is not None and os.path.basename(ev.path) == name):
            stray += 1  # our child, its argv missing or wrong
    return _finish(seqs, correct, dups, stray, want.produced, lost)
