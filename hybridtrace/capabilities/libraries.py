"""C libraries for uprobes: glibc's libc.so.6 and musl's loader, in the usual dirs."""

from __future__ import annotations

import re
from typing import List, Optional, Tuple

from hybridtrace.capabilities.files import Tree
from hybridtrace.capabilities.model import Library

LIB_DIRS = (
    "/lib/{triplet}", "/usr/lib/{triplet}", "/lib64", "/usr/lib64", "/lib", "/usr/lib",
)
TRIPLETS = {
    "x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu", "i686": "i386-linux-gnu",
    "i386": "i386-linux-gnu", "armv7l": "arm-linux-gnueabihf", "ppc64le": "powerpc64le-linux-gnu",
    "s390x": "s390x-linux-gnu", "riscv64": "riscv64-linux-gnu",
}
# "GNU C Library (Debian GLIBC 2.36-9+deb12u4) stable release version 2.36."
_GLIBC_BANNER = re.compile(rb"GNU C Library[^\n]*?release version (\d+\.\d+(?:\.\d+)?)")
_MAX_LIB = 32 << 20


def glibc_version(tree: Tree, path: str) -> Optional[str]:
    data = tree.read_bytes(path, _MAX_LIB)
    match = _GLIBC_BANNER.search(data or b"")
    if match:
        return match.group(1).decode()
    name = re.search(r"libc-(\d+\.\d+)\.so$", tree.resolve(path) or "")
    return name.group(1) if name else None


def c_libraries(tree: Tree, arch: str) -> Tuple[Library, ...]:
    """The first glibc and the first musl found; paths as the machine sees them."""
    triplet = TRIPLETS.get(arch, f"{arch}-linux-gnu")
    dirs = [d.format(triplet=triplet) for d in LIB_DIRS]
    found: List[Library] = []
    glibc = next((f"{d}/libc.so.6" for d in dirs if tree.isfile(f"{d}/libc.so.6")), None)
    if glibc is not None:
        found.append(Library(glibc, glibc_version(tree, glibc)))
    for d in dirs:
        names = [n for n in tree.listdir(d) or ()
                 if re.match(r"ld-musl-.*\.so\.1$", n) and tree.isfile(f"{d}/{n}")]
        if names:
            found.append(Library(f"{d}/{names[0]}", None))  # musl keeps no version banner
            break
    if not found:
        tree.note("c libraries: no libc.so.6 or ld-musl-*.so.1 in " + ", ".join(dirs[:2]))
    return tuple(found)
