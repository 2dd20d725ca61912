"""Reading an instance's trace_pipe: the kernel's text, parsed back.

The fallback reader, for kernels or setups where the per-CPU binary
buffers cannot be read (see raw_reader). The kernel merges the CPUs into
time order itself and prints each record's comm from its comm cache.
"""

from __future__ import annotations

import errno
import os
import time
from typing import Callable, Dict, List, Optional, Sequence

from hybridtrace.backends.ftrace.fd_ledger import INF
from hybridtrace.backends.ftrace.format import EventFormat
from hybridtrace.backends.ftrace.pipe import PipeParser
from hybridtrace.backends.ftrace.pipe_fds import PipeFds
from hybridtrace.backends.ftrace.trace_record import Later, TraceLine

READ_SIZE = 1 << 16  # see pipe.py: a read this big ends at a record boundary
COMMIT_MARGIN_NS = 2_000_000  # as raw_reader: a record is committed within this of its time


class TextReader(PipeFds):
    """trace_pipe of one instance, with the same interface as RawReader."""

    def __init__(self, inst_path: str, formats: Sequence[EventFormat],
                 monotonic: bool = False) -> None:
        self._parser = PipeParser(formats)
        fd = os.open(os.path.join(inst_path, "trace_pipe"), os.O_RDONLY | os.O_NONBLOCK)
        self.fds: Dict[int, int] = {-1: fd}
        self.stopped = False
        self.monotonic = monotonic  # timestamps are CLOCK_MONOTONIC
        # After read(): every record up to this time has been returned (None: unknown).
        self.complete: Optional[int] = None
        # Called with (-1, chunk) for each chunk read (tools/record_ftrace_stream.py).
        self.tap: Optional[Callable[[int, bytes], None]] = None

    def read(self, max_bytes: int) -> List[TraceLine]:
        lines: List[TraceLine] = []
        total = 0
        start = time.monotonic_ns()
        drained = False
        for fd in self.fds.values():
            while total < max_bytes:
                try:
                    chunk = os.read(fd, READ_SIZE)
                except BlockingIOError:
                    drained = True
                    break
                except OSError as exc:
                    if exc.errno == errno.EINTR:
                        continue
                    raise
                if not chunk:
                    drained = True
                    break
                total += len(chunk)
                if self.tap is not None:
                    self.tap(-1, chunk)
                lines += self._parser.feed(chunk)
                lines += self._parser.flush()
        self._completed(start, drained, lines)
        return lines

    def _completed(self, start: int, drained: bool, lines: List[TraceLine]) -> None:
        """trace_pipe hands out the CPUs' records merged oldest first: once drained, all
        committed before ``start``; cut short, all older than the last one returned."""
        if not self.monotonic:
            return
        if drained and self.stopped:
            self.complete = INF
            return
        bound = start if drained else min(start, lines[-1].timestamp_ns) if lines else None
        if bound is not None:
            self.complete = max(self.complete or 0, bound - COMMIT_MARGIN_NS)

    @property
    def pending(self) -> List[TraceLine]:
        return []

    def later(self) -> Later:
        return Later()  # nothing is held back

    def flush(self) -> List[TraceLine]:
        return self._parser.flush()
