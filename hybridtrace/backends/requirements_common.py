"""Findings several backends share: bpf() permission, lockdown, tracefs, tracepoints.

Kept above the backends so that none imports another (see docs/architecture.md).
"""

from __future__ import annotations

import errno
import os
from typing import List, Optional

from hybridtrace.backends.base import Reason
from hybridtrace.capabilities.model import Capabilities
from hybridtrace.vocabulary import required_tracepoints

LOCKDOWN_REMEDY = "boot with lockdown=integrity or none (or disable Secure Boot enforcement)"
PRIVILEGE_REMEDY = (
    "run as root, or grant CAP_BPF and CAP_PERFMON (kernel 5.8+) or CAP_SYS_ADMIN"
    " (containers: --cap-add BPF --cap-add PERFMON, or --privileged)"
)

PID_NAMESPACE_REMEDY = "--pid=host (Kubernetes: hostPID: true)"


def pid_namespace_reasons(caps: Capabilities, backend: str) -> List[Reason]:
    """ftrace and BCC look up the kernel's (host) pids in /proc: in a pid namespace of
    our own, /proc numbers other processes, so every field read there could be wrong."""
    if not caps.container.pid_namespace_nested:
        return []
    return [Reason("pid-namespace", f"hybridtrace runs in a pid namespace of its own, where"
                   f" /proc does not number processes as the kernel's records do ({backend}"
                   " reads /proc by those pids)", remedy=PID_NAMESPACE_REMEDY)]


def bpf_reasons(caps: Capabilities) -> List[Reason]:
    """Can we load a BPF tracing program at all?"""
    out: List[Reason] = []
    err = caps.bpf.prog_load_errno
    if err is None:
        # Unknown is not "no": the session will find out by loading (and fall back).
        out.append(Reason("bpf-unchecked", "could not test whether bpf() is permitted;"
                          " it will be tried", blocking=False))
    elif err != 0:
        name = errno.errorcode.get(err, str(err))
        if err in (errno.EPERM, errno.EACCES):
            why = f"bpf() denied ({name})"
            remedy = PRIVILEGE_REMEDY
            if not caps.privileges.can_bpf:
                why += ": we lack CAP_BPF+CAP_PERFMON or CAP_SYS_ADMIN"
                if caps.bpf.unprivileged_bpf_disabled:
                    why += f" and unprivileged_bpf_disabled={caps.bpf.unprivileged_bpf_disabled}"
            else:  # privileged and still refused: not a capability problem
                why += " although we hold the capabilities: a security module (LSM) or seccomp"
                why += " policy refuses it"
                remedy = ("check the LSM (BPF LSM, SELinux, AppArmor) and seccomp policy;"
                          " in a container, run with --security-opt seccomp=unconfined")
            out.append(Reason("bpf-denied", why, remedy=remedy))
        elif err == errno.ENOSYS:
            out.append(
                Reason(
                    "bpf-missing",
                    "the kernel has no bpf() syscall (CONFIG_BPF_SYSCALL off) or seccomp hides it",
                    remedy="use a kernel with CONFIG_BPF_SYSCALL=y; in a container, allow bpf()",
                )
            )
        else:
            out.append(Reason("bpf-failed", f"loading a trivial BPF program failed ({name})"))
    return out


def kernel_read_reasons(caps: Capabilities, blocking: bool = True) -> List[Reason]:
    """May our programs read kernel memory (bpf_probe_read_kernel)?

    BCC's programs cannot do without; ebpf-core's can (``blocking`` False): its
    fields then come from the syscall's user memory and BTF walks only.
    """
    read_err = caps.bpf.kernel_read_errno
    if read_err:  # measured: a program reading kernel memory was refused
        name = errno.errorcode.get(read_err, str(read_err))
        why = f"BPF programs may not read kernel memory (bpf_probe_read_kernel refused, {name})"
        if caps.lockdown == "confidentiality":
            why += ": kernel lockdown=confidentiality"
        elif caps.lockdown is None:
            why += "; kernel lockdown=confidentiality is the usual cause"
        return [Reason("bpf-kernel-read-denied", why, blocking=blocking,
                       remedy=LOCKDOWN_REMEDY if blocking else None)]
    if read_err is None and caps.lockdown == "confidentiality" and not caps.bpf.prog_load_errno:
        return [Reason("lockdown-confidentiality",
                       "kernel lockdown=confidentiality denies BPF reads of kernel memory",
                       blocking=blocking, remedy=LOCKDOWN_REMEDY if blocking else None)]
    return []


def tracefs_reasons(caps: Capabilities, kind: str, purpose: str) -> List[Reason]:
    """tracefs must exist (or be mountable) and hold the tracepoints we need."""
    out: List[Reason] = []
    tfs = caps.tracefs
    if caps.lockdown == "confidentiality" and purpose == "ftrace":
        out.append(
            Reason(
                "lockdown-confidentiality",
                "kernel lockdown=confidentiality denies tracefs",
                remedy="boot with lockdown=integrity or none; eBPF may still work",
            )
        )
        return out
    if tfs.path is None:
        if tfs.mountable:
            out.append(
                Reason(
                    "tracefs-will-mount",
                    "tracefs is not mounted; hybridtrace will mount it at /sys/kernel/tracing",
                    blocking=False,
                )
            )
        else:
            out.append(
                Reason(
                    "tracefs-missing",
                    f"tracefs is not mounted and cannot be mounted by us ({purpose} needs it)",
                    remedy="mount -t tracefs nodev /sys/kernel/tracing (as root)",
                )
            )
        return out
    if purpose == "ftrace" and tfs.writable is False:
        out.append(
            Reason(
                "tracefs-readonly",
                f"{tfs.path} is not writable by us",
                remedy="run as root (tracefs control files are root-only by default)",
            )
        )
    if tfs.tracepoints:
        missing = [tp for tp in required_tracepoints(kind) if not tfs.tracepoints.get(tp)]
        if missing:
            out.append(
                Reason(
                    "tracepoints-missing",
                    "missing tracepoints: " + ", ".join(missing),
                    remedy="use a kernel with CONFIG_FTRACE_SYSCALLS=y",
                )
            )
    elif caps.config.enabled("CONFIG_FTRACE_SYSCALLS") is False:
        out.append(
            Reason(
                "tracepoints-missing",
                "the kernel has no syscall tracepoints (CONFIG_FTRACE_SYSCALLS off)",
                remedy="use a kernel with CONFIG_FTRACE_SYSCALLS=y",
            )
        )
    return out


def io_uring_moot(caps: Capabilities) -> Optional[str]:
    """Why there are no io_uring opens to see on this kernel at all, or None."""
    if caps.config.enabled("CONFIG_IO_URING") is False:
        return "the kernel has no io_uring (CONFIG_IO_URING off)"
    if caps.io_uring.disabled == 2:
        return "io_uring is disabled (kernel.io_uring_disabled=2)"
    return None


def headers_path(caps: Capabilities) -> str:
    return caps.headers.build or os.path.join("/lib/modules", caps.kernel.release, "build")
