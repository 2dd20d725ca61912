"""Root integration tests: real kernel, real processes, nothing left behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Iterator, List

import pytest

from hybridtrace import tracefs
from tests.conftest import require_root


def leftovers(owner: int) -> List[str]:
    """Kernel state of ours that names ``owner`` (tracefs) or is held by it (BPF)."""
    found: List[str] = []
    path = tracefs.find()
    tag = f"hybridtrace_{owner}_"
    if path is not None:
        inst_dir = os.path.join(path, "instances")
        if os.path.isdir(inst_dir):
            found += [f"instance {n}" for n in os.listdir(inst_dir) if tag in n]
        for name in ("uprobe_events", "kprobe_events", "dynamic_events"):
            try:
                with open(os.path.join(path, name)) as f:
                    found += [f"{name}: {line.strip()}" for line in f if tag in line]
            except OSError:
                pass
        try:
            with open(os.path.join(path, "set_event")) as f:
                found += [f"set_event: {line.strip()}" for line in f if "hybridtrace" in line]
        except OSError:
            pass
    bpftool = shutil.which("bpftool") or "/usr/sbin/bpftool"
    if os.path.exists(bpftool):
        out = subprocess.run([bpftool, "prog", "show", "-j"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            for prog in json.loads(out.stdout):
                pids = [p.get("pid") for p in prog.get("pids", [])]
                if owner in pids:
                    found.append(f"bpf prog {prog.get('id')} {prog.get('name')}")
    # Debian's bpftool is built without pid info ("pids" absent): the owner's
    # fdinfo names every BPF prog, map and link it still holds.
    found += [f"bpf fd {h}" for h in bpf_fds(owner)]
    return found


def bpf_fds(pid: int) -> List[str]:
    """prog_id/map_id/link_id of the BPF objects open in ``pid`` (empty if it is gone)."""
    held: List[str] = []
    fdinfo = f"/proc/{pid}/fdinfo"
    try:
        fds = os.listdir(fdinfo)
    except OSError:
        return held
    for fd in fds:
        try:
            with open(os.path.join(fdinfo, fd)) as f:
                held += [line.strip().replace("\t", "") for line in f
                         if line.split(":")[0] in ("prog_id", "map_id", "link_id")]
        except OSError:
            continue
    return held


@pytest.fixture(autouse=True)
def _root_and_clean() -> Iterator[None]:
    require_root()
    yield
    left = leftovers(os.getpid())
    assert not left, f"kernel state left behind: {left}"
