"""Which of bpf/open.bpf.c's io_uring programs load on a kernel, from the shapes of
io_uring's tracepoints in its BTF (libbpf.Libbpf.tracepoint_args).

A tp_btf program reads its arguments as the tracepoint declares them: one written
for another prototype is refused by the verifier, and with it the whole object. So
the programs whose tracepoint is missing or of another shape are left out, and
where what is left cannot tie an open to its submitter and result, all of them.
Pure: the unit tests feed it shapes recorded from Debian's kernels.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from hybridtrace.vocabulary import (
    IO_URING_COMPLETE,
    IO_URING_FAILED,
    IO_URING_OVERFLOW,
    IO_URING_SUBMIT,
    IO_URING_SUBMIT_OLD,
)

REQUEST = "struct io_kiocb *"
# Each program (by its C name) and the arguments it reads, as tracepoint_args spells them.
PROGRAMS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "ht_uring_submit_req": (IO_URING_SUBMIT, (REQUEST,)),
    # io_uring_submit_sqe is given the request from 6.0 on (5.x: the ring, an
    # untyped request pointer, then copies of opcode, user_data and flags).
    "ht_uring_submit_sqe": (IO_URING_SUBMIT_OLD, (REQUEST,)),
    # 6.13+ (io_uring: clean up cqe trace points): the CQE filled in; before, its
    # user_data and res (Debian's 6.1 and 6.12 have this one).
    "ht_uring_complete": (IO_URING_COMPLETE, ("struct io_ring_ctx *", "void *",
                                              "struct io_uring_cqe *")),
    "ht_uring_complete_fields": (IO_URING_COMPLETE, ("void *", "void *", "int", "int")),
    "ht_uring_overflow": (IO_URING_OVERFLOW, ("void *", "int", "int")),
    "ht_uring_failed": (IO_URING_FAILED, ("struct io_uring_sqe *", REQUEST, "int")),
}


def fits(args: Sequence[str], wanted: Sequence[str]) -> bool:
    """The program's arguments lead the tracepoint's (it may read fewer)."""
    return len(args) >= len(wanted) and tuple(args[:len(wanted)]) == tuple(wanted)


def choose(shapes: Optional[Dict[str, List[str]]]) -> Tuple[Optional[str], List[str]]:
    """(Why io_uring opens cannot be seen here, or None; the programs to leave out)
    for ``shapes``: tracepoint -> argument types, None when the BTF is unreadable."""
    if shapes is None:
        return "the kernel's BTF could not be read to find io_uring's tracepoints", []
    usable = {prog for prog, (event, wanted) in PROGRAMS.items()
              if event in shapes and fits(shapes[event], wanted)}
    left_out = sorted(set(PROGRAMS) - usable)
    submit = usable & {"ht_uring_submit_req", "ht_uring_submit_sqe"}
    if not submit:
        old = shapes.get(IO_URING_SUBMIT_OLD)
        if IO_URING_SUBMIT not in shapes and old is not None:
            return (f"its {IO_URING_SUBMIT_OLD} tracepoint is given the request only as an"
                    f" untyped pointer ({', '.join(old)}; before 6.0), which tp_btf programs"
                    " cannot read through"), left_out
        return f"the kernel has no {IO_URING_SUBMIT} (or {IO_URING_SUBMIT_OLD}) tracepoint" \
            " that is given the request", left_out
    if not usable & {"ht_uring_complete", "ht_uring_complete_fields"}:
        return (f"the kernel has no {IO_URING_COMPLETE} tracepoint of a known shape"
                f" ({', '.join(shapes.get(IO_URING_COMPLETE, ['absent']))})"), left_out
    return None, left_out
