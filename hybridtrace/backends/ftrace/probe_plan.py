"""Which probes an ftrace tier puts where, on this kernel (probes.py writes them)."""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

from hybridtrace import vocabulary
from hybridtrace.backends.base import BackendError
from hybridtrace.backends.ftrace import probes
from hybridtrace.backends.ftrace.debuginfo import dynamic_loaders
from hybridtrace.backends.ftrace.format import FormatError, read_format
from hybridtrace.backends.ftrace.requirements import EPROBE_STRING_FAULT
from hybridtrace.capabilities.eprobe_selftest import eprobe_reads_strings
from hybridtrace.capabilities.model import Capabilities
from hybridtrace.request import Kind, TraceRequest


def _readme(tracefs_path: str) -> str:
    """tracefs's README: which fetch syntax this kernel's probes accept."""
    try:
        with open(os.path.join(tracefs_path, "README"), encoding="ascii",
                  errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def _user_deref(readme: str, uprobe: bool) -> probes.Deref:
    """``+u``/``ustring`` when this kernel's README lists them (5.3+)."""
    has_u = "[u]<offset>" in readme
    string = "ustring" if "ustring" in readme else "string"
    return probes.Deref("+" if uprobe or not has_u else "+u", string)


def probe_defs(tier: str, request: TraceRequest, caps: Capabilities, group: str,
               path: str, present: Sequence[str]) -> List[probes.ProbeDef]:
    """The tier's probes; for opens on the kprobe and eprobe tiers, the io_uring path
    probes too where the kernel's BTF locates the path (uring_path_defs)."""
    symbols = probes.kernel_symbols() if tier == "kprobe" else {}
    defs = _syscall_defs(tier, request, caps, group, path, present, symbols)
    if request.kind is Kind.OPEN:
        defs += uring_path_defs(tier, caps, group, path, symbols)
    return defs


def uring_path_defs(tier: str, caps: Capabilities, group: str, path: str,
                    symbols: Dict[str, bool]) -> List[probes.ProbeDef]:
    """The path probe (uring_path_def) first, then those that read the caller's path
    of a request refused while being prepared: the kprobe tier's on the preparation,
    the eprobe tier's on the failure tracepoint (standing in for its records)."""
    main = uring_path_def(tier, caps, group, path, symbols)
    if main is None:
        return []
    if tier == "kprobe":
        deref = _user_deref(_readme(path), False)
        return [main, *probes.uring_prep_kprobe_defs(
            group, caps.kernel.arch or os.uname().machine, caps.io_uring.layout or {},
            symbols, deref)]
    try:
        fmt = read_format(os.path.join(path, "events"), vocabulary.IO_URING_GROUP,
                          vocabulary.IO_URING_FAILED)
    except FormatError:
        return [main]
    wanted = [name for name, _ in probes.FAILED_FIELDS] + [probes.FAILED_PATH_FIELD]
    if not all(fmt.field(name) for name in wanted):
        return [main]
    return [main, probes.uring_failed_eprobe_def(group)]


def uring_path_def(tier: str, caps: Capabilities, group: str, path: str,
                   symbols: Dict[str, bool]) -> Optional[probes.ProbeDef]:
    """The probe that reads io_uring opens' paths on this tier, or None: the kprobe
    tier's on the open handler, the eprobe tier's on the submit tracepoint (by the
    name this kernel gives it, when its records carry the request), which then stands
    in for the tracepoint's records (the stream leaves those off)."""
    layout = caps.io_uring.layout
    if layout is None:
        return None
    if tier == "kprobe":
        return probes.uring_kprobe_def(group, caps.kernel.arch or os.uname().machine,
                                       layout, symbols)
    if tier != "eprobe":
        return None
    for event in (vocabulary.IO_URING_SUBMIT, vocabulary.IO_URING_SUBMIT_OLD):
        try:
            fmt = read_format(os.path.join(path, "events"), vocabulary.IO_URING_GROUP, event)
        except FormatError:
            continue
        if all(fmt.field(name) for name, _ in probes.SUBMIT_FIELDS):
            return probes.uring_eprobe_def(group, event, layout)
    return None


def _syscall_defs(tier: str, request: TraceRequest, caps: Capabilities, group: str,
                  path: str, present: Sequence[str],
                  symbols: Dict[str, bool]) -> List[probes.ProbeDef]:
    kind = request.kind.value
    arch = caps.kernel.arch or os.uname().machine
    if tier == "uprobe":
        libs = [os.path.realpath(lib.path) for lib in caps.c_libraries]
        if not libs:
            raise BackendError("uprobe tier: no C library found to probe")
        if request.kind is Kind.OPEN:
            libs += [ld for ld in dynamic_loaders(libs) if ld not in libs]
        readme = _readme(path)
        # Constant fields (\imm, 5.7+): then one uprobe event holds every argv slot.
        return probes.uprobe_defs(group, libs, arch, kind, request.max_args,
                                  _user_deref(readme, True), indexed="\\imm-value" in readme)
    if tier == "kprobe":
        return probes.kprobe_defs(group, arch, kind, request.max_args,
                                  _user_deref(_readme(path), False), symbols)
    if tier == "eprobe":
        fields: Dict[str, str] = {}
        for name in vocabulary.OPEN_SYSCALLS:
            try:
                fmt = read_format(os.path.join(path, "events"), "syscalls", f"sys_enter_{name}")
            except FormatError:
                continue
            fields[name] = "pathname" if fmt.field("pathname") else "filename"
        return probes.eprobe_defs(group, kind, request.max_args, fields, present)
    if tier == "tracepoint":
        return []
    raise BackendError(f"unknown ftrace tier {tier!r}")


def check_eprobe_strings(caps: Capabilities, path: str) -> None:
    """Refuse the eprobe tier where eprobes read no paths (see eprobe_selftest)."""
    strings = caps.tracefs.eprobe_strings
    if strings is None:
        strings = eprobe_reads_strings(path)
    if strings is False:
        raise BackendError(EPROBE_STRING_FAULT)
