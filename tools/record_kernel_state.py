#!/usr/bin/env python3
"""Record the kernel files hybridtrace.kernel_state parses, from live sessions of ours.

    sudo .venv/bin/python tools/record_kernel_state.py --out tests/fixtures/kernel_state/NAME

Opens an ftrace session (instance + probe group) and an ebpf-core session
(BPF programs, maps, links), then copies, while they are open:
uprobe_events, kprobe_events, dynamic_events, the top-level set_event and
the instance's set_event as they are, and /proc/self/fdinfo/N of every fd of
this process. manifest.json keeps what the unit tests compare the parsers
with, as the kernel itself says it: this pid, our instance names, and each
fd's /proc/self/fd/N link target (anon_inode:bpf-prog, anon_inode:bpf-map,
anon_inode:bpf_link, ...; paths are not kept). Both sessions are closed before it exits.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import sys
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import hybridtrace
from hybridtrace import tracefs
from hybridtrace.vocabulary import owner_of

FTRACE_TIERS = ("uprobe", "eprobe", "kprobe")  # tiers that add a probe group


def _copy(src: str, dst: str) -> None:
    try:
        with open(src, "rb") as f:
            data = f.read()
    except OSError:
        return
    with open(dst, "wb") as f:
        f.write(data)


def record(out: str) -> int:
    path = tracefs.find()
    if path is None:
        print("record_kernel_state: tracefs is not mounted", file=sys.stderr)
        return 1
    os.makedirs(os.path.join(out, "fdinfo"), exist_ok=True)
    with contextlib.ExitStack() as stack:
        tier = ""
        for name in FTRACE_TIERS:
            try:
                stack.enter_context(hybridtrace.trace("exec", "ftrace", tier=name))
            except Exception as exc:  # a tier this kernel lacks: try the next
                print(f"record_kernel_state: ftrace/{name}: {exc}", file=sys.stderr)
                continue
            tier = name
            break
        stack.enter_context(hybridtrace.trace("open", "ebpf-core"))
        for name in ("uprobe_events", "kprobe_events", "dynamic_events", "set_event"):
            _copy(os.path.join(path, name), os.path.join(out, name))
        inst_dir = os.path.join(path, "instances")
        names = sorted(n for n in os.listdir(inst_dir) if owner_of(n) == os.getpid())
        for name in names[:1]:
            _copy(os.path.join(inst_dir, name, "set_event"),
                  os.path.join(out, "instance_set_event"))
        fds: Dict[str, str] = {}
        for fd in sorted(os.listdir("/proc/self/fdinfo"), key=int):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue  # the fd listing itself, closed meanwhile
            # Only the kernel's own labels matter; a file's path would be noise.
            fds[fd] = target if target.startswith("anon_inode:") else "(not anonymous)"
            _copy(f"/proc/self/fdinfo/{fd}", os.path.join(out, "fdinfo", fd))
    leftover: List[str] = [n for n in os.listdir(inst_dir) if owner_of(n) == os.getpid()]
    manifest = {
        "recorded": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "pid": os.getpid(),
        "ftrace_tier": tier,
        "instances": names,
        "fd_targets": fds,
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    if leftover:
        print(f"record_kernel_state: left behind: {leftover}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory to write the recording into")
    return record(parser.parse_args().out)


if __name__ == "__main__":
    sys.exit(main())
