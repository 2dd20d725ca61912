"""Which kernel headers BCC will compile against, and whether they fit this kernel.

BCC needs the running kernel's headers. A host without them (like a kernel
with no headers package) may borrow another release's tree, but only when the
user points at it explicitly: struct layouts then differ, so the programs
take task_struct/mm_struct offsets from BTF, or skip those reads.
"""

from __future__ import annotations

import os
import re
from typing import Mapping, Optional

import attrs

ENV_VAR = "HYBRIDTRACE_BCC_HEADERS"
BCC_ENV_VAR = "BCC_KERNEL_SOURCE"  # BCC's own override, honoured the same way


@attrs.frozen(slots=True)
class HeaderTree:
    """Headers BCC will use. ``source`` is what BCC_KERNEL_SOURCE must be set to
    (None when BCC finds them itself under /lib/modules or in kheaders)."""

    source: Optional[str]
    release: Optional[str]  # UTS_RELEASE of the tree, when readable
    exact: bool  # the tree is for the running kernel
    origin: str  # human wording: where they came from


class HeadersError(Exception):
    """Headers were named but are unusable, or none exist."""


def tree_release(path: str) -> Optional[str]:
    """UTS_RELEASE from a prepared kernel tree, or None."""
    for rel in ("include/generated/utsrelease.h", "include/linux/utsrelease.h"):
        try:
            with open(os.path.join(path, rel)) as f:
                m = re.search(r'UTS_RELEASE\s+"([^"]+)"', f.read())
        except OSError:
            continue
        if m:
            return m.group(1)
    return None


def install_hint(release: str) -> str:
    """How a user gets headers BCC can use: only package names and commands they have."""
    return (f"install this kernel's headers (Debian/Ubuntu: linux-headers-{release};"
            f" Fedora/RHEL: kernel-devel-{release}), or point ${ENV_VAR} at one directory"
            " holding another release's headers (Debian: `dpkg -x` both linux-headers-R and"
            " linux-headers-R-common into it)")


def _explicit(path: str, var: str, running: str) -> HeaderTree:
    missing = [rel for rel in ("include/linux/kconfig.h", "include/generated/autoconf.h")
               if not os.path.isfile(os.path.join(path, rel))]
    if missing:
        raise HeadersError(
            f"${var}={path} is not a kernel header tree with generated files"
            f" (no {missing[0]}): unpack both linux-headers-R and linux-headers-R-common"
            " into one directory"
        )
    release = tree_release(path)
    exact = release == running
    origin = f"${var}={path}"
    return HeaderTree(path, release, exact, origin)


def locate(running: str, build: Optional[str], kheaders: bool,
           environ: Optional[Mapping[str, str]] = None) -> HeaderTree:
    """Pick the headers BCC will use for kernel ``running``, best first.

    ``build`` is /lib/modules/RELEASE/build when it resolves to a tree.
    """
    env = os.environ if environ is None else environ
    for var in (ENV_VAR, BCC_ENV_VAR):
        path = env.get(var)
        if path:
            return _explicit(path, var, running)
    if build is not None:
        return HeaderTree(None, tree_release(build) or running, True,
                          f"/lib/modules/{running}/build")
    if kheaders:
        return HeaderTree(None, running, True, "/sys/kernel/kheaders.tar.xz")
    raise HeadersError(
        f"no kernel headers for {running}: {install_hint(running)}"
    )
