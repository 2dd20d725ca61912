"""`hybridtrace execsnoop -x` / `opensnoop -x` against Debian's libbpf-tools, same workload.

Both sides run at once with the same kernel-side uid filter, so the volume is
small and neither may lose anything: the events must be the same, and our
argv at least as complete (libbpf-tools puts the filename in argv[0]'s place).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import List, Set, Tuple

import pytest

from hybridtrace.output.jsonl import decode_bytes
from tests.integration.test_cli import Tracer
from tests.integration.test_ebpf_core import Reference

NOBODY = "65534"
SCRIPT = ("for i in 1 2 3; do cat /etc/hostname /ht-cli-nope-$i; /ht-cli-missing-$i a$i;"
          " /bin/true arg$i; done; exit 0")


def snoop(name: str) -> str:
    path = shutil.which(name) or f"/usr/sbin/{name}"
    if not os.path.exists(path):
        pytest.fail(f"libbpf-tools {name} is needed: tools/setup.sh installs it")
    return path


def run_workload() -> int:
    work = subprocess.Popen(["/bin/sh", "-c", SCRIPT], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=lambda: os.setuid(65534))
    assert work.wait(timeout=60) == 0
    return work.pid


def side_by_side(tool: str) -> Tuple[int, List[dict], List[bytes]]:  # type: ignore[type-arg]
    """Run the workload under `hybridtrace TOOL -x` and libbpf-tools' TOOL -x at once.

    Returns the workload's pid, our JSON records of that kind, their output lines;
    neither side may have lost anything.
    """
    ref = Reference([snoop(tool), "-x", "-u", NOBODY])
    tracer = Tracer([tool, "-x", "-u", NOBODY, "--json"])
    try:
        sh = run_workload()
    finally:
        out, _ = tracer.stop()
        theirs = ref.stop()
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert not [r for r in records if r["type"] == "lost"]
    kind = "exec" if tool == "execsnoop" else "open"
    return sh, [r for r in records if r["type"] == kind], theirs


def test_execsnoop_x_matches_libbpf_tools() -> None:
    sh, events, theirs_lines = side_by_side("execsnoop")
    pids: Set[int] = {sh} | {e["pid"] for e in events if e["ppid"] == sh}
    mine: List[Tuple[int, int, bytes]] = []
    for e in events:
        if e["pid"] in pids:
            argv = [decode_bytes(a) for a in e["argv"]]
            # the reference prints the filename where argv[0] is
            shown = b" ".join([decode_bytes(e["filename"]), *argv[1:]])
            mine.append((e["pid"], e["retval"], shown))
    theirs = [(int(f[1]), int(f[3]), f[4].rstrip(b" ") if len(f) > 4 else b"")
              for f in (line.split(None, 4) for line in theirs_lines)
              if len(f) >= 4 and f[1].isdigit() and int(f[1]) in pids]
    assert len(mine) == 10  # sh, 3 cat, 3 failed execs, 3 true
    assert sorted(mine) == sorted(theirs)
    assert sum(1 for e in events if e["pid"] in pids and e["retval"] < 0) == 3


def test_opensnoop_x_matches_libbpf_tools() -> None:
    sh, events, theirs_lines = side_by_side("opensnoop")
    # the workload's failed opens: cat's three /ht-cli-nope-N (and whatever the
    # loader and sh fail to open, the same on both sides)
    mine = sorted((e["pid"], decode_bytes(e["path"]), e["errno"]) for e in events)
    # opensnoop: PID COMM FD ERR PATH
    theirs = sorted((int(f[0]), f[4], int(f[3])) for f in
                    (line.split(None, 4) for line in theirs_lines)
                    if len(f) == 5 and f[0].isdigit())
    nope = [m for m in mine if m[1].startswith(b"/ht-cli-nope-")]
    assert len(nope) == 3 and all(m[2] == 2 for m in nope)
    assert sh > 0 and mine == theirs
