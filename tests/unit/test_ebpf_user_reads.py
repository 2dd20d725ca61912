"""Undoing libbpf's rewrite of user-memory reads where kernel reads are refused."""

from __future__ import annotations

import struct

from hybridtrace.backends.ebpf.user_reads import helper_calls, restore

INSN = struct.Struct("=BBhi")


def code(*insns: tuple) -> bytes:
    return b"".join(INSN.pack(*i) for i in insns)


CALL, MOV = 0x85, 0xB7


def test_only_the_calls_that_were_user_or_kernel_reads_get_their_id_back() -> None:
    opened = code((MOV, 0x01, 0, 8), (CALL, 0, 0, 114), (CALL, 0, 0, 112), (CALL, 0, 0, 14),
                  (CALL, 0, 0, 113), (MOV, 0x02, 0, 4))
    originals = helper_calls(opened, {112, 113, 114, 115})
    assert originals == [(1, 114), (2, 112), (4, 113)]
    # what libbpf loads when it thinks the kernel predates bpf_probe_read_{user,kernel}
    sanitized = code((MOV, 0x01, 0, 8), (CALL, 0, 0, 45), (CALL, 0, 0, 4), (CALL, 0, 0, 14),
                     (CALL, 0, 0, 4), (MOV, 0x02, 0, 4))
    fixed, restored = restore(sanitized, originals)
    assert restored == 3
    assert fixed == opened


def test_nothing_to_restore_leaves_the_code_alone() -> None:
    opened = code((CALL, 0, 0, 114), (MOV, 0x01, 0, 45))
    fixed, restored = restore(opened, helper_calls(opened, {112, 113, 114, 115}))
    assert (fixed, restored) == (opened, 0)
    # an index past the end (code shrank) is skipped, not an error
    assert restore(opened, [(9, 112)]) == (opened, 0)
