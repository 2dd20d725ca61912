"""Probe bpf() by doing: load tiny programs and create a map, then close them.

Raw bpf(2) through ctypes, so the answer does not depend on libbpf or BCC.
Every object is named ht_<pid>_... and its fd is closed at once, so nothing
stays in the kernel.
"""

from __future__ import annotations

import ctypes
import errno
import os

# bpf(2) syscall numbers per architecture (uname -m).
BPF_SYSCALL = {
    "x86_64": 321,
    "i386": 357,
    "i686": 357,
    "aarch64": 280,
    "riscv64": 280,
    "loongarch64": 280,
    "armv7l": 386,
    "armv6l": 386,
    "ppc64le": 361,
    "ppc64": 361,
    "s390x": 351,
}
_BPF_MAP_CREATE = 0
_BPF_PROG_LOAD = 5
_BPF_PROG_TYPE_TRACEPOINT = 5
_BPF_MAP_TYPE_RINGBUF = 27
ATTR_SIZE = 128  # larger than any field we set; the kernel checks the tail is zero


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One eBPF instruction (struct bpf_insn, little-endian hosts); tools/vm shares it."""
    return bytes([code, (src << 4) | dst]) + off.to_bytes(2, "little", signed=True) + \
        imm.to_bytes(4, "little", signed=True)


_EXIT_0 = insn(0xB7) + insn(0x95)  # r0 = 0; exit
_TRIVIAL_PROG = _EXIT_0
_BPF_FUNC_PROBE_READ = 4
_BPF_FUNC_PROBE_READ_KERNEL = 113  # 5.5+


def _kernel_read_prog(helper: int) -> bytes:
    """helper(fp - 8, 8, NULL): a kernel-memory read, refused under lockdown=confidentiality."""
    return (insn(0xBF, dst=1, src=10) + insn(0x07, dst=1, imm=-8) + insn(0xB7, dst=2, imm=8)
            + insn(0xB7, dst=3) + insn(0x85, imm=helper) + _EXIT_0)


def bpf_syscall(cmd: int, attr: ctypes.Array[ctypes.c_char], machine: str) -> int:
    """Call bpf(2); returns the fd (closed by the caller) or -errno."""
    nr = BPF_SYSCALL.get(machine)
    if nr is None:
        return -errno.ENOSYS
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ret = int(libc.syscall(ctypes.c_long(nr), ctypes.c_int(cmd), attr, ctypes.c_uint(ATTR_SIZE)))
    return ret if ret >= 0 else -ctypes.get_errno()


def _name(kind: str) -> bytes:
    """A BPF object name (15 bytes max) that carries our pid."""
    return f"ht_{os.getpid()}_{kind}".encode()[:15]


def _close_result(ret: int) -> int:
    if ret >= 0:
        os.close(ret)
        return 0
    return -ret


def load_trivial_prog(machine: str, named: bool = True, prog: bytes = _TRIVIAL_PROG) -> int:
    """Load and close a tracepoint program (default "r0 = 0; exit"): 0 or the errno."""
    insns = ctypes.create_string_buffer(prog, len(prog))
    license_ = ctypes.create_string_buffer(b"GPL")
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    fields = (ctypes.c_uint32 * 2).from_buffer(attr)
    fields[0] = _BPF_PROG_TYPE_TRACEPOINT
    fields[1] = len(prog) // 8
    ptrs = (ctypes.c_uint64 * 2).from_buffer(attr, 8)
    ptrs[0] = ctypes.addressof(insns)
    ptrs[1] = ctypes.addressof(license_)
    if named:  # prog_name sits at offset 48 (after log_*, kern_version, prog_flags)
        name = _name("probe")
        ctypes.memmove(ctypes.addressof(attr) + 48, name, len(name))
    result = _close_result(bpf_syscall(_BPF_PROG_LOAD, attr, machine))
    if named and result in (errno.EINVAL, errno.E2BIG):  # kernels before 4.15: no names
        return load_trivial_prog(machine, named=False, prog=prog)
    return result


def load_kernel_read_prog(machine: str) -> int:
    """0 when BPF may read kernel memory; bpf_probe_read stands in before 5.5."""
    result = load_trivial_prog(machine, prog=_kernel_read_prog(_BPF_FUNC_PROBE_READ_KERNEL))
    if result == errno.EINVAL:
        older = load_trivial_prog(machine, prog=_kernel_read_prog(_BPF_FUNC_PROBE_READ))
        return 0 if older == 0 else result
    return result


def create_ringbuf(machine: str) -> int:
    """Create and close a BPF ring buffer map: 0 or the errno."""
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    fields = (ctypes.c_uint32 * 4).from_buffer(attr)
    fields[0] = _BPF_MAP_TYPE_RINGBUF
    fields[3] = max(4096, os.sysconf("SC_PAGE_SIZE"))  # max_entries: a page multiple
    name = _name("rb")
    ctypes.memmove(ctypes.addressof(attr) + 28, name, len(name))  # map_name
    return _close_result(bpf_syscall(_BPF_MAP_CREATE, attr, machine))
