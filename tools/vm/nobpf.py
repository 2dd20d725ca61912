"""Run a command with bpf() denied: a seccomp filter makes bpf(2) fail with
EPERM for the command and everything it starts, as a container runtime's
default seccomp profile does for a process without CAP_BPF/CAP_SYS_ADMIN.
Everything else (tracefs, perf_event_open, root's other rights) is untouched.

    python -m tools.vm.nobpf COMMAND [ARG...]
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import sys
from typing import Callable, List

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
NR_BPF = {"x86_64": 321, "aarch64": 280}
# Classic BPF opcodes.
LD_W_ABS = 0x20
JEQ_K = 0x15
RET_K = 0x06


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def program(machine: str) -> bytes:
    """The filter: other architectures and other syscalls pass, bpf() gets EPERM."""
    return b"".join([
        _insn(LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        _insn(JEQ_K, 0, 3, AUDIT_ARCH[machine]),
        _insn(LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        _insn(JEQ_K, 0, 1, NR_BPF[machine]),
        _insn(RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM),
        _insn(RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ])


def deny_bpf() -> None:
    """Install the filter on this process (inherited by children, kept over exec)."""
    machine = platform.machine()
    if machine not in AUDIT_ARCH:
        raise OSError(errno.ENOSYS, f"no seccomp filter known for {machine}")
    code = program(machine)
    buf = ctypes.create_string_buffer(code, len(code))

    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = Fprog(len(code) // 8, ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    # Without CAP_SYS_ADMIN the kernel takes a filter only under no_new_privs.
    if os.geteuid() != 0 and libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"no_new_privs not set: {os.strerror(err)}")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp filter not installed: {os.strerror(err)}")


def run_wrapped(tool: str, prepare: Callable[[], None], argv: List[str]) -> int:
    """``python -m tools.vm.TOOL COMMAND [ARG...]``: prepare this process, exec COMMAND."""
    if not argv:
        print(f"usage: python -m tools.vm.{tool} COMMAND [ARG...]", file=sys.stderr)
        return 2
    try:
        prepare()
        os.execvp(argv[0], argv)
    except OSError as exc:
        print(f"{tool}: {exc}", file=sys.stderr)
    return 127


def main(argv: List[str]) -> int:
    return run_wrapped("nobpf", deny_bpf, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
