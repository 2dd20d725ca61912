"""What both ftrace readers (raw_reader, text_reader) own: the instance's pipe files."""

from __future__ import annotations

import os
from typing import Dict


class PipeFds:
    """The open pipe files a reader reads, by CPU (-1: trace_pipe, every CPU merged)."""

    fds: Dict[int, int]

    def close(self) -> None:
        """Closes them all, each once, even if close() is called again."""
        fds, self.fds = self.fds, {}
        for fd in fds.values():
            os.close(fd)
