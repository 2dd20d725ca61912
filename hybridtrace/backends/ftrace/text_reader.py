"""Reading an instance's trace_pipe: the kernel's text, parsed back.

The fallback reader, for kernels or setups where the per-CPU binary
buffers cannot be read (see raw_reader). The kernel merges the CPUs into
time order itself and prints each record's comm from its comm cache.
"""

from __future__ import annotations

import errno
import os
from typing import Callable, Dict, List, Optional, Sequence

from hybridtrace.backends.ftrace.correlate import Later
from hybridtrace.backends.ftrace.format import EventFormat
from hybridtrace.backends.ftrace.pipe import PipeParser, TraceLine

READ_SIZE = 1 << 16  # see pipe.py: a read this big ends at a record boundary


class TextReader:
    """trace_pipe of one instance, with the same interface as RawReader."""

    def __init__(self, inst_path: str, formats: Sequence[EventFormat]) -> None:
        self._parser = PipeParser(formats)
        fd = os.open(os.path.join(inst_path, "trace_pipe"), os.O_RDONLY | os.O_NONBLOCK)
        self.fds: Dict[int, int] = {-1: fd}
        self.stopped = False
        # Called with (-1, chunk) for each chunk read (tools/record_ftrace_stream.py).
        self.tap: Optional[Callable[[int, bytes], None]] = None

    def close(self) -> None:
        fds, self.fds = self.fds, {}
        for fd in fds.values():
            os.close(fd)

    def read(self, max_bytes: int) -> List[TraceLine]:
        lines: List[TraceLine] = []
        total = 0
        for fd in self.fds.values():
            while total < max_bytes:
                try:
                    chunk = os.read(fd, READ_SIZE)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno == errno.EINTR:
                        continue
                    raise
                if not chunk:
                    break
                total += len(chunk)
                if self.tap is not None:
                    self.tap(-1, chunk)
                lines += self._parser.feed(chunk)
                lines += self._parser.flush()
        return lines

    @property
    def pending(self) -> List[TraceLine]:
        return []

    def later(self) -> Later:
        return Later()  # nothing is held back

    def flush(self) -> List[TraceLine]:
        return self._parser.flush()
