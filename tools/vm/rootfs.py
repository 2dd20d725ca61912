"""A Debian root filesystem of another architecture (arm64) for the kernel matrix.

An x86_64 VM shares this machine's own root filesystem; an arm64 guest cannot run
its binaries, so it gets a directory of Debian's arm64 packages instead. They are
resolved and downloaded by a private apt (its own lists, an empty dpkg status, the
foreign architecture as apt's only one) and unpacked with ``dpkg-deb -x``: no
maintainer script runs, so no qemu-user, binfmt_misc or dpkg --add-architecture on
the host. The few things those scripts would have done that the guest needs
(/etc/passwd, /bin/sh) are written here. The pure-Python test dependencies are
copied from this machine's venv when its Python has the guest's minor version.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from typing import Callable, Dict, List, Optional, Sequence

from tools.vm.apt import PrivateApt

CACHE = "/var/cache/hybridtrace/rootfs"

# What the guest runs: virtme-ng's bash init (bash, mount, ip, and an arm64 busybox for
# its initramfs), Python, ebpf-core's libbpf, the C libraries the uprobe tier probes
# (glibc with its debug symbols, musl), the C compilers the tests build workloads with,
# and BCC (Debian's python3-bpfcc, ~60 MB with its LLVM).
PACKAGES = (
    "bash", "dash", "coreutils", "util-linux", "mount", "procps", "iproute2", "kmod",
    "busybox-static", "base-passwd", "findutils", "grep", "sed", "libc-bin",
    "python3", "libbpf1", "bpftool", "python3-bpfcc",
    "libc6", "libc6-dbg", "libc6-dev", "gcc", "musl", "musl-tools",
    "python3-venv",  # venv + ensurepip's bundled pip: the wheel check (tools/vm/wheel_check.py)
)

# The test suite's imports beyond the standard library and hybridtrace itself.
PURE_DISTRIBUTIONS = ("attrs", "pytest", "pluggy", "iniconfig", "packaging",
                      "pytest-timeout", "pygments")

GUEST_PYTHON = "3.11"  # Debian bookworm's


def root_dir(suite: str, arch: str, cache: str = CACHE) -> str:
    return os.path.join(cache, f"{suite}-{arch}", "root")


def build(suite: str, arch: str, cache: str = CACHE,
          packages: Sequence[str] = PACKAGES) -> str:
    """The root filesystem for ``suite``/``arch``, built once; returns its directory.

    A half-built tree never counts: the work happens in a .partial directory that is
    renamed only at the end, and a stamp records the packages that went in."""
    top = os.path.join(cache, f"{suite}-{arch}")
    stamp = os.path.join(top, "rootfs.json")
    if os.path.exists(stamp):
        with open(stamp) as f:
            if sorted(json.load(f)["requested"]) == sorted(packages):
                return os.path.join(top, "root")
    apt = PrivateApt.for_suite(cache, suite, f"{suite}-security", arch)
    apt.update()
    partial = top + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    debs = download_closure(apt, packages, os.path.join(partial, "state"))
    root = os.path.join(partial, "root")
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    done = configure(root)
    copied = copy_pure_python(root)
    done.append(byte_compile(root))
    versions = {os.path.basename(d).split("_")[0]: os.path.basename(d).split("_")[1]
                for d in debs}
    with open(os.path.join(partial, "rootfs.json"), "w") as f:
        json.dump({"suite": suite, "arch": arch, "requested": list(packages),
                   "installed": versions, "configured": done, "python": copied}, f, indent=1)
    shutil.rmtree(os.path.join(partial, "state"))
    shutil.rmtree(top, ignore_errors=True)
    os.rename(partial, top)
    return os.path.join(top, "root")


def download_closure(apt: PrivateApt, packages: Sequence[str], state: str) -> List[str]:
    """``packages`` and everything they depend on, as .deb paths: apt resolves against
    an empty dpkg status of its own (nothing counts as installed, the host's dpkg
    database is neither read nor locked) and downloads into an archive directory of
    this build only, so what is in it is exactly the closure."""
    os.makedirs(os.path.join(state, "dpkg"), exist_ok=True)
    archives = os.path.join(state, "archives")
    os.makedirs(os.path.join(archives, "partial"), exist_ok=True)
    status = os.path.join(state, "dpkg", "status")
    open(status, "w").close()
    options = [*apt.options(), "-o", f"Dir::State::status={status}",
               "-o", f"Dir::State::extended_states={state}/extended_states",
               "-o", f"Dir::Cache::archives={archives}",
               "-o", "APT::Install-Recommends=false", "-o", "APT::Install-Suggests=false"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(["apt-get", *options, "install", "--download-only", "-y", *packages],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"apt-get install --download-only: {proc.stderr.strip()[-400:]}")
    return sorted(os.path.join(archives, n) for n in os.listdir(archives) if n.endswith(".deb"))


def configure(root: str) -> List[str]:
    """What the skipped maintainer scripts would have done that the guest relies on."""
    done = []
    for name in ("passwd", "group"):
        dest = os.path.join(root, "etc", name)
        master = os.path.join(root, "usr", "share", "base-passwd", f"{name}.master")
        if not os.path.exists(dest) and os.path.exists(master):
            shutil.copyfile(master, dest)
            done.append(f"/etc/{name} from base-passwd")
    sh = os.path.join(root, "bin", "sh")
    if not os.path.lexists(sh):
        os.symlink("dash", sh)
        done.append("/bin/sh -> dash")
    # virtme-init ends the guest with poweroff -f (systemd's, absent here: busybox has it)
    # and mounts over these (an empty /etc/fstab: the guest's mounts are virtme-init's).
    poweroff = os.path.join(root, "sbin", "poweroff")
    if not os.path.lexists(poweroff) and os.path.exists(os.path.join(root, "bin", "busybox")):
        os.symlink("/bin/busybox", poweroff)
        done.append("/sbin/poweroff -> busybox")
    for name in ("opt", "srv"):
        os.makedirs(os.path.join(root, name), exist_ok=True)
    for name in ("hostname", "machine-id", "fstab", "shadow"):
        path = os.path.join(root, "etc", name)
        if not os.path.exists(path):
            open(path, "w").close()
    return done


def copy_pure_python(root: str, names: Sequence[str] = PURE_DISTRIBUTIONS) -> Dict[str, str]:
    """Copy pure-Python distributions from this interpreter into the guest's
    /usr/local/lib/python3.X/dist-packages; refuses compiled ones and another minor
    version (their byte code and C extensions would not load in the guest)."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if here != GUEST_PYTHON:
        raise RuntimeError(f"this Python is {here}, the guest's {GUEST_PYTHON}: "
                           "its test dependencies cannot be copied")
    dest = os.path.join(root, "usr", "local", "lib", f"python{GUEST_PYTHON}", "dist-packages")
    os.makedirs(dest, exist_ok=True)
    copied: Dict[str, str] = {}
    for name in names:
        dist = importlib.metadata.distribution(name)
        files = [str(f) for f in dist.files or []]
        compiled = [f for f in files if f.endswith((".so", ".pyd"))]
        if compiled:
            raise RuntimeError(f"{name} is not pure Python ({compiled[0]})")
        base = str(dist.locate_file(""))
        for rel in files:
            if "__pycache__" in rel or rel.startswith(".."):
                continue  # byte code is rebuilt; entry-point scripts live outside
            src = os.path.join(base, rel)
            if os.path.isfile(src):
                os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
                shutil.copy2(src, os.path.join(dest, rel))
        copied[name] = dist.version
    return copied


def byte_compile(root: str) -> str:
    """Compile the guest's Python library with this (same-version) interpreter, as
    Debian's py3compile would have: under TCG every interpreter start would otherwise
    compile the standard library again (the guest keeps no byte code it writes)."""
    dirs = [os.path.join(root, "usr", "lib", f"python{GUEST_PYTHON}"),
            os.path.join(root, "usr", "lib", "python3", "dist-packages"),
            os.path.join(root, "usr", "local", "lib", f"python{GUEST_PYTHON}")]
    # -s/-p: the guest's paths in the byte code; failures are the library's own test
    # files with deliberately bad syntax.
    proc = subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0",
                           "-s", root, "-p", "/", *dirs], capture_output=True, text=True)
    return f"byte-compiled the Python library (compileall rc {proc.returncode})"


def install_kernel_modules(root: str, moddir: str, release: str) -> str:
    """Hard-link an unpacked kernel's modules into the root filesystem, where virtme-ng
    looks for them when the guest's root is not the host's."""
    dest = os.path.join(root, "lib", "modules", release)
    if not os.path.isdir(dest):
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        subprocess.run(["cp", "-al", moddir, dest + ".partial"], check=True)
        os.rename(dest + ".partial", dest)
    return dest


def mount_points(root: str, paths: Sequence[str]) -> None:
    """Create the directories the guest mounts host paths on (its root is read-only)."""
    for path in paths:
        os.makedirs(os.path.join(root, path.lstrip("/")), exist_ok=True)


def main(argv: Optional[List[str]] = None, prog: str = "tools.vm.rootfs",
         summary: str = __doc__.splitlines()[0], default_arch: str = "arm64",
         build_one: Callable[[str, str], str] = build) -> int:
    """Build one root filesystem and print its directory (tools/container reuses it)."""
    import argparse
    p = argparse.ArgumentParser(prog=f"python -m {prog}", description=summary)
    p.add_argument("--suite", default="bookworm")
    p.add_argument("--arch", default=default_arch)
    args = p.parse_args(argv)
    try:
        print(build_one(args.suite, args.arch))
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
