"""probe(root) -> Capabilities: what this kernel and our privileges allow.

Every fact comes from a file under ``root`` or from the ``Live`` seam (bpf(),
libbpf, BCC, access checks), so a recorded kernel tree with its live.json
reproduces the machine it came from. Nothing here raises on a missing or
unreadable file: the fact becomes None and ``unchecked`` says why.
"""

from __future__ import annotations

import errno
import os
from typing import Callable, Optional, TypeVar

import attrs

from hybridtrace.capabilities import kernel, system
from hybridtrace.capabilities.files import Tree
from hybridtrace.capabilities.libraries import c_libraries
from hybridtrace.capabilities.live import Live, RecordedLive, SystemLive, load_recorded
from hybridtrace.capabilities.model import (
    CAP_SYS_ADMIN,
    Bcc,
    BpfSupport,
    Capabilities,
    IoUring,
    Kernel,
    Privileges,
)
from hybridtrace.capabilities.tracefs_facts import probe_tracefs
from hybridtrace.vocabulary import IO_URING_DISABLED_SYSCTL

__all__ = [
    "Capabilities", "Live", "RecordedLive", "SystemLive", "default_live", "probe", "probe_tree",
]

T = TypeVar("T")
_DENIED = (errno.EPERM, errno.EACCES)


def default_live(root: str) -> Live:
    """The running system for "/", else the tree's recorded live.json."""
    if os.path.realpath(root) == "/":
        return SystemLive()
    path = os.path.join(root, "..", "live.json")
    if not os.path.exists(path):
        path = os.path.join(root, "live.json")
    return load_recorded(path)


def _ask(tree: Tree, what: str, call: Callable[[], T]) -> Optional[T]:
    try:
        return call()
    except Exception as exc:  # a live check must never break the report
        tree.note(f"{what}: {type(exc).__name__}: {exc}")
        return None


def _arch(tree: Tree, live: Live) -> str:
    text = tree.read_text("/proc/sys/kernel/arch")
    if text and text.strip():
        return text.strip()
    return _ask(tree, "architecture", live.uname_machine) or "unknown"


def _bpf(tree: Tree, live: Live) -> BpfSupport:
    ubd, paranoid = system.sysctls(tree)
    prog = _ask(tree, "bpf", live.bpf_prog_load_errno)
    ringbuf: Optional[int] = None
    kernel_read: Optional[int] = None
    if prog == 0:
        ringbuf = _ask(tree, "ringbuf", live.ringbuf_errno)
        if ringbuf in _DENIED:
            tree.note("ringbuf: map creation denied, support unknown")
            ringbuf = None
        kernel_read = _ask(tree, "kernel reads", live.kernel_read_errno)
    else:
        why = "bpf() is denied to us" if prog in _DENIED else "no BPF program could be loaded"
        tree.note(f"ringbuf: not tested, {why}")
        tree.note(f"kernel reads: not tested, {why}")
    return BpfSupport(prog, ringbuf, ubd, paranoid, kernel_read)


def probe(root: str = "/", live: Optional[Live] = None) -> Capabilities:
    """Probe the machine under ``root``; live checks come from ``live``.

    With root "/" and no ``live``, the running system answers; for another
    root, the tree's live.json (next to or inside root) does.
    """
    tree = Tree(root)
    if live is None:
        try:
            live = default_live(root)
        except (OSError, ValueError) as exc:
            tree.note(f"live checks: no recorded live.json for {root} ({exc})")
            live = RecordedLive({})
    return probe_tree(tree, live)


def probe_tree(tree: Tree, live: Live) -> Capabilities:
    """probe() over an explicit Tree (the recorder passes one that logs every read)."""
    root = tree.root
    rel = kernel.release(tree)
    arch = _arch(tree, live)
    status = system.status_fields(tree)
    euid = _ask(tree, "euid", live.euid)
    privileges = Privileges(-1 if euid is None else euid, system.cap_effective(tree, status))
    cfg = kernel.config(tree, rel)
    mounted = system.mounts(tree)
    tracefs = probe_tracefs(tree, mounted, privileges.has(CAP_SYS_ADMIN), cfg)
    if tracefs.path is None and tracefs.mountable:
        # CAP_SYS_ADMIN is not enough in a container or a user namespace: ask the kernel.
        err = _ask(tree, "tracefs mount", live.tracefs_mount_errno)
        if err:
            tree.note(f"tracefs: mounting it failed ({errno.errorcode.get(err, err)}) in a"
                      " private mount namespace: it cannot be mounted here")
            tracefs = attrs.evolve(tracefs, mountable=False)
    if tracefs.path is not None:
        writable = _ask(tree, "tracefs writable", lambda: live.tracefs_writable(tracefs.path or ""))
        tracefs = attrs.evolve(tracefs, writable=writable)
        if tracefs.eprobes and writable:
            strings = _ask(tree, "eprobe strings", lambda: live.eprobe_strings(tracefs.path or ""))
            tracefs = attrs.evolve(tracefs, eprobe_strings=strings)
    bcc = _ask(tree, "bcc", live.bcc) or Bcc(None, None, "could not be checked")
    return Capabilities(
        root=root,
        kernel=Kernel(rel, kernel.parse_version(rel), arch),
        btf=kernel.btf(tree, rel),
        headers=kernel.headers(tree, rel),
        config=cfg,
        bpf=_bpf(tree, live),
        privileges=privileges,
        lockdown=system.lockdown(tree, mounted),
        tracefs=tracefs,
        libbpf=_ask(tree, "libbpf", live.libbpf),
        bcc=bcc,
        c_libraries=c_libraries(tree, arch),
        container=system.container(tree, status, mounted),
        io_uring=_io_uring(tree, live),
        unchecked=tuple(tree.unchecked),
    )


def _io_uring(tree: Tree, live: Live) -> IoUring:
    disabled = tree.read_int(IO_URING_DISABLED_SYSCTL)
    tracepoints = _ask(tree, "io_uring tracepoints", lambda: live.io_uring_tracepoints())
    layout = _ask(tree, "io_uring request layout", lambda: live.io_uring_layout())
    return IoUring(disabled, tracepoints, layout)
