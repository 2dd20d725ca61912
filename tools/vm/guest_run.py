"""What runs inside each VM (or on the host for the host's own kernel):
variant setup, kernel facts, doctor, fixture recorders, the integration tests.
Every step's exit code, duration and output land in the run directory; the
host turns them into docs/compatibility.*.

    python -m tools.vm.guest_run RUN_DIR/config.json
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tools.vm.guest_setup import STEPS


def read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def facts() -> Dict[str, Any]:
    """What the kernel really is in this boot, to check the variant took effect."""
    tracing = "/sys/kernel/tracing"
    return {
        "release": os.uname().release,
        "cmdline": read("/proc/cmdline"),
        "lockdown": read("/sys/kernel/security/lockdown"),
        "lsm": read("/sys/kernel/security/lsm"),
        "tracefs_mounted": os.path.isdir(os.path.join(tracing, "events")),
        "kprobe_events": os.path.exists(os.path.join(tracing, "kprobe_events")),
        "dynamic_events": os.path.exists(os.path.join(tracing, "dynamic_events")),
        "headers_build": os.path.realpath(f"/lib/modules/{os.uname().release}/build")
        if os.path.isdir(f"/lib/modules/{os.uname().release}/build") else None,
    }


def run_step(out: str, name: str, argv: List[str], timeout: float, cwd: str,
             env: Dict[str, str], in_vm: bool = False) -> Dict[str, Any]:
    """Run one command in its own process group; kill that group on timeout."""
    start = time.monotonic()
    with open(os.path.join(out, f"{name}.out"), "wb") as o, \
            open(os.path.join(out, f"{name}.err"), "wb") as e:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=o, stderr=e,
                                start_new_session=True)
        unkillable = False
        try:
            rc: Optional[int] = proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            dump_hang(os.path.join(out, f"{name}.hang"), proc.pid, in_vm)
            os.killpg(proc.pid, signal.SIGKILL)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                unkillable = True  # stuck in the kernel: go on, the .hang file says where
            rc, timed_out = None, True
    return {"argv": argv, "rc": rc, "timed_out": timed_out, "unkillable": unkillable,
            "seconds": round(time.monotonic() - start, 1)}


def dump_hang(path: str, pgid: int, sysrq: bool) -> None:
    """Where a timed-out step's processes wait in the kernel: their state, wchan and
    kernel stacks, and in a VM the blocked-task dump (sysrq w) from the kernel log."""
    lines: List[str] = []
    for pid in sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int):
        try:
            if os.getpgid(int(pid)) != pgid:
                continue
        except OSError:
            continue
        for tid in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
            base = f"/proc/{pid}/task/{tid}"
            state = next((ln for ln in (read(base + "/status") or "").splitlines()
                          if ln.startswith("State:")), "State: ?")
            lines.append(f"pid {pid} tid {tid} {read(base + '/comm')} {state}"
                         f" wchan {read(base + '/wchan')}")
            lines += ["    " + ln for ln in (read(base + "/stack") or "").splitlines()]
    try:
        if sysrq:  # only a guest's kernel log; the host's is not ours to write to
            with open("/proc/sysrq-trigger", "w") as f:
                f.write("w")
            time.sleep(1)
        log = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=30).stdout
        lines += ["--- dmesg (last 200 lines)", *log.splitlines()[-200:]]
    except (OSError, subprocess.SubprocessError) as exc:
        lines.append(f"--- no kernel log: {exc}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main(config_path: str) -> int:
    started = time.monotonic()
    with open(config_path) as f:
        config: Dict[str, Any] = json.load(f)
    out, repo = config["out"], config["repo"]
    py = sys.executable
    env = {k: v for k, v in os.environ.items() if k != "HYBRIDTRACE_REQUIRE_BACKENDS"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["HYBRIDTRACE_TEST_TIME_SCALE"] = "5"  # TCG: tests' wall-clock bounds stretch
    # This checkout's package, not whatever the venv's editable install points at.
    env["PYTHONPATH"] = repo
    if config.get("require"):  # the CI entry: a skip of these backends is a failure
        env["HYBRIDTRACE_REQUIRE_BACKENDS"] = config["require"]
    env["PATH"] = os.path.dirname(py) + ":/usr/sbin:/usr/bin:/sbin:/bin"
    wrap = [py, "-m", "tools.vm.nobpf"] if config["deny_bpf"] else []
    if config.get("unprivileged"):
        wrap = [py, "-m", "tools.vm.unpriv", *wrap]
    if config.get("least_privilege"):  # uid 65534, CAP_BPF+CAP_PERFMON, tracefs hidden
        wrap = ["sh", os.path.join(repo, "tools", "least_privilege.sh"), *wrap]
        env["HYBRIDTRACE_LEAST_PRIVILEGE"] = "1"
        env["HOME"] = "/tmp"
    status: Dict[str, Any] = {"setup": {}, "steps": {}}

    def save() -> None:
        with open(os.path.join(out, "status.json"), "w") as f:
            json.dump(status, f, indent=1)

    for step in config["setup"]:
        try:
            status["setup"][step] = {"ok": True, "detail": STEPS[step](config)}
        except Exception as exc:  # a failed setup is a result too
            status["setup"][step] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    status["facts"] = facts()
    save()

    steps: List[Tuple[str, List[str], float]] = [
        ("doctor", [*wrap, py, "-m", "hybridtrace", "doctor", "--json"], 300),
    ]
    if config.get("force_open", True):
        steps.append(("force_open", [*wrap, py, "-m", "tools.vm.force_open"], 420))
    trees = os.path.join(out, "kernels")
    if config.get("tree") and config.get("least_privilege"):
        # The run directory is 9p: what uid 65534 creates there is root's, 0755, so its
        # nested tree goes to the guest's own /tmp first and is copied back as root.
        trees = tempfile.mkdtemp(prefix="ht-trees-")
        os.chmod(trees, 0o1777)
    if config.get("tree"):
        steps.append(("record_kernel_tree", [*wrap, py, "tools/record_kernel_tree.py",
                      "--name", config["tree"], "--out", trees], 300))
    if config.get("trace_pipe"):
        steps.append(("record_trace_pipe", [*wrap, py, "tools/record_trace_pipe.py",
                      "--name", config["trace_pipe"], "--out", os.path.join(out, "trace_pipe")],
                      600))
    if config.get("ftrace_stream"):
        for tier in ("kprobe", "eprobe"):
            steps.append((f"record_ftrace_stream_{tier}", [
                *wrap, py, "tools/record_ftrace_stream.py", "--tier", tier,
                "--name", config["ftrace_stream"], "--out", os.path.join(out, "ftrace_stream")],
                600))
        for tier in ("kprobe", "eprobe"):  # opens through io_uring, refused ones among them
            steps.append((f"record_ftrace_uring_{tier}", [
                *wrap, py, "tools/record_ftrace_stream.py", "--tier", tier, "--workload",
                "uring", "--name", config["ftrace_stream"],
                "--out", os.path.join(out, "ftrace_uring")], 300))
    if config.get("wheel"):  # the wheel a user installs, from a venv of its own (wheel_check.py)
        steps.append(("wheel", [py, "-m", "tools.vm.wheel_check", config["wheel"],
                                tempfile.mkdtemp(prefix="ht-wheel-")], 1500))
    if config.get("raw_tp_probe"):  # as root: the question is what the kernel allows
        steps.append(("raw_tp_probe", [py, "-m", "tools.vm.raw_tp_probe"], 300))
    gt = config.get("groundtruth")
    if gt:  # the ground-truth check (tools/vm/groundtruth.py): after doctor, before tests
        steps.append(("groundtruth", [
            *wrap, py, "-u", "-m", "tools.groundtruth", "--ops", str(gt["ops"]),
            "--seed", str(gt["seed"]), "--rate", str(gt["rate"]), "--jobs", str(gt["jobs"]),
            *[a for label in gt["backends"] for a in ("--backend", label)],
            "--require", ",".join(gt["require"]),
            "--json", os.path.join(out, "groundtruth.json")], gt["wall"]))
    bench = config.get("bench")
    if bench:  # the benchmark (tools/vm/bench.py): tools.bench with its options, results here.
        # SIGINT before the wall clock: the bench stops the tracer running and writes what
        # it measured (a step killed by its limit would leave no results at all).
        steps.append(("bench", [*wrap, "timeout", "-s", "INT", "-k", "60", str(bench["stop_after"]),
                                py, "-u", "-m", "tools.bench", *bench["args"],
                                "--out", os.path.join(out, "bench")], bench["wall"]))
    tests = config["pytest"]
    # -v: one line per finished test, readable even when the wall clock cuts pytest short.
    argv = [*wrap, py, "-u", "-m", "pytest", *tests["paths"], "-v", "-rA", "-p", "no:cacheprovider",
            f"--junitxml={os.path.join(out, 'junit.xml')}", f"--timeout={tests['timeout']}"]
    if tests.get("k"):
        argv += ["-k", tests["k"]]
    if tests["paths"]:
        steps.append(("pytest", argv, tests["wall"]))
    for name, argv, limit in steps:
        if name in ("pytest", "groundtruth", "bench") and config.get("vm_wall"):
            # Whatever the host's wall clock leaves after the steps before, less a
            # margin for shutting down, so pytest ends itself and writes its JUnit.
            left = config["vm_wall"] - 120 - (time.monotonic() - started)
            limit = max(60.0, min(limit, left))
        status["steps"][name] = {"running": True}
        save()
        step_env = env
        if name == "groundtruth":  # BCC must find this kernel's own headers, not a borrowed tree
            step_env = {k: v for k, v in env.items() if k != "HYBRIDTRACE_BCC_HEADERS"}
        status["steps"][name] = run_step(out, name, argv, limit, repo, step_env,
                                         in_vm=bool(config.get("boot_dir")))
        if name == "record_kernel_tree" and trees != os.path.join(out, "kernels"):
            shutil.copytree(trees, os.path.join(out, "kernels"), symlinks=True)
        save()
    status["done"] = True
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
