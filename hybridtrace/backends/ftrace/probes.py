"""Dynamic probe events (uprobe, kprobe, eprobe) that read the strings.

Every probe event carries at most one string, as its last field, so a
hostile string (quotes, `` name=``, newlines) can only extend its own value
in trace_pipe text. Each record also carries ``k``, the pointer the matching
syscall entry shows (argv for exec, the path for open), so the correlator
pairs a probe record with its syscall exactly rather than by guesswork, and
``p``, the pointer the string was read from (0 marks the end of argv).

Definitions are appended to the control file (O_APPEND: opening it for
writing without it would delete every probe on the system) and removed with
``-:GROUP/EVENT`` after their events are disabled (a busy probe can't go).

uprobes on different call sites that play the same role share one event
(kernels from 5.5 take several probes under one name when the fields agree).
Disabling an uprobe event waits for RCU grace periods once per event (6.12+:
uprobe_unregister_sync, ~40 ms), so one event per role instead of one per
role and call site is what keeps closing a session from taking seconds.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

import attrs

from hybridtrace import tracefs, vocabulary
from hybridtrace.backends.base import BackendError
from hybridtrace.backends.ftrace.debuginfo import internal_functions
from hybridtrace.backends.ftrace.instance import write_file
from hybridtrace.backends.ftrace.uring import FAILED_PROBE, PATH_PROBE, PREP_PROBES, SUBMIT_PROBE
from hybridtrace.btf_offsets import (
    LAYOUT_DFD,
    LAYOUT_FILENAME,
    LAYOUT_HANDLER,
    LAYOUT_NAME,
    LAYOUT_PREP,
)
from hybridtrace.capabilities.kernel import parse_version
from hybridtrace.elf import ElfError, find_symbols
from hybridtrace.vocabulary import EXEC_SYSCALLS, SYSCALL_ARGS, syscalls_for

# Syscall argument registers for uprobes (function entry) and direct kprobes.
ARG_REGS: Dict[str, Tuple[str, ...]] = {
    "x86_64": ("%di", "%si", "%dx", "%cx", "%r8", "%r9"),
    "aarch64": ("%x0", "%x1", "%x2", "%x3", "%x4", "%x5"),
}
# Since 4.17 (x86_64) / 4.19 (arm64) syscalls are entered through a wrapper
# that takes a struct pt_regs *; the arguments sit at these offsets in it
# (x86_64: di, si, dx, r10, r8, r9; arm64: regs[0..5]).
PT_REGS_ARG_OFFSETS: Dict[str, Tuple[int, ...]] = {
    "x86_64": (112, 104, 96, 56, 72, 64),
    "aarch64": (0, 8, 16, 24, 32, 40),
}
WRAPPER_PREFIX = {"x86_64": "__x64_sys_", "aarch64": "__arm64_sys_"}


# C library functions -> (path argument index or None, argv index or None).
# glibc routes execv/execvp/posix_spawn through execve, fopen through open64;
# aliases (open/open64/__open) share one address and are probed once.
LIBC_EXEC = {"execve": (0, 1), "execveat": (1, 2), "fexecve": (None, 1)}
LIBC_OPEN = {
    "open64": (0, None), "open": (0, None), "__open64_nocancel": (0, None),
    "__open_nocancel": (0, None), "openat64": (1, None), "openat": (1, None),
    "creat64": (0, None), "creat": (0, None),
}
# Hidden functions (the loader's library opens, opendir), found only through
# separately installed debug symbols (see debuginfo.py).
INTERNAL_OPEN = {"__open64_nocancel": (0, None), "__openat64_nocancel": (1, None)}

# First kernel whose uprobe events take more than one probe (same name, same fields).
SHARED_EVENTS_KERNEL = (5, 5, 0)

FN = "fn"  # the exec'd file name
ARG = "arg"  # argv[index]
MORE = "more"  # argv[max_args]: non-zero means argv was cut
PATH = "path"  # an open's path
INDEX = "i"  # field of indexed argv slot records: the slot's index
URING = "uring"  # io_uring's probes (uring.py reads them): a request's path, a submission


@attrs.frozen(slots=True)
class Role:
    """What one probe event's records mean to the correlator."""

    what: str  # FN, ARG, MORE, PATH or URING
    index: int = 0


@attrs.frozen(slots=True)
class ProbeDef:
    """One dynamic event: ``file`` is the control file it is written to."""

    file: str  # "uprobe_events", "kprobe_events" or "dynamic_events"
    group: str
    name: str
    line: str
    role: Role


@attrs.frozen(slots=True)
class Deref:
    """How to read memory on this tier: ``+u`` and ``ustring`` exist from 5.3."""

    user: str  # "+u" or "+" for a pointer read from user memory
    string: str  # "ustring" or "string"


def _ptr(base: str, offset: int, deref: Deref) -> str:
    return f"{deref.user}{offset}({base})"


def _slot_args(argv: str, index: int, deref: Deref, with_string: bool,
               indexed: bool = False) -> str:
    slot = _ptr(argv, 8 * index, deref)
    text = f"k={argv}:x64" + (f" {INDEX}=\\{index}:u16" if indexed else "") + f" p={slot}:x64"
    return text + (f" s=+0({slot}):{deref.string}" if with_string else "")


def fetch_sets(path: Optional[str], argv: Optional[str], max_args: int,
               deref: Deref, indexed: bool = False) -> List[Tuple[str, Role]]:
    """(fetchargs, role) for each event one call site needs.

    ``indexed``: argv slot records carry their index in an immediate field
    ``i`` (kernels whose README lists ``\\imm-value``, 5.7+), so that every
    slot can share one event.
    """
    out: List[Tuple[str, Role]] = []
    if argv is None:
        assert path is not None
        return [(f"k={path}:x64 s=+0({path}):{deref.string}", Role(PATH))]
    if path is not None:
        out.append((f"k={argv}:x64 p={path}:x64 s=+0({path}):{deref.string}", Role(FN)))
    for i in range(max_args):
        out.append((_slot_args(argv, i, deref, True, indexed), Role(ARG, i)))
    out.append((_slot_args(argv, max_args, deref, False), Role(MORE, max_args)))
    return out


def _event_name(prefix: str, role: Role, indexed: bool = False) -> str:
    if role.what == ARG:
        return f"{prefix}_argv" if indexed else f"{prefix}_a{role.index}"
    if role.what == PATH:
        return prefix
    return f"{prefix}_{role.what}"


def shared_events(release: Optional[str] = None) -> bool:
    """Can call sites share an uprobe event on this kernel (default: the running one)?"""
    return parse_version(release or os.uname().release) >= SHARED_EVENTS_KERNEL


def uprobe_defs(group: str, libraries: Sequence[str], arch: str, kind: str, max_args: int,
                deref: Deref, shared: Optional[bool] = None,
                indexed: bool = False) -> List[ProbeDef]:
    """uprobes on each library's exec or open entry points, one per address.

    With ``shared`` (default: when the running kernel allows it) every call
    site's probe of one role joins that role's event (``ht_exec_a0`` ...): fewer
    events, each disabled with one wait (see the module docstring). Records
    still name their call site by address; the ``k`` pointer pairs them.
    ``indexed`` puts every argv slot in one event (``ht_exec_argv``), its
    records' ``i`` field giving the slot (see fetch_sets): the role of those
    events then says ARG, and its index is to be read from ``i``.
    """
    if shared is None:
        shared = shared_events()
    regs = ARG_REGS.get(arch)
    if regs is None:
        raise BackendError(f"uprobe tier: no register map for {arch}")
    table = dict(LIBC_EXEC) if kind == "exec" else dict(LIBC_OPEN, **INTERNAL_OPEN)
    order = list(table)
    defs: List[ProbeDef] = []
    for lib_index, lib in enumerate(libraries):
        try:
            offsets = find_symbols(lib, table)
        except (OSError, ElfError) as exc:
            raise BackendError(f"uprobe tier: cannot read symbols of {lib}: {exc}") from None
        if kind != "exec":
            for func, offset in internal_functions(lib, INTERNAL_OPEN).items():
                offsets.setdefault(func, offset)
        seen: Dict[int, str] = {}
        for func, offset in sorted(offsets.items(), key=lambda kv: order.index(kv[0])):
            if offset in seen:
                continue
            seen[offset] = func
            path_i, argv_i = table[func]
            path = None if path_i is None else regs[path_i]
            argv = None if argv_i is None else regs[argv_i]
            prefix = f"ht_{kind}" if shared else f"ht{lib_index}_{func.strip('_')}"
            for args, role in fetch_sets(path, argv, max_args, deref, indexed):
                name = _event_name(prefix, role, indexed)
                line = f"p:{group}/{name} {lib}:{offset:#x} {args}"
                defs.append(ProbeDef("uprobe_events", group, name, line, role))
    if not defs:
        raise BackendError("uprobe tier: no exec/open entry points found in "
                           + ", ".join(libraries))
    return defs


def kernel_symbols(path: str = "/proc/kallsyms") -> Dict[str, bool]:
    """Names of kernel text symbols (to find the syscall entry functions)."""
    out: Dict[str, bool] = {}
    try:
        with open(path, "rb") as handle:
            for line in handle:
                parts = line.split()
                if len(parts) >= 3 and parts[1] in (b"T", b"t"):
                    out[parts[2].decode("ascii", "replace")] = True
    except OSError:
        pass
    return out


def kprobe_defs(group: str, arch: str, kind: str, max_args: int, deref: Deref,
                symbols: Dict[str, bool]) -> List[ProbeDef]:
    """kprobes on the syscall entry functions, reading the caller's memory.

    With the syscall wrapper (x86_64 4.17+, arm64 4.19+) the only argument is
    a pt_regs pointer; older kernels pass the arguments in registers.
    """
    regs = ARG_REGS.get(arch)
    offsets = PT_REGS_ARG_OFFSETS.get(arch)
    if regs is None or offsets is None:
        raise BackendError(f"kprobe tier: no register map for {arch}")
    defs: List[ProbeDef] = []
    for syscall in syscalls_for(kind):
        wrapped = WRAPPER_PREFIX[arch] + syscall
        if wrapped in symbols:
            target = wrapped
            args = [f"+{off}({regs[0]})" for off in offsets]
        else:
            target = next((s for s in (f"SyS_{syscall}", f"sys_{syscall}") if s in symbols), "")
            args = list(regs)
            if not target:
                continue
        path_i, argv_i = SYSCALL_ARGS[syscall]
        path = None if path_i is None else args[path_i]
        argv = None if argv_i is None else args[argv_i]
        for fetch, role in fetch_sets(path, argv, max_args, deref):
            name = _event_name(f"ht_{syscall}", role)
            defs.append(ProbeDef("kprobe_events", group, name,
                                 f"p:{group}/{name} {target} {fetch}", role))
    if not defs:
        raise BackendError("kprobe tier: no syscall entry functions found in /proc/kallsyms")
    return defs


def eprobe_defs(group: str, kind: str, max_args: int, field_names: Dict[str, str],
                available: Sequence[str]) -> List[ProbeDef]:
    """eprobes on syscalls/sys_enter_*, dereferencing the pointer fields.

    ``field_names`` maps a syscall to its path field (``filename``, or
    ``pathname`` for creat) as its format file names it.
    """
    deref = Deref("+u", "ustring")  # eprobes (5.15+) always have both
    defs: List[ProbeDef] = []
    for syscall in syscalls_for(kind):
        if f"sys_enter_{syscall}" not in available:
            continue
        path = f"${field_names.get(syscall, 'filename')}"
        argv = "$argv" if syscall in EXEC_SYSCALLS else None
        for fetch, role in fetch_sets(path, argv, max_args, deref):
            name = _event_name(f"ht_{syscall}", role)
            line = f"e:{group}/{name} syscalls.sys_enter_{syscall} {fetch}"
            defs.append(ProbeDef("dynamic_events", group, name, line, role))
    if not defs:
        raise BackendError("eprobe tier: no syscall entry events to attach to")
    return defs


def _uring_path_fetch(req: str, layout: Dict[str, int]) -> str:
    """The request's dfd and the kernel's copy of its path: the request holds a
    struct filename pointer, whose ``name`` points at the string."""
    return (f"d=+{layout[LAYOUT_DFD]}({req}):s32"
            f" s=+0(+{layout[LAYOUT_NAME]}(+{layout[LAYOUT_FILENAME]}({req}))):string")


# The submit tracepoint's fields an eprobe copies (uring.py reads them as the
# tracepoint's own record), with this type each (5.10 to 6.12 name them alike).
SUBMIT_FIELDS = (("ctx", "x64"), ("req", "x64"), ("user_data", "u64"), ("opcode", "u8"),
                 ("flags", "u64"), ("sq_thread", "u8"))


def uring_kprobe_def(group: str, arch: str, layout: Dict[str, int],
                     symbols: Dict[str, bool]) -> Optional[ProbeDef]:
    """A kprobe on io_uring's open handler, whose first argument is the request (run
    inline by the submitter, or by an io-wq worker); None where the kernel has no
    such function to probe (inlined)."""
    handler = vocabulary.IO_URING_OPEN_HANDLER
    regs = ARG_REGS.get(arch)
    if regs is None or not layout.get(LAYOUT_HANDLER) or handler not in symbols:
        return None
    req = regs[0]
    line = (f"p:{group}/{PATH_PROBE} {handler} r={req}:x64"
            f" {_uring_path_fetch(req, layout)}")
    return ProbeDef("kprobe_events", group, PATH_PROBE, line, Role(URING))


def uring_eprobe_def(group: str, submit_event: str, layout: Dict[str, int]) -> ProbeDef:
    """An eprobe on io_uring's submit tracepoint that stands in for its records: the
    tracepoint's fields, then the request's dfd and path, read as the request enters
    io_uring prepared (its path already copied). The instance filters it on its own
    fields (open requests only) like the tracepoint."""
    fields = " ".join(f"{name}=${name}:{kind}" for name, kind in SUBMIT_FIELDS)
    line = (f"e:{group}/{SUBMIT_PROBE} {vocabulary.IO_URING_GROUP}.{submit_event}"
            f" {fields} {_uring_path_fetch('$req', layout)}")
    return ProbeDef("dynamic_events", group, SUBMIT_PROBE, line, Role(URING))


SQE_ADDR = 16  # struct io_uring_sqe (uapi): the path pointer of an open request
# The failure tracepoint's fields an eprobe copies (uring.py reads them as the
# tracepoint's own record; 5.15 to 6.12 name them alike), and the SQE's path pointer.
FAILED_FIELDS = (("ctx", "x64"), ("req", "x64"), ("user_data", "u64"), ("opcode", "u8"),
                 ("op_flags", "u32"), ("len", "u32"), ("error", "s32"))
FAILED_PATH_FIELD = "addr"


def uring_prep_kprobe_defs(group: str, arch: str, layout: Dict[str, int],
                           symbols: Dict[str, bool], deref: Deref) -> List[ProbeDef]:
    """kprobes on the open opcodes' preparation (request, SQE), reading the request's
    address and the caller's path as the submitting task prepares it; none where
    either function is not one kprobes reach, or user memory has no string type."""
    regs = ARG_REGS.get(arch)
    if regs is None or not layout.get(LAYOUT_PREP) or deref.string != "ustring" or \
            not all(fn in symbols for fn in vocabulary.IO_URING_OPEN_PREPS):
        return []
    return [ProbeDef("kprobe_events", group, name,
                     f"p:{group}/{name} {fn} r={regs[0]}:x64"
                     f" s=+0(+{SQE_ADDR}({regs[1]})):ustring", Role(URING))
            for name, fn in zip(PREP_PROBES, vocabulary.IO_URING_OPEN_PREPS)]


def uring_failed_eprobe_def(group: str) -> ProbeDef:
    """An eprobe on io_uring's failure tracepoint that stands in for its records: its
    fields, then the caller's path at the SQE's path pointer, read by the task that
    submitted the request as it refuses it (like the eprobes at syscall entry)."""
    fields = " ".join(f"{name}=${name}:{kind}" for name, kind in FAILED_FIELDS)
    line = (f"e:{group}/{FAILED_PROBE} {vocabulary.IO_URING_GROUP}.{vocabulary.IO_URING_FAILED}"
            f" {fields} s=+0(${FAILED_PATH_FIELD}):ustring")
    return ProbeDef("dynamic_events", group, FAILED_PROBE, line, Role(URING))


def add(tracefs_path: str, defs: Sequence[ProbeDef], made: List[ProbeDef]) -> None:
    """Create each probe, appending it to ``made`` as soon as it exists.

    On failure the ones made are removed again and BackendError is raised.
    """
    for pdef in defs:
        try:
            write_file(os.path.join(tracefs_path, pdef.file), pdef.line + "\n", append=True)
        except OSError as exc:
            remove(tracefs_path, made)
            del made[:]
            raise BackendError(f"kernel rejected probe {pdef.line!r}: {exc.strerror}") from None
        made.append(pdef)


def remove_one(tracefs_path: str, file: str, group: str, name: str) -> bool:
    """Delete one dynamic event; True if it is gone."""
    return tracefs.remove_probe(tracefs_path, file, group, name)


def remove(tracefs_path: str, defs: Sequence[ProbeDef]) -> List[str]:
    """Remove probes (their events must be disabled everywhere); returns failures."""
    failed: List[str] = []
    for pdef in reversed(defs):
        if not remove_one(tracefs_path, pdef.file, pdef.group, pdef.name):
            failed.append(f"{pdef.group}/{pdef.name}")
    return failed
