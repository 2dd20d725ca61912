#!/usr/bin/env python3
"""Extract a Debian kernel's BTF from its image package, for any architecture.

The ebpf-core objects are built for every architecture we ship (x86_64,
aarch64) on whichever machine builds them, so each needs the vmlinux.h of a
kernel of that architecture. A kernel built with CONFIG_DEBUG_INFO_BTF carries
its BTF inside the image (the .BTF section, between __start_BTF and
__stop_BTF): this downloads the image package with a private apt configuration
(the host's apt sources and lists are not touched), unpacks /boot/vmlinuz-*,
decompresses it if needed and cuts the BTF blob out by its header.

    python tools/kernel_btf.py --arch arm64 [--suite bookworm] --out /tmp/arm64.btf
    python tools/build_bpf.py --vmlinux /tmp/arm64.btf --arch aarch64
"""

from __future__ import annotations

import argparse
import glob
import gzip
import os
import struct
import subprocess
import sys
import tempfile
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.vm.apt import PrivateApt

BTF_MAGIC = 0xEB9F
_HEADER = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type/str off+len


def btf_blob(image: bytes) -> Optional[bytes]:
    """The BTF blob in a kernel image: the first valid little-endian BTF header."""
    start = 0
    needle = struct.pack("<HBB", BTF_MAGIC, 1, 0)
    while True:
        at = image.find(needle, start)
        if at < 0 or at + _HEADER.size > len(image):
            return None
        _m, _v, _f, hdr_len, type_off, type_len, str_off, str_len = _HEADER.unpack_from(image, at)
        end = at + hdr_len + max(type_off + type_len, str_off + str_len)
        # A real header is 24 bytes, its type section first and its string table
        # after, ending in a NUL inside the image.
        if (hdr_len == _HEADER.size and type_off == 0 and str_off == type_len
                and end <= len(image) and image[end - 1] == 0):
            return image[at:end]
        start = at + 1


def _image_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":  # gzip (arm64 vmlinuz on some releases)
        data = gzip.decompress(data)
    return data


def main(argv: Optional[list] = None) -> int:  # type: ignore[type-arg]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", required=True, help="Debian architecture: amd64, arm64")
    parser.add_argument("--suite", default="bookworm")
    parser.add_argument("--package", help="default: what linux-image-ARCH depends on")
    parser.add_argument("--cache", default="/var/cache/hybridtrace/kernel-btf")
    parser.add_argument("--out", required=True, help="where to write the raw BTF")
    args = parser.parse_args(argv)
    apt = PrivateApt.for_suite(os.path.join(args.cache, args.arch), args.suite, None, args.arch)
    try:
        apt.update()
        package = args.package or apt.depends(f"linux-image-{args.arch}", "linux-image-")
        if package is None:
            print(f"kernel_btf: no linux-image-{args.arch} in {args.suite}", file=sys.stderr)
            return 1
        with tempfile.TemporaryDirectory(prefix="ht-kernel-btf-") as tmp:
            (deb,) = apt.download([package], os.path.join(tmp, "deb"))
            root = os.path.join(tmp, "root")
            subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
            images = glob.glob(os.path.join(root, "boot", "vmlinuz-*"))
            if not images:
                print(f"kernel_btf: {package} has no /boot/vmlinuz-*", file=sys.stderr)
                return 1
            blob = btf_blob(_image_bytes(images[0]))
    except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
        print(f"kernel_btf: {exc}", file=sys.stderr)
        return 1
    if blob is None:
        print(f"kernel_btf: no BTF in {package}'s image (CONFIG_DEBUG_INFO_BTF off?)",
              file=sys.stderr)
        return 1
    with open(args.out, "wb") as f:
        f.write(blob)
    print(f"{args.out}: BTF of {package} ({args.suite}), {len(blob)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
