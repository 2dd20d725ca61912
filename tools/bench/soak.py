"""Soak: each tracer for minutes under steady opens and short-lived processes.

    sudo .venv/bin/python -m tools.bench.soak               # 2 minutes per tracer
    sudo .venv/bin/python -m tools.bench.soak --minutes 60  # the long mode

The load runs for the whole soak: the open loop at 10,000 opens/s and the exec
loop at 100 short-lived processes/s, as the fault-finding runs used. Each tracer
(opensnoop: ours on every backend this machine runs, and Debian's libbpf-tools
beside them) is sampled every few seconds for its resident memory, CPU time and
open file descriptors (its whole process tree). A tracer whose memory or fds
still grow in its last third is flagged. Writes soak.md and soak.json to
docs/benchmarks/ (the main benchmark is not touched).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from hybridtrace import tracefs
from hybridtrace.cli.common import positive_float
from tools.bench import procstat, workloads
from tools.bench.running import REPO, Running, publish
from tools.bench.tracers import LIBBPF_TOOLS, OURS, find_headers, hybridtrace_cli

OPEN_RATE = 10_000
EXEC_RATE = 100
SAMPLE_EVERY = 5.0


def tracers() -> List[Tuple[str, List[str], Dict[str, str]]]:
    cli = hybridtrace_cli(REPO)
    headers = find_headers()
    out = []
    for name, options in OURS:
        env = {"HYBRIDTRACE_BCC_HEADERS": headers} if headers and name == "ebpf-bcc" else {}
        out.append((f"hybridtrace {name}", [cli, "opensnoop", "--json", "-Q", *options], env))
    # Its stdio buffers a pipe: line buffering shows its header (readiness) at once.
    out.append(("libbpf-tools", ["stdbuf", "-oL", LIBBPF_TOOLS["open"]], {}))
    return out


def _rss_kb(pids: List[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                total += next(int(ln.split()[1]) for ln in f if ln.startswith(b"VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total


def _fds(pids: List[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
    return total


class Load:
    """The open and exec loops, restarted as each one ends, until stopped."""

    def __init__(self, bins: workloads.Binaries, rundir: str) -> None:
        self.bins = bins
        self.rundir = rundir
        self.child = workloads.child_copy(bins, rundir, "soakchild")
        self.procs: List[subprocess.Popen[bytes]] = []

    def keep_running(self, until: float) -> None:
        chunk = str(min(60.0, max(1.0, until - time.monotonic())))
        alive = [p for p in self.procs if p.poll() is None]
        self.procs = alive
        if len(alive) == 2 or time.monotonic() >= until:
            return
        names = {p.args[0] for p in alive}  # type: ignore[index]
        if self.bins.openloop not in names:
            self.procs.append(subprocess.Popen(
                [self.bins.openloop, os.path.join(self.rundir, "soak-"), str(OPEN_RATE), chunk],
                stdout=subprocess.DEVNULL))
        if self.bins.execloop not in names:
            self.procs.append(subprocess.Popen(
                [self.bins.execloop, self.child, "soak", str(EXEC_RATE), chunk,
                 os.path.join(self.rundir, "pids.bin")], stdout=subprocess.DEVNULL))

    def stop(self) -> None:
        for p in self.procs:  # ours, by pid
            if p.poll() is None:
                p.terminate()
            p.wait()
        self.procs = []


def soak_one(argv: List[str], env: Dict[str, str], seconds: float,
             load: Load) -> Dict[str, Any]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        tracer = Running(argv)
    except (OSError, RuntimeError) as exc:
        return {"error": str(exc)}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    samples: List[Dict[str, float]] = []
    start = time.monotonic()
    end = start + seconds
    try:
        next_sample = start
        while time.monotonic() < end and tracer.proc.poll() is None:
            load.keep_running(end)
            if time.monotonic() >= next_sample:
                pids = procstat.tree(tracer.pid)
                samples.append({"t": round(time.monotonic() - start, 1),
                                "rss_kb": _rss_kb(pids), "fds": _fds(pids),
                                "cpu_s": round(procstat.cpu_seconds(tracer.pid), 2)})
                next_sample += SAMPLE_EVERY
            time.sleep(0.2)
    finally:
        load.stop()
        err = tracer.stop()
    if not samples or tracer.returncode() not in (0, -2, 130):
        return {"error": f"exited {tracer.returncode()}: {err.strip()[-200:]}"}
    return summarize(samples, tracer.bytes_out, err)


def summarize(samples: List[Dict[str, float]], out_bytes: int, err: str) -> Dict[str, Any]:
    last_third = [s for s in samples if s["t"] >= samples[-1]["t"] * 2 / 3]
    span = samples[-1]["t"] - samples[0]["t"] or 1.0
    return {
        "seconds": samples[-1]["t"],
        "rss_mb_start": round(samples[0]["rss_kb"] / 1024, 1),
        "rss_mb_end": round(samples[-1]["rss_kb"] / 1024, 1),
        "rss_mb_max": round(max(s["rss_kb"] for s in samples) / 1024, 1),
        "rss_growing_at_end": last_third[-1]["rss_kb"] > max(
            s["rss_kb"] for s in last_third[:-1] or last_third) * 1.02,
        "fds_min": min(s["fds"] for s in samples),
        "fds_max": max(s["fds"] for s in samples),
        "cpu_s_per_min": round((samples[-1]["cpu_s"] - samples[0]["cpu_s"]) / span * 60, 2),
        "output_mb": round(out_bytes / 1e6, 1),
        "summary": err.strip().splitlines()[-1] if err.strip() else "",
        "samples": samples,
    }


def render(result: Dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "# Soak: memory, CPU and fds of each tracer over time",
        "",
        f"Generated by `python -m tools.bench.soak --minutes {result['minutes']}` on"
        f" {result['date']}: kernel {m['kernel']}, {m['cpus']} CPUs, commit"
        f" {m['hybridtrace_commit']}. Load during each soak: {OPEN_RATE:,} opens/s and"
        f" {EXEC_RATE} short-lived processes/s. Each tracer is opensnoop (ours with `--json`"
        " to a pipe drained and discarded), sampled every"
        f" {SAMPLE_EVERY:.0f} s over its whole process tree.",
        "",
        "| tracer | RSS start / end / max (MB) | still growing at the end | fds min-max |"
        " CPU s per minute | output MB |",
        "|---|---|---|---|---:|---:|",
    ]
    for name, row in result["tracers"].items():
        if "error" in row:
            lines.append(f"| {name} | did not run: {row['error']} | | | | |")
            continue
        lines.append(
            f"| {name} | {row['rss_mb_start']} / {row['rss_mb_end']} / {row['rss_mb_max']} |"
            f" {'yes' if row['rss_growing_at_end'] else 'no'} |"
            f" {row['fds_min']}-{row['fds_max']} | {row['cpu_s_per_min']} |"
            f" {row['output_mb']} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench.soak",
                                description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=positive_float, default=2.0, help="per tracer (2)")
    p.add_argument("--tracers", help="comma list of substrings of tracer names to run")
    p.add_argument("--out", default=os.path.join(REPO, "docs", "benchmarks"))
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("soak: run as root (the tracers need it)", file=sys.stderr)
        return 2
    tracefs.ensure_mounted()  # classic tracepoints and libbpf-tools read ids there
    wanted = [w for w in (args.tracers or "").split(",") if w]
    rows: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ht-soak-") as work:
        bins = workloads.build(work)
        for name, cmd, env in tracers():
            if wanted and not any(w in name for w in wanted):
                continue
            print(f"soak: {name} for {args.minutes} min", file=sys.stderr)
            rows[name] = soak_one(cmd, env, args.minutes * 60, Load(bins, work))
    print(publish(args.out, "soak", {"minutes": args.minutes}, rows, render))
    return 0


if __name__ == "__main__":
    sys.exit(main())
