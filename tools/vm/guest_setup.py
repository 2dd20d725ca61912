"""Steps that turn a freshly booted VM into a variant. They run inside the
guest only: its /lib/modules and mounts are its own, the host is untouched."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any, Callable, Dict

from hybridtrace.capabilities.kernel import btf_search_order
from tools.vm import unpriv


def headers(config: Dict[str, Any]) -> str:
    """Expose the kernel's exact headers as /lib/modules/R/build and source.

    virtme-ng makes /lib/modules/R a link to the unpacked modules (read-only,
    shared with the host); replace it, in the guest's tmpfs, by a directory of
    links to the same entries plus build (the -amd64 tree) and source (-common).
    """
    moddir = f"/lib/modules/{config['release']}"
    target = os.path.realpath(moddir)
    if os.path.islink(moddir):
        os.unlink(moddir)
    os.makedirs(moddir, exist_ok=True)
    for name in os.listdir(target):
        link = os.path.join(moddir, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(target, name), link)
    for name in ("build", "source"):
        link = os.path.join(moddir, name)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(config["headers"][name], link)
    return f"{moddir}/build -> {config['headers']['build']}"


def unmount_tracefs(config: Dict[str, Any]) -> str:
    """Unmount tracefs and debugfs (whose tracing/ automounts tracefs)."""
    done = []
    for path in ("/sys/kernel/debug/tracing", "/sys/kernel/tracing", "/sys/kernel/debug"):
        if os.path.ismount(path):
            subprocess.run(["umount", path], check=True)
            done.append(path)
    left = [p for p in ("/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events")
            if os.path.isdir(p)]
    if left:
        raise RuntimeError(f"tracefs still reachable at {left}")
    return "unmounted " + (", ".join(done) or "nothing")


def boot_files(config: Dict[str, Any]) -> str:
    """Give the guest the /boot an installed Debian kernel has (config-R,
    System.map-R, vmlinuz-R): a tmpfs over the guest's /boot, copies from the
    unpacked package. The kernel config is what probe reads when there is no
    /proc/config.gz (Debian kernels have none)."""
    src = config["boot_dir"]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "hybridtrace-boot", "/boot"],
                   check=True)
    names = sorted(os.listdir(src))
    for name in names:
        shutil.copy2(os.path.join(src, name), os.path.join("/boot", name))
    return "/boot: " + ", ".join(names)


def unprivileged(config: Dict[str, Any]) -> str:
    """tracefs for group unpriv.GID, bpf() off for users: the unprivileged variant.

    kernel.unprivileged_bpf_disabled=1 cannot be undone until reboot, which is
    why it is set here, in a throwaway guest, and never on a host.
    """
    with open("/proc/sys/kernel/unprivileged_bpf_disabled", "w") as f:
        f.write("1\n")
    changed = unpriv.grant_tracefs()
    return (f"kernel.unprivileged_bpf_disabled=1; {changed} tracefs entries chgrp {unpriv.GID}"
            f" g+rw; {unpriv.check_as_user()}")


def least_privilege(config: Dict[str, Any]) -> str:
    """Check tools/least_privilege.sh works in this guest (it needs unshare and setpriv
    from the host's util-linux) and let its uid 65534 write the run directory."""
    missing = [tool for tool in ("unshare", "setpriv", "mount") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"no {', '.join(missing)} in the guest")
    os.chmod(config["out"], 0o1777)
    check = ("echo uid $(id -u) gid $(id -g) $(grep CapEff /proc/self/status);"
             " for d in /sys/kernel/tracing/events /sys/kernel/debug/tracing; do"
             " [ -d $d ] && echo $d visible || echo no $d; done;"
             f" [ -w {config['out']} ] && echo run dir writable || echo run dir NOT writable")
    script = os.path.join(config["repo"], "tools", "least_privilege.sh")
    proc = subprocess.run(["sh", script, "sh", "-c", check], capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"tools/least_privilege.sh: rc {proc.returncode}: "
                           f"{proc.stderr.strip()[-300:]}")
    return "as tools/least_privilege.sh: " + "; ".join(proc.stdout.split("\n")).strip("; ")


def hide_btf(config: Dict[str, Any]) -> str:
    """Hide the kernel's BTF: an empty tmpfs over /sys/kernel/btf (so no vmlinux there,
    as on kernels before CONFIG_DEBUG_INFO_BTF was common), and check that none of
    libbpf's other places for it (/boot/vmlinux-R, /lib/modules/R/vmlinux-R, ...) exists."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=4k,mode=0755", "hybridtrace-no-btf",
                    "/sys/kernel/btf"], check=True)
    searched = btf_search_order(config["release"])
    present = [path for path in searched if os.path.exists(path)]
    if present:
        raise RuntimeError(f"BTF still reachable at {present}")
    return (f"/sys/kernel/btf is an empty tmpfs; none of {len(searched)} places libbpf "
            f"searches exists ({', '.join(searched[1:3])}, ...)")


def ld_cache(config: Dict[str, Any]) -> str:
    """Build the dynamic loader's cache in a root filesystem unpacked without maintainer
    scripts (tools/vm/rootfs.py): what libc-bin's trigger would have run. It lands in
    the guest's /etc overlay, which the guest discards."""
    if os.path.exists("/etc/ld.so.cache"):
        return "/etc/ld.so.cache exists"
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"  # PATH of the init may lack /sbin
    subprocess.run([ldconfig], check=True, timeout=300)
    return "ldconfig: /etc/ld.so.cache written"


STEPS: Dict[str, Callable[[Dict[str, Any]], str]] = {
    "boot_files": boot_files,
    "headers": headers,
    "unmount_tracefs": unmount_tracefs,
    "unprivileged": unprivileged,
    "least_privilege": least_privilege,
    "hide_btf": hide_btf,
    "ld_cache": ld_cache,
}
