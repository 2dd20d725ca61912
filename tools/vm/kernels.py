"""Debian kernels for the matrix: fetched with a private apt, unpacked with
dpkg-deb into a cache (never installed into the host's /boot or /lib/modules)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Dict, List, Optional

import attr

from tools.vm.apt import PrivateApt

CACHE = "/var/cache/hybridtrace/kernels"


@attr.s(auto_attribs=True, frozen=True)
class KernelSpec:
    """A Debian kernel line: the suite whose linux-image-ARCH picks the release."""

    name: str
    suite: str
    security: Optional[str]
    arch: str = "amd64"  # Debian's name; arm64 kernels boot under qemu-system-aarch64

    @property
    def native(self) -> bool:
        """Whether this machine's own root filesystem can be the guest's."""
        return self.arch == "amd64"


SPECS: List[KernelSpec] = [
    KernelSpec("5.10", "bullseye", "bullseye-security"),
    KernelSpec("6.1", "bookworm", "bookworm-security"),
    KernelSpec("6.12", "bookworm-backports", None),
    # arm64: booted with a root filesystem of Debian's arm64 packages (tools/vm/rootfs.py)
    KernelSpec("6.1-arm64", "bookworm", "bookworm-security", "arm64"),
    KernelSpec("6.12-arm64", "bookworm-backports", None, "arm64"),
]


@attr.s(auto_attribs=True, frozen=True)
class Kernel:
    """An unpacked kernel: image, modules (depmod'ed) and its exact headers."""

    name: str
    release: str
    root: str  # dpkg-deb -x target: boot/, lib/modules/R, usr/src/...
    packages: Dict[str, str]  # package -> version, for the report
    headers_common: str  # linux-headers-R-common directory name under usr/src
    arch: str = "amd64"

    @property
    def vmlinuz(self) -> str:
        return os.path.join(self.root, "boot", f"vmlinuz-{self.release}")

    @property
    def moddir(self) -> str:
        return os.path.join(self.root, "lib", "modules", self.release)

    @property
    def headers_build(self) -> str:
        return os.path.join(self.root, "usr", "src", f"linux-headers-{self.release}")

    @property
    def headers_source(self) -> str:
        return os.path.join(self.root, "usr", "src", self.headers_common)


def spec_named(name: str) -> KernelSpec:
    for spec in SPECS:
        if spec.name == name:
            return spec
    raise KeyError(name)


def fetch(spec: KernelSpec, cache: str = CACHE) -> Kernel:
    """The kernel of ``spec``, downloading and unpacking it once into ``cache``."""
    top = os.path.join(cache, spec.name)
    meta = os.path.join(top, "kernel.json")
    if os.path.exists(meta):
        with open(meta) as f:
            return Kernel(**json.load(f))
    apt = PrivateApt.for_suite(cache, spec.suite, spec.security,
                               None if spec.native else spec.arch)
    apt.update()
    image = apt.depends(f"linux-image-{spec.arch}", "linux-image-")
    if image is None:
        raise RuntimeError(f"{spec.suite}: linux-image-{spec.arch} names no kernel")
    release = image[len("linux-image-"):]
    headers = f"linux-headers-{release}"
    common = apt.depends(headers, "linux-headers-")
    if common is None or not common.endswith("-common"):
        raise RuntimeError(f"{spec.suite}: {headers} has no -common headers package")
    wanted = [image, headers, common]
    packages = {p: apt.version(p) for p in wanted}
    partial = top + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    debs = apt.download([f"{p}={v}" for p, v in packages.items()], os.path.join(partial, "debs"))
    root = os.path.join(partial, "root")
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    shutil.rmtree(os.path.join(partial, "debs"))
    _strip_host_links(os.path.join(root, "lib", "modules", release))
    subprocess.run(["depmod", "-a", "-b", root, release], check=True)
    kernel = Kernel(spec.name, release, os.path.join(top, "root"), packages, common, spec.arch)
    with open(os.path.join(partial, "kernel.json"), "w") as f:
        json.dump(attr.asdict(kernel), f, indent=1)
    shutil.rmtree(top, ignore_errors=True)
    os.rename(partial, top)
    return kernel


def _strip_host_links(moddir: str) -> None:
    """The headers package's build/source links point at the host's /usr/src;
    without them the VM looks like a system with no headers installed, and the
    headers variant adds its own links inside the guest."""
    for name in ("build", "source"):
        path = os.path.join(moddir, name)
        if os.path.islink(path):
            os.unlink(path)
