#!/usr/bin/env python3
"""Build the shipped BPF objects of the ebpf-core engine from their C sources.

Objects are built for every architecture we ship, whatever machine builds
them: each has its own vmlinux.h (x86/, arm64/), generated from a kernel's BTF
only when asked (--vmlinux, with --arch for another architecture's BTF, as
tools/kernel_btf.py extracts it from a Debian kernel package) and committed,
so a build is a pure function of files in the repository: clang
runs with relative file names in a fixed working directory, and DWARF is
stripped (BTF stays), which makes the objects byte-identical across runs.
``--check`` rebuilds into a temporary directory and fails if the shipped
objects differ.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from typing import List, Optional

BPF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hybridtrace",
                       "backends", "ebpf", "bpf")
SOURCES = ("exec.bpf.c", "open.bpf.c")
# Each source is built for three attach modes: classic tracepoints (ids from
# tracefs), raw tracepoints by BTF name (tp_btf: no tracefs), raw tracepoints
# without BTF (raw_tp: no task_struct reads); each with the BPF ring buffer (5.8+)
# or with per-CPU perf buffers for older kernels. core_stream.object_name names them.
ATTACH_DEFINES = (("", []), (".tp_btf", ["-DHT_TP_BTF"]), (".raw_tp", ["-DHT_RAW_TP"]))
FLAVOURS = tuple(
    (f"{attach}{buffer}.bpf.o", [*a_defs, *b_defs])
    for attach, a_defs in ATTACH_DEFINES
    for buffer, b_defs in (("", []), (".perf", ["-DHT_PERF_BUFFER"]))
)
HEADERS = ("common.h",)
# uname -m -> (clang's __TARGET_ARCH_ name, directory of its vmlinux.h, object suffix);
# core_stream.object_name names the objects the same way.
TARGETS = {"x86_64": ("x86", "x86", ""), "aarch64": ("arm64", "arm64", ".arm64")}


class BuildError(Exception):
    pass


def _tool(names: List[str]) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise BuildError(f"none of {', '.join(names)} found (apt-get install clang llvm bpftool)")


def _run(cmd: List[str], cwd: str, stdout: Optional[int] = None) -> bytes:
    proc = subprocess.run(cmd, cwd=cwd, stdout=stdout or subprocess.PIPE,
                          stderr=subprocess.PIPE)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        last = err[-1] if err else f"exit status {proc.returncode}"
        raise BuildError(f"{os.path.basename(cmd[0])} failed: {last}")
    return proc.stdout or b""


def generate_vmlinux(out_dir: str, btf: str, machine: str) -> None:
    bpftool = _tool(["bpftool", "/usr/sbin/bpftool"])
    text = _run([bpftool, "btf", "dump", "file", btf, "format", "c"], out_dir)
    with open(os.path.join(out_dir, TARGETS[machine][1], "vmlinux.h"), "wb") as f:
        f.write(text)


def compile_objects(src_dir: str, out_dir: str) -> List[str]:
    """Compile every source for every target into out_dir; returns the object paths."""
    clang = _tool(["clang-14", "clang"])
    strip = _tool(["llvm-strip-14", "llvm-strip"])
    built = []
    for arch, headers, arch_suffix in TARGETS.values():
        for src in SOURCES:
            for suffix, defines in FLAVOURS:
                name = src[: -len(".bpf.c")] + suffix
                out = os.path.join(out_dir, name[: -len(".bpf.o")] + arch_suffix + ".bpf.o")
                # BTF line info names source files: map the build directory away.
                # vmlinux.h is not beside common.h, so "-I<arch>" finds this target's.
                _run([clang, "-O2", "-g", "-target", "bpf",
                      "-Werror=implicit-function-declaration", f"-D__TARGET_ARCH_{arch}",
                      *defines, f"-fdebug-prefix-map={os.path.abspath(src_dir)}=.",
                      f"-I{headers}", "-I.", "-c", src, "-o", out], src_dir)
                _run([strip, "-g", out], src_dir)
                built.append(out)
    return built


def check(src_dir: str) -> List[str]:
    """Names of shipped objects that differ from a fresh build of the sources."""
    with tempfile.TemporaryDirectory(prefix="ht-bpf-check-") as tmp:
        work = os.path.join(tmp, "bpf")
        os.mkdir(work)
        for name in SOURCES + HEADERS:
            shutil.copy(os.path.join(src_dir, name), work)
        for _arch, headers, _suffix in TARGETS.values():
            shutil.copytree(os.path.join(src_dir, headers), os.path.join(work, headers))
        differ = []
        for obj in compile_objects(work, work):
            shipped = os.path.join(src_dir, os.path.basename(obj))
            if not os.path.exists(shipped) or not filecmp.cmp(obj, shipped, shallow=False):
                differ.append(os.path.basename(obj))
        return differ


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="fail if the shipped objects differ from the sources")
    parser.add_argument("--vmlinux", nargs="?", const="/sys/kernel/btf/vmlinux",
                        metavar="BTF", help="regenerate --arch's vmlinux.h from BTF first")
    parser.add_argument("--arch", choices=sorted(TARGETS), default=platform.machine(),
                        help="the architecture of --vmlinux's BTF (default: this machine's)")
    args = parser.parse_args(argv)
    src_dir = os.path.normpath(BPF_DIR)
    try:
        if args.check:
            differ = check(src_dir)
            if differ:
                print(f"build_bpf: shipped {', '.join(differ)} differ from the sources;"
                      " run tools/build_bpf.py and commit the objects", file=sys.stderr)
                return 1
            return 0
        if args.vmlinux:
            generate_vmlinux(src_dir, args.vmlinux, args.arch)
        for obj in compile_objects(src_dir, src_dir):
            print(f"built {os.path.relpath(obj)} ({os.path.getsize(obj)} bytes)")
    except BuildError as exc:
        print(f"build_bpf: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
