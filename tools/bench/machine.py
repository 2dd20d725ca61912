"""The machine, kernel and tool versions a run measured (for the report)."""

from __future__ import annotations

import os
import platform
import subprocess
from typing import Dict, List

PACKAGES = ("libbpf-tools", "bpfcc-tools", "python3-bpfcc", "libbpf1", "clang-14", "gcc-12")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _packages(names: List[str]) -> Dict[str, str]:
    found: Dict[str, str] = {}
    for name in names:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name],
                              capture_output=True, text=True)
        found[name] = done.stdout.strip() if done.returncode == 0 else "not installed"
    return found


def _mem_total_mb() -> int:
    with open("/proc/meminfo") as f:
        return int(f.readline().split()[1]) // 1024


def describe(repo: str) -> Dict[str, object]:
    uname = os.uname()
    commit = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return {
        "kernel": uname.release, "kernel_version": uname.version, "arch": uname.machine,
        "cpu": _cpu_model(), "cpus": os.cpu_count(), "mem_mb": _mem_total_mb(),
        "python": platform.python_version(), "packages": _packages(list(PACKAGES)),
        "hybridtrace_commit": commit or "unknown",
    }
