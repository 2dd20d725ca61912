"""Experiment: can BPF raw tracepoint programs stand in for tracefs-based
tracepoints where tracefs cannot be mounted (lockdown=confidentiality)?

Loads tiny BPF_PROG_TYPE_RAW_TRACEPOINT programs with plain bpf() syscalls
(hand-assembled, no compiler), attaches them by name with
BPF_RAW_TRACEPOINT_OPEN (no tracefs, no tracepoint id) to sys_enter and
sched_process_exec, and checks which memory-reading helpers the verifier
accepts: bpf_probe_read_user on a buffer of this process, bpf_probe_read_kernel
and the legacy bpf_probe_read on the pt_regs pointer sys_enter passes.
Prints JSON; leaves nothing behind (closing the fds detaches and frees all).

    python -m tools.vm.raw_tp_probe
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import struct
import subprocess
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from hybridtrace.capabilities.bpf_probes import ATTR_SIZE, BPF_SYSCALL, insn

CMD_MAP_CREATE, CMD_MAP_LOOKUP, CMD_PROG_LOAD, CMD_RAW_TP_OPEN = 0, 1, 5, 17
MAP_ARRAY = 2
PROG_RAW_TRACEPOINT = 17
PROG_TRACING = 26
TRACE_RAW_TP = 23  # expected_attach_type of a tp_btf program
SYS_GETPID = {"x86_64": 39, "aarch64": 172}
VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
PSEUDO_MAP_FD = 1
VALUE_SIZE = 32  # u64 hits, u64 helper return, u64 ctx args[1], u8 data[8]
MARKER = b"HTRAWTP!"
HELPERS = {"probe_read": 4, "map_lookup_elem": 1, "get_current_pid_tgid": 14,
           "probe_read_user": 112, "probe_read_kernel": 113}
EXIT = "exit"  # jump target label


def ld_imm64(dst: int, value: int, src: int = 0) -> List[bytes]:
    """The two-slot 64-bit immediate load (src PSEUDO_MAP_FD: value is a map fd)."""
    lo, hi = value & 0xFFFFFFFF, value >> 32
    return [insn(0x18, dst, src, 0, struct.unpack("<i", struct.pack("<I", lo))[0]),
            insn(0, 0, 0, 0, struct.unpack("<i", struct.pack("<I", hi))[0])]


def assemble(parts: List[Any]) -> bytes:
    """Instructions (bytes), lists of them, and (code, dst, imm, EXIT) jumps to the end."""
    slots: List[Any] = []
    for p in parts:
        slots.extend(p if isinstance(p, list) else [p])
    end = len(slots)
    out = []
    for i, s in enumerate(slots):
        if isinstance(s, tuple):
            code, dst, imm, _label = s
            out.append(insn(code, dst, 0, end - (i + 1), imm))
        else:
            out.append(s)
    return b"".join(out) + insn(0xB7, 0, 0, 0, 0) + insn(0x95)  # r0 = 0; exit


def program(map_fd: int, tgid: Optional[int], helper: Optional[int],
            source: Optional[int]) -> bytes:
    """Count hits (of ``tgid`` only, if given), keep ctx args[1], and call
    ``helper(value + 24, 8, source)`` where source None means ctx args[0]."""
    parts: List[Any] = [insn(0xBF, 6, 1)]  # r6 = ctx
    if tgid is not None:
        parts += [insn(0x85, imm=HELPERS["get_current_pid_tgid"]),
                  insn(0x77, 0, imm=32),  # r0 >>= 32
                  (0x55, 0, tgid, EXIT)]  # if r0 != tgid goto exit
    parts += [insn(0x62, 10, off=-4, imm=0),  # *(u32 *)(r10 - 4) = 0
              ld_imm64(1, map_fd, PSEUDO_MAP_FD),
              insn(0xBF, 2, 10), insn(0x07, 2, imm=-4),
              insn(0x85, imm=HELPERS["map_lookup_elem"]),
              (0x15, 0, 0, EXIT),  # if r0 == 0 goto exit
              insn(0xBF, 7, 0),  # r7 = value
              insn(0x79, 1, 7, 0), insn(0x07, 1, imm=1), insn(0x7B, 7, 1, 0),  # hits++
              insn(0x79, 1, 6, 8), insn(0x7B, 7, 1, 16)]  # value[16] = ctx args[1]
    if helper is not None:
        parts += [insn(0xBF, 1, 7), insn(0x07, 1, imm=24), insn(0xB7, 2, imm=8),
                  ld_imm64(3, source) if source is not None else insn(0x79, 3, 6, 0),
                  insn(0x85, imm=helper),
                  insn(0x7B, 7, 0, 8)]  # value[8] = helper's return
    return assemble(parts)


# Bytes after each BTF type record by kind, fixed and per vlen entry.
BTF_EXTRA = {1: (4, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 13: (0, 8),
             14: (4, 0), 15: (0, 12), 17: (4, 0), 19: (0, 12)}
BTF_STRUCT, BTF_TYPEDEF = 4, 8


def btf_lookup(blob: bytes, typedef: str, struct_name: str,
               member: str) -> Tuple[Optional[int], Optional[int]]:
    """(id of typedef ``typedef``, byte offset of ``struct_name.member``) in raw BTF."""
    magic, _ver, _flags, hdr_len, type_off, type_len, str_off, _str_len = \
        struct.unpack_from("<HBBIIIII", blob, 0)
    if magic != 0xEB9F:
        raise ValueError("not BTF")
    strings = hdr_len + str_off

    def name(off: int) -> bytes:
        return blob[strings + off:blob.index(b"\0", strings + off)]

    pos, end, type_id = hdr_len + type_off, hdr_len + type_off + type_len, 0
    found_id: Optional[int] = None
    offset: Optional[int] = None
    while pos < end:
        type_id += 1
        name_off, info, _size = struct.unpack_from("<III", blob, pos)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        fixed, each = BTF_EXTRA.get(kind, (0, 0))
        if kind == BTF_TYPEDEF and found_id is None and name(name_off) == typedef.encode():
            found_id = type_id
        if kind == BTF_STRUCT and offset is None and name(name_off) == struct_name.encode():
            for i in range(vlen):
                m_name, _m_type, m_off = struct.unpack_from("<III", blob, pos + 12 + 12 * i)
                if name(m_name) == member.encode():
                    offset = (m_off & 0xFFFFFF if info >> 31 else m_off) // 8
        pos += 12 + fixed + each * vlen
    return found_id, offset


def btf_program(map_fd: int, tgid: int, syscall_nr: int, di_off: int) -> bytes:
    """tp_btf sys_enter: for this process's ``syscall_nr``, read regs->di with a
    plain load through the BTF-typed pt_regs pointer (kernel memory, no helper),
    keep it, and bpf_probe_read_user 8 bytes at that address."""
    return assemble([
        insn(0xBF, 6, 1),
        insn(0x85, imm=HELPERS["get_current_pid_tgid"]), insn(0x77, 0, imm=32),
        (0x55, 0, tgid, EXIT),
        insn(0x79, 1, 6, 8), (0x55, 1, syscall_nr, EXIT),  # ctx[1]: the syscall id
        insn(0x62, 10, off=-4, imm=0), ld_imm64(1, map_fd, PSEUDO_MAP_FD),
        insn(0xBF, 2, 10), insn(0x07, 2, imm=-4), insn(0x85, imm=HELPERS["map_lookup_elem"]),
        (0x15, 0, 0, EXIT), insn(0xBF, 7, 0),
        insn(0x79, 1, 7, 0), insn(0x07, 1, imm=1), insn(0x7B, 7, 1, 0),  # hits++
        insn(0x79, 1, 6, 0),  # r1 = ctx[0], struct pt_regs * (BTF)
        insn(0x79, 3, 1, di_off),  # r3 = regs->di
        insn(0x7B, 7, 3, 16),
        insn(0xBF, 1, 7), insn(0x07, 1, imm=24), insn(0xB7, 2, imm=8),
        insn(0x85, imm=HELPERS["probe_read_user"]), insn(0x7B, 7, 0, 8),
    ])


class Bpf:
    """bpf(2) through ctypes: each call returns (fd or 0, errno or 0)."""

    def __init__(self) -> None:
        self.nr = BPF_SYSCALL[os.uname().machine]
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long

    def call(self, cmd: int, attr: ctypes.Array) -> Tuple[int, int]:  # type: ignore[type-arg]
        ret = int(self.libc.syscall(ctypes.c_long(self.nr), ctypes.c_long(cmd), attr,
                                    ctypes.c_uint(ATTR_SIZE)))
        return (ret, 0) if ret >= 0 else (-1, ctypes.get_errno())

    def map_create(self) -> Tuple[int, int]:
        attr = ctypes.create_string_buffer(ATTR_SIZE)
        struct.pack_into("IIII", attr, 0, MAP_ARRAY, 4, VALUE_SIZE, 1)
        return self.call(CMD_MAP_CREATE, attr)

    def lookup(self, map_fd: int) -> Optional[bytes]:
        key = ctypes.c_uint32(0)
        value = ctypes.create_string_buffer(VALUE_SIZE)
        attr = ctypes.create_string_buffer(ATTR_SIZE)
        struct.pack_into("IIQQ", attr, 0, map_fd, 0, ctypes.addressof(key),
                         ctypes.addressof(value))
        _fd, err = self.call(CMD_MAP_LOOKUP, attr)
        return value.raw if err == 0 else None

    def prog_load(self, code: bytes, btf_id: int = 0) -> Tuple[int, int, str]:
        """A raw tracepoint program, or (btf_id: the btf_trace_<tp> typedef) a
        BTF-typed one: BPF_PROG_TYPE_TRACING, expected attach BPF_TRACE_RAW_TP."""
        insns = ctypes.create_string_buffer(code, len(code))
        license_ = ctypes.create_string_buffer(b"GPL")
        log = ctypes.create_string_buffer(1 << 16)
        attr = ctypes.create_string_buffer(ATTR_SIZE)
        struct.pack_into("IIQQIIQ", attr, 0, PROG_TRACING if btf_id else PROG_RAW_TRACEPOINT,
                         len(code) // 8, ctypes.addressof(insns), ctypes.addressof(license_),
                         1, len(log), ctypes.addressof(log))
        struct.pack_into("16s", attr, 48, b"ht_rawtp")
        if btf_id:
            struct.pack_into("I", attr, 68, TRACE_RAW_TP)  # expected_attach_type
            struct.pack_into("I", attr, 108, btf_id)  # attach_btf_id
        fd, err = self.call(CMD_PROG_LOAD, attr)
        return fd, err, log.value.decode(errors="replace")

    def raw_tp_open(self, name: Optional[str], prog_fd: int) -> Tuple[int, int]:
        """Attach by name; None for a BTF-typed program (it names its tracepoint)."""
        cname = ctypes.create_string_buffer((name or "").encode())
        attr = ctypes.create_string_buffer(ATTR_SIZE)
        struct.pack_into("QI", attr, 0, ctypes.addressof(cname) if name else 0, prog_fd)
        return self.call(CMD_RAW_TP_OPEN, attr)


def _err(err: int) -> str:
    return f"{errno.errorcode.get(err, str(err))} ({os.strerror(err)})"


def _log_tail(log: str) -> str:
    lines = [line for line in log.splitlines() if line.strip()]
    picked = [line for line in lines if "unknown func" in line or "invalid" in line]
    return " | ".join((picked or lines)[-2:])[:300]


def _run(bpf: Bpf, out: Dict[str, Any], code_for: Callable[[int], bytes], btf_id: int,
         name: Optional[str], trigger: Callable[[], object]) -> Union[bytes, Dict[str, Any]]:
    """Make the result map, load ``code_for(map_fd)``, attach, trigger once.

    Returns the map's bytes, or ``out`` with the stage that failed.
    """
    map_fd, err = bpf.map_create()
    if err:
        return {**out, "stage": "map", "error": _err(err)}
    fds = [map_fd]
    try:
        prog_fd, err, log = bpf.prog_load(code_for(map_fd), btf_id)
        if err:
            return {**out, "stage": "load", "error": _err(err), "verifier": _log_tail(log)}
        fds.append(prog_fd)
        link_fd, err = bpf.raw_tp_open(name, prog_fd)
        if err:
            return {**out, "stage": "attach", "error": _err(err)}
        fds.append(link_fd)
        trigger()
        raw = bpf.lookup(map_fd)
        if raw is None:
            return {**out, "stage": "read", "error": "map lookup failed"}
        return raw
    finally:
        for fd in reversed(fds):
            os.close(fd)


def trial(bpf: Bpf, tracepoint: str, helper: Optional[str], user_source: bool) -> Dict[str, Any]:
    """Load, attach, trigger and read back one program."""
    out: Dict[str, Any] = {"tracepoint": tracepoint, "helper": helper}
    buf = ctypes.create_string_buffer(MARKER, len(MARKER))
    tgid = os.getpid() if tracepoint == "sys_enter" else None
    source = ctypes.addressof(buf) if user_source else None

    def trigger() -> object:
        if tracepoint == "sched_process_exec":
            return subprocess.run(["/bin/true"], check=False)
        return os.getppid()

    raw = _run(bpf, out, lambda map_fd: program(map_fd, tgid, HELPERS[helper] if helper
                                                else None, source), 0, tracepoint, trigger)
    if isinstance(raw, dict):
        return raw
    hits, ret, arg1 = struct.unpack_from("<QqQ", raw, 0)
    out.update(stage="ran", hits=hits, ctx_arg1=arg1)
    if helper:
        out.update(helper_ret=ret, data_matches=raw[24:32] == MARKER
                   if user_source else None, data_nonzero=raw[24:32] != bytes(8))
    return out


def btf_trial(bpf: Bpf) -> Dict[str, Any]:
    """The BTF-typed variant: can a program read syscall arguments from pt_regs
    without bpf_probe_read_kernel, and then user memory they point to?"""
    out: Dict[str, Any] = {"tracepoint": "sys_enter", "helper": "probe_read_user",
                           "btf": True}
    try:
        with open(VMLINUX_BTF, "rb") as f:
            btf_id, di_off = btf_lookup(f.read(), "btf_trace_sys_enter", "pt_regs", "di")
    except (OSError, ValueError) as exc:
        return {**out, "stage": "btf", "error": str(exc)}
    nr = SYS_GETPID.get(os.uname().machine)
    if btf_id is None or di_off is None or nr is None:
        return {**out, "stage": "btf", "error": "btf_trace_sys_enter or pt_regs.di not found"}
    buf = ctypes.create_string_buffer(MARKER, len(MARKER))
    pid = os.getpid()
    # getpid ignores its arguments, but they are in pt_regs all the same.
    raw = _run(bpf, out, lambda map_fd: btf_program(map_fd, pid, nr, di_off), btf_id, None,
               lambda: bpf.libc.syscall(ctypes.c_long(nr),
                                        ctypes.c_void_p(ctypes.addressof(buf))))
    if isinstance(raw, dict):
        return raw
    hits, ret, di = struct.unpack_from("<QqQ", raw, 0)
    return {**out, "stage": "ran", "hits": hits, "helper_ret": ret,
            "regs_di_matches": di == ctypes.addressof(buf),
            "data_matches": raw[24:32] == MARKER}


def facts() -> Dict[str, Any]:
    from tools.vm.guest_run import read

    return {"release": os.uname().release, "euid": os.geteuid(),
            "lockdown": read("/sys/kernel/security/lockdown"),
            "tracefs_events": os.path.isdir("/sys/kernel/tracing/events")
            or os.path.isdir("/sys/kernel/debug/tracing/events")}


TRIALS = [("sys_enter", "probe_read_user", True), ("sys_enter", "probe_read_kernel", False),
          ("sys_enter", "probe_read", False), ("sched_process_exec", None, False)]


def summarise(data: Dict[str, Any]) -> List[str]:
    """One evidence line per trial, for the report."""
    lines = []
    for t in data.get("trials", []):
        what = (f"tp_btf {t['tracepoint']} + plain load of pt_regs->di" if t.get("btf")
                else f"raw_tp {t['tracepoint']}") + (f" + bpf_{t['helper']}" if t.get("helper")
                                                     else "")
        if t.get("stage") != "ran":
            why = f": {t['verifier']}" if t.get("verifier") else ""
            lines.append(f"{what}: {t.get('stage')} failed, {t.get('error')}{why}")
            continue
        how = "attached by its BTF id" if t.get("btf") else "attached by name"
        line = f"{what}: loaded, {how}, {t['hits']} hit(s)"
        if t.get("helper"):
            line += f", helper returned {t['helper_ret']}"
            if t.get("regs_di_matches") is not None:
                line += (", pt_regs->di is the argument passed" if t["regs_di_matches"]
                         else ", pt_regs->di NOT the argument passed")
            if t.get("data_matches") is not None:
                line += ", read the marker" if t["data_matches"] else ", marker NOT read"
        lines.append(line)
    return lines


def conclusion(data: Dict[str, Any]) -> str:
    """What the trials say about raw tracepoints as a tracefs-free ebpf tier."""
    trials = data.get("trials", [])
    by = {(t["tracepoint"], t.get("helper")): t for t in trials if not t.get("btf")}
    btf = next((t for t in trials if t.get("btf")), None)
    ran = {k for k, t in by.items() if t.get("stage") == "ran"}
    user = by.get(("sys_enter", "probe_read_user"), {})
    user_ok = ("sys_enter", "probe_read_user") in ran and bool(user.get("data_matches"))
    attach_ok = ("sched_process_exec", None) in ran and ("sys_enter", "probe_read_user") in ran
    kernel_refused = all(by.get(("sys_enter", h), {}).get("stage") == "load"
                         for h in ("probe_read_kernel", "probe_read"))
    kernel_ok = all(k in ran for k in (("sys_enter", "probe_read_kernel"),
                                       ("sys_enter", "probe_read")))
    if not attach_ok:
        return "raw tracepoints could not be loaded and attached here (see the lines above)."
    text = ("raw tracepoint programs load and attach by name (BPF_RAW_TRACEPOINT_OPEN) "
            "without tracefs; bpf_probe_read_user "
            + ("reads user memory" if user_ok else "did NOT read user memory"))
    if kernel_refused:
        text += ("; bpf_probe_read_kernel and bpf_probe_read are refused by the verifier, so "
                 "a plain raw_tp program cannot reach sys_enter's arguments (behind its "
                 "pt_regs pointer, kernel memory) nor sched_process_exec's task/bprm fields: "
                 "it has the syscall number, helpers such as pid/comm, and user memory at an "
                 "address it already knows.")
    elif kernel_ok:
        text += "; bpf_probe_read_kernel and bpf_probe_read work too."
    else:
        text += "; kernel reads: mixed results (see the lines above)."
    if btf is not None:
        if btf.get("stage") == "ran" and btf.get("regs_di_matches") and btf.get("data_matches"):
            text += (" But a BTF-typed program (tp_btf sys_enter) reads the syscall's arguments "
                     "from pt_regs with plain loads and then the user memory they point to, "
                     "with no tracefs and no bpf_probe_read_kernel.")
        else:
            text += (" A BTF-typed program (tp_btf sys_enter) reading pt_regs did not work: "
                     f"{btf.get('stage')} {btf.get('error') or 'gave wrong data'}.")
    return text


def main() -> int:
    try:
        bpf = Bpf()
    except (KeyError, OSError) as exc:
        print(f"raw_tp_probe: cannot call bpf(): {exc}", file=sys.stderr)
        return 2
    data = {"facts": facts(),
            "trials": [*(trial(bpf, tp, helper, user) for tp, helper, user in TRIALS),
                       btf_trial(bpf)]}
    json.dump(data, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
