"""Whether the BCC open program traces opens made through io_uring here, and the
-D flags that compile those programs in (open.c, HT_URING).

They attach to io_uring's tracepoints by their tracefs fields, and read the
request's path through offsets from the kernel's BTF (struct io_open is in no
header): no BTF, or a BTF without those members, and they are left out.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

from hybridtrace.btf_offsets import URING_OFFSETS, BtfError, offsets
from hybridtrace.vocabulary import (
    IO_URING_COMPLETE,
    IO_URING_FAILED,
    IO_URING_GROUP,
    IO_URING_OVERFLOW,
    IO_URING_SUBMIT,
    IO_URING_SUBMIT_OLD,
)

# tracepoint (io_uring group) -> the macro that compiles its program in
MACROS: Tuple[Tuple[str, str], ...] = (
    (IO_URING_SUBMIT, "HT_URING_SUBMIT_REQ"),
    (IO_URING_SUBMIT_OLD, "HT_URING_SUBMIT_SQE"),
    (IO_URING_COMPLETE, "HT_URING"),
    (IO_URING_OVERFLOW, "HT_URING_OVERFLOW"),
    (IO_URING_FAILED, "HT_URING_FAILED"),
)
# What bcc_stream attaches: (tracepoint as group:event, the macro it needs)
ATTACH: List[Tuple[str, Optional[str]]] = [(f"{IO_URING_GROUP}:{tp}", macro)
                                           for tp, macro in MACROS]


def uring_flags(has: Callable[[str], bool], btf_path: Optional[str]
                ) -> Tuple[List[str], Optional[str]]:
    """(-D flags, why io_uring opens are not seen or None); ``has`` says whether
    a tracepoint ("group/event") exists."""
    present = {tp for tp, _ in MACROS if has(f"{IO_URING_GROUP}/{tp}")}
    if IO_URING_COMPLETE not in present:
        return [], f"the kernel has no {IO_URING_COMPLETE} tracepoint"
    if not present & {IO_URING_SUBMIT, IO_URING_SUBMIT_OLD}:
        return [], f"the kernel has no {IO_URING_SUBMIT} (or {IO_URING_SUBMIT_OLD}) tracepoint"
    if btf_path is None:
        return [], "no kernel BTF, whose offsets locate an io_uring request's path"
    try:
        found = offsets(btf_path, URING_OFFSETS)
    except BtfError as exc:
        return [], f"the kernel's BTF does not describe an io_uring open request ({exc})"
    flags = [f"-D{macro}={value}" for macro, value in sorted(found.items())]
    submit = IO_URING_SUBMIT if IO_URING_SUBMIT in present else IO_URING_SUBMIT_OLD
    flags += [f"-D{macro}" for tp, macro in MACROS
              if tp in present and tp not in (IO_URING_SUBMIT, IO_URING_SUBMIT_OLD)]
    flags.append(f"-D{dict(MACROS)[submit]}")
    return flags, None
