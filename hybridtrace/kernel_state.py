"""Listing the kernel state of ours: tracefs instances, dynamic and enabled events, BPF fds.

Tracefs objects carry their owner's pid in their name (``hybridtrace_<pid>_<n>``
for instances and probe groups) and outlive it; BPF objects are anonymous to
us but live exactly as long as some process holds their fd, so they are found
in the owner's /proc/PID/fdinfo. Listing lives here, apart from removal
(backends/ftrace/cleanup.py), so that tests, tools and ``hybridtrace cleanup``
share one reading of the kernel's files and none needs a backend to check that
nothing was left behind. Parsers take text and are pure; readers return []
for what is missing or unreadable.
"""

from __future__ import annotations

import os
import re
from typing import List, Optional, Set, Tuple

import attrs

from hybridtrace import tracefs
from hybridtrace.text_fields import colon_fields
from hybridtrace.vocabulary import owner_of

# Every file a dynamic event can be listed in (dynamic_events repeats the others).
PROBE_FILES = ("uprobe_events", "kprobe_events", "dynamic_events")
# "p:GROUP/EVENT ...", "r10:GROUP/EVENT ...", "e:GROUP/EVENT ..."
_PROBE_LINE = re.compile(r"^[a-z]\w*:(?P<group>[^/\s]+)/(?P<event>\S+)")
# The key naming what a BPF fd is, most specific first (a link's fdinfo has prog_id too).
_BPF_KEYS = (("link_id", "link"), ("prog_id", "prog"), ("map_id", "map"), ("btf_id", "btf"))


@attrs.frozen(slots=True)
class Item:
    """One kernel object of ours: what it is, its name (or BPF id), where it was seen."""

    kind: str  # "instance", "probe", "enabled", "bpf-prog", "bpf-map", "bpf-link", "bpf-btf"
    name: str
    where: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.name}" + (f" ({self.where})" if self.where else "")


def _ours(name: str, owner: Optional[int]) -> bool:
    pid = owner_of(name)
    return pid is not None and (owner is None or pid == owner)


def parse_probes(text: str) -> List[Tuple[str, str]]:
    """(group, event) of each definition in uprobe_events/kprobe_events/dynamic_events."""
    found: List[Tuple[str, str]] = []
    for line in text.splitlines():
        match = _PROBE_LINE.match(line)
        if match:
            found.append((match.group("group"), match.group("event")))
    return found


def parse_enabled(text: str) -> List[Tuple[str, str]]:
    """(group, event) of each line of a set_event file ("GROUP:EVENT")."""
    found: List[Tuple[str, str]] = []
    for line in text.splitlines():
        group, sep, event = line.strip().partition(":")
        if sep and group and event:
            found.append((group, event))
    return found


def parse_fdinfo(text: str) -> Optional[Tuple[str, int]]:
    """("prog" | "map" | "link" | "btf", id) for a BPF fd's fdinfo; None for any other fd."""
    fields = colon_fields(text)
    for key, kind in _BPF_KEYS:
        if fields.get(key, "").isdigit():
            return kind, int(fields[key])
    return None


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read()
    except OSError:
        return None


def instances(path: str, owner: Optional[int] = None) -> List[str]:
    """Our instance names under tracefs ``path`` (of ``owner`` only, if given), sorted."""
    try:
        names = os.listdir(os.path.join(path, "instances"))
    except OSError:
        return []
    return sorted(n for n in names if _ours(n, owner))


def probes(path: str, owner: Optional[int] = None) -> List[Tuple[str, str, str]]:
    """(control file, group, event) of our dynamic events, each once (first file seen)."""
    found: List[Tuple[str, str, str]] = []
    seen: Set[Tuple[str, str]] = set()
    for file in PROBE_FILES:
        for group, event in parse_probes(_read(os.path.join(path, file)) or ""):
            if _ours(group, owner) and (group, event) not in seen:
                seen.add((group, event))
                found.append((file, group, event))
    return found


def enabled(path: str, owner: Optional[int] = None) -> List[str]:
    """Our events enabled in the top-level buffer (an instance's go with the instance)."""
    text = _read(os.path.join(path, "set_event")) or ""
    return [f"{g}/{e}" for g, e in parse_enabled(text) if _ours(g, owner)]


def bpf_held(pid: int, proc: str = "/proc") -> List[Item]:
    """The BPF programs, maps, links and BTF whose fds ``pid`` holds (none once it is gone)."""
    fdinfo = os.path.join(proc, str(pid), "fdinfo")
    try:
        fds = sorted(os.listdir(fdinfo), key=lambda fd: int(fd) if fd.isdigit() else -1)
    except OSError:
        return []
    held: List[Item] = []
    for fd in fds:
        parsed = parse_fdinfo(_read(os.path.join(fdinfo, fd)) or "")
        if parsed is not None:
            held.append(Item(f"bpf-{parsed[0]}", str(parsed[1]), f"fd {fd}"))
    return held


def tracefs_items(path: str, owner: Optional[int] = None) -> List[Item]:
    """Our instances, dynamic events and top-level enabled events under ``path``."""
    items = [Item("instance", name) for name in instances(path, owner)]
    items += [Item("probe", f"{g}/{e}", file) for file, g, e in probes(path, owner)]
    items += [Item("enabled", name, "set_event") for name in enabled(path, owner)]
    return items


def leftovers(owner: int, path: Optional[str] = None, proc: str = "/proc") -> List[Item]:
    """Everything of ours that names ``owner`` (tracefs) or is held by it (BPF)."""
    path = path or tracefs.find()
    items = tracefs_items(path, owner) if path is not None else []
    return items + bpf_held(owner, proc)
