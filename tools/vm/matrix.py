"""The kernel matrix command.

    python -m tools.vm                 # full matrix -> docs/compatibility.{md,json}
    python -m tools.vm --ci            # CI entry: 6.1 + exact headers, kprobe/eprobe/BCC tests
                                       # and our snoops beside BCC's own tools
    python -m tools.vm --arch arm64    # Debian's arm64 kernels under qemu-system-aarch64
                                       # (default rows also install the wheel in the guest)
    python -m tools.vm --cells 6.1:default,6.1:headers --no-host
    python -m tools.vm --report-only   # re-render docs/compatibility.md from the .json

Needs root; installs what is missing: qemu-system-x86 (qemu-system-arm for
--arch arm64), busybox-static, kmod and file with apt-get, virtme-ng and
pytest-timeout with pip (the [vm] extra).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

from tools.vm import fixtures, kernels, report, runs, wheel_check
from tools.vm.junit import BCC_TOOLS
from tools.vm.variants import ARM64, BY_NAME, CI, FULL, SUITES

APT_TOOLS = {"qemu-system-x86": "qemu-system-x86_64", "busybox-static": "busybox",
             "kmod": "depmod", "file": "file"}
# Another architecture's qemu, by Debian architecture
ARCH_TOOLS = {"arm64": {"qemu-system-arm": "qemu-system-aarch64"}}
PLANS = {"amd64": FULL, "arm64": ARM64}
DOCS = os.path.join(runs.REPO, "docs")
# What the CI entry exists for: these labels must pass there (HYBRIDTRACE_REQUIRE_BACKENDS
# in the guest makes a skip of them a failure): the kprobe tier, BCC with the kernel's
# exact headers, and our execsnoop/opensnoop beside BCC's own tools.
CI_REQUIRED = ("ftrace/kprobe", "ebpf-bcc", BCC_TOOLS)


def ensure_tools(arches: Tuple[str, ...] = ()) -> Optional[str]:
    """Install the VM tools (and those ``arches``' kernels need) with apt when
    missing; an error line, or None."""
    wanted = dict(APT_TOOLS)
    for arch in arches:
        wanted.update(ARCH_TOOLS.get(arch, {}))
    missing = [pkg for pkg, exe in wanted.items()
               if shutil.which(exe) is None and not os.path.exists(f"/usr/sbin/{exe}")]
    if missing:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        rc = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                             *missing], env=env, stdout=subprocess.DEVNULL).returncode
        if rc != 0:
            return f"apt-get install {' '.join(missing)} failed"
    have_timeout = importlib.util.find_spec("pytest_timeout") is not None
    if not have_timeout or not os.path.exists(os.path.join(os.path.dirname(sys.executable),
                                                           "vng")):
        rc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e",
                             f"{runs.REPO}[vm]"], stdout=subprocess.DEVNULL).returncode
        if rc != 0:
            return "virtme-ng/pytest-timeout missing and pip install -e '.[vm]' failed"
    return None


def parse_cells(text: str) -> List[Tuple[str, str, str]]:
    """KERNEL:VARIANT[:SUITE],... (suite default: contract)."""
    cells = []
    for item in text.split(","):
        kernel, _, rest = item.strip().partition(":")
        variant, _, suite = rest.partition(":")
        suite = suite or "contract"
        if suite not in SUITES:
            raise ValueError(f"unknown suite {suite!r} (known: {', '.join(SUITES)})")
        if kernel not in [s.name for s in kernels.SPECS] + ["host"]:
            raise ValueError(f"unknown kernel {kernel!r}")
        if variant not in BY_NAME:
            raise ValueError(f"unknown variant {variant!r} (known: {', '.join(BY_NAME)})")
        cells.append((kernel, variant, suite))
    return cells


def arguments(argv: Optional[List[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.vm", description=__doc__.split("\n")[0])
    p.add_argument("--ci", action="store_true", help="only the CI entry (6.1, headers)")
    p.add_argument("--cells", help="KERNEL:VARIANT[:SUITE],... instead of the full list "
                   "(kernel host = this machine, no VM)")
    p.add_argument("--arch", choices=sorted(PLANS), default="amd64",
                   help="whose Debian kernels the full list boots (default amd64; arm64: "
                   "under qemu-system-aarch64 with an arm64 root filesystem); rows of "
                   "another architecture in the report are kept")
    p.add_argument("--no-host", action="store_true", help="skip the host's own kernel row")
    p.add_argument("--wall", type=int, help="wall clock per VM, seconds "
                   "(default: contract suite 900, others 3600; arm64 kernels twice that)")
    p.add_argument("--test-timeout", type=int, default=240, help="per test, seconds")
    p.add_argument("--cpus", type=int, help="vCPUs per VM (default 2; --ci: 1, the CI "
                   "cell needs no second CPU and one vCPU rules out the TCG lockup in boot.py)")
    p.add_argument("--memory", default="2G")
    p.add_argument("--runs", default=runs.RUNS, help="run directories (logs, raw output)")
    p.add_argument("--no-fixtures", action="store_true",
                   help="do not copy recorded trees/trace_pipe into tests/fixtures")
    p.add_argument("--no-record", action="store_true",
                   help="skip the kernel-tree and trace_pipe recorders (faster)")
    p.add_argument("--trees-only", action="store_true",
                   help="record kernel trees (doctor's input) but not trace_pipe/ftrace streams")
    p.add_argument("--md", help="report path (default docs/compatibility.md; "
                   "CI: RUNS/ci/compatibility.md)")
    p.add_argument("--report-only", action="store_true",
                   help="re-render the markdown from the json, run nothing")
    p.add_argument("--merge", action="append", default=[], metavar="JSON",
                   help="with --report-only: add the rows of another run's json")
    p.add_argument("--note", help="with --report-only: a paragraph for the report's head")
    p.add_argument("--no-wheel", action="store_true",
                   help="skip the wheel install check in another architecture's default rows")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = arguments(argv)
    command = "python -m tools.vm" + (" --ci" if args.ci else "")
    out_dir = os.path.join(args.runs, "ci") if args.ci else DOCS
    md = args.md or os.path.join(out_dir, "compatibility.md")
    js = os.path.splitext(md)[0] + ".json"
    if args.report_only:
        data = runs.read_page_json(js, "tools.vm")
        if data is None:
            return 2
        if args.merge:
            rows = {r["name"]: r for r in data["results"]}
            for other in args.merge:
                rows.update({r["name"]: r for r in _previous(other)})
            merged = sorted(rows.values(), key=_order)
            report.write(merged, data["generated_by"], md, js,
                         args.note if args.note is not None else data.get("note", ""))
        else:
            with open(md, "w") as f:
                f.write(report.render(data))
        return 0
    if os.geteuid() != 0:
        print("tools.vm: needs root (qemu, tracefs and BPF inside the VMs run as root)",
              file=sys.stderr)
        return 2
    try:
        cells = parse_cells(args.cells) if args.cells else (CI if args.ci else PLANS[args.arch])
    except ValueError as exc:
        print(f"tools.vm: {exc}", file=sys.stderr)
        return 2
    problem = ensure_tools(tuple({kernels.spec_named(k).arch for k, _, _ in cells
                                 if k != "host"}))
    if problem:
        print(f"tools.vm: {problem}", file=sys.stderr)
        return 2
    os.makedirs(out_dir, exist_ok=True)
    # --cells updates those rows of the existing report, and one architecture's run
    # those of its kernels; the full amd64 run rewrites it but keeps other architectures'.
    results: List[Dict[str, Any]] = _previous(js)
    if not args.cells and args.arch == "amd64":
        results = [r for r in results if _arch(r) != "amd64"]
    plan = list(cells)
    if not args.ci and not args.no_host and not args.cells and args.arch == "amd64":
        plan.append(("host", "default", "full"))
    wheel = None
    if not args.ci and not args.no_wheel and any(wheel_cell(k, v) for k, v, _ in plan):
        try:  # built once on this machine, installed in each such guest
            wheel = wheel_check.build(os.path.join(args.runs, "wheel"))
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            print(f"tools.vm: building the wheel failed: {exc}", file=sys.stderr)
            return 2
    for kernel_name, variant_name, suite in plan:
        spec = None if kernel_name == "host" else kernels.spec_named(kernel_name)
        # Emulating another architecture (arm64 under TCG) is the slower half again.
        slow = 1 if spec is None or spec.native else 2
        wall = args.wall or slow * (900 if suite == "contract" else 3600)
        variant = BY_NAME[variant_name]
        kernel = None if spec is None else kernels.fetch(spec)
        name = runs.cell_name(kernel_name, variant_name)
        started = time.monotonic()
        print(f"tools.vm: {name} ...", file=sys.stderr, flush=True)
        result = runs.run_cell(
            kernel, variant, name, args.runs, suite,
            args.test_timeout, wall,
            record=kernel is not None and not args.ci and not args.no_record,
            cpus=args.cpus or (1 if args.ci else 2), memory=args.memory,
            require=",".join(CI_REQUIRED) if args.ci else None, force_open=not args.ci,
            # trace_pipe and ftrace-stream recordings are amd64's; elsewhere the kernel tree
            streams=not args.trees_only and (spec is None or spec.native),
            wheel=wheel if wheel_cell(kernel_name, variant_name) else None)
        if kernel is not None and not args.no_fixtures and not args.ci:
            result["fixtures"] = fixtures.install(os.path.join(args.runs, name), result)
        results = [r for r in results if r["name"] != name] + [result]
        results.sort(key=_order)
        groups = ", ".join(f"{k} {v['pass']}/{v['fail']}/{v['skip']}"
                           for k, v in sorted(result["groups"].items()))
        print(f"tools.vm: {name} done in {time.monotonic() - started:.0f} s "
              f"(pass/fail/skip: {groups or 'no tests ran'})", file=sys.stderr, flush=True)
        # Rewrite after every cell: a cut-short matrix still leaves a true report.
        report.write(results, command, md, js)
    ran = {runs.cell_name(k, v) for k, v, _ in plan}
    return 0 if all(_ok(r, args.ci) for r in results if r["name"] in ran) else 1


def wheel_cell(kernel: str, variant: str) -> bool:
    """Whether a cell also installs the wheel (tools/vm/wheel_check.py): the default row
    of each kernel of another architecture, whose guest has a root of its own (an amd64
    guest runs on this machine's root, where the host test suite checks the wheel)."""
    return kernel != "host" and not kernels.spec_named(kernel).native and variant == "default"


def _previous(path: str) -> List[Dict[str, Any]]:
    try:
        with open(path) as f:
            return list(json.load(f)["results"])
    except (OSError, ValueError, KeyError):
        return []


def _arch(result: Dict[str, Any]) -> str:
    """The Debian architecture of a row's kernel (the host's rows are amd64)."""
    names = {s.name: s.arch for s in kernels.SPECS}
    return names.get(result.get("kernel", ""), "amd64")


def _order(result: Dict[str, Any]) -> Tuple[int, int, int]:
    """Rows by kernel age, then the variants' order, the host last."""
    kernel_names = [s.name for s in kernels.SPECS]
    variant_names = list(BY_NAME)
    k = kernel_names.index(result["kernel"]) if result["kernel"] in kernel_names else 99
    v = variant_names.index(result["variant"]) if result["variant"] in variant_names else 99
    return (int(not result["vm"]), k, v)


def _ok(result: Dict[str, Any], ci: bool) -> bool:
    groups = result["groups"]
    if any(g["fail"] for g in groups.values()) or not result["completed"]:
        return False
    if "wheel" in (result.get("steps") or {}) and not (result.get("wheel") or {}).get("passed"):
        return False
    if ci:  # what the CI entry exists for must have really run
        return all(groups.get(label, {}).get("pass", 0) > 0 for label in CI_REQUIRED)
    return True
