"""Internal C library functions, found through separate debug symbols.

Some opens never pass an exported symbol: the dynamic loader opens
ld.so.cache and every shared library through its own ``__open64_nocancel``,
and glibc's opendir uses the hidden ``__openat64_nocancel``. When the
distribution's debug symbols are installed (Debian: libc6-dbg, found by the
library's GNU build id under /usr/lib/debug/.build-id/), their full symbol
table locates those functions, so uprobes can read those paths too.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Dict, Iterable, List, Optional

from hybridtrace.elf import ElfError, build_id, read_symbols

DEBUG_ROOT = "/usr/lib/debug"
_STT_FUNC = 2


def debug_file(path: str, root: str = DEBUG_ROOT) -> Optional[str]:
    bid = build_id(path)
    if bid is None or len(bid) < 3:
        return None
    candidate = os.path.join(root, ".build-id", bid[:2], bid[2:] + ".debug")
    return candidate if os.path.isfile(candidate) else None


def internal_functions(path: str, names: Iterable[str], root: str = DEBUG_ROOT) -> Dict[str, int]:
    """File offsets in ``path`` of functions named in its separate debug symbols.

    The debug file keeps symbol addresses but not the code, so addresses are
    turned into file offsets with the program headers of ``path`` itself.
    """
    debug = debug_file(path, root)
    if debug is None:
        return {}
    wanted = set(names)
    try:
        symbols, _ = read_symbols(debug, dynamic=False)
        _, segments = read_symbols(path)
    except (OSError, ElfError):
        return {}
    out: Dict[str, int] = {}
    for sym in symbols:
        if sym.name not in wanted or sym.type != _STT_FUNC or sym.section == 0:
            continue
        for seg in segments:
            if seg.vaddr <= sym.value < seg.vaddr + seg.filesz:
                out[sym.name] = sym.value - seg.vaddr + seg.offset
                break
    return out


def dynamic_loaders(libc_paths: Iterable[str]) -> List[str]:
    """glibc's dynamic loader(s) next to each libc.so.6 (real paths, no duplicates)."""
    out: List[str] = []
    for lib in libc_paths:
        if not re.match(r"libc[.-]", os.path.basename(lib)):
            continue  # musl's loader is its libc: nothing more to add
        for cand in sorted(glob.glob(os.path.join(os.path.dirname(lib), "ld-linux*.so.*"))):
            real = os.path.realpath(cand)
            if real not in out:
                out.append(real)
    return out
