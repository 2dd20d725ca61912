"""Build the doctor report from Capabilities: checks, decisions and remedies.

Rendering (text, JSON) lives in sibling modules so both show the same facts.
"""

from __future__ import annotations

import errno
from typing import Any, Dict, List, Optional, Tuple

import attrs

from hybridtrace import compiled, vocabulary
from hybridtrace.backends.ftrace import correlate, raw_records
from hybridtrace.capabilities.model import (
    CAP_BPF,
    CAP_PERFMON,
    CAP_SYS_ADMIN,
    Capabilities,
)
from hybridtrace.doctor import container
from hybridtrace.output import jsonl
from hybridtrace.selector import KINDS, Decision, decide
from hybridtrace.vocabulary import FTRACE_TIER_STRINGS, TRACEPOINTS

# kernel/bpf/syscall.c: what unprivileged_bpf_disabled means.
_UBD_MEANING: Dict[Optional[int], str] = {
    0: " (anyone may use bpf())",
    1: " (privileged only, fixed until reboot)",
    2: " (privileged only; root may re-enable)",
}
_CAP_NAMES = {CAP_SYS_ADMIN: "CAP_SYS_ADMIN", CAP_BPF: "CAP_BPF", CAP_PERFMON: "CAP_PERFMON"}


# What an unchecked item (by its "what:" prefix) means for tracing.
_UNCHECKED_MEANING = {
    "bpf": "eBPF is tried when a session starts; if refused, the next backend is used",
    "ringbuf": "only matters once bpf() is allowed; the engine finds out when it starts",
    "kernel reads": "only matters once bpf() is allowed; lockdown=confidentiality would refuse"
                    " them",
    "lockdown": "a confidentiality lockdown would show as refused BPF kernel reads (checked"
                " above when bpf() is allowed) and as tracefs errors",
    "tracefs": "the ftrace tiers are judged from the kernel config until tracefs can be read",
    "euid": "privileges are judged from CapEff alone",
    "libbpf": "ebpf-core cannot be judged; it is tried when a session starts",
    "bcc": "ebpf-bcc cannot be judged; it is tried when a session starts",
    "kernel config": "missing features are judged from tracefs alone",
    "c libraries": "the uprobe tier has nothing to probe",
    "io_uring tracepoints": "doctor cannot say whether ebpf-core sees io_uring opens; a session"
                            " says so in its description when it starts",
}


def unchecked_meaning(note: str) -> Optional[str]:
    """What a 'could not check' item means, for people."""
    if "no lockdown LSM" in note:  # a fact more than a gap: nothing is locked down
        return None
    return _UNCHECKED_MEANING.get(note.split(":", 1)[0])


@attrs.frozen(slots=True)
class Check:
    id: str  # stable machine name
    title: str
    value: str  # for people
    ok: Optional[bool]  # None: informational, or could not be checked
    why: str  # why it matters
    data: Dict[str, Any] = attrs.field(factory=dict)  # for machines
    fixes: Tuple[str, ...] = ()  # for people: what to change (data has them for machines)


@attrs.frozen(slots=True)
class Report:
    caps: Capabilities
    checks: List[Check]
    decisions: Dict[str, Decision]

    @property
    def exit_status(self) -> int:
        """0 when exec and open tracing both have a usable backend, 1 otherwise."""
        return 0 if all(d.chosen is not None for d in self.decisions.values()) else 1


def _yes_no(value: Optional[bool], yes: str = "yes", no: str = "no") -> str:
    return "unknown" if value is None else (yes if value else no)


def _errno_name(err: Optional[int]) -> str:
    if err is None:
        return "not checked"
    return "ok" if err == 0 else errno.errorcode.get(err, str(err))


def _probe_kind_check(cid: str, title: str, present: Optional[bool],
                      configured: Optional[bool], option: str, why: str) -> Check:
    """tracefs is the authority; until it can be read, the kernel config answers."""
    if present is not None:
        value, source = _yes_no(present), "tracefs"
    elif configured is not None:
        present, source = configured, "config"
        setting = "=y" if configured else " not set"
        value = f"{_yes_no(configured)} ({option}{setting}, from the kernel config)"
    else:
        value, source = "unknown", None
    return Check(cid, title, value, present, why, {"present": present, "from": source})


def _eprobe_strings_check(eprobes: Optional[bool], reads: Optional[bool]) -> Check:
    """Listing eprobes is not enough: Debian's 6.12 lists them but they read no paths."""
    if not eprobes:
        value = "not tried (no eprobes)"
    elif reads is None:
        value = "unknown (the test eprobe could not run)"
    else:
        value = _yes_no(reads, "yes", "no (the test eprobe read a fault)")
    return Check("eprobe_strings", "eprobe strings", value, reads,
                 "ftrace/eprobe needs it for paths: a test eprobe on sys_enter_openat"
                 " watched us open a marker path", {"reads_strings": reads})


def _syscalls_check(arch: str) -> Check:
    """Which syscalls are traced here: the architecture decides (aarch64 has no open
    or creat), so a user comparing two machines knows what each one covers."""
    here = vocabulary.syscalls_on(arch)
    traced = {kind: [s for s in vocabulary.syscalls_for(kind) if s in here] for kind in KINDS}
    absent = [s for s in vocabulary.EXEC_SYSCALLS + vocabulary.OPEN_SYSCALLS if s not in here]
    why = f"every exec and open syscall {arch} has"
    if absent:
        why += f" ({arch} has no {' or '.join(absent)}: its C library uses openat)"
    return Check("syscalls", "syscalls traced",
                 "; ".join(f"{kind}: {', '.join(names)}" for kind, names in traced.items()),
                 None, why, {"traced": traced, "absent_on_arch": absent})


# kernel.io_uring_disabled (6.6+), io_uring/io_uring.c
_IO_URING_DISABLED = {0: "enabled for every process", 1: "enabled for root and io_uring_group only",
                      2: "disabled for every process"}


def _io_uring_check(caps: Capabilities) -> Check:
    """Whether processes here can open files through io_uring, with no open syscall."""
    uring = caps.io_uring
    configured = caps.config.enabled("CONFIG_IO_URING")
    if configured is False:
        value = "not in this kernel (CONFIG_IO_URING off)"
    elif uring.disabled is not None:
        value = (f"{_IO_URING_DISABLED.get(uring.disabled, 'unknown setting')}"
                 f" (kernel.io_uring_disabled={uring.disabled})")
    else:
        value = ("enabled for every process, if built in: no kernel.io_uring_disabled to read"
                 " (before 6.6, or not readable)")
    tps = uring.tracepoints
    if tps is None:
        value += "; its tracepoints not checked (see could not check)"
    else:
        present = [tp for tp, there in tps.items() if there]
        value += f"; tracepoints: {', '.join(present) or 'none'}"
    return Check(
        "io_uring", "io_uring", value, None,
        "processes can open files through io_uring with no open syscall; each open"
        " candidate's io_uring field says whether it sees them",
        {"disabled": uring.disabled, "configured": configured,
         "tracepoints": None if tps is None else dict(tps)})


def _checks(caps: Capabilities) -> List[Check]:
    k, tfs, cfg = caps.kernel, caps.tracefs, caps.config
    checks = [
        Check("kernel", "kernel", f"{k.release} ({k.arch})", None,
              "probe and tracepoint layouts depend on it",
              {"release": k.release, "version": list(k.version), "arch": k.arch}),
        _syscalls_check(k.arch),
        Check("btf", "BTF", _yes_no(caps.btf.path is not None, f"yes ({caps.btf.path})"),
              caps.btf.path is not None,
              "ebpf-core relocates its shipped programs against the kernel's BTF",
              {"path": caps.btf.path, "searched": list(caps.btf.searched)}),
        Check("bpf", "bpf permitted",
              _yes_no(caps.bpf.permitted, "yes", f"no ({_errno_name(caps.bpf.prog_load_errno)})"),
              caps.bpf.permitted,
              "a trivial program was loaded to find out; both eBPF engines need it",
              {"prog_load_errno": caps.bpf.prog_load_errno}),
        Check("bpf_kernel_read", "BPF kernel reads",
              _yes_no(caps.bpf.kernel_read, "yes",
                      f"no ({_errno_name(caps.bpf.kernel_read_errno)})"),
              caps.bpf.kernel_read,
              "a program calling bpf_probe_read_kernel was loaded to find out (lockdown="
              "confidentiality refuses it): BCC needs it; ebpf-core does without, with the"
              " fields its candidates list",
              {"kernel_read_errno": caps.bpf.kernel_read_errno}),
        Check("ringbuf", "BPF ring buffer",
              _yes_no(caps.bpf.ringbuf, "yes", f"no ({_errno_name(caps.bpf.ringbuf_errno)})"),
              caps.bpf.ringbuf, "ordered, lossless-until-full delivery from eBPF (5.8+)",
              {"ringbuf_errno": caps.bpf.ringbuf_errno}),
    ]
    held = [name for cap, name in _CAP_NAMES.items() if caps.privileges.has(cap)]
    checks.append(Check(
        "privileges", "privileges",
        f"euid {caps.privileges.euid}, effective: {', '.join(held) or 'none of the tracing ones'}",
        caps.privileges.can_bpf,
        "eBPF needs CAP_BPF+CAP_PERFMON (5.8+) or CAP_SYS_ADMIN; tracefs writes need root",
        {"euid": caps.privileges.euid, "cap_effective": hex(caps.privileges.cap_effective),
         "held": held}))
    checks.append(Check(
        "sysctl", "bpf/perf sysctls",
        f"unprivileged_bpf_disabled={caps.bpf.unprivileged_bpf_disabled}"
        f"{_UBD_MEANING.get(caps.bpf.unprivileged_bpf_disabled, '')},"
        f" perf_event_paranoid={caps.bpf.perf_event_paranoid}",
        None,
        "they decide what users without CAP_BPF/CAP_SYS_ADMIN may do; root is not affected",
        {"unprivileged_bpf_disabled": caps.bpf.unprivileged_bpf_disabled,
         "perf_event_paranoid": caps.bpf.perf_event_paranoid}))
    lockdown_ok = None if caps.lockdown is None else caps.lockdown != "confidentiality"
    unknown = any(u.startswith("lockdown: mode unknown") for u in caps.unchecked)
    lockdown_value = caps.lockdown or ("unknown (see could not check)" if unknown
                                       else "no lockdown LSM")
    checks.append(Check(
        "lockdown", "kernel lockdown", lockdown_value, lockdown_ok,
        "integrity blocks little we use; confidentiality denies kprobes, kernel-memory"
        " reads from BPF and tracefs", {"mode": caps.lockdown}))
    headers = caps.headers.build is not None or caps.headers.kheaders
    checks.append(Check(
        "headers", "kernel headers",
        _yes_no(headers, f"yes ({caps.headers.build or '/sys/kernel/kheaders.tar.xz'})"),
        headers, "only the BCC engine compiles against them",
        {"build": caps.headers.build, "source": caps.headers.source,
         "kheaders": caps.headers.kheaders}))
    set_items = [n for n, v in cfg.items.items() if v in ("y", "m")]
    checks.append(Check(
        "kconfig", "kernel config", cfg.source or "not found", None,
        "explains missing features when tracefs cannot be read",
        {"source": cfg.source, "items": dict(cfg.items), "enabled": set_items}))
    if tfs.path:
        tracefs_value = f"{tfs.path} (via {tfs.via or 'unknown'})"
        if tfs.writable is False:
            tracefs_value += ", not writable by us"
    else:
        tracefs_value = "not mounted" + (", mountable" if tfs.mountable else "")
    checks.append(Check(
        "tracefs", "tracefs", tracefs_value,
        None if tfs.path is None and tfs.mountable else tfs.path is not None,
        "the ftrace backend lives in it; ebpf-core's classic tracepoints take their ids from"
        " it (its tp_btf mode needs no tracefs)",
        {"path": tfs.path, "via": tfs.via, "mountable": tfs.mountable,
         "writable": tfs.writable}))
    for cid, title, value, option, why in (
        ("kprobes", "kprobes", tfs.kprobe_events, "CONFIG_KPROBE_EVENTS",
         f"ftrace/kprobe: {FTRACE_TIER_STRINGS['kprobe']}"),
        ("eprobes", "eprobes", tfs.eprobes, "CONFIG_EPROBE_EVENTS",
         f"ftrace/eprobe: {FTRACE_TIER_STRINGS['eprobe']}"),
        ("uprobes", "uprobes", tfs.uprobe_events, "CONFIG_UPROBE_EVENTS",
         f"ftrace/uprobe: {FTRACE_TIER_STRINGS['uprobe']}"),
    ):
        configured = cfg.enabled(option)
        if cid == "eprobes" and cfg.items.get(option) is None and k.version >= (5, 15, 0):
            configured = None  # 5.15 to 6.1: eprobes come without this symbol
        checks.append(_probe_kind_check(cid, title, value, configured, option, why))
    checks.append(_eprobe_strings_check(tfs.eprobes, tfs.eprobe_strings))
    checks.append(Check(
        "fetch_types", "probe string types",
        ", ".join(tfs.fetch_types) or "unknown", None,
        "'ustring' and '+u' (5.3+) read user memory from kernel probes",
        {"fetch_types": list(tfs.fetch_types), "user_deref": tfs.user_deref}))
    # A syscall the architecture does not have (aarch64: open, creat) has no tracepoints
    # to miss: the syscalls check says so.
    here = vocabulary.syscalls_on(k.arch)
    not_here = {tp for s in vocabulary.EXEC_SYSCALLS + vocabulary.OPEN_SYSCALLS
                if s not in here for tp in (vocabulary.enter(s), vocabulary.exit_of(s))}
    missing = [tp for tp in TRACEPOINTS
               if tfs.tracepoints and not tfs.tracepoints.get(tp) and tp not in not_here]
    if not tfs.tracepoints:
        tp_value, tp_ok = "unknown (tracefs not readable)", None
    elif missing:
        tp_value, tp_ok = "missing: " + ", ".join(missing), None
    else:
        tp_value, tp_ok = "all present", True
        if not_here:
            tp_value += f" (none for syscalls {k.arch} does not have)"
    checks.append(Check(
        "tracepoints", "tracepoints", tp_value, tp_ok,
        "every backend counts events on the syscall and sched tracepoints",
        {"present": dict(tfs.tracepoints)}))
    checks.append(Check(
        "libbpf", "libbpf",
        f"{caps.libbpf.version or 'unknown version'} ({caps.libbpf.path})" if caps.libbpf
        else "not found", caps.libbpf is not None,
        "ebpf-core loads its shipped objects with the system libbpf.so.1",
        {"path": caps.libbpf.path if caps.libbpf else None,
         "version": caps.libbpf.version if caps.libbpf else None}))
    checks.append(Check(
        "bcc", "BCC",
        f"{caps.bcc.version} ({caps.bcc.location})" if caps.bcc.version
        else f"not importable{': ' + caps.bcc.error if caps.bcc.error else ''}",
        caps.bcc.version is not None, "the ebpf-bcc engine (python3-bpfcc)",
        {"version": caps.bcc.version, "location": caps.bcc.location, "error": caps.bcc.error}))
    checks.append(Check(
        "libc", "C libraries",
        ", ".join(f"{lib.path} ({lib.version or '?'})" for lib in caps.c_libraries) or "none",
        bool(caps.c_libraries), "ftrace/uprobe puts uprobes on them",
        {"libraries": [{"path": lib.path, "version": lib.version} for lib in caps.c_libraries]}))
    checks.append(_io_uring_check(caps))
    checks.append(Check(
        "container", "container", container.value(caps), None,
        "in a container, tracing needs CAP_BPF+CAP_PERFMON, bpf() past seccomp, the"
        " kernel's BTF, and for some backends the host's pid namespace and tracefs",
        container.check_data(caps),
        fixes=tuple(f"{m.remedy}  [{m.what}: {m.needed_by}]" for m in container.missing(caps))))
    return checks


def ftrace_decoder() -> str:
    """Which page decoder this installation's ftrace reader uses (not a kernel fact)."""
    return _c_or_python(raw_records.c_loop() is not None, "_ringpage", "records")


def ftrace_open_calls() -> str:
    """Which code pairs the ftrace reader's open call records here (not a kernel fact)."""
    return _c_or_python(correlate.OPEN_CALLS is not None, "_opencalls", "events")


def json_writer() -> str:
    """Which code writes --json records here (not a kernel fact)."""
    return _c_or_python(jsonl.c_writer(), "_jsonline", "lines")


def _c_or_python(built: bool, module: str, what: str) -> str:
    if built:
        return f"C ({module}, built when hybridtrace was installed)"
    if compiled.switched_off():
        return f"pure Python ({compiled.PURE_PYTHON_ENV}=1)"
    return (f"pure Python: the same {what} at more CPU each (the C module was not"
            " built: install gcc and python3-dev, then reinstall hybridtrace)")


def build_report(caps: Capabilities, choice: str = "auto") -> Report:
    return Report(caps, _checks(caps), {kind: decide(caps, kind, choice) for kind in KINDS})
