"""Copy what the recorders wrote inside a VM into tests/fixtures (the trees
and trace_pipe recordings of VM kernels belong to the matrix)."""

from __future__ import annotations

import os
import shutil
from typing import Any, Dict, List

from tools.vm.runs import REPO


def install(run_dir: str, result: Dict[str, Any]) -> List[str]:
    """Copy recordings whose step succeeded; returns the fixture paths written."""
    written: List[str] = []
    steps = result.get("steps", {})
    for step, sub in (("record_kernel_tree", "kernels"), ("record_trace_pipe", "trace_pipe"),
                      ("record_ftrace_stream_kprobe", "ftrace_stream"),
                      ("record_ftrace_stream_eprobe", "ftrace_stream"),
                      ("record_ftrace_uring_kprobe", "ftrace_uring"),
                      ("record_ftrace_uring_eprobe", "ftrace_uring")):
        if steps.get(step, {}).get("rc") != 0:
            continue
        src_top = os.path.join(run_dir, sub)
        if not os.path.isdir(src_top):
            continue
        tier = step.rsplit("_", 1)[1]
        for name in os.listdir(src_top):
            if sub in ("ftrace_stream", "ftrace_uring") and f"-{tier}" not in name:
                continue
            dest = os.path.join(REPO, "tests", "fixtures", sub, name)
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(os.path.join(src_top, name), dest, symlinks=True)
            written.append(os.path.relpath(dest, REPO))
    return written
