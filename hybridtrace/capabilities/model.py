"""What the prober learned about one kernel and our privileges on it.

Every value is either a measured fact or None for "could not be checked"
(with the reason in ``Capabilities.unchecked``): the selector must be able to
tell "no" from "don't know".
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import attrs

# Linux capability numbers (include/uapi/linux/capability.h).
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39


KCONFIG_ITEMS = (
    "CONFIG_KPROBES",
    "CONFIG_KPROBE_EVENTS",
    "CONFIG_UPROBE_EVENTS",
    "CONFIG_EPROBE_EVENTS",
    "CONFIG_FTRACE_SYSCALLS",
    "CONFIG_BPF_SYSCALL",
    "CONFIG_DEBUG_INFO_BTF",
    "CONFIG_BPF_EVENTS",
    "CONFIG_BPF_LSM",
    "CONFIG_SECURITY_LOCKDOWN_LSM",
    "CONFIG_IO_URING",
)


@attrs.frozen(slots=True)
class Kernel:
    release: str
    version: Tuple[int, int, int]
    arch: str


@attrs.frozen(slots=True)
class Btf:
    path: Optional[str]  # first hit in libbpf's search order
    searched: Tuple[str, ...]


@attrs.frozen(slots=True)
class Headers:
    build: Optional[str]  # /lib/modules/R/build when it resolves to a tree
    source: Optional[str]
    kheaders: bool  # /sys/kernel/kheaders.tar.xz (CONFIG_IKHEADERS)


@attrs.frozen(slots=True)
class KernelConfig:
    source: Optional[str]  # file the config was read from
    items: Dict[str, Optional[str]]  # CONFIG_X -> "y"/"m"/value, None when not set

    def enabled(self, name: str) -> Optional[bool]:
        """True/False when the config was read, None when no config was found."""
        if self.source is None:
            return None
        return self.items.get(name) in ("y", "m")


@attrs.frozen(slots=True)
class BpfSupport:
    # Live results through the syscall seam; None when not attempted.
    prog_load_errno: Optional[int]  # 0 = a trivial tracepoint program loaded
    ringbuf_errno: Optional[int]  # 0 = BPF_MAP_TYPE_RINGBUF created
    unprivileged_bpf_disabled: Optional[int]
    perf_event_paranoid: Optional[int]
    # 0 = a program calling bpf_probe_read_kernel loaded (lockdown=confidentiality refuses it)
    kernel_read_errno: Optional[int] = None

    @property
    def permitted(self) -> Optional[bool]:
        return None if self.prog_load_errno is None else self.prog_load_errno == 0

    @property
    def ringbuf(self) -> Optional[bool]:
        return None if self.ringbuf_errno is None else self.ringbuf_errno == 0

    @property
    def kernel_read(self) -> Optional[bool]:
        return None if self.kernel_read_errno is None else self.kernel_read_errno == 0


@attrs.frozen(slots=True)
class Privileges:
    euid: int
    cap_effective: int  # bit mask from /proc/self/status CapEff

    def has(self, cap: int) -> bool:
        return bool(self.cap_effective >> cap & 1)

    @property
    def can_bpf(self) -> bool:
        return self.has(CAP_SYS_ADMIN) or (self.has(CAP_BPF) and self.has(CAP_PERFMON))


@attrs.frozen(slots=True)
class Tracefs:
    path: Optional[str]  # where events/ is readable now
    via: Optional[str]  # "tracefs" or "debugfs"
    mountable: Optional[bool]  # tracefs is in /proc/filesystems and we hold CAP_SYS_ADMIN
    writable: Optional[bool]
    kprobe_events: Optional[bool]
    uprobe_events: Optional[bool]
    dynamic_events: Optional[bool]
    eprobes: Optional[bool]  # "e[:[snap-group/]snap-event]" in the README
    fetch_types: Tuple[str, ...]  # e.g. ("string", "ustring", ...)
    user_deref: Optional[bool]  # "+u" fetcharg offset (5.3+)
    tracepoints: Dict[str, bool]  # vocabulary.TRACEPOINTS name -> present; empty when unreadable
    trace_clocks: Tuple[str, ...]
    # A throwaway eprobe read a syscall's string argument (eprobe_selftest);
    # None when not tried (no eprobes, tracefs not writable) or inconclusive.
    eprobe_strings: Optional[bool] = None


@attrs.frozen(slots=True)
class Library:
    path: str
    version: Optional[str]


@attrs.frozen(slots=True)
class Bcc:
    version: Optional[str]  # None when not importable
    location: Optional[str]
    error: Optional[str]


@attrs.frozen(slots=True)
class Container:
    in_container: Optional[bool]
    pid_namespace_nested: Optional[bool]  # NSpid in /proc/self/status has more than one level
    dockerenv: bool  # /.dockerenv or /run/.containerenv exists
    cgroup: Optional[str]
    # Which runtime: /run/.containerenv's engine (podman), /.dockerenv (docker), else the
    # runtime the cgroup path names (containers.py); None when none says.
    runtime: Optional[str] = None
    # A cgroup v2 hierarchy is mounted (what names an event's cgroup and container);
    # None when the mount list is not whole (a recording without the root's mount).
    cgroup2: Optional[bool] = None


@attrs.frozen(slots=True)
class IoUring:
    """io_uring, through which a process can open files with no open syscall."""

    # kernel.io_uring_disabled (6.6+): 0 anyone may use it, 1 root and io_uring_group
    # only, 2 nobody; None where the sysctl is absent (older kernels) or unreadable.
    disabled: Optional[int] = None
    # io_uring tracepoint (event name, vocabulary.IO_URING_EVENTS) -> present, from the
    # kernel's BTF; None when it could not be checked (no BTF, not recorded).
    tracepoints: Optional[Dict[str, bool]] = None
    # Where an open request keeps the kernel's copy of its path and its dfd, and whether
    # its handler is a function (btf_offsets.io_uring_open_layout); None: no BTF
    # describes it, or not checked.
    layout: Optional[Dict[str, int]] = None


@attrs.frozen(slots=True)
class Capabilities:
    root: str
    kernel: Kernel
    btf: Btf
    headers: Headers
    config: KernelConfig
    bpf: BpfSupport
    privileges: Privileges
    lockdown: Optional[str]  # "none", "integrity", "confidentiality"; None = no lockdown LSM
    tracefs: Tracefs
    libbpf: Optional[Library]
    bcc: Bcc
    c_libraries: Tuple[Library, ...]  # glibc libc.so.6 and musl, for uprobes
    container: Container
    unchecked: Tuple[str, ...] = ()  # checks that could not run, and why
    io_uring: IoUring = IoUring()
