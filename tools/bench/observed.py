"""What a tracer reported, reduced to what the accounting needs.

Every parser (our JSON lines, libbpf-tools and BCC text columns) produces
these, so the accounting does not care which tool spoke.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import attrs


@attrs.frozen(slots=True)
class Observed:
    """One exec or open a tracer printed; None where it printed nothing."""

    kind: str  # "exec" or "open"
    pid: Optional[int]
    comm: Optional[bytes]
    path: Optional[bytes]  # open: the path; exec: the filename, when the tool prints it
    argv: Optional[Tuple[bytes, ...]] = None  # exec only
    ok: bool = True  # the call is known to have succeeded (exec retval 0, open fd >= 0)


@attrs.frozen(slots=True)
class Parsed:
    """A whole tracer output: its events and the losses it reported."""

    events: List[Observed]
    lost: int
    lost_reports: int
    unparsed_lines: int
