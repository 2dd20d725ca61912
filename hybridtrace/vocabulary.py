"""The kernel's names hybridtrace traces by, and the names it gives its own objects.

One source of truth, imported by every layer (capabilities, backends, doctor,
CLI, tools), so that adding a syscall, a tracepoint or an attach mode is one
edit here and nowhere can the copies disagree. Pure data and pure functions:
nothing here touches the kernel.
"""

from __future__ import annotations

import os
import re
from typing import Dict, Optional, Tuple

# -- syscalls ---------------------------------------------------------------

# Order is the record layout's syscall index (enum ht_syscall in
# backends/ebpf/bpf/common.h and the BCC programs; a unit test holds them equal).
EXEC_SYSCALLS: Tuple[str, ...] = ("execve", "execveat")
OPEN_SYSCALLS: Tuple[str, ...] = ("open", "openat", "openat2", "creat")
SYSCALLS: Dict[str, Tuple[str, ...]] = {"exec": EXEC_SYSCALLS, "open": OPEN_SYSCALLS}
# Generic-syscall architectures (arm64, riscv) never had open(2) or creat(2).
LEGACY_SYSCALLS: Tuple[str, ...] = ("open", "creat")
ARCH_SYSCALLS: Dict[str, Tuple[str, ...]] = {
    "x86_64": EXEC_SYSCALLS + OPEN_SYSCALLS,
    "aarch64": tuple(s for s in EXEC_SYSCALLS + OPEN_SYSCALLS if s not in LEGACY_SYSCALLS),
}
# Syscall -> (index of its path argument or None, index of its argv or None).
SYSCALL_ARGS: Dict[str, Tuple[Optional[int], Optional[int]]] = {
    "execve": (0, 1),
    "execveat": (1, 2),
    "open": (0, None),
    "openat": (1, None),
    "openat2": (1, None),
    "creat": (0, None),
}


def syscalls_for(kind: str) -> Tuple[str, ...]:
    return SYSCALLS[kind]


def syscall_at(kind: str, index: int) -> Optional[str]:
    """The syscall a record's index names; None (never a guess) for one we don't know."""
    names = SYSCALLS[kind]
    return names[index] if 0 <= index < len(names) else None


def syscalls_on(arch: str) -> Tuple[str, ...]:
    """The traced syscalls this architecture has (unknown architectures: all of them)."""
    return ARCH_SYSCALLS.get(arch, EXEC_SYSCALLS + OPEN_SYSCALLS)


# -- io_uring ------------------------------------------------------------------

# How an open reached the kernel (OpenEvent.via).
VIA_SYSCALL = "syscall"
VIA_IO_URING = "io_uring"
VIAS: Tuple[str, ...] = (VIA_SYSCALL, VIA_IO_URING)
# doctor's statement on io_uring opens (an open candidate's field), and the ftrace
# backend's with the text reader, which decodes no io_uring records.
FIELD_IO_URING = "io_uring"
FIELD_IO_URING_TEXT_READER = "io_uring_text_reader"
# include/uapi/linux/io_uring.h: the opcodes that open a file (5.6+), by number.
IORING_OP_OPENAT = 18
IORING_OP_OPENAT2 = 28
IO_URING_OPEN_OPS: Dict[int, str] = {IORING_OP_OPENAT: "IORING_OP_OPENAT",
                                     IORING_OP_OPENAT2: "IORING_OP_OPENAT2"}
# io_uring's tracepoints (group io_uring): a request entering io_uring, in the task
# that submitted it, after its preparation (named io_uring_submit_sqe before 6.4);
# its completion with the result, or the overflow record of a completion that
# found the ring full; a request whose preparation failed, with its SQE.
IO_URING_GROUP = "io_uring"
IO_URING_SUBMIT = "io_uring_submit_req"
IO_URING_SUBMIT_OLD = "io_uring_submit_sqe"
IO_URING_COMPLETE = "io_uring_complete"
IO_URING_OVERFLOW = "io_uring_cqe_overflow"
IO_URING_FAILED = "io_uring_req_failed"
# A ring made, and a registration on it (fixed files among them): whether a ring's
# results are fds or may be fixed-slot indexes (the ftrace tiers ask).
IO_URING_CREATE = "io_uring_create"
IO_URING_REGISTER = "io_uring_register"
IO_URING_EVENTS: Tuple[str, ...] = (IO_URING_SUBMIT, IO_URING_SUBMIT_OLD, IO_URING_COMPLETE,
                                    IO_URING_OVERFLOW, IO_URING_FAILED)
# io_uring's open handler (5.6+; both opcodes reach it, inline or on an io-wq worker),
# given the request first: the kprobe tier reads the kernel's copy of the path there.
IO_URING_OPEN_HANDLER = "io_openat2"
# Their preparation (request, SQE), run by the submitting task before the request is
# submitted or refused (io_uring_req_failed): the kprobe tier reads the caller's path
# there for a refused one, whose kernel copy no later function is given.
IO_URING_OPEN_PREPS = ("io_openat_prep", "io_openat2_prep")
# An io_uring claim whose open flags and mode are None (tests read the claim's words).
URING_HOW_NONE = "flags and mode None"
# sysctl: 0 io_uring for all, 1 only for io_uring_group members and root, 2 for nobody.
IO_URING_DISABLED_SYSCTL = "/proc/sys/kernel/io_uring_disabled"


# -- tracepoints --------------------------------------------------------------

SYSCALLS_GROUP = "syscalls"
SCHED_EXEC = "sched/sched_process_exec"  # the authority that an exec succeeded
SCHED_FORK = "sched/sched_process_fork"


def enter(syscall: str) -> str:
    """The entry tracepoint of a syscall, as tracefs names it: ``syscalls/sys_enter_openat``."""
    return f"{SYSCALLS_GROUP}/sys_enter_{syscall}"


def exit_of(syscall: str) -> str:
    return f"{SYSCALLS_GROUP}/sys_exit_{syscall}"


def printed(syscall: str) -> str:
    """How trace output names a syscall's events: ``sys_openat(...)``, ``sys_openat -> 0x3``."""
    return f"sys_{syscall}"


def event_name(tracepoint: str) -> str:
    """``sched/sched_process_exec`` -> ``sched_process_exec`` (how trace output names it)."""
    return tracepoint.rpartition("/")[2]


# A backend built on the classic tracepoints needs these, and uses the rest
# of the syscall tracepoints where the kernel has them.
REQUIRED_SYSCALLS: Dict[str, Tuple[str, ...]] = {"exec": ("execve",), "open": ("openat",)}
REQUIRED_TRACEPOINTS: Dict[str, Tuple[str, ...]] = {
    "exec": (SCHED_EXEC, enter("execve"), exit_of("execve")),
    "open": (enter("openat"), exit_of("openat")),
}
OPTIONAL_TRACEPOINTS: Dict[str, Tuple[str, ...]] = {
    kind: tuple(enter(s) for s in names if s not in REQUIRED_SYSCALLS[kind])
    for kind, names in SYSCALLS.items()
}
# Every tracepoint doctor reports on.
TRACEPOINTS: Tuple[str, ...] = (
    *(tp for s in EXEC_SYSCALLS + OPEN_SYSCALLS for tp in (enter(s), exit_of(s))),
    SCHED_EXEC,
    SCHED_FORK,
)


def required_tracepoints(kind: str) -> Tuple[str, ...]:
    return REQUIRED_TRACEPOINTS[kind]


# -- attach modes and tiers ----------------------------------------------------

# Machines (uname -m) ebpf-core ships compiled BPF objects for, and each one's
# object name suffix (tools/build_bpf.py builds them all on any machine).
CORE_ARCHES: Dict[str, str] = {"x86_64": "", "aarch64": ".arm64"}
# ebpf-core's ways to attach, best first (its candidates are "ebpf-core/<mode>").
CORE_ATTACH_MODES: Tuple[str, ...] = ("tracepoint", "tp_btf", "raw_tp")
# The ftrace backend's tiers, best first (its candidates are "ftrace/<tier>").
FTRACE_TIERS: Tuple[str, ...] = ("kprobe", "eprobe", "uprobe", "tracepoint")
# How the ftrace backend reads its ring buffer: "raw" decodes the per-CPU binary
# pages (trace_pipe_raw), "text" parses trace_pipe (where the pages can't be read).
FTRACE_READERS: Tuple[str, ...] = ("raw", "text")
# Where each tier reads its strings: what doctor says about it.
FTRACE_TIER_STRINGS: Dict[str, str] = {
    "kprobe": "strings read by kprobes at syscall entry",
    "eprobe": "strings read by eprobes on the syscall tracepoints",
    "uprobe": "strings read by uprobes on the C library",
    "tracepoint": "syscall tracepoints only: paths and argv from /proc when proven",
}

# -- our own objects' names ------------------------------------------------------

# Every tracefs object we create (instance, probe group) is named
# hybridtrace_<owner pid>_<suffix>, so a later run can tell a dead owner's.
OWNER_PREFIX = "hybridtrace_"
_OWNED = re.compile(r"^hybridtrace_(\d+)_\w+$")


def owned_name(suffix: str, pid: Optional[int] = None) -> str:
    """The name of an object of ours: ``hybridtrace_<pid>_<suffix>`` (pid: this process)."""
    if not re.fullmatch(r"\w+", suffix):
        raise ValueError(f"bad suffix for a tracefs name: {suffix!r}")
    return f"{OWNER_PREFIX}{os.getpid() if pid is None else pid}_{suffix}"


def owner_of(name: str) -> Optional[int]:
    """The owner's pid in one of our names (instance or event group); None if not ours."""
    match = _OWNED.match(name)
    return int(match.group(1)) if match else None

# -- cgroups, containers and namespaces -------------------------------------------

# The cgroup v2 filesystem: bpf_get_current_cgroup_id() names a directory of it (its
# inode number on 64-bit kernels), wherever it is mounted (/sys/fs/cgroup, or
# /sys/fs/cgroup/unified in the hybrid v1/v2 layout).
CGROUP2_FSTYPE = "cgroup2"
# /proc/PID/cgroup's line for the v2 hierarchy: "0::PATH".
CGROUP2_PROC_PREFIX = "0::"

# How container runtimes name a container's cgroup, one path component each:
# (runtime, pattern). The id is 64 lower-case hex digits; conmon's scopes
# (libpod-conmon-ID, crio-conmon-ID) never match, as "conmon-" is not hex.
CONTAINER_ID = r"(?P<id>[0-9a-f]{64})"
CONTAINER_SCOPES: Tuple[Tuple[str, str], ...] = (
    ("docker", rf"docker-{CONTAINER_ID}\.scope"),  # docker, systemd cgroup driver
    ("podman", rf"libpod-{CONTAINER_ID}(?:\.scope)?"),  # podman: systemd or cgroupfs
    ("containerd", rf"cri-containerd-{CONTAINER_ID}\.scope"),  # containerd CRI, systemd
    ("cri-o", rf"crio-{CONTAINER_ID}(?:\.scope)?"),  # cri-o
    ("containerd", rf"nerdctl-{CONTAINER_ID}\.scope"),  # nerdctl, systemd
)
# A bare 64-hex component is a container when its parent says whose it is:
# docker's and containerd's cgroupfs layouts (/docker/ID, /default/ID, /moby/ID,
# /k8s.io/ID) and Kubernetes' cgroupfs pods (/kubepods/besteffort/podUID/ID).
CONTAINER_PARENTS: Tuple[Tuple[str, str], ...] = (
    ("docker", r"docker"),
    ("containerd", r"default|moby|k8s\.io"),
    ("kubernetes", r"pod[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"),
)

# The initial (host's) pid namespace's inode, fixed by the kernel (PROC_PID_INIT_INO).
INIT_PIDNS_INODE = 0xEFFFFFFC

# How deep the BPF programs follow nested pid namespaces (0 is the host's); a task
# deeper than this has its namespace pids unknown (None), never guessed.
PIDNS_LEVELS = 8
