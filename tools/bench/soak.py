"""Soak: each tracer for minutes under steady opens and short-lived processes.

    sudo .venv/bin/python -m tools.bench.soak               # 2 minutes per tracer
    sudo .venv/bin/python -m tools.bench.soak --minutes 60  # the long mode (about 8 h)

The load runs for the whole soak: the open loop at 10,000 opens/s and the exec
loop at 100 short-lived processes/s, as the fault-finding runs used. Each tracer
(opensnoop: ours on every backend and tier doctor says can run here, and
Debian's libbpf-tools beside them) is sampled every few seconds for its
resident memory, CPU time and open file descriptors (its whole process tree),
and the machine for its load average; a tracer whose memory or fds still grow
in its last third is flagged. What the rest of the machine used meanwhile is
recorded too (tools/bench/hostload.py). Writes soak.md and soak.json to
docs/benchmarks/ (the main benchmark is not touched).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

import attrs

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from hybridtrace import tracefs
from hybridtrace.cli.common import positive_float
from tools.bench import hostload, procstat, workloads
from tools.bench.running import REPO, START_LINE, NotStarted, Running, one_line, publish
from tools.bench.tracers import LIBBPF_TOOLS, find_headers

OPEN_RATE = 10_000
EXEC_RATE = 100
SAMPLE_EVERY = 5.0
# BCC compiles its program when a session opens: seconds alone, minutes when the
# CPUs are busy. Everything else attaches in well under a second.
READY_TIMEOUT = {"ebpf-bcc": 900.0}
READY_DEFAULT = 60.0


@attrs.frozen(slots=True)
class Tracer:
    name: str
    argv: Tuple[str, ...]
    env: Dict[str, str] = attrs.Factory(dict)
    ready_timeout: float = READY_DEFAULT
    ready_on_stderr: Optional[bytes] = None


def _options(backend: str, tier: Optional[str]) -> Tuple[str, ...]:
    if backend == "ebpf-core":
        return ("--backend", backend, "--ebpf-attach", str(tier))
    if backend == "ftrace":
        return ("--backend", backend, "--tier", str(tier))
    return ("--backend", backend)


def tracers() -> Tuple[List[Tracer], List[Tuple[str, str]]]:
    """(what runs here, (label, why not) for what doctor says cannot).

    Ours are every backend and tier doctor lists for open tracing, in its order;
    libbpf-tools' opensnoop is last.
    """
    from hybridtrace.capabilities import probe
    from hybridtrace.selector import candidates

    # This checkout's package, whatever the venv's entry point would import.
    cli = (sys.executable, "-m", "hybridtrace")
    headers = find_headers()
    if headers and not os.path.exists(f"/lib/modules/{os.uname().release}/build"):
        os.environ.setdefault("HYBRIDTRACE_BCC_HEADERS", headers)  # doctor judges with it
    run: List[Tracer] = []
    left_out: List[Tuple[str, str]] = []
    for cand in candidates(probe(), "open"):
        if not cand.usable:
            why = next((r.message for r in cand.reasons if r.blocking), "not usable")
            left_out.append((f"hybridtrace {cand.label}", why))
            continue
        # No -Q: the start line on stderr says it attached, the summary its counts.
        run.append(Tracer(f"hybridtrace {cand.label}",
                          (*cli, "opensnoop", "--json", *_options(cand.backend, cand.tier)),
                          env={"PYTHONPATH": REPO},
                          ready_timeout=READY_TIMEOUT.get(cand.backend, READY_DEFAULT),
                          ready_on_stderr=START_LINE))
    # Its stdio buffers a pipe: line buffering shows its header (readiness) at once.
    run.append(Tracer("libbpf-tools", ("stdbuf", "-oL", LIBBPF_TOOLS["open"])))
    return run, left_out


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
    """The open and exec loops, restarted as each one ends, until stopped; each
    loop's own count of what it made is added up."""

    def __init__(self, bins: workloads.Binaries, rundir: str) -> None:
        self.bins = bins
        self.rundir = rundir
        self.child = workloads.child_copy(bins, rundir, "soakchild")
        self.procs: List[subprocess.Popen[bytes]] = []
        self.made = {"open": 0, "exec": 0}
        self.seconds = {"open": 0.0, "exec": 0.0}
        self.uncounted = 0  # loops stopped before they could print their count

    def _kind(self, proc: subprocess.Popen[bytes]) -> str:
        return "open" if proc.args[0] == self.bins.openloop else "exec"  # type: ignore[index]

    def _count(self, proc: subprocess.Popen[bytes]) -> None:
        out = proc.communicate()[0].decode(errors="replace").split()
        if proc.returncode == 0 and "produced" in out and "elapsed_ns" in out:
            kind = self._kind(proc)
            self.made[kind] += int(out[out.index("produced") + 1])
            self.seconds[kind] += int(out[out.index("elapsed_ns") + 1]) / 1e9
        else:
            self.uncounted += 1

    def keep_running(self, until: float) -> None:
        for p in [p for p in self.procs if p.poll() is not None]:
            self._count(p)
            self.procs.remove(p)
        left = until - time.monotonic()
        if len(self.procs) == 2 or left < 1.0:
            return
        chunk = str(min(60.0, left))
        kinds = {self._kind(p) for p in self.procs}
        if "open" not in kinds:
            self.procs.append(subprocess.Popen(
                [self.bins.openloop, os.path.join(self.rundir, "soak-"), str(OPEN_RATE), chunk],
                stdout=subprocess.PIPE))
        if "exec" not in kinds:
            self.procs.append(subprocess.Popen(
                [self.bins.execloop, self.child, "soak", str(EXEC_RATE), chunk,
                 os.path.join(self.rundir, "pids.bin")], stdout=subprocess.PIPE))

    def stop(self) -> None:
        """Let the loops finish their last chunk (they end with the soak), then count."""
        deadline = time.monotonic() + 5
        for p in self.procs:  # ours, by pid
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.terminate()
            self._count(p)
        self.procs = []

    def rates(self) -> Dict[str, float]:
        return {k: round(self.made[k] / self.seconds[k], 1) if self.seconds[k] else 0.0
                for k in self.made}


def soak_one(tracer: Tracer, seconds: float, load: Load) -> Dict[str, Any]:
    saved = {k: os.environ.get(k) for k in tracer.env}
    os.environ.update(tracer.env)
    machine = hostload.Watch()
    watched_from = time.monotonic()
    load1_at_start = hostload.loadavg()[0]
    try:
        running = Running(list(tracer.argv), ready_timeout=tracer.ready_timeout,
                          ready_on_stderr=tracer.ready_on_stderr)
    except OSError as exc:
        return {"error": f"cannot start {tracer.argv[0]}: {exc}"}
    except NotStarted as exc:
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
        while time.monotonic() < end and running.proc.poll() is None:
            load.keep_running(end)
            if time.monotonic() >= next_sample:
                pids = procstat.tree(running.pid)
                samples.append({"t": round(time.monotonic() - start, 1),
                                "rss_kb": _rss_kb(pids), "fds": _fds(pids),
                                "cpu_s": round(procstat.cpu_seconds(running.pid), 2),
                                "load1": hostload.loadavg()[0]})
                machine.sample(set(procstat.tree(os.getpid())))
                next_sample += SAMPLE_EVERY
            time.sleep(0.2)
    finally:
        load.stop()
        err = running.stop()
    others_cpu, top = machine.finish()
    if not samples or running.returncode() not in (0, -2, 130):
        return {"error": f"exited {running.returncode()} while running: "
                         f"{one_line(err) or 'nothing on stderr'}"}
    row = summarize(samples, running.bytes_out, err)
    row["lost_reported"] = lost_reported(err, ours=tracer.ready_on_stderr is not None)
    wall = time.monotonic() - watched_from
    row.update(
        ready_s=round(running.ready_s, 2),
        # libbpf-tools prints one header line; ours with --json only events.
        events_out=running.lines_out - (0 if tracer.ready_on_stderr else 1),
        opens_made=load.made["open"], execs_made=load.made["exec"], load_rates=load.rates(),
        loops_uncounted=load.uncounted,
        load1_at_start=load1_at_start,
        others_cpu_s=round(others_cpu, 1),
        others_cpu_pct=round(100 * others_cpu / (wall * (os.cpu_count() or 1)), 1),
        others_top=top)
    events = max(row["events_out"], 1)
    row["cpu_s_per_100k_events"] = round(row["cpu_s"] / events * 1e5, 3)
    return row


def summarize(samples: List[Dict[str, float]], out_bytes: int, err: str) -> Dict[str, Any]:
    last_third = [s for s in samples if s["t"] >= samples[-1]["t"] * 2 / 3]
    span = samples[-1]["t"] - samples[0]["t"] or 1.0
    loads = [s["load1"] for s in samples]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return {
        "seconds": samples[-1]["t"],
        "rss_mb_start": round(samples[0]["rss_kb"] / 1024, 1),
        "rss_mb_end": round(samples[-1]["rss_kb"] / 1024, 1),
        "rss_mb_max": round(max(s["rss_kb"] for s in samples) / 1024, 1),
        "rss_growing_at_end": last_third[-1]["rss_kb"] > max(
            s["rss_kb"] for s in last_third[:-1] or last_third) * 1.02,
        "fds_min": min(s["fds"] for s in samples),
        "fds_max": max(s["fds"] for s in samples),
        "fds_growing_at_end": last_third[-1]["fds"] > max(
            s["fds"] for s in last_third[:-1] or last_third),
        "cpu_s": round(samples[-1]["cpu_s"] - samples[0]["cpu_s"], 2),
        "cpu_s_per_min": round((samples[-1]["cpu_s"] - samples[0]["cpu_s"]) / span * 60, 2),
        "load1_mean": round(sum(loads) / len(loads), 2),
        "load1_max": max(loads),
        "output_mb": round(out_bytes / 1e6, 1),
        # Our CLI's last line is its summary (events shown, lost, backend).
        "summary": lines[-1] if lines else "",
        "stderr_lines": len(lines),
        "samples": samples,
    }


def _top(row: Dict[str, Any]) -> str:
    return ", ".join(f"{name} {cpu:g}" for name, cpu in row["others_top"]) or "-"


def render(result: Dict[str, Any]) -> str:
    m = result["machine"]
    minutes = result["minutes"]
    lines = [
        "# Soak: memory, CPU and fds of each tracer over time",
        "",
        f"Generated by `python -m tools.bench.soak --minutes {minutes:g}` on"
        f" {result['date']}; do not edit. Kernel {m['kernel']}, {m['cpus']} CPUs ({m['cpu']}),"
        f" commit {m['hybridtrace_commit']}. Raw numbers and every sample: [soak.json](soak.json).",
        "",
        f"Each tracer runs alone for {minutes:g} min under the same load: an open loop asking"
        f" for {OPEN_RATE:,} opens/s and an exec loop asking for {EXEC_RATE} short-lived"
        " processes/s. Each tracer is opensnoop (ours with `--json` to a pipe that is drained"
        " and discarded; libbpf-tools' text the same way), sampled every"
        f" {SAMPLE_EVERY:.0f} s over its whole process tree for resident memory, file"
        " descriptors and CPU time. *Growing* means the last sample is above every other"
        " sample of the last third (memory by more than 2%).",
        "",
        "| tracer | RSS start / end / max (MB) | RSS growing at the end | fds min-max |"
        " fds growing | CPU s (per minute) | CPU s per 100k events | events out | lost"
        " (as it reported) |",
        "|---|---|---|---|---|---:|---:|---:|---|",
    ]
    for name, row in result["tracers"].items():
        if "error" in row:
            lines.append(f"| {name} | **did not run**: {row['error']} | | | | | | | |")
            continue
        lost = _lost(row)
        lines.append(
            f"| {name} | {row['rss_mb_start']} / {row['rss_mb_end']} / {row['rss_mb_max']} |"
            f" {'**yes**' if row['rss_growing_at_end'] else 'no'} |"
            f" {row['fds_min']}-{row['fds_max']} |"
            f" {'**yes**' if row['fds_growing_at_end'] else 'no'} |"
            f" {row['cpu_s']} ({row['cpu_s_per_min']}) | {row['cpu_s_per_100k_events']} |"
            f" {row['events_out']:,} | {lost} |")
    left_out = result.get("left_out") or []
    if left_out:
        lines += ["", "Left out: doctor says these cannot run here, and why.", ""]
        lines += [f"- {name}: {why}" for name, why in left_out]
    lines += [
        "",
        "## What else the machine was doing",
        "",
        "The CPUs are shared with other work. A tracer's CPU seconds per event hardly"
        " depend on that (each event costs it the same work), but rates do: what the loops"
        " achieved, the events a tracer saw (it traces every open on the machine, other"
        " people's too) and so its CPU per minute. Read the rows of one run against each"
        " other with this table beside them. *Others' CPU* is the machine's busy time"
        " (/proc/stat) less this benchmark's own processes (the tracer, the loops, the"
        " sampler), as a share of all CPUs; the biggest other consumers seen at a sample"
        " are named with their CPU seconds (processes that lived less than a sampling"
        " period are in the share but not named).",
        "",
        "| tracer | ready after s | opens/s achieved | execs/s achieved |"
        " load average (1 min) at start, mean, max | others' CPU | biggest others (CPU s) |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    for name, row in result["tracers"].items():
        if "error" in row:
            continue
        lines.append(
            f"| {name} | {row['ready_s']} | {row['load_rates']['open']:,.0f} |"
            f" {row['load_rates']['exec']:,.0f} | {row['load1_at_start']} /"
            f" {row['load1_mean']} / {row['load1_max']} | {row['others_cpu_pct']}% |"
            f" {_top(row)} |")
    lines += [
        "",
        "## Long mode",
        "",
        "`sudo .venv/bin/python -m tools.bench.soak --minutes 60` runs each tracer for an hour"
        f" (about {len(result['tracers'])} hours for the {len(result['tracers'])} here;"
        " `--tracers tp_btf,libbpf` picks some by substring). Memory that grows slowly, or"
        " only once pids wrap (the ftrace tiers'"
        " per-thread tables fill for about five minutes at 100 processes/s, then stay flat at"
        " their cap), shows there and not in the short run.",
    ]
    return "\n".join(lines) + "\n"


def lost_reported(err: str, ours: bool) -> Optional[str]:
    """What the tracer said it lost: our summary's loss clause ("0 lost", "up to N
    lost (counted in ring-buffer records)"), or the sum of libbpf-tools' "Lost N
    events on CPU #c!" lines; None when it said nothing we can read."""
    if ours:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        summary = lines[-1] if lines else ""
        found = [p.strip() for p in summary.split(",") if "lost" in p]
        return "; ".join(found) if found else None
    counts = [int(n) for n in re.findall(r"Lost (\d+) events", err)]
    return f"{sum(counts):,} lost ({len(counts)} reports)" if counts else "none reported"


def _lost(row: Dict[str, Any]) -> str:
    if "lost_reported" in row:
        return row["lost_reported"] or "?"
    # Rows from before lost_reported: the last line of stderr.
    return f"{row['summary']} (last of {row['stderr_lines']} stderr lines)"


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench.soak",
                                description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=positive_float, default=2.0, help="per tracer (2)")
    p.add_argument("--tracers", help="comma list of substrings of tracer names to run")
    p.add_argument("--out", default=os.path.join(REPO, "docs", "benchmarks"))
    p.add_argument("--render-only", action="store_true",
                   help="rewrite soak.md from soak.json in --out, run nothing")
    args = p.parse_args(argv)
    if args.render_only:
        try:
            with open(os.path.join(args.out, "soak.json")) as f:
                result = json.load(f)
        except (OSError, ValueError) as exc:
            print(f"soak: cannot read soak.json in {args.out}: {exc}", file=sys.stderr)
            return 2
        with open(os.path.join(args.out, "soak.md"), "w") as f:
            f.write(render(result))
        return 0
    if os.geteuid() != 0:
        print("soak: run as root (the tracers need it)", file=sys.stderr)
        return 2
    path, mounted = tracefs.ensure_mounted()  # classic tracepoints and libbpf-tools need it
    if mounted:
        print(f"soak: mounted tracefs at {path} for the classic tracepoints", file=sys.stderr)
    wanted = [w for w in (args.tracers or "").split(",") if w]
    run, left_out = tracers()
    rows: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ht-soak-") as work:
        bins = workloads.build(work)
        for tracer in run:
            if wanted and not any(w in tracer.name for w in wanted):
                continue
            print(f"soak: {tracer.name} for {args.minutes:g} min (load average"
                  f" {hostload.loadavg()[0]})", file=sys.stderr, flush=True)
            rows[tracer.name] = soak_one(tracer, args.minutes * 60, Load(bins, work))
            row = rows[tracer.name]
            print(f"soak: {tracer.name}: " + (row["error"] if "error" in row else
                  f"RSS max {row['rss_mb_max']} MB, fds {row['fds_max']}, CPU {row['cpu_s']} s,"
                  f" {row['events_out']:,} events; {row['summary']}"), file=sys.stderr,
                  flush=True)
    print(publish(args.out, "soak", {"minutes": args.minutes, "left_out": left_out}, rows,
                  render))
    return 0


if __name__ == "__main__":
    sys.exit(main())
