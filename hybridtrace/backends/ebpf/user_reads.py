"""Keep bpf_probe_read_user[_str] in tp_btf programs where libbpf would rewrite them.

libbpf decides whether the kernel has bpf_probe_read_{kernel,user}[_str] by
loading a tiny program that calls bpf_probe_read_kernel. Under
lockdown=confidentiality the kernel refuses that helper (and bpf_probe_read),
so libbpf concludes the kernel predates 5.5 and, just before loading, rewrites
every bpf_probe_read_user into bpf_probe_read and bpf_probe_read_user_str into
bpf_probe_read_str: helpers the same lockdown refuses ("unknown func
bpf_probe_read_str#45" on 6.1, "program of this type cannot use helper
bpf_probe_read_str#45" on 6.12), while bpf_probe_read_user itself is allowed.

libbpf offers one step between that rewrite and the load: the prepare callback
of a custom SEC() handler. ``TpBtfHandler`` registers one for "tp_btf/" (the
same program type and attach type as libbpf's own) whose callback puts back the
helper ids each program had when it was opened; programs keep their attach
target through bpf_program__set_attach_target() and attach through
bpf_program__attach_trace(), what libbpf's own handler does. Registered once
per process and never removed (programs keep a pointer to it), and only where
kernel reads are refused; every tp_btf object opened afterwards goes through it.
"""

from __future__ import annotations

import ctypes
import struct
import threading
from typing import Dict, List, Set, Tuple

BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_RAW_TP = 23
SECTION = "tp_btf/"
REQUIRED = ("libbpf_register_prog_handler", "bpf_program__insns", "bpf_program__insn_cnt",
            "bpf_program__set_insns", "bpf_program__set_attach_target",
            "bpf_program__attach_trace")
_CALL = 0x85  # BPF_JMP | BPF_CALL
# What libbpf turns the user and kernel reads into, and what they were.
_REWRITTEN = {4, 45}  # bpf_probe_read, bpf_probe_read_str
_ORIGINAL = {112, 113, 114, 115}  # probe_read_{user,kernel}, probe_read_{user,kernel}_str
_INSN = struct.Struct("=BBhi")  # code, dst_reg:4|src_reg:4, off, imm

_SETUP_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_long)
_PREPARE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long)
_ATTACH_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_long,
                              ctypes.POINTER(ctypes.c_void_p))


class _HandlerOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("cookie", ctypes.c_long),
                ("prog_setup_fn", _SETUP_FN), ("prog_prepare_load_fn", _PREPARE_FN),
                ("prog_attach_fn", _ATTACH_FN)]


def helper_calls(code: bytes, wanted: Set[int]) -> List[Tuple[int, int]]:
    """(index, helper id) of each helper call in ``code`` whose id is in ``wanted``."""
    out = []
    for index in range(len(code) // _INSN.size):
        op, regs, _off, imm = _INSN.unpack_from(code, index * _INSN.size)
        if op == _CALL and regs == 0 and imm in wanted:
            out.append((index, imm))
    return out


def restore(code: bytes, originals: List[Tuple[int, int]]) -> Tuple[bytes, int]:
    """``code`` with each rewritten call at a remembered index given back its id."""
    out = bytearray(code)
    restored = 0
    for index, imm in originals:
        at = index * _INSN.size
        if at + _INSN.size > len(out):
            continue
        op, regs, off, now = _INSN.unpack_from(out, at)
        if op == _CALL and regs == 0 and now in _REWRITTEN and now != imm:
            _INSN.pack_into(out, at, op, regs, off, imm)
            restored += 1
    return bytes(out), restored


class TpBtfHandler:
    """The registered "tp_btf/" handler of one libbpf (see the module's docstring)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        self._originals: Dict[int, List[Tuple[int, int]]] = {}
        self._lock = threading.Lock()
        # The callbacks must live as long as libbpf may call them: as long as we do.
        self._prepare_fn = _PREPARE_FN(self._prepare)
        self._attach_fn = _ATTACH_FN(self._attach)
        self._opts = _HandlerOpts(ctypes.sizeof(_HandlerOpts), 0, _SETUP_FN(),
                                  self._prepare_fn, self._attach_fn)
        self.id = int(lib.libbpf_register_prog_handler(
            SECTION.encode(), BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP, ctypes.byref(self._opts)))

    def _code(self, prog: int) -> bytes:
        count = int(self._lib.bpf_program__insn_cnt(prog))
        ptr = self._lib.bpf_program__insns(prog)
        return ctypes.string_at(ptr, count * _INSN.size) if ptr and count else b""

    def adopt(self, prog: int, section: str) -> int:
        """After open, before load: remember ``prog``'s helper ids and give it its attach
        target (what libbpf's own handler would find from the section name)."""
        with self._lock:
            self._originals[prog] = helper_calls(self._code(prog), _ORIGINAL)
        return int(self._lib.bpf_program__set_attach_target(
            prog, 0, section[len(SECTION):].encode()))

    def forget(self, prog: int) -> None:
        with self._lock:
            self._originals.pop(prog, None)

    def _prepare(self, prog: int, _opts: int, _cookie: int) -> int:
        try:
            with self._lock:
                originals = self._originals.get(prog, [])
            code, restored = restore(self._code(prog), originals)
            if not restored:
                return 0
            buf = ctypes.create_string_buffer(code, len(code))
            return int(self._lib.bpf_program__set_insns(prog, buf, len(code) // _INSN.size))
        except Exception:  # an exception cannot cross into C: fail the load instead
            return -22

    def _attach(self, prog: int, _cookie: int, link: ctypes._Pointer[ctypes.c_void_p]) -> int:
        ctypes.set_errno(0)
        made = self._lib.bpf_program__attach_trace(prog)
        if not made:
            return -(ctypes.get_errno() or 22)
        link[0] = made
        return 0
