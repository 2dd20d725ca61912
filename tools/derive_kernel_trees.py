#!/usr/bin/env python3
"""Derive kernel trees for situations no machine here has, from a recorded tree.

    python tools/derive_kernel_trees.py [--base host-6.18-root] [--out tests/fixtures/kernels]

Each variant copies the recorded base tree and changes only the files (and
live.json answers) that the situation differs in; live.json gets
"derived_from" and the list of changes, and doctor.json is regenerated. These
trees are derived, not recorded: see tests/fixtures/kernels/README.md.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import sys
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.kernel_tree import load_live, write_doctor, write_json

Live = Dict[str, Any]
# Docker's default capability set (no CAP_SYS_ADMIN, CAP_BPF, CAP_PERFMON).
DOCKER_CAPEFF = "00000000a80425fb"
# CAP_BPF and CAP_PERFMON only.
BPF_PERFMON_CAPEFF = "000000c000000000"
OLD_RELEASE = "4.19.0-27-amd64"


class Variant:
    """A tree being derived: file edits under root/, live.json edits, a change log."""

    def __init__(self, tree_dir: str, live: Live) -> None:
        self.dir = tree_dir
        self.root = os.path.join(tree_dir, "root")
        self.live = live
        self.changes: List[str] = []

    def path(self, machine_path: str) -> str:
        return os.path.join(self.root, machine_path.lstrip("/"))

    def read(self, machine_path: str) -> str:
        with open(self.path(machine_path)) as f:
            return f.read()

    def write(self, machine_path: str, text: str, why: str) -> None:
        dest = self.path(machine_path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "w") as f:
            f.write(text)
        self.changes.append(f"{machine_path}: {why}")

    def remove(self, machine_path: str, why: str) -> None:
        dest = self.path(machine_path)
        if os.path.isdir(dest) and not os.path.islink(dest):
            shutil.rmtree(dest)
        elif os.path.lexists(dest):
            os.remove(dest)
        self.changes.append(f"{machine_path}: removed ({why})")

    def symlink(self, machine_path: str, target: str, why: str) -> None:
        dest = self.path(machine_path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.symlink(target, dest)
        self.changes.append(f"{machine_path} -> {target}: {why}")

    def set_live(self, key: str, value: Any, why: str) -> None:
        self.live[key] = value
        self.changes.append(f"live.json {key}={value!r}: {why}")

    def release(self) -> str:
        return self.read("/proc/sys/kernel/osrelease").strip()

    def status_field(self, name: str, value: str, why: str) -> None:
        text = re.sub(rf"^{name}:.*$", f"{name}:\t{value}", self.read("/proc/self/status"),
                      flags=re.M)
        self.write("/proc/self/status", text, why)

    def config_text(self) -> str:
        with gzip.open(self.path("/proc/config.gz"), "rt") as f:
            return f.read()

    def set_config(self, text: str, why: str) -> None:
        with gzip.open(self.path("/proc/config.gz"), "wt") as f:
            f.write(text)
        self.changes.append(f"/proc/config.gz: {why}")


def _set_option(config: str, name: str, value: Optional[str]) -> str:
    line = f"{name}={value}" if value else f"# {name} is not set"
    pattern = rf"^(# )?{name}(=.*| is not set)$"
    return re.sub(pattern, line, config, flags=re.M) if re.search(pattern, config, re.M) \
        else config + line + "\n"


def no_btf(v: Variant) -> None:
    v.remove("/sys/kernel/btf/vmlinux", "kernel built without CONFIG_DEBUG_INFO_BTF")
    v.set_config(_set_option(v.config_text(), "CONFIG_DEBUG_INFO_BTF", None),
                 "CONFIG_DEBUG_INFO_BTF off")


def headers(v: Variant) -> None:
    rel = v.release()
    target = f"/usr/src/linux-headers-{rel}"
    v.symlink(f"/lib/modules/{rel}/build", target, "linux-headers installed")
    v.write(target + "/Makefile", "include /usr/src/linux-headers-common/Makefile\n",
            "the headers package's top Makefile")


def lockdown(mode: str) -> Callable[[Variant], None]:
    def apply(v: Variant) -> None:
        modes = " ".join(f"[{m}]" if m == mode else m
                         for m in ("none", "integrity", "confidentiality"))
        v.write("/sys/kernel/security/lockdown", modes + "\n", f"lockdown={mode}")
    return apply


def kernel_reads_refused(v: Variant) -> None:
    # Assumed, not measured: confidentiality makes the verifier refuse
    # bpf_probe_read_kernel as an unknown helper (EINVAL).
    v.set_live("kernel_read_errno", 22, "EINVAL: bpf_probe_read_kernel refused (assumed)")


def no_uprobes(v: Variant) -> None:
    v.remove("/sys/kernel/tracing/uprobe_events", "CONFIG_UPROBE_EVENTS off")
    v.set_config(_set_option(v.config_text(), "CONFIG_UPROBE_EVENTS", None),
                 "CONFIG_UPROBE_EVENTS off")


def no_tracefs(v: Variant) -> None:
    v.remove("/sys/kernel/tracing", "no tracefs in this mount namespace")
    v.set_live("tracefs_writable", {}, "no tracefs")
    mountinfo = "\n".join(line for line in v.read("/proc/self/mountinfo").splitlines()
                          if " - tracefs " not in line) + "\n"
    v.write("/proc/self/mountinfo", mountinfo, "tracefs not mounted")


def container_no_caps(v: Variant) -> None:
    v.status_field("CapEff", DOCKER_CAPEFF, "Docker's default capabilities")
    v.set_live("bpf_prog_load_errno", 1, "EPERM without CAP_BPF/CAP_SYS_ADMIN")
    v.live.pop("ringbuf_errno", None)
    v.live.pop("kernel_read_errno", None)
    no_tracefs(v)


def unprivileged_with_bpf_caps(v: Variant) -> None:
    v.status_field("CapEff", BPF_PERFMON_CAPEFF, "CAP_BPF+CAP_PERFMON granted to a user")
    v.set_live("euid", 1000, "an ordinary user")
    no_tracefs(v)


def debugfs_only(v: Variant) -> None:
    src, dst = v.path("/sys/kernel/tracing"), v.path("/sys/kernel/debug/tracing")
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.move(src, dst)
    v.changes.append("/sys/kernel/tracing moved to /sys/kernel/debug/tracing")
    mountinfo = re.sub(r"^(\d+ \d+ \S+ / )/sys/kernel/tracing (\S+) - tracefs \S+ (\S+)$",
                       r"\1/sys/kernel/debug \2 - debugfs debugfs \3",
                       v.read("/proc/self/mountinfo"), flags=re.M)
    v.write("/proc/self/mountinfo", mountinfo, "debugfs at /sys/kernel/debug, no tracefs mount")
    v.set_live("tracefs_writable", {"/sys/kernel/debug/tracing": True}, "moved")


def kernel_4x(v: Variant) -> None:
    """A Debian 4.19-like layout: no BTF, no ring buffer, old probe syntax."""
    no_btf(v)
    debugfs_only(v)
    tracing = "/sys/kernel/debug/tracing"
    v.write("/proc/sys/kernel/osrelease", OLD_RELEASE + "\n", "Debian 10 kernel")
    v.remove("/proc/sys/kernel/arch", "added in 6.1")
    config = v.config_text()
    for name, value in (("CONFIG_KPROBES", "y"), ("CONFIG_KPROBE_EVENTS", "y"),
                        ("CONFIG_EPROBE_EVENTS", None), ("CONFIG_BPF_LSM", None),
                        ("CONFIG_SECURITY_LOCKDOWN_LSM", None)):
        config = _set_option(config, name, value)
    v.write(f"/boot/config-{OLD_RELEASE}", config, "config in /boot, no /proc/config.gz")
    v.remove("/proc/config.gz", "CONFIG_IKCONFIG_PROC off")
    v.remove(tracing + "/dynamic_events", "added in 5.0")
    v.write(tracing + "/kprobe_events", "", "CONFIG_KPROBE_EVENTS=y")
    for tp in ("sys_enter_openat2", "sys_exit_openat2"):
        v.remove(f"{tracing}/events/syscalls/{tp}", "added in 5.6")
    readme = v.read(tracing + "/README")
    readme = "\n".join(line for line in readme.splitlines() if "e[:[" not in line)
    readme = readme.replace("+|-[u]<offset>", "+|-<offset>")
    readme = re.sub(r"\bchar, |, ustring|symstr, |%pd/%pD, |<type>\\\[<array-size>\\\]", "",
                    readme)
    v.write(tracing + "/README", readme + "\n", "no eprobes, ustring, +u or symstr")
    v.set_live("ringbuf_errno", 22, "EINVAL: no BPF_MAP_TYPE_RINGBUF before 5.8")


VARIANTS: Dict[str, List[Callable[[Variant], None]]] = {
    "derived-no-btf": [no_btf],
    "derived-no-btf-headers": [no_btf, headers],
    "derived-lockdown-confidentiality": [lockdown("confidentiality"), kernel_reads_refused],
    "derived-kernel-reads-refused-no-securityfs": [kernel_reads_refused],
    "derived-container-no-caps": [container_no_caps],
    "derived-user-cap-bpf-perfmon": [unprivileged_with_bpf_caps],
    "derived-debugfs-only-no-btf": [no_btf, debugfs_only],
    "derived-no-btf-no-uprobes": [no_btf, no_uprobes],
    "derived-kernel-4.19": [kernel_4x],
}


def derive(base_dir: str, out: str, name: str, steps: List[Callable[[Variant], None]]) -> None:
    tree_dir = os.path.join(out, name)
    if os.path.exists(tree_dir):
        shutil.rmtree(tree_dir)
    shutil.copytree(base_dir, tree_dir, symlinks=True)
    variant = Variant(tree_dir, load_live(tree_dir))
    for step in steps:
        step(variant)
    variant.live["recorded"] = {"derived_from": os.path.basename(base_dir),
                                "by": "tools/derive_kernel_trees.py",
                                "changes": variant.changes}
    write_json(os.path.join(tree_dir, "live.json"), variant.live)
    write_doctor(tree_dir)
    print(f"derived {name}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="host-6.18-root", help="recorded tree to start from")
    parser.add_argument("--out", default="tests/fixtures/kernels", help="trees directory")
    args = parser.parse_args(argv)
    base_dir = os.path.join(args.out, args.base)
    if not os.path.isfile(os.path.join(base_dir, "live.json")):
        parser.error(f"no recorded tree at {base_dir}")
    for name, steps in VARIANTS.items():
        derive(base_dir, args.out, name, steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
