"""Every tracer the bench compares, and how to start it for exec or open.

Ours run through the CLI with ``--json`` and a forced backend/tier, as a user
would; the reference tools run as shipped by Debian.
"""

from __future__ import annotations

import glob
import os
import sys
from typing import Dict, List, Optional, Tuple

import attrs

# (name, CLI options) for each hybridtrace backend and ftrace tier, best first.
OURS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("ebpf-core", ("--backend", "ebpf-core", "--ebpf-attach", "tracepoint")),
    ("ebpf-core/tp_btf", ("--backend", "ebpf-core", "--ebpf-attach", "tp_btf")),
    ("ebpf-bcc", ("--backend", "ebpf-bcc")),
    ("ftrace/kprobe", ("--backend", "ftrace", "--tier", "kprobe")),
    ("ftrace/eprobe", ("--backend", "ftrace", "--tier", "eprobe")),
    ("ftrace/uprobe", ("--backend", "ftrace", "--tier", "uprobe")),
    ("ftrace/tracepoint", ("--backend", "ftrace", "--tier", "tracepoint")),
)
LIBBPF_TOOLS = {"exec": "/usr/sbin/execsnoop", "open": "/usr/sbin/opensnoop"}
BCC_TOOLS = {"exec": "/usr/sbin/execsnoop-bpfcc", "open": "/usr/sbin/opensnoop-bpfcc"}
# Where tools/fetch_bcc_headers.sh puts a borrowed kernel header tree.
HEADER_TREES = "/var/cache/hybridtrace/bcc-headers/*/.complete"


@attrs.frozen(slots=True)
class Tracer:
    name: str  # e.g. "hybridtrace ebpf-core", "libbpf-tools", "bcc-python"
    family: str  # "hybridtrace", "libbpf-tools" or "bcc"
    kind: str  # "exec" or "open"
    argv: Tuple[str, ...]
    output: str  # "jsonl" or "text"
    env: Dict[str, str] = attrs.Factory(dict)  # added to the bench's environment


def find_headers() -> Optional[str]:
    """A header tree from tools/fetch_bcc_headers.sh, so BCC gets past compiling."""
    found = sorted(glob.glob(HEADER_TREES))
    return os.path.dirname(found[-1]) if found else None


def hybridtrace_cli(repo: str) -> str:
    """The venv's entry point (root's PATH may not have it): the checkout's own, or, in a
    checkout without one (a git worktree), the one beside this Python."""
    own = os.path.join(repo, ".venv", "bin", "hybridtrace")
    return own if os.path.exists(own) else os.path.join(os.path.dirname(sys.executable),
                                                        "hybridtrace")


def tracers(kind: str, repo: str, headers: Optional[str] = None) -> List[Tracer]:
    """Every tracer of kind; with headers, BCC-based ones compile against that tree."""
    cli = hybridtrace_cli(repo)
    ours_env = {"HYBRIDTRACE_BCC_HEADERS": headers} if headers else {}
    bcc_env = {"BCC_KERNEL_SOURCE": headers} if headers else {}
    snoop = "execsnoop" if kind == "exec" else "opensnoop"
    # -x: execsnoop shows failed execs too (opensnoop's -x would mean failed only).
    extra: Tuple[str, ...] = ("-x",) if kind == "exec" else ()
    found = [
        Tracer(name=f"hybridtrace {name}", family="hybridtrace", kind=kind,
               argv=(cli, snoop, "--json", *extra, *options), output="jsonl",
               env=ours_env if name == "ebpf-bcc" else {})
        for name, options in OURS
    ]
    found.append(Tracer(name="libbpf-tools", family="libbpf-tools", kind=kind,
                        argv=(LIBBPF_TOOLS[kind],), output="text"))
    found.append(Tracer(name="bcc-python", family="bcc", kind=kind,
                        argv=(BCC_TOOLS[kind],), output="text", env=bcc_env))
    return found
