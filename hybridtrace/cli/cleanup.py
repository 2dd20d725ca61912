"""`hybridtrace cleanup`: remove kernel state left by sessions that were killed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hybridtrace import tracefs


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "cleanup",
        help="remove tracefs instances and probes left by dead hybridtrace sessions",
        description="Remove tracefs instances and dynamic events whose owning hybridtrace"
        " process is gone (BPF programs die with their process and need no cleanup).",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from hybridtrace.backends.ftrace.cleanup import remove_stale

    path = tracefs.find()
    if path is None:
        print("tracefs is not mounted: nothing of ours can be left there", file=sys.stderr)
        return 0
    try:
        removed = remove_stale(path)
    except PermissionError:
        print(f"hybridtrace: cannot write {path}: run as root", file=sys.stderr)
        return 2
    for line in removed:
        print(line)
    print(f"removed {len(removed)} leftover(s)", file=sys.stderr)
    return 0
