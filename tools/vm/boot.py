"""Boot one kernel under virtme-ng and run tools.vm.guest_run inside it.

KVM is not used: on this machine kind /dev/kvm exists but the CPU shows no
svm/vmx, qemu -cpu host dies setting MSR 0x10a (arch-capabilities) and without
that flag the guest hangs while decompressing the kernel; TCG works.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import List, Optional, Sequence

VENV_BIN = os.path.dirname(sys.executable)


def vng_argv(kimg: str, run_dir: str, ro_dirs: Sequence[str], append: Sequence[str],
             guest_cmd: str, cpus: int, memory: str, kvm: bool,
             arch: Optional[str] = None, root: Optional[str] = None) -> List[str]:
    """The vng command; ``arch`` (virtme-ng's name, e.g. arm64) with ``root`` (a root
    filesystem of that architecture) boots a foreign kernel under qemu-system-ARCH."""
    # --verbose: kernel messages reach console.log, so a guest that dies says why.
    argv = [os.path.join(VENV_BIN, "vng"), "--verbose", "--run", kimg, "--user", "root",
            "--force-9p",
            "--cpus", str(cpus), "--memory", memory,
            "--rwdir", same_path(run_dir) if root else run_dir]
    if arch is not None:
        if root is None:
            raise ValueError("a foreign architecture needs its own root filesystem")
        argv += ["--arch", arch, "--root", root]
    if not kvm:
        argv.append("--disable-kvm")
        if cpus > 1:
            # One TCG thread for all vCPUs: with a thread per vCPU, the kernel patching
            # its own text (int3 + sync IPIs when tracepoints are switched on and off)
            # left a vCPU spinning on a stale int3 in syscall_trace_enter ("soft lockup",
            # RCU stalls) in about one VM in seven. Real CPUs and KVM don't do this.
            argv.append("--qemu-opts=-accel tcg,thread=single")  # "=": the value starts with -
    for d in ro_dirs:
        argv += ["--rodir", same_path(d) if root else d]
    for a in append:
        argv += ["--append", a]
    return [*argv, "--exec", guest_cmd]


def same_path(host_dir: str) -> str:
    """GUEST=HOST for vng: with a root other than the host's it infers no guest path."""
    return f"{host_dir}={host_dir}"


def run_vm(argv: Sequence[str], console: str, wall: float, cwd: str) -> Optional[int]:
    """Run vng (and its qemu) as one process group; None when the wall clock ran out."""
    env = dict(os.environ)
    env["PATH"] = VENV_BIN + ":" + env.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    with open(console, "wb") as log:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=wall)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            time.sleep(0.5)
            return None


def run_local(argv: Sequence[str], console: str, wall: float, cwd: str) -> Optional[int]:
    """The same as run_vm for the host's own kernel (no image to boot)."""
    with open(console, "wb") as log:
        proc = subprocess.Popen(list(argv), cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=wall)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None
