"""Where closing an ftrace uprobe session spends its time (run as root).

Opens a real uprobe session through hybridtrace.api, runs a few execs so
the probes fire, then undoes it step by step with one of several close
strategies (VARIANTS), printing wall and CPU time per step; medians over
--runs, variants interleaved. A ``/per-site`` suffix opens the session with
one event per role and call site, as before events were shared. Every run
ends with the stream's own release, and the script checks that nothing of
the session is left in tracefs. Wall time is what matters here: the close
waits in the kernel (RCU grace periods), it hardly uses CPU.

    sudo .venv/bin/python -m tools.bench.close_time --variants current/per-site,current --runs 5
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import hybridtrace
from hybridtrace.backends.ftrace import probes
from hybridtrace.backends.ftrace.instance import Instance, write_file
from hybridtrace.backends.ftrace.stream import FtraceStream, _Resources

Steps = List[Tuple[str, float, float]]  # (step, wall s, cpu s)
PER_SITE = "/per-site"  # variant suffix: one event per role and call site (no sharing)
INDEXED = "/indexed"  # variant suffix: one event for all argv slots (prototype)


class Timer:
    """Records (name, wall, cpu) for each timed block."""

    def __init__(self) -> None:
        self.steps: Steps = []

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.steps.append((name, time.perf_counter() - wall, time.process_time() - cpu))


def _write0(path: str) -> None:
    with contextlib.suppress(OSError):
        write_file(path, "0")


def _close_fd(res: _Resources) -> None:
    """Close the trace_pipe reader (``reader`` object, or ``fd`` in older streams)."""
    for attr in ("reader", "fd"):
        held = getattr(res, attr, None)
        if held is None:
            continue
        setattr(res, attr, None)
        if isinstance(held, int):
            os.close(held)
        else:
            held.close()


def _remove_each(res: _Resources) -> None:
    left = [d for d in res.probes
            if not probes.remove_one(res.tracefs_path, d.file, d.group, d.name)]
    res.probes = left


def _remove_group(res: _Resources, event: str) -> None:
    """One write removing every probe of the group (``event`` "" or "*")."""
    if not res.probes:
        return
    group = res.probes[0].group
    try:
        write_file(os.path.join(res.tracefs_path, "uprobe_events"),
                   f"-:{group}/{event}\n", append=True)
    except OSError as exc:  # left for the final release to remove one by one
        print(f"  -:{group}/{event}: {os.strerror(exc.errno or 0)}", file=sys.stderr)
        return
    res.probes = []


def _take_instance(res: _Resources) -> Instance:
    inst = res.instance
    assert inst is not None
    res.instance = None
    return inst


def v_current(res: _Resources, t: Timer) -> None:
    """What _Resources.release does today, split into steps."""
    inst = _take_instance(res)
    with t.step("tracing_on=0"):
        inst.set_option("tracing_on", "0")
    group = res.probes[0].group
    names = list(reversed(inst.enabled))
    with t.step("disable probe events (each)"):
        for name in names:
            if name.startswith(group + "/"):
                _write0(os.path.join(inst.events_dir(), name, "enable"))
    with t.step("disable other events (each)"):
        for name in names:
            if not name.startswith(group + "/"):
                _write0(os.path.join(inst.events_dir(), name, "enable"))
    inst.enabled = []
    _close_rmdir_remove(res, inst, t)


def _close_rmdir_remove(res: _Resources, inst: Instance, t: Timer) -> None:
    """The common end of a variant: close the reader, rmdir, remove each probe."""
    with t.step("close trace_pipe"):
        _close_fd(res)
    with t.step("rmdir instance"):
        inst.remove()
    with t.step("remove probes (each)"):
        _remove_each(res)


def v_group_enable(res: _Resources, t: Timer) -> None:
    """Disable through events/<group>/enable, then the same removal."""
    inst = _take_instance(res)
    group = res.probes[0].group
    with t.step("tracing_on=0"):
        inst.set_option("tracing_on", "0")
    with t.step("disable events/<group>/enable"):
        _write0(os.path.join(inst.events_dir(), group, "enable"))
    with t.step("disable other events (each)"):
        for name in reversed(inst.enabled):
            if not name.startswith(group + "/"):
                _write0(os.path.join(inst.events_dir(), name, "enable"))
    inst.enabled = []
    _close_rmdir_remove(res, inst, t)


def v_rmdir_only(res: _Resources, t: Timer) -> None:
    """No explicit disable: rmdir turns every event of the instance off."""
    inst = _take_instance(res)
    with t.step("tracing_on=0"):
        inst.set_option("tracing_on", "0")
    inst.enabled = []
    with t.step("close trace_pipe"):
        _close_fd(res)
    with t.step("rmdir instance (events on)"):
        inst.remove()
    with t.step("remove probes -:group/"):
        _remove_group(res, "")


def _stop_and_disable_each(res: _Resources, t: Timer) -> Instance:
    """The shared start of two variants: stop tracing, then disable event by event."""
    inst = _take_instance(res)
    with t.step("tracing_on=0"):
        inst.set_option("tracing_on", "0")
    with t.step("disable all events (each)"):
        for name in reversed(inst.enabled):
            _write0(os.path.join(inst.events_dir(), name, "enable"))
    inst.enabled = []
    return inst


def v_remove_first(res: _Resources, t: Timer) -> None:
    """Disable each, remove probes while the instance still exists, then rmdir."""
    inst = _stop_and_disable_each(res, t)
    with t.step("remove probes (each, instance alive)"):
        _remove_each(res)
    with t.step("close trace_pipe"):
        _close_fd(res)
    with t.step("rmdir instance"):
        inst.remove()


def v_group_remove(res: _Resources, t: Timer, event: str = "") -> None:
    """Disable each, rmdir, then one ``-:group/<event>`` write."""
    inst = _stop_and_disable_each(res, t)
    with t.step("close trace_pipe"):
        _close_fd(res)
    with t.step("rmdir instance"):
        inst.remove()
    with t.step(f"remove probes -:group/{event}"):
        _remove_group(res, event)


def v_release(res: _Resources, t: Timer) -> None:
    """The stream's release as the code stands (instance.py/probes.py)."""
    with t.step("release()"):
        problems = res.release()
    if problems:
        print("  release problems: " + "; ".join(problems), file=sys.stderr)


VARIANTS: Dict[str, Callable[[_Resources, Timer], None]] = {
    "current": v_current,
    "group-enable": v_group_enable,
    "rmdir-only": v_rmdir_only,
    "remove-first": v_remove_first,
    "group-remove": v_group_remove,
    "group-remove-star": lambda res, t: v_group_remove(res, t, "*"),
    "release": v_release,
}


def _base(variant: str) -> str:
    return variant.replace(PER_SITE, "").replace(INDEXED, "")


def leftovers(group: str) -> List[str]:
    """Anything of this session still in tracefs."""
    root = "/sys/kernel/tracing"
    out: List[str] = []
    if os.path.exists(os.path.join(root, "instances", group)):
        out.append(f"instance {group}")
    for file in ("uprobe_events", "dynamic_events"):
        with open(os.path.join(root, file), encoding="utf-8", errors="replace") as handle:
            out += [f"{file}: {line}" for line in handle.read().splitlines()
                    if f":{group}/" in line]
    return out


def _indexed_fetch_sets(path: Optional[str], argv: Optional[str], max_args: int,
                        deref: probes.Deref) -> List[Tuple[str, probes.Role]]:
    """Prototype: every argv slot (and the MORE slot) in one event, told apart by
    an immediate ``i`` field. Only for timing: today's correlator can't read it."""
    out = []
    for args, role in ORIG_FETCH_SETS(path, argv, max_args, deref):
        if role.what in (probes.ARG, probes.MORE) and argv is not None:
            slot = f"{deref.user}{8 * role.index}({argv})"
            args = (f"k={argv}:x64 i=\\{role.index}:u16 p={slot}:x64"
                    f" s=+0({slot}):{deref.string}")
            role = probes.Role(probes.ARG, 0)
        out.append((args, role))
    return out


ORIG_FETCH_SETS = probes.fetch_sets


def one_run(variant: str, execs: int, kind: str) -> Tuple[Steps, int, str]:
    shared = probes.shared_events
    if variant.endswith(PER_SITE):  # the layout before events were shared
        probes.shared_events = lambda release=None: False
    if variant.endswith(INDEXED):
        probes.fetch_sets = _indexed_fetch_sets
    opened = time.perf_counter()
    try:
        session = hybridtrace.trace(kind, "ftrace", tier="uprobe")
        opened = time.perf_counter() - opened
    finally:
        probes.shared_events = shared
        probes.fetch_sets = ORIG_FETCH_SETS
    stream = session._stream  # an experiment reaches inside
    assert isinstance(stream, FtraceStream)
    res = stream._res
    group = res.probes[0].group
    count = len(res.probes)
    for _ in range(execs):
        subprocess.run(["/bin/true"], check=True)
    session.poll(0.05)
    timer = Timer()
    try:
        VARIANTS[_base(variant)](res, timer)
    finally:
        res.release()  # whatever a variant left
        session.close()
    left = leftovers(group)
    if left:
        print("  LEFT: " + "; ".join(left), file=sys.stderr)
    total = sum(w for _n, w, _c in timer.steps)
    timer.steps.insert(0, ("(open: hybridtrace.trace)", opened, 0.0))
    timer.steps.append(("total", total, sum(c for _n, _w, c in timer.steps)))
    return timer.steps, count, "ok" if not left else "LEFTOVERS"


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="current",
                        help="comma-separated: " + ", ".join(VARIANTS)
                        + f"; a {PER_SITE} suffix opens without shared events,"
                        f" {INDEXED} with one event for all argv slots (timing only)")
    parser.add_argument("--kind", choices=("exec", "open"), default="exec")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--execs", type=int, default=3, help="execs while tracing")
    args = parser.parse_args(argv)
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if _base(v) not in VARIANTS]
    if unknown:
        print(f"close_time: unknown variant(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("close_time: needs root", file=sys.stderr)
        return 2
    results: Dict[str, Dict[str, List[Tuple[float, float]]]] = {v: {} for v in names}
    for run in range(args.runs):
        for variant in names:  # interleaved, so load drifts hit every variant
            steps, count, status = one_run(variant, args.execs, args.kind)
            print(f"run {run} {variant}: {count} probes, total "
                  f"{steps[-1][1]:.3f}s wall {status}", flush=True)
            for name, wall, cpu in steps:
                results[variant].setdefault(name, []).append((wall, cpu))
    for variant in names:
        print(f"\n{variant} (median of {args.runs}; wall s / cpu s)")
        for name, vals in results[variant].items():
            wall = statistics.median(w for w, _c in vals)
            cpu = statistics.median(c for _w, c in vals)
            print(f"  {name:40s} {wall:8.3f} {cpu:8.3f}   "
                  f"(wall min {min(w for w, _c in vals):.3f} max {max(w for w, _c in vals):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
