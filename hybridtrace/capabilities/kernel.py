"""Kernel identity, BTF, headers and build config, read from files under root."""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

from hybridtrace.capabilities.files import Tree
from hybridtrace.capabilities.model import KCONFIG_ITEMS, Btf, Headers, KernelConfig

_RAW_BTF_MAGIC = (b"\x9f\xeb", b"\xeb\x9f")  # little- and big-endian 0xeB9F
_ELF_MAGIC = b"\x7fELF"


def parse_version(release: str) -> Tuple[int, int, int]:
    """Parse "6.1.0-30-amd64" as (6, 1, 0); missing parts are 0."""
    nums = [int(n) for n in re.findall(r"\d+", release.split("-")[0])[:3]]
    while len(nums) < 3:
        nums.append(0)
    return nums[0], nums[1], nums[2]


def release(tree: Tree) -> str:
    text = tree.read_text("/proc/sys/kernel/osrelease")
    if text is None or not text.strip():
        tree.note("kernel release: /proc/sys/kernel/osrelease unreadable")
        return "unknown"
    return text.strip()


def btf_search_order(rel: str) -> Tuple[str, ...]:
    """Where libbpf looks for kernel BTF (btf__load_vmlinux_btf), in its order."""
    return (
        "/sys/kernel/btf/vmlinux",
        f"/boot/vmlinux-{rel}",
        f"/lib/modules/{rel}/vmlinux-{rel}",
        f"/lib/modules/{rel}/build/vmlinux",
        f"/usr/lib/modules/{rel}/kernel/vmlinux",
        f"/usr/lib/debug/boot/vmlinux-{rel}",
        f"/usr/lib/debug/boot/vmlinux-{rel}.debug",
        f"/usr/lib/debug/lib/modules/{rel}/vmlinux",
    )


def btf(tree: Tree, rel: str) -> Btf:
    """First file in libbpf's order that starts like raw BTF or an ELF image."""
    searched = btf_search_order(rel)
    for path in searched:
        head = tree.read_bytes(path, 4)
        if head is None:
            continue
        if head[:2] in _RAW_BTF_MAGIC or head == _ELF_MAGIC:
            return Btf(path, searched)
        tree.note(f"btf: {path} is neither raw BTF nor ELF")
    return Btf(None, searched)


def _header_tree(tree: Tree, link: str) -> Optional[str]:
    """The link's target when it is a directory holding include/ or a Makefile."""
    target = tree.resolve(link)
    if target is None or not tree.isdir(target):
        return None
    if tree.exists(target + "/Makefile") or tree.isdir(target + "/include"):
        return target
    return None


def headers(tree: Tree, rel: str) -> Headers:
    base = f"/lib/modules/{rel}"
    return Headers(
        build=_header_tree(tree, base + "/build"),
        source=_header_tree(tree, base + "/source"),
        kheaders=tree.exists("/sys/kernel/kheaders.tar.xz"),
    )


def parse_config(text: str) -> Dict[str, str]:
    """CONFIG_X -> value; "n" for "# CONFIG_X is not set" (a symbol the kernel
    has but disabled, unlike one it doesn't have at all)."""
    items: Dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"(CONFIG_\w+)=(.*)$", line.strip())
        if match:
            items[match.group(1)] = match.group(2).strip('"')
            continue
        match = re.match(r"# (CONFIG_\w+) is not set$", line.strip())
        if match:
            items[match.group(1)] = "n"
    return items


CONFIG_PLACES = ("/proc/config.gz", "/boot/config-{rel}")


def config(tree: Tree, rel: str) -> KernelConfig:
    """The items we care about from /proc/config.gz, else /boot/config-R."""
    places: List[str] = [p.format(rel=rel) for p in CONFIG_PLACES]
    for place in places:
        text = tree.read_gzip_text(place) if place.endswith(".gz") else tree.read_text(place)
        if text is None:
            continue
        found = parse_config(text)
        wanted: Dict[str, Optional[str]] = {k: found.get(k) for k in KCONFIG_ITEMS}
        return KernelConfig(place, wanted)
    tree.note("kernel config: neither " + " nor ".join(places) + " is readable")
    return KernelConfig(None, {k: None for k in KCONFIG_ITEMS})
