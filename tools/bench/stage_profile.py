"""Where the ftrace tiers' CPU goes per open: a sampled profile, split into stages.

Runs our CLI (``opensnoop --json``, a forced ftrace tier, output to a file as
the bench does) under the open loop at a fixed rate, samples it with py-spy
(``--nonblocking``: the tracer is never paused, so its pace is the real one)
and files every sample under the stage its innermost frame belongs to. A
stage's share of the samples times the CPU-seconds the tracer used in that
window (utime + stime, from /proc) gives microseconds per open; system time
(the page reads' copies, output writes) goes to the stage that made the call.

Run as root: ``python -m tools.bench.stage_profile [--tiers uprobe,tracepoint]
[--rate 50000] [--duration 10] [--out docs/benchmarks/profile.md]``; it writes
the Markdown page and a JSON file beside it (same name, ``.json``). Needs
py-spy in the environment (``pip install -e '.[bench]'``). Not a test: numbers
vary with the machine and its load, which the page records.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tools.bench import procstat
from tools.bench.hostload import loadavg
from tools.bench.session import stop
from tools.bench.tracers import hybridtrace_cli
from tools.bench.workloads import Workload, build, run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE_HZ = 400
_START_LINE = re.compile(rb"^hybridtrace: tracing \w+ with ", re.M)
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::\d+)?\)$")

# Stages, in the order a record passes through them, and what files them: the
# innermost frame's (path suffix, function or "*"). First match wins.
STAGES: Tuple[Tuple[str, Tuple[Tuple[str, str], ...]], ...] = (
    ("page read", (("ftrace/raw_reader.py", "_read_page"),)),
    ("page framing", (("ftrace/ring_page.py", "*"),)),
    ("record decode", (("ftrace/raw_records.py", "*"), ("ftrace/raw_decode.py", "*"),
                       ("ftrace/_ringpage", "*"))),
    ("merge, hold-back, hand-over", (("ftrace/raw_reader.py", "*"),
                                     ("ftrace/trace_record.py", "*"),
                                     ("TraceLine", "*"))),
    ("/proc snapshots", (("ftrace/proc_snapshots.py", "*"), ("hybridtrace/procfs.py", "*"))),
    ("correlate", (("ftrace/correlate.py", "*"), ("ftrace/tasks.py", "*"),
                   ("ftrace/threads.py", "*"), ("ftrace/fd_ledger.py", "*"),
                   ("ftrace/uring.py", "*"))),
    ("origin proofs", (("ftrace/origin_proof.py", "*"), ("hybridtrace/cgroups.py", "*"),
                       ("hybridtrace/containers.py", "*"))),
    ("event construction", (("hybridtrace/events.py", "*"), ("OpenEvent", "*"),
                            ("ExecEvent", "*"), ("LostEvent", "*"))),
    ("filtering, session", (("hybridtrace/filtering.py", "*"), ("hybridtrace/api.py", "*"),
                            ("ftrace/stream.py", "*"), ("ftrace/buffer_stats.py", "*"))),
    ("output (JSON, write)", (("hybridtrace/output/", "*"), ("hybridtrace/cli/", "*"))),
)
OTHER = "other (interpreter, start-up, libraries)"
Result = Dict[str, Any]  # one tier's run, as saved in the JSON file


def stage_of(frame: str) -> str:
    """The stage of one py-spy frame, ``function (path:line)``."""
    match = _FRAME.match(frame)
    func, path = (match.group("func"), match.group("file")) if match else (frame, frame)
    for stage, rules in STAGES:
        for suffix, wanted in rules:
            if suffix in path and (wanted == "*" or wanted == func):
                return stage
    return OTHER


def split_samples(raw_text: str) -> Dict[str, int]:
    """Samples per stage from py-spy's raw (collapsed) output: ``f1;f2;... count``."""
    counts: Dict[str, int] = collections.Counter()
    for line in raw_text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        counts[stage_of(frames[-1])] += int(count)
    return dict(counts)


def _wait_start(err_path: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with open(err_path, "rb") as f:
            if _START_LINE.search(f.read(4096)):
                return True
        time.sleep(0.05)
    return False


def _count_output(out_path: str, pid: int) -> Tuple[int, int]:
    """(opens of the loop printed, events reported lost) in our JSON output (by the
    loop's pid: the tracepoint tier prints its short-lived files' paths as null)."""
    seen = lost = 0
    mark = b'"pid":%d,' % pid
    with open(out_path, "rb") as f:
        for line in f:
            if mark in line and b'"type":"open"' in line:
                seen += 1
            elif b'"type":"lost"' in line:
                count = json.loads(line).get("count")
                lost += count if isinstance(count, int) else 0
    return seen, lost


def profile_tier(tier: str, rate: int, duration: float, workdir: str,
                 py_spy: str) -> Result:
    """One profiled run of one tier: CPU, samples per stage, opens produced and seen."""
    bins = build(workdir)
    rundir = tempfile.mkdtemp(prefix=f"prof-{tier}-", dir=workdir)
    out_path, err_path = os.path.join(rundir, "stdout"), os.path.join(rundir, "stderr")
    argv = [hybridtrace_cli(ROOT), "opensnoop", "--json", "--backend", "ftrace", "--tier", tier]
    if not os.path.exists(argv[0]):
        argv = [sys.executable, "-m", "hybridtrace", *argv[1:]]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=ROOT)
    try:
        if not _wait_start(err_path, proc, 30.0):
            with open(err_path, "rb") as err:
                raise RuntimeError(f"ftrace/{tier} did not start: {err.read()[-300:]!r}")
        time.sleep(0.5)
        raw_path = os.path.join(rundir, "stacks.txt")
        spy = subprocess.Popen([py_spy, "record", "--pid", str(proc.pid), "--format", "raw",
                                "--rate", str(SAMPLE_HZ), "--nonblocking", "--output", raw_path,
                                "--duration", str(int(duration + 2))],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        cpu0, load = procstat.cpu_seconds(proc.pid), loadavg()
        outcome = run(Workload("open-loop", "open", rate, duration), bins, rundir, "prof")
        time.sleep(1.0)  # the tracer catches up inside the sampled window
        cpu = procstat.cpu_seconds(proc.pid) - cpu0
        spy.wait(timeout=duration + 30)
    finally:
        stop(proc)
    with open(raw_path) as f:
        samples = split_samples(f.read())
    seen, lost = _count_output(out_path, outcome.pid)
    shutil.rmtree(rundir, ignore_errors=True)
    return {"tier": tier, "rate": rate, "duration_s": duration, "produced": outcome.produced,
            "seen": seen, "lost_reported": lost, "cpu_s": round(cpu, 3),
            "loadavg_at_start": load, "samples": samples}


def per_open(result: Result) -> Dict[str, float]:
    """Microseconds of tracer CPU per open, per stage (the CPU split by sample share)."""
    samples: Dict[str, int] = result["samples"]
    total = sum(samples.values()) or 1
    per = float(result["cpu_s"]) * 1e6 / (int(result["produced"]) or 1)
    return {stage: per * n / total for stage, n in samples.items()}


def _table(now: Dict[str, float], old: Optional[Dict[str, float]],
           old_commit: str) -> List[str]:
    if old is None:
        lines = ["| stage | µs per open |", "|---|---|"]
    else:
        lines = [f"| stage | µs per open (before, commit {old_commit}) | µs per open |",
                 "|---|---|---|"]
    for stage in [s for s, _ in STAGES] + [OTHER]:
        if stage in now or (old is not None and stage in old):
            cells = ([] if old is None else [f"{old.get(stage, 0.0):.2f}"]) \
                + [f"{now.get(stage, 0.0):.2f}"]
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    totals = ([] if old is None else [f"**{sum(old.values()):.2f}**"]) \
        + [f"**{sum(now.values()):.2f}**"]
    lines.append("| **total** | " + " | ".join(totals) + " |")
    return lines


def _summary(result: Result) -> str:
    produced = int(result["produced"])
    cpu = float(result["cpu_s"])
    seen, lost = result["seen"], result["lost_reported"]
    shown = "not counted" if seen is None else f"{int(seen):,}"
    return (f"Produced {produced:,} opens, printed {shown}, reported lost "
            f"{'not counted' if lost is None else f'{int(lost):,}'}; tracer CPU {cpu:.2f} s = "
            f"**{cpu * 1e5 / max(1, produced):.2f} CPU-s per 100k opens**; "
            f"load average at start {tuple(result['loadavg_at_start'])}.")


def render(results: Sequence[Result], when: str, commit: str,
           previous: Optional[Dict[str, Any]] = None, note: str = "") -> str:
    """The Markdown page; ``previous`` (an earlier JSON of this script) adds a before column."""
    lines = [
        "# Where the ftrace tiers' CPU goes, per open",
        "",
        "Generated by `python -m tools.bench.stage_profile` (see its docstring); do not edit "
        "by hand.",
        "",
        f"Run {when}, hybridtrace commit {commit}. Our CLI (`opensnoop --json`, output to a "
        "file) under the open loop at a fixed rate, sampled by py-spy at "
        f"{SAMPLE_HZ} Hz without pausing it; each sample is filed under the stage of its "
        "innermost Python frame, and each stage's share of the samples splits the CPU-seconds "
        "(user + system) the tracer used in the window. py-spy counts a thread inside a "
        "system call as idle, so the kernel's share (page copies, writes) is spread over the "
        "stages in proportion.",
        "",
    ]
    before = {str(r["tier"]): r for r in (previous or {}).get("results", [])}
    old_commit = str((previous or {}).get("commit", ""))
    if previous is not None:
        lines += [f"Before: commit {old_commit}, run {previous.get('when')}.", ""]
    if note:
        lines += [note, ""]
    for result in results:
        tier = str(result["tier"])
        lines += [f"## ftrace/{tier} at {int(result['rate']):,} opens/s "
                  f"for {result['duration_s']} s", ""]
        if tier in before:
            lines += [f"Before: {_summary(before[tier])}", "", f"Now: {_summary(result)}", ""]
        else:
            lines += [_summary(result), ""]
        old = per_open(before[tier]) if tier in before else None
        lines += [*_table(per_open(result), old, old_commit), ""]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.stage_profile",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", default="uprobe,tracepoint")
    parser.add_argument("--rate", type=int, default=50000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks", "profile.md"))
    parser.add_argument("--before", help="an earlier run's JSON, shown beside this one")
    parser.add_argument("--render-only", metavar="JSON",
                        help="no run: write --out from this earlier run's JSON")
    parser.add_argument("--note", default="", help="a paragraph for the page (conditions)")
    args = parser.parse_args(argv)
    previous = None
    if args.before:
        with open(args.before) as f:
            previous = json.load(f)
    if args.render_only:
        with open(args.render_only) as f:
            doc = json.load(f)
        with open(args.out, "w") as f:
            f.write(render(doc["results"], doc["when"], doc["commit"], previous, args.note))
        print(f"wrote {args.out}")
        return 0
    py_spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(py_spy):
        print("stage_profile: py-spy not found (pip install py-spy)", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("stage_profile: needs root (tracefs, py-spy attaching)", file=sys.stderr)
        return 2
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    when = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    workdir = tempfile.mkdtemp(prefix="ht-stage-profile-")
    try:
        results = [profile_tier(t, args.rate, args.duration, workdir, py_spy)
                   for t in args.tiers.split(",") if t]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    doc = {"when": when, "commit": commit, "results": results}
    base, _ = os.path.splitext(args.out)
    with open(base + ".json", "w") as f:
        json.dump(doc, f, indent=1)
    with open(args.out, "w") as f:
        f.write(render(results, when, commit, previous, args.note))
    print(f"wrote {args.out} and {base}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
