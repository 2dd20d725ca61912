"""Which ftrace tiers can run on a kernel? Pure judgement of a Capabilities value.

Tiers, best first: kprobe, eprobe, uprobe, tracepoint. In every
tier the static tracepoints decide that an event happened; the tier only
decides where strings come from.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from hybridtrace.backends.base import Assessment, Reason
from hybridtrace.backends.requirements_common import (
    io_uring_moot,
    pid_namespace_reasons,
    tracefs_reasons,
)
from hybridtrace.btf_offsets import LAYOUT_HANDLER, LAYOUT_PREP
from hybridtrace.capabilities.model import Capabilities
from hybridtrace.vocabulary import (
    FIELD_IO_URING,
    FIELD_IO_URING_TEXT_READER,
    FTRACE_TIERS,
    IO_URING_COMPLETE,
    IO_URING_FAILED,
    IO_URING_OPEN_HANDLER,
    IO_URING_OPEN_PREPS,
    IO_URING_SUBMIT,
    IO_URING_SUBMIT_OLD,
    URING_HOW_NONE,
)

# Paths are the syscalls' "const char *" arguments, of which eprobes on some kernels
# (Debian 6.12) get one byte, not the pointer: opens would have no path and failed
# execs no filename (argv, a "const char *const *", still reads).
EPROBE_STRING_FAULT = ("eprobes here cannot read a syscall's path argument (a test eprobe on"
                       " sys_enter_openat read a fault): open paths and failed execs' filenames"
                       " would be missing")
_LIBC_ONLY = "partial: only programs that exec/open through the C library"


def _fields(kind: str, tier: str) -> Dict[str, str]:
    string_field = "argv" if kind == "exec" else "path"
    if tier in ("kprobe", "eprobe") and kind == "exec":
        # Measured (ground truth, Debian 6.1 VM): about a quarter of execs, of every kind.
        quality = ("partial: read at syscall entry, where probes cannot fault pages in:"
                   " None when the caller's argv was not in memory")
    elif tier in ("kprobe", "eprobe"):
        quality = "complete (read at syscall entry)"
    elif tier == "uprobe":
        quality = _LIBC_ONLY + "; others from /proc while the process lives"
    else:
        quality = "partial: from /proc while the process lives (racy)"
    # What the binary reader gives (tasks.py); with HYBRIDTRACE_FTRACE_READER=text,
    # comm is trace_pipe's cache and uid /proc's (racy for short-lived processes).
    fields = {string_field: quality,
              "uid": "complete for processes started while tracing (task records); "
                     "/proc for older ones",
              "comm": "complete (task records; /proc for threads older than the session)"}
    if kind == "exec":
        failed = {"kprobe": "read at syscall entry", "eprobe": "read at syscall entry",
                  "uprobe": "only through the C library"}.get(tier, "None")
        fields.update(filename="partial: every successful exec's (sched_process_exec);"
                      f" a failed one's: {failed}", retval="complete",
                      ppid="complete (sched_process_fork) or /proc")
    else:
        how = "partial: None for openat2 (they are in its struct open_how, which no record shows)"
        fields.update(flags=how, mode=how, fd="complete")
    return fields


def uring_paths(caps: Capabilities, tier: str) -> Optional[str]:
    """How this tier reads io_uring opens' paths (probe_plan.uring_path_def), or None."""
    layout = caps.io_uring.layout
    if layout is None or tier not in ("kprobe", "eprobe"):
        return None
    if tier == "kprobe":
        if not layout.get(LAYOUT_HANDLER):
            return None
        return f"a kprobe on {IO_URING_OPEN_HANDLER}"
    return "an eprobe on the submit tracepoint, which stands in for its records"


def uring_refused_paths(caps: Capabilities, tier: str) -> Optional[str]:
    """How this tier reads the caller's path of an io_uring open refused while being
    prepared (probe_plan.uring_path_defs), or None."""
    layout = caps.io_uring.layout
    if uring_paths(caps, tier) is None or layout is None:
        return None
    if tier == "kprobe":
        if not layout.get(LAYOUT_PREP):
            return None
        return (f"kprobes on {' and '.join(IO_URING_OPEN_PREPS)} as its preparation began;"
                " None when refused before that, or not in memory")
    tps = caps.io_uring.tracepoints
    if tps is not None and not tps.get(IO_URING_FAILED):
        return None
    return (f"an eprobe on {IO_URING_FAILED}, which stands in for its records; None when"
            " not in memory")


def _io_uring(caps: Capabilities, tier: str) -> str:
    """What io_uring's static tracepoints give every tier (uring.py), and the kprobe and
    eprobe tiers' path probe where the kernel's BTF locates the path."""
    moot = io_uring_moot(caps)
    if moot:
        return f"none needed: {moot}"
    tps = caps.io_uring.tracepoints
    if tps is not None and not (tps.get(IO_URING_COMPLETE) and (
            tps.get(IO_URING_SUBMIT) or tps.get(IO_URING_SUBMIT_OLD))):
        return "none: the kernel has no io_uring submit and complete tracepoints"
    who = ("the submitting task's pid, tid, comm and uid (tid, comm and uid None for SQPOLL"
           " submissions), errno, and fd for rings made while tracing without fixed files"
           " (else None: the result may be a fixed-slot index)")
    pid_filter = ("with a pid filter, results unknown and SQPOLL rings made while tracing"
                  " reported lost (io_uring's threads escape set_event_pid)")
    how = uring_paths(caps, tier)
    if how is not None:
        # The kprobe runs after the submission: opens reported at submission have none.
        unread = ("" if tier == "eprobe" else "one submitted with IOSQE_CQE_SKIP_SUCCESS"
                  " and any reported at submission")
        refused = uring_refused_paths(caps, tier)
        if refused is None:  # e.g. O_CLOEXEC into a fixed file slot: EINVAL
            unread = "a request whose preparation failed" + (f", {unread}" if unread else "")
            refused_text = ""
        else:
            refused_text = (f"; for a request whose preparation failed, path the caller's"
                            f" (read by {refused}) and dfd None")
        text = (f"partial: seen with paths: path (the kernel's copy, read by {how}) and dfd,"
                f" {who}; {URING_HOW_NONE} (the kernel keeps only its adjusted copy; a failed"
                f" IORING_OP_OPENAT's from its SQE){refused_text}"
                + (f"; path and dfd None for {unread}" if unread else "")
                + f"; {pid_filter}" + ("" if tier == "eprobe" else ", and no paths" + (
                    "" if refused is None else " but those of requests whose preparation"
                    " failed")))
    else:
        why = ("" if tier not in ("kprobe", "eprobe") else
               " (no kernel BTF describing an io_uring open request)"
               if caps.io_uring.layout is None else
               f" ({IO_URING_OPEN_HANDLER} is not a function here: inlined)")
        text = (f"partial: seen without paths{why}: {who}; path, flags, mode and dfd None (a"
                f" failed IORING_OP_OPENAT's flags and mode excepted); {pid_filter}")
    if tps is None:
        text += "; where the kernel has io_uring's tracepoints (not checked here)"
    return text


def _absent(present: Optional[bool], caps: Capabilities, option: str) -> bool:
    """Known missing: tracefs says so, or (tracefs unreadable) the kernel config does."""
    if present is not None:
        return not present
    return caps.config.enabled(option) is False


def _tier_reasons(caps: Capabilities, kind: str, tier: str) -> List[Reason]:
    tfs = caps.tracefs
    out: List[Reason] = []
    if tier == "kprobe":
        if caps.lockdown == "confidentiality":
            out.append(Reason("lockdown-kprobes", "lockdown=confidentiality denies kprobes"))
        if _absent(tfs.kprobe_events, caps, "CONFIG_KPROBE_EVENTS"):
            out.append(
                Reason("no-kprobe-events", "no kprobe_events (kernel built without CONFIG_KPROBES"
                       " or CONFIG_KPROBE_EVENTS)")
            )
    elif tier == "eprobe":
        # tracefs unread: 5.15 to 6.1 kernels have eprobes without the config symbol
        known_off = caps.kernel.version < (5, 15, 0) or caps.config.items.get(
            "CONFIG_EPROBE_EVENTS") == "n"
        if tfs.eprobes is False or (tfs.eprobes is None and known_off):
            out.append(Reason("no-eprobes", "no eprobes (needs 5.15+ with CONFIG_EPROBE_EVENTS)"))
        elif tfs.eprobe_strings is False:
            out.append(Reason("eprobe-string-fault", EPROBE_STRING_FAULT))
    elif tier == "uprobe":
        if _absent(tfs.uprobe_events, caps, "CONFIG_UPROBE_EVENTS"):
            out.append(Reason("no-uprobe-events", "no uprobe_events (CONFIG_UPROBE_EVENTS off)"))
        if not caps.c_libraries:
            out.append(Reason("no-libc", "no glibc or musl C library found to probe"))
    return out


def assess_tier(caps: Capabilities, kind: str, tier: str) -> Assessment:
    reasons = (tracefs_reasons(caps, kind, "ftrace") + _tier_reasons(caps, kind, tier)
               + pid_namespace_reasons(caps, "ftrace"))
    fields = _fields(kind, tier)
    if kind == "open":
        raw = fields[FIELD_IO_URING] = _io_uring(caps, tier)
        fields[FIELD_IO_URING_TEXT_READER] = raw if raw.startswith("none") else (
            "none: the text reader (--ftrace-reader text) decodes no io_uring records;"
            " the raw reader does")
    return Assessment("ftrace", tier, kind, reasons, fields)


def assess_all(caps: Capabilities, kind: str) -> List[Assessment]:
    return [assess_tier(caps, kind, tier) for tier in FTRACE_TIERS]
