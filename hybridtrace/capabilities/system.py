"""Privileges, bpf/perf sysctls, lockdown and container hints, from files under root."""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Tuple

from hybridtrace.capabilities.files import Tree
from hybridtrace.capabilities.model import Container
from hybridtrace.containers import parse
from hybridtrace.text_fields import colon_fields
from hybridtrace.vocabulary import INIT_PIDNS_INODE

_CONTAINER_CGROUP = re.compile(r"docker|kubepods|containerd|libpod|podman|lxc|crio|garden")


def status_fields(tree: Tree) -> Dict[str, str]:
    """Fields of /proc/self/status (name -> value text)."""
    text = tree.read_text("/proc/self/status")
    if text is None:
        tree.note("privileges: /proc/self/status unreadable")
        return {}
    return colon_fields(text)


def cap_effective(tree: Tree, status: Dict[str, str]) -> int:
    raw = status.get("CapEff")
    if raw is None:
        if status:
            tree.note("privileges: no CapEff in /proc/self/status")
        return 0
    try:
        return int(raw, 16)
    except ValueError:
        tree.note(f"privileges: unparsable CapEff {raw!r}")
        return 0


def sysctls(tree: Tree) -> Tuple[Optional[int], Optional[int]]:
    """(unprivileged_bpf_disabled, perf_event_paranoid)"""
    ubd = tree.read_int("/proc/sys/kernel/unprivileged_bpf_disabled")
    if ubd is None:
        tree.note("unprivileged_bpf_disabled: unreadable (no bpf() in this kernel?)")
    paranoid = tree.read_int("/proc/sys/kernel/perf_event_paranoid")
    if paranoid is None:
        tree.note("perf_event_paranoid: unreadable")
    return ubd, paranoid


def mounts(tree: Tree) -> List[Tuple[str, str]]:
    """(mount point, filesystem type) pairs from /proc/self/mountinfo, without the mounts
    that later ones hide: mountinfo lists mounts in the order they were made, and a mount
    at or above an earlier mount point covers it (as an empty tmpfs over /sys/kernel/debug
    hides debugfs and its tracing/ in a container or tools/least_privilege.sh)."""
    text = tree.read_text("/proc/self/mountinfo")
    if text is None:
        tree.note("mounts: /proc/self/mountinfo unreadable")
        return []
    out: List[Tuple[str, str]] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if sep and len(fields) >= 5 and rfields:
            point = fields[4].replace("\\040", " ")
            under = point.rstrip("/") + "/"
            out = [(mp, fs) for mp, fs in out if mp != point and not mp.startswith(under)]
            out.append((point, rfields[0]))
    return out


def lockdown(tree: Tree, mounted: List[Tuple[str, str]]) -> Optional[str]:
    """The bracketed mode of "none [integrity] confidentiality", or None."""
    text = tree.read_text("/sys/kernel/security/lockdown")
    if text is not None:
        match = re.search(r"\[(\w+)\]", text)
        if match:
            return match.group(1)
        tree.note(f"lockdown: unparsable {text.strip()!r}")
        return None
    if not any(fstype == "securityfs" for _, fstype in mounted) and not tree.listdir(
        "/sys/kernel/security"
    ):
        cmdline = tree.read_text("/proc/cmdline") or ""
        match = re.search(r"(?:^|\s)lockdown=(none|integrity|confidentiality)\b", cmdline)
        if match:
            tree.note("lockdown: securityfs is not mounted; mode taken from the kernel"
                      " command line (it can only have been raised since boot)")
            return match.group(1)
        tree.note("lockdown: mode unknown, securityfs is not mounted at /sys/kernel/security"
                  " (mount -t securityfs none /sys/kernel/security to check)")
        return None
    tree.note("lockdown: no lockdown LSM (/sys/kernel/security/lockdown absent)")
    return None


def _cgroup(tree: Tree) -> Optional[str]:
    """The most specific cgroup path of this process (or of pid 1)."""
    for path in ("/proc/self/cgroup", "/proc/1/cgroup"):
        text = tree.read_text(path)
        if text is None:
            continue
        paths = [line.split(":", 2)[2] for line in text.splitlines() if line.count(":") >= 2]
        return max(paths, key=len) if paths else None
    tree.note("container: no readable /proc/self/cgroup")
    return None


def _runtime(tree: Tree, cgroup: Optional[str]) -> Optional[str]:
    """podman writes /run/.containerenv (engine="podman-4.3.1"), docker /.dockerenv;
    otherwise the runtime whose cgroup path shape names this process's cgroup."""
    env = tree.read_text("/run/.containerenv")
    if env is not None:
        match = re.search(r'^engine="([a-z-]+?)(?:-[0-9][^"]*)?"', env, re.MULTILINE)
        return match.group(1) if match else "podman"
    if tree.exists("/.dockerenv"):
        return "docker"
    ref = parse(cgroup)
    if ref is not None:
        return ref.runtime
    return "kubernetes" if cgroup is not None and "kubepods" in cgroup else None


def _pid_namespace_nested(tree: Tree, status: Dict[str, str]) -> Optional[bool]:
    """Whether we are outside the host's pid namespace: /proc/self/ns/pid names its inode
    ("pid:[4026531836]" is the host's). Without it, NSpid can only say yes (more than one
    level): inside a container /proc shows its own namespace's level alone."""
    link = re.fullmatch(r"pid:\[(\d+)\]", tree.readlink("/proc/self/ns/pid") or "")
    if link:
        return int(link.group(1)) != INIT_PIDNS_INODE
    nspid = status.get("NSpid")
    return True if nspid is not None and len(nspid.split()) > 1 else None


def _cgroup2(mounted: Sequence[Tuple[str, str]]) -> Optional[bool]:
    if any(fstype == "cgroup2" for _, fstype in mounted):
        return True
    return False if any(point == "/" for point, _ in mounted) else None


def container(tree: Tree, status: Dict[str, str],
              mounted: Sequence[Tuple[str, str]] = ()) -> Container:
    dockerenv = tree.exists("/.dockerenv") or tree.exists("/run/.containerenv")
    cgroup = _cgroup(tree)
    nested = _pid_namespace_nested(tree, status)
    hints = [dockerenv, bool(cgroup and _CONTAINER_CGROUP.search(cgroup)), bool(nested)]
    known = cgroup is not None or nested is not None or dockerenv
    return Container(
        in_container=any(hints) if known else None,
        pid_namespace_nested=nested,
        dockerenv=dockerenv,
        cgroup=cgroup,
        runtime=_runtime(tree, cgroup),
        cgroup2=_cgroup2(mounted),
    )
