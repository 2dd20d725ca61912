"""Find the user-space engines: libbpf.so.1 (loaded, asked its version) and BCC.

BCC is the distro's python3-bpfcc; it is located and its version read from
bcc/version.py without importing it, because a virtualenv cannot import it
and importing it costs more than all of probe.
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
from typing import List, Optional

from hybridtrace.capabilities.model import Bcc, Library

PYTHON_DIST_DIRS = (
    "/usr/lib/python3/dist-packages",
    "/usr/lib/python3*/site-packages",
    "/usr/lib64/python3*/site-packages",
    "/usr/local/lib/python3*/dist-packages",
    "/usr/share/bcc/python",
)
LIBBCC_GLOBS = ("/usr/lib/*/libbcc.so.0", "/usr/lib/libbcc.so.0", "/usr/lib64/libbcc.so.0")


def _mapped_path(fragment: str) -> Optional[str]:
    """Where a shared object we loaded lives, from /proc/self/maps."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rstrip("\n").split(None, 5)[-1]
                if fragment in os.path.basename(path):
                    return path
    except OSError:
        pass
    return None


def load_libbpf() -> Optional[Library]:
    """ctypes-load libbpf.so.1 and ask it its version (libbpf 0.6+ exports it)."""
    try:
        lib = ctypes.CDLL("libbpf.so.1")
    except OSError:
        return None
    version: Optional[str] = None
    try:
        major, minor = lib.libbpf_major_version, lib.libbpf_minor_version
        major.restype = minor.restype = ctypes.c_uint32
        version = f"{major()}.{minor()}"
    except AttributeError:
        pass
    return Library(_mapped_path("libbpf.so") or "libbpf.so.1", version)


def _version_of(package_dir: str) -> Optional[str]:
    try:
        with open(os.path.join(package_dir, "version.py")) as f:
            match = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", f.read())
    except OSError:
        return None
    return match.group(1) if match else None


def _candidate_dirs() -> List[str]:
    dirs: List[str] = []
    for pattern in PYTHON_DIST_DIRS:
        dirs += sorted(glob.glob(os.path.join(pattern, "bcc")))
    return dirs


def find_bcc() -> Bcc:
    """Find the distro's BCC python module without importing it here.

    PyPI's "bcc" is an unrelated package, so a module counts only when it has
    BCC's libbcc.py; its version comes from bcc/version.py.
    """
    for pkg in _candidate_dirs():
        if not os.path.isfile(os.path.join(pkg, "libbcc.py")):
            continue
        version = _version_of(pkg)
        if not any(glob.glob(g) for g in LIBBCC_GLOBS):
            return Bcc(None, pkg, "found at " + pkg + " but libbcc.so.0 is missing"
                       " (apt-get install libbpfcc)")
        if version is None:
            return Bcc(None, pkg, "found at " + pkg + " but bcc/version.py is unreadable")
        return Bcc(version, pkg, None)
    return Bcc(None, None, "python3-bpfcc not found in " + ", ".join(PYTHON_DIST_DIRS[:2]))
