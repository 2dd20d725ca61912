"""The workloads: small C programs built on the fly, and a shell loop.

Each run gets a fresh token, so its events carry markers no other run (and
no other process on the machine) uses: open paths ``<dir>/O-<token>-<seq>``,
exec argv ``[<dir>/hx<token>, <token>, <seq>, PAD]``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import List, Union

import attrs

from tools.bench.accounting import ExecExpectation, OpenExpectation

SOURCES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c")
PAD = b"--hybridtrace-bench-padding-arg"  # matches PAD in c/execloop.c

_SHELL_LOOP = """i=0
while [ ! -e "$1" ]; do "$2" "$3" "$i" "$4"; i=$((i+1)); done
echo "produced $i"
"""

Expectation = Union[OpenExpectation, ExecExpectation]


class WorkloadError(Exception):
    pass


@attrs.frozen(slots=True)
class Workload:
    name: str  # "open-loop", "uring-open-loop", "exec-loop", "shell-loop"
    kind: str  # what a tracer of it must trace: "open" or "exec"
    rate: int  # offered events per second; 0 = flat out
    duration: float

    @property
    def label(self) -> str:
        return f"{self.name}@{'max' if self.rate == 0 else self.rate}"


@attrs.frozen(slots=True)
class Binaries:
    openloop: str
    execloop: str
    child: str
    gcc: str


@attrs.frozen(slots=True)
class Outcome:
    produced: int
    elapsed_s: float
    pid: int
    expectation: Expectation

    @property
    def achieved_rate(self) -> float:
        return self.produced / self.elapsed_s if self.elapsed_s > 0 else 0.0


def build(outdir: str) -> Binaries:
    """Compile the workloads.

    The loops link the C library dynamically, as almost every program does
    (a libc uprobe tier cannot see static binaries); the exec target is
    static, so an exec costs no ld.so work.
    """
    gcc = shutil.which("gcc")
    if gcc is None:
        raise WorkloadError("gcc not found (apt-get install gcc libc6-dev)")
    out = {}
    for name in ("openloop", "execloop", "child"):
        target = os.path.join(outdir, name)
        static = ["-static"] if name == "child" else []
        cmd = [gcc, "-O2", *static, "-o", target, os.path.join(SOURCES, f"{name}.c")]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise WorkloadError(f"gcc failed for {name}.c: {done.stderr.strip()[:300]}")
        out[name] = target
    version = subprocess.run([gcc, "--version"], capture_output=True, text=True).stdout
    return Binaries(openloop=out["openloop"], execloop=out["execloop"], child=out["child"],
                    gcc=version.splitlines()[0] if version else "gcc")


def child_copy(bins: Binaries, rundir: str, name: str) -> str:
    """A hard link to the child with a run-unique name (its comm after exec)."""
    path = os.path.join(rundir, name)
    if not os.path.exists(path):
        os.link(bins.child, path)
    return path


def open_prefix(rundir: str, token: str) -> str:
    return os.path.join(rundir, f"O-{token}-")


def _produced(text: str) -> int:
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "produced":
            return int(parts[1])
    raise WorkloadError(f"workload printed no count: {text.strip()[:200]!r}")


def _check(proc: subprocess.Popen[str], out: str, err: str) -> None:
    if proc.returncode != 0:
        raise WorkloadError(f"workload exited {proc.returncode}: {err.strip()[:200]}")


def run(w: Workload, bins: Binaries, rundir: str, token: str) -> Outcome:
    """Run one workload to completion and return its own exact count."""
    rate = str(w.rate)
    dur = str(w.duration)
    if w.name in ("open-loop", "uring-open-loop"):
        prefix = open_prefix(rundir, token)
        cmd: List[str] = [bins.openloop, prefix, rate, dur]
        if w.name == "uring-open-loop":  # IORING_OP_OPENAT requests: no open syscall
            cmd.append("io_uring")
    elif w.name == "exec-loop":
        child = child_copy(bins, rundir, f"hx{token}")
        cmd = [bins.execloop, child, token, rate, dur, os.path.join(rundir, "pids.bin")]
    elif w.name == "shell-loop":
        child = child_copy(bins, rundir, f"hx{token}")
        stop = os.path.join(rundir, "stop")
        cmd = ["/bin/sh", "-c", _SHELL_LOOP, "sh", stop, child, token, PAD.decode()]
    else:
        raise WorkloadError(f"unknown workload {w.name}")
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if w.name == "shell-loop":
        time.sleep(w.duration)
        with open(stop, "w"):
            pass
    out, err = proc.communicate()
    elapsed = time.monotonic() - start
    _check(proc, out, err)
    produced = _produced(out)
    if w.name != "shell-loop":
        fields = out.split()
        elapsed = int(fields[fields.index("elapsed_ns") + 1]) / 1e9
    expectation: Expectation
    if w.kind == "open":
        expectation = OpenExpectation(prefix=prefix.encode(), produced=produced, pid=proc.pid)
    else:
        expectation = ExecExpectation(child=child.encode(), token=token.encode(), pad=PAD,
                                      produced=produced)
    return Outcome(produced=produced, elapsed_s=elapsed, pid=proc.pid, expectation=expectation)
