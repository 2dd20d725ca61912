"""One cell of the matrix: prepare its run directory, boot (or run on the
host), and read back what the guest recorded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any, Callable, Dict, Optional

from tools.vm import boot, junit, rootfs
from tools.vm.kernels import CACHE, Kernel
from tools.vm.variants import SUITES, Variant

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNS = "/var/cache/hybridtrace/vm-runs"
# virtme-ng's names of Debian's architectures other than this machine's
VNG_ARCH = {"arm64": "arm64"}
GUEST_PYTHON = "/usr/bin/python3"  # in a foreign root filesystem (tools/vm/rootfs.py)


def cell_name(kernel: str, variant: str) -> str:
    if kernel == "host":
        return f"host-{os.uname().release}-{variant}"
    return f"debian-{kernel}-{variant}"


def guest_config(run_dir: str, kernel: Optional[Kernel], variant: Variant, name: str,
                 suite: str, test_timeout: int, test_wall: int,
                 record: bool, streams: bool = True) -> Dict[str, Any]:
    paths, select = SUITES[suite]
    return {
        "name": name, "variant": variant.name, "out": run_dir, "repo": REPO,
        "release": kernel.release if kernel else os.uname().release,
        "headers": {"build": kernel.headers_build, "source": kernel.headers_source}
        if kernel else None,
        "boot_dir": os.path.dirname(kernel.vmlinuz) if kernel else None,
        # Every VM first gets an installed kernel's /boot, then the variant's setup.
        # A foreign root filesystem (tools/vm/rootfs.py) first gets its loader cache.
        "setup": (["ld_cache"] if kernel and kernel.arch != "amd64" else [])
        + (["boot_files"] if kernel else []) + list(variant.setup),
        "deny_bpf": variant.deny_bpf,
        "unprivileged": variant.unprivileged,
        "least_privilege": variant.least_privilege,
        "raw_tp_probe": variant.raw_tp_probe,
        # Kernel trees for every VM cell; trace_pipe once per kernel (it does
        # not depend on the variant, and lockdown=confidentiality has no tracefs).
        "tree": f"vm-{name}" if record else None,
        "trace_pipe": f"debian-{kernel.name}-vm"
        if kernel and record and streams and variant.name == "default" else None,
        # What the ftrace stream itself reads, text and binary, per probe tier.
        "ftrace_stream": f"debian-{kernel.name}-vm"
        if kernel and record and streams and variant.name == "default" else None,
        "pytest": {"suite": suite, "paths": list(paths), "k": select,
                   "timeout": test_timeout, "wall": test_wall},
    }


def run_cell(kernel: Optional[Kernel], variant: Variant, name: str, runs: str,
             suite: str, test_timeout: int, wall: int, record: bool,
             cpus: int, memory: str, require: Optional[str] = None,
             force_open: bool = True, streams: bool = True,
             groundtruth: Optional[Dict[str, Any]] = None,
             wheel: Optional[str] = None,
             bench: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Run one kernel x variant (kernel None: this host, no VM) and collect its results;
    ``groundtruth`` (options of tools.groundtruth) adds that check as a step, ``wheel``
    (a built wheel) the install check of tools/vm/wheel_check.py, ``bench`` (tools.bench's
    arguments and a wall clock) the benchmark of tools/vm/bench.py."""
    run_dir = os.path.join(runs, name)
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    if wheel:  # into the run directory: the one host directory the guest may write to
        wheel = shutil.copy2(wheel, run_dir)
    # The tests get what is left of the wall clock after boot and the recorders.
    config = guest_config(run_dir, kernel, variant, name, suite, test_timeout,
                          max(60, wall - 240), record, streams)
    config["require"] = require or variant.require
    config["force_open"] = force_open
    config["vm_wall"] = wall
    config["groundtruth"] = groundtruth
    config["wheel"] = wheel
    config["bench"] = bench
    config_path = os.path.join(run_dir, "config.json")
    with open(config_path, "w") as f:
        json.dump(config, f, indent=1)
    foreign = kernel is not None and kernel.arch != "amd64"
    # A foreign root's vng passes no working directory: the script finds its checkout itself.
    guest_cmd = (f"{GUEST_PYTHON} {REPO}/tools/vm/guest_run.py {config_path}" if foreign
                 else f"{sys.executable} -m tools.vm.guest_run {config_path}")
    start = time.monotonic()
    if kernel is None:
        vm_rc = boot.run_local([sys.executable, "-m", "tools.vm.guest_run", config_path],
                               os.path.join(run_dir, "console.log"), wall, REPO)
    elif foreign:
        root = foreign_root(kernel)
        argv = boot.vng_argv(kernel.vmlinuz, run_dir, [CACHE, REPO], variant.append, guest_cmd,
                             cpus, memory, kvm=False, arch=VNG_ARCH[kernel.arch], root=root)
        vm_rc = boot.run_vm(argv, os.path.join(run_dir, "console.log"), wall, REPO)
    else:
        argv = boot.vng_argv(kernel.vmlinuz, run_dir, [CACHE], variant.append, guest_cmd,
                             cpus, memory, kvm=False)
        vm_rc = boot.run_vm(argv, os.path.join(run_dir, "console.log"), wall, REPO)
    result = collect(run_dir, name, kernel, variant, vm_rc, time.monotonic() - start)
    result["code"] = code_version()
    result["suite"] = {"name": suite, "paths": list(SUITES[suite][0]), "k": SUITES[suite][1]}
    return result


def foreign_root(kernel: Kernel) -> str:
    """The root filesystem of ``kernel``'s architecture, with its modules and the
    directories this checkout and the caches are mounted on."""
    root = rootfs.build("bookworm", kernel.arch)
    rootfs.install_kernel_modules(root, kernel.moddir, kernel.release)
    rootfs.mount_points(root, [REPO, CACHE, RUNS])
    return root


# What the matrix itself writes into the checkout while it runs.
_OWN_OUTPUT = ("docs/compatibility.", "tests/fixtures/")


def code_version() -> Dict[str, Any]:
    """The commit the row ran, and whether other files differed from it."""
    def git(*args: str) -> Optional[str]:
        try:
            return subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True,
                                  timeout=30, check=True).stdout
        except (OSError, subprocess.SubprocessError):
            return None
    head = git("rev-parse", "HEAD")
    status = git("status", "--porcelain")
    changed = None if status is None else [
        ln[3:] for ln in status.splitlines() if not ln[3:].startswith(_OWN_OUTPUT)]
    return {"commit": head.strip() if head else None,
            "uncommitted": None if changed is None else len(changed)}


def collect(run_dir: str, name: str, kernel: Optional[Kernel], variant: Variant,
            vm_rc: Optional[int], seconds: float) -> Dict[str, Any]:
    result: Dict[str, Any] = {
        "name": name, "kernel": kernel.name if kernel else "host",
        "release": kernel.release if kernel else os.uname().release,
        "packages": kernel.packages if kernel else {}, "vm": kernel is not None,
        "arch": kernel.arch if kernel else "amd64",
        "variant": variant.name, "variant_description": variant.description,
        "seconds": round(seconds, 1), "wall_clock_exceeded": vm_rc is None, "vm_rc": vm_rc,
    }
    status = read_json(os.path.join(run_dir, "status.json")) or {}
    result["setup"] = status.get("setup", {})
    result["facts"] = status.get("facts")
    result["steps"] = status.get("steps", {})
    result["completed"] = bool(status.get("done"))
    if not result["completed"]:  # why the guest stopped, if the kernel said
        lines = [ln for ln in _text(os.path.join(run_dir, "console.log")).splitlines()
                 if ln.strip()]
        result["console_tail"] = lines[-5:]
    result["doctor"] = read_json(os.path.join(run_dir, "doctor.out"))
    result["force_open"] = read_json(os.path.join(run_dir, "force_open.out"))
    result["raw_tp_probe"] = read_json(os.path.join(run_dir, "raw_tp_probe.out"))
    result["wheel"] = read_json(os.path.join(run_dir, "wheel.out")) \
        if "wheel" in result["steps"] else None
    junit_path = os.path.join(run_dir, "junit.xml")
    if os.path.exists(junit_path):
        cases = junit.parse(junit_path)
        result["tests_from"] = "junit"
    else:  # pytest was cut short: what its -v lines say had finished
        cases = junit.parse_verbose(_text(os.path.join(run_dir, "pytest.out")))
        result["tests_from"] = "pytest -v lines (run cut short)" if cases else None
    result["tests"] = cases
    result["groups"] = junit.summarise(cases)
    return result


def _text(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def read_json(path: str) -> Optional[Dict[str, Any]]:
    """A guest's JSON output, or None when it wrote none (or not all of it)."""
    try:
        with open(path) as f:
            data: Dict[str, Any] = json.load(f)
            return data
    except (OSError, ValueError):
        return None



def read_page_json(js: str, prog: str) -> Optional[Dict[str, Any]]:
    """A generated page's .json, or None after one line saying why it cannot be read."""
    try:
        with open(js) as f:
            data: Dict[str, Any] = json.load(f)
            return data
    except (OSError, ValueError) as exc:
        print(f"{prog}: cannot read {js}: {exc}", file=sys.stderr)
        return None


def render_again(md: str, page: Callable[[Dict[str, Any]], str], prog: str) -> int:
    """--report-only: the page ``md`` re-rendered from the .json beside it; an exit code."""
    data = read_page_json(os.path.splitext(md)[0] + ".json", prog)
    if data is None:
        return 2
    with open(md, "w") as f:
        f.write(page(data))
    return 0
