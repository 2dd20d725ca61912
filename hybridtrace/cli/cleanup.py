"""Remove tracefs instances and dynamic events whose owning hybridtrace process is gone
(BPF programs die with their process and need no cleanup).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from hybridtrace import tracefs

NAME = "cleanup"
HELP = "remove tracefs instances and probes left by dead hybridtrace sessions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """cleanup takes no options: it removes only what dead sessions of ours left."""


# Set in the private mount namespace cleanup re-runs itself in: never recurse.
_PRIVATE = "HYBRIDTRACE_CLEANUP_PRIVATE_MOUNT"


def _in_private_mount() -> int:
    """tracefs is not mounted here, yet instances live on in the kernel: look through a
    mount of our own in a private mount namespace, leaving the user's mounts as they are."""
    print("hybridtrace: tracefs is not mounted here; looking through a private mount of it"
          " (your mounts are unchanged)", file=sys.stderr)
    script = 'mount -t tracefs nodev /sys/kernel/tracing && exec "$@"'
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                           "sh", sys.executable, "-m", "hybridtrace", "cleanup"],
                          env=dict(os.environ, **{_PRIVATE: "1"}))
    return done.returncode


def run(args: argparse.Namespace) -> int:
    from hybridtrace.backends.ftrace.cleanup import remove_stale

    path = tracefs.find()
    if path is None:
        if os.geteuid() == 0 and not os.environ.get(_PRIVATE) and shutil.which("unshare"):
            return _in_private_mount()
        print("hybridtrace: tracefs is not mounted here and cannot be mounted by us, so what"
              " killed sessions left cannot be seen; run hybridtrace cleanup as root",
              file=sys.stderr)
        return 1
    try:
        removed = remove_stale(path)
    except PermissionError:
        print(f"hybridtrace: cannot write {path}: run as root", file=sys.stderr)
        return 2
    for line in removed:
        print(line)
    print(f"removed {len(removed)} leftover(s)", file=sys.stderr)
    return 0
