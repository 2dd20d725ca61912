"""What tracefs offers: location, mountability, dynamic events, README features.

Only reads; probe never mounts tracefs. A location counts when its events/
directory is there (a lazy debugfs automount may be missing from mountinfo);
a mount we cannot read (tracefs is root-only) is reported with unknown features.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

from hybridtrace.capabilities.files import Tree
from hybridtrace.capabilities.model import KernelConfig, Tracefs
from hybridtrace.vocabulary import TRACEPOINTS

LOCATIONS = (("/sys/kernel/tracing", "tracefs"), ("/sys/kernel/debug/tracing", "debugfs"))


def locate(tree: Tree, mounted: List[Tuple[str, str]]) -> Tuple[Optional[str], Optional[str], bool]:
    """(path, via, readable): where tracefs is, and whether we can look inside."""
    places = list(LOCATIONS) + [(mp, "tracefs") for mp, fs in mounted
                                if fs == "tracefs" and mp not in dict(LOCATIONS)]
    for path, via in places:
        if tree.isdir(path + "/events"):
            return path, via, True
    for path, via in places:
        parent_fs = "debugfs" if via == "debugfs" else "tracefs"
        mount_point = path.rsplit("/", 1)[0] if via == "debugfs" else path
        if (mount_point, parent_fs) in mounted and tree.listdir(path) is None:
            tree.note(f"tracefs: mounted at {path} but not readable by us (root only);"
                      " probe-event features unknown")
            return path, via, False
    return None, None, False


def mountable(tree: Tree, cap_sys_admin: bool) -> Optional[bool]:
    text = tree.read_text("/proc/filesystems")
    if text is None:
        tree.note("tracefs: /proc/filesystems unreadable, cannot tell if tracefs mounts")
        return None
    names = {line.split()[-1] for line in text.splitlines() if line.split()}
    return "tracefs" in names and cap_sys_admin  # tracefs.ensure_mounted mounts tracefs


def fetch_types(readme: str) -> Tuple[str, ...]:
    """The probe argument types the README lists after "type:"."""
    lines = readme.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"\s*type:\s*(.*)$", line)
        if not match:
            continue
        text = match.group(1)
        for cont in lines[i + 1:]:
            if re.match(r"\s*[\w ]+:\s", cont) or not cont[:1].isspace():
                break
            text += " " + cont.strip()
        return tuple(t.strip() for t in text.split(",") if t.strip())
    return ()


def trace_clocks(text: Optional[str]) -> Tuple[str, ...]:
    return tuple(w.strip("[]") for w in (text or "").split())


def tracepoints(tree: Tree, path: str) -> Dict[str, bool]:
    return {tp: tree.isfile(f"{path}/events/{tp}/format") for tp in TRACEPOINTS}


def eprobes(tree: Tree, readme: str, path: str, cfg: KernelConfig) -> Optional[bool]:
    """The README lists "e[:" even with CONFIG_EPROBE_EVENTS off (6.18), so ask the config.

    Before that option existed (5.15 to 6.1 kernels) eprobes came with
    CONFIG_PROBE_EVENTS: a config without the symbol at all trusts the README.
    """
    listed = bool(re.search(r"^\s*e\[:\[", readme, re.M)) and tree.exists(path + "/dynamic_events")
    if cfg.source is None:
        if listed:
            tree.note("eprobes: README lists them but no kernel config confirms"
                      " CONFIG_EPROBE_EVENTS")
        return listed
    value = cfg.items.get("CONFIG_EPROBE_EVENTS")
    return listed and (value is None or value in ("y", "m"))


def probe_tracefs(tree: Tree, mounted: List[Tuple[str, str]], cap_sys_admin: bool,
                  cfg: KernelConfig) -> Tracefs:
    path, via, readable = locate(tree, mounted)
    can_mount = mountable(tree, cap_sys_admin)
    if path is None or not readable:
        if path is None:
            tree.note("tracefs: not mounted; probe-event features unknown until it is")
        return Tracefs(path, via, can_mount, None, None, None, None, None, (), None, {}, ())
    readme = tree.read_text(path + "/README") or ""
    if not readme:
        tree.note(f"tracefs: {path}/README unreadable; fetch types unknown")
    return Tracefs(
        path=path,
        via=via,
        mountable=can_mount,
        writable=None,  # filled in by probe through the live seam
        kprobe_events=tree.exists(path + "/kprobe_events"),
        uprobe_events=tree.exists(path + "/uprobe_events"),
        dynamic_events=tree.exists(path + "/dynamic_events"),
        eprobes=eprobes(tree, readme, path, cfg),
        fetch_types=fetch_types(readme),
        user_deref=("+|-[u]<offset>" in readme) if readme else None,
        tracepoints=tracepoints(tree, path),
        trace_clocks=trace_clocks(tree.read_text(path + "/trace_clock")),
    )
