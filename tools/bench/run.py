"""The benchmark command: every tracer in turn under every workload.

    sudo .venv/bin/python -m tools.bench [--quick] [--tracers ebpf-core,libbpf-tools]
    sudo .venv/bin/python -m tools.bench --reproduce   # the same run again, compared

Writes docs/benchmarks/results.json, README.md and captured_vs_offered.png; with
--reproduce the second run goes to docs/benchmarks/second/ and README.md gains a
Reproduction section comparing the two (tools/bench/compare.py).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shlex
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, NoReturn, Optional, Tuple, Union

if __package__ in (None, ""):  # run as a script: python tools/bench/run.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from hybridtrace import tracefs
from hybridtrace.cli.common import positive_float
from tools.bench import compare, machine, report, workloads
from tools.bench.plan import KINDS, build_plan, parse_rates
from tools.bench.profiling import profile
from tools.bench.session import (
    Context,
    base_result,
    run_traced,
    run_untraced,
    set_baseline,
)
from tools.bench.tracers import Tracer, find_headers, tracers
from tools.bench.workloads import Workload

PROFILED = ("hybridtrace ebpf-core", "hybridtrace ftrace/uprobe", "hybridtrace ftrace/tracepoint")
PROFILE_WORKLOAD = Workload(name="open-loop", kind="open", rate=0, duration=5.0)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECOND = "second"  # subdirectory of --out holding the --reproduce run

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not a usage dump
        self.exit(2, f"bench: {message}\n")


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    p = _Parser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="~2 min smoke run (fewer rates, 2 s)")
    p.add_argument("--duration", type=positive_float,
                   help="seconds per workload run (default 8; 2 with --quick)")
    p.add_argument("--sustain", type=positive_float,
                   help="seconds of the 50k/s open run (default 30)")
    p.add_argument("--tracers", help="comma list of substrings of tracer names to run"
                   " (a whole name: that tracer alone)")
    p.add_argument("--workloads", help="comma list: open-loop,uring-open-loop,exec-loop,shell-loop")
    p.add_argument("--rates", type=_rates, metavar="WORKLOAD=R,R;...",
                   help="offered rates per second (0: flat out) replacing the plan's for the"
                        " workloads named, e.g. 'open-loop=500,2000,0' (a slow VM)")
    p.add_argument("--out", default=os.path.join(REPO, "docs", "benchmarks"),
                   help="where results.json, README.md and the plot go")
    p.add_argument("--record-fixtures", metavar="DIR",
                   help="also save raw output samples as unit-test fixtures")
    p.add_argument("--bcc-headers", default=find_headers(), metavar="DIR",
                   help="kernel header tree for BCC (default: one from tools/fetch_bcc_headers.sh)")
    p.add_argument("--profile", dest="profile", action="store_const", const=True,
                   help="cProfile our CLI at flat out (default: on, off with --quick)")
    p.add_argument("--no-profile", dest="profile", action="store_const", const=False)
    p.add_argument("--render-only", metavar="RESULTS_JSON",
                   help="only rewrite README.md and the plot in --out from a results.json"
                        " (and those of --out/second/ with the comparison, if it exists)")
    p.add_argument("--reproduce", action="store_true",
                   help="run again with the options of --out/results.json into --out/second/"
                        " and compare the two runs in --out/README.md")
    p.add_argument("--ready-timeout", type=positive_float, default=60.0,
                   help="seconds a tracer gets to show its first event")
    return p.parse_args(argv)


def _rates(text: str) -> Dict[str, List[int]]:
    try:
        return parse_rates(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _selected(found: List[Tracer], wanted: Optional[str]) -> List[Tracer]:
    if not wanted:
        return found
    keys = [k.strip() for k in wanted.split(",") if k.strip()]
    # A key that is a whole name picks that tracer alone ("hybridtrace ebpf-core"
    # without ebpf-core/tp_btf); any other key, every name it is part of.
    names = {t.name for t in found}
    return [t for t in found if any(k == t.name or (k not in names and k in t.name)
                                    for k in keys)]


def _say(text: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


def _brief(r: Dict[str, Any]) -> str:
    if r["status"] != "ok":
        return f"{r['status']}: {r.get('reason', '')}"
    if r["tracer"] == "untraced":
        return f"{r['produced']} events, {r['achieved_rate']:.0f}/s"
    return (f"produced {r['produced']} captured {r['captured']} lost {r['lost_reported']}"
            f" unaccounted {r['unaccounted']} ok {r['correct']}"
            f" first {r['first_event_s']}s cpu {r['cpu_s']}s")


def _load(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"bench: cannot read {path}: {exc}\n")
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list):
        sys.stderr.write(f"bench: {path} is not a bench results document\n")
        return None
    return doc


def _write_page(doc: Dict[str, Any], out: str, second: Optional[Dict[str, Any]]) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(report.render(doc, second, f"{SECOND}/README.md"))
    plotted = report.plot(doc, os.path.join(out, "captured_vs_offered.png"))
    _say(f"wrote {out}/README.md" + (", captured_vs_offered.png" if plotted
                                      else " (no plot: no open/exec runs, or no matplotlib)"))


def write_docs(doc: Dict[str, Any], out: str) -> int:
    """README.md and plot in out; with a second run in out/second/, its page and the comparison."""
    second_json = os.path.join(out, SECOND, "results.json")
    second = None
    if os.path.exists(second_json):
        second = _load(second_json)
        if second is None:
            return 2
        problem = compare.check(doc, second)
        if problem:
            sys.stderr.write(f"bench: cannot compare with {second_json}: {problem}\n")
            return 2
        _write_page(second, os.path.join(out, SECOND), None)
    _write_page(doc, out, second)
    return 0


def render_only(path: str, out: str) -> int:
    doc = _load(path)
    return 2 if doc is None else write_docs(doc, out)


def _first_run(out: str, given: List[str]) -> Union[int, Tuple[Dict[str, Any], List[str]]]:
    """The first run's document and its options, for --reproduce to repeat exactly."""
    extra = [a for a in given if a.startswith("-") and a.split("=")[0] not in
             ("--reproduce", "--out")]
    if extra:
        sys.stderr.write(f"bench: --reproduce repeats the first run's options; {extra[0]} is"
                         " not allowed with it (only --out)\n")
        return 2
    path = os.path.join(out, "results.json")
    if not os.path.exists(path):
        sys.stderr.write(f"bench: --reproduce needs a first run: no {path}"
                         " (run python -m tools.bench first)\n")
        return 2
    doc = _load(path)
    if doc is None:
        return 2
    words = shlex.split(str(doc.get("command", "")))
    if words[:3] != ["python", "-m", "tools.bench"] or doc.get("reproduces"):
        sys.stderr.write(f"bench: {path} does not record a first run's command\n")
        return 2
    return doc, words[3:]


def _guarded(run: Callable[[], Dict[str, Any]], tracer: Optional[Tracer],
             w: Workload) -> Dict[str, Any]:
    """A bench or workload failure ends one run with status "error", not the bench."""
    try:
        return run()
    except (OSError, RuntimeError, ValueError, workloads.WorkloadError) as exc:
        result = base_result(tracer, w)
        result.update(status="error", reason=f"{type(exc).__name__}: {exc}"[:300])
        return result


def measure(plan: List[Workload], ctx: Context, args: argparse.Namespace
            ) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]], bool]:
    """Every workload, untraced and under each tracer; then the profiles.

    Ctrl-C stops early: the tracer running is stopped and what was measured is kept.
    """
    runs: List[Dict[str, Any]] = []
    profiles: List[Dict[str, Any]] = []
    cannot: Dict[str, Dict[str, Any]] = {}
    try:
        for w in plan:
            before = _guarded(lambda: run_untraced(w, ctx), None, w)  # noqa: B023
            runs.append(before)
            _say(f"{w.label} untraced: {_brief(before)}")
            traced = []
            for tracer in _selected(tracers(w.kind, REPO, args.bcc_headers), args.tracers):
                key = f"{tracer.name}/{tracer.kind}"
                if key in cannot:
                    continue  # recorded once per kind, with its reason
                result = _guarded(lambda: run_traced(tracer, w, ctx), tracer, w)  # noqa: B023
                traced.append(result)
                _say(f"{w.label} {tracer.name}: {_brief(result)}")
                if result["status"] in ("cannot run", "not ready"):
                    cannot[key] = result
            bases = [before]
            if w.rate == 0:  # flat out: noise moves the baseline; measure it again after
                bases.append(_guarded(lambda: run_untraced(w, ctx), None, w))  # noqa: B023
                _say(f"{w.label} untraced again: {_brief(bases[-1])}")
            set_baseline(traced, bases)
            runs += traced + bases[1:]
        if args.profile if args.profile is not None else not args.quick:
            for tracer in _selected(tracers("open", REPO), args.tracers):
                if tracer.name in PROFILED and f"{tracer.name}/open" not in cannot:
                    done = _guarded(lambda: profile(tracer, PROFILE_WORKLOAD, ctx),  # noqa: B023
                                    tracer, PROFILE_WORKLOAD)
                    profiles.append(done)
                    _say(f"profiled {tracer.name}: {_brief(done)}")
    except KeyboardInterrupt:
        _say("interrupted: writing what was measured")
        return runs, profiles, True
    return runs, profiles, False


def main(argv: Optional[List[str]] = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(given)
    if args.render_only:
        return render_only(args.render_only, args.out)
    if os.geteuid() != 0:
        sys.stderr.write("bench: must run as root (tracers need it)\n")
        return 2
    first: Optional[Dict[str, Any]] = None
    if args.reproduce:
        found = _first_run(args.out, given)
        if isinstance(found, int):
            return found
        first, given = found
        out = args.out
        args = parse_args(given)  # the first run's own options, with its --out replaced
        args.out, args.record_fixtures = os.path.join(out, SECOND), None
    doc = bench(args, given)
    if isinstance(doc, int):
        return doc
    if first is not None:
        doc["reproduces"] = first["started"]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    _say(f"wrote {args.out}/results.json")
    if first is not None:
        return write_docs(first, os.path.dirname(args.out))
    return write_docs(doc, args.out)


def bench(args: argparse.Namespace, given: List[str]) -> Union[int, Dict[str, Any]]:
    """Measure as the options say: the results document, or an exit code."""
    wanted = args.workloads.split(",") if args.workloads else None
    unknown = sorted(set(wanted or ()) - set(KINDS))
    if unknown:
        choices = ", ".join(KINDS)
        sys.stderr.write(f"bench: unknown workload {unknown[0]!r} (choose from {choices})\n")
        return 2
    # Every tracer under the same mounts: the ebpf-core row forces the tracepoint attach
    # mode, whose ids need tracefs, and the first ftrace run would mount it half way
    # through (a run on a host without it had no ebpf-core open rows).
    with contextlib.suppress(tracefs.TracefsUnavailable):
        tracefs.ensure_mounted()
    kinds = ("exec", "open")
    if args.tracers and not any(_selected(tracers(k, REPO), args.tracers) for k in kinds):
        sys.stderr.write(f"bench: no tracer matches {args.tracers!r}\n")
        return 2
    if args.bcc_headers and not os.path.isdir(args.bcc_headers):
        sys.stderr.write(f"bench: no such directory: {args.bcc_headers}\n")
        return 2
    plan = build_plan(args.quick, args.duration, args.sustain, wanted, args.rates)
    if not plan:
        sys.stderr.write(f"bench: no workload matches {args.workloads!r}\n")
        return 2
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    try:
        with tempfile.TemporaryDirectory(prefix="htbench-") as workdir:
            bins = workloads.build(workdir)
            ctx = Context(bins=bins, workdir=workdir, ready_timeout=args.ready_timeout,
                          record=args.record_fixtures)
            runs, profiles, interrupted = measure(plan, ctx, args)
    except workloads.WorkloadError as exc:
        sys.stderr.write(f"bench: {exc}\n")
        return 1
    info = machine.describe(REPO)
    info["gcc"] = bins.gcc
    info["loadavg_start"] = [round(x, 2) for x in load_before]
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    info["bcc_headers"] = args.bcc_headers or "none"
    return {
        "schema": "hybridtrace.bench/1",
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m tools.bench", *map(shlex.quote, given)]),
        "quick": args.quick, "interrupted": interrupted, "machine": info, "runs": runs,
        "profiles": profiles,
    }


if __name__ == "__main__":
    sys.exit(main())
