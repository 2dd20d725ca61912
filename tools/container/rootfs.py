"""The root filesystem hybridtrace's test containers run from, for this machine's
architecture.

No image registry is reachable here, so the containers' root is a directory of
Debian packages unpacked by tools/vm/rootfs.py (the same private apt and
``dpkg-deb -x``; no maintainer script runs). It holds what hybridtrace needs at run
time (Python, libbpf, the pure-Python attrs) plus a shell and coreutils for the
workloads; hybridtrace itself is bind-mounted from the checkout (read-only) or
installed by the Containerfile.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import List, Optional

from tools.vm import rootfs

CACHE = os.path.join(os.path.dirname(rootfs.CACHE), "container-rootfs")

PACKAGES = (
    "bash", "dash", "coreutils", "util-linux", "procps", "base-passwd", "libc-bin",
    "findutils", "grep", "sed",
    "python3", "libbpf1",
    "libcap2-bin",  # capsh: the capability sets a container really holds
)


def host_arch() -> str:
    """Debian's name for this machine's architecture (amd64, arm64)."""
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()


def build(suite: str = "bookworm", arch: Optional[str] = None, cache: str = CACHE) -> str:
    """The container root filesystem, built once (cached); returns its directory."""
    return rootfs.build(suite, arch or host_arch(), cache=cache, packages=PACKAGES)


def main(argv: Optional[List[str]] = None) -> int:
    return rootfs.main(argv, "tools.container.rootfs", __doc__.splitlines()[0], host_arch(),
                       lambda suite, arch: build(suite, arch))


if __name__ == "__main__":
    sys.exit(main())
