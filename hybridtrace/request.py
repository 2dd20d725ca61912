"""What a user asks a backend to trace, independent of how it is traced."""

from __future__ import annotations

import enum
from typing import Optional

import attrs

DEFAULT_MAX_ARGS = 20
# Each argv element and path is captured up to this many bytes (longer ones are
# cut and flagged). Matches the ring-buffer record layout of the eBPF engine.
ARG_SIZE = 256
PATH_SIZE = 512


class Kind(str, enum.Enum):
    EXEC = "exec"
    OPEN = "open"


@attrs.frozen(slots=True)
class Filters:
    """Filters a backend applies in the kernel where it can, in user space otherwise.

    The tracer's own process is always excluded.
    """

    pid: Optional[int] = None
    tid: Optional[int] = None
    uid: Optional[int] = None
    ppid: Optional[int] = None
    comm: Optional[bytes] = None  # exact match on the 16-byte task comm
    failed_only: bool = False


@attrs.frozen(slots=True)
class TraceRequest:
    kind: Kind
    filters: Filters = Filters()
    max_args: int = attrs.field(default=DEFAULT_MAX_ARGS)
    # Force one ftrace tier ("kprobe", "eprobe", "uprobe", "tracepoint"); None = best.
    tier: Optional[str] = None

    @max_args.validator
    def _check_max_args(self, _attr: object, value: int) -> None:
        if not 1 <= value <= 128:
            raise ValueError("max_args must be between 1 and 128")
