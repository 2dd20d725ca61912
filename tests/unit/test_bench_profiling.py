"""Reading a cProfile dump into the bench's top-functions list."""

from __future__ import annotations

import cProfile
import os
import tempfile

from tools.bench.profiling import profiled, top_functions
from tools.bench.tracers import Tracer


def _busy(n: int) -> int:
    return sum(i * i for i in range(n))


def test_top_functions_sorted_by_self_time() -> None:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(20):
        _busy(20000)
    prof.disable()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "p")
        prof.dump_stats(path)
        top = top_functions(path, limit=5)
    assert 0 < len(top) <= 5
    selfs = [f["self_s"] for f in top]
    assert selfs == sorted(selfs, reverse=True)
    assert sum(f["self_share"] for f in top) <= 1.0001
    assert any("_busy" in f["function"] or "genexpr" in f["function"] for f in top)


def test_profiled_runs_the_same_cli_under_cprofile() -> None:
    t = Tracer(name="hybridtrace ebpf-core", family="hybridtrace", kind="open",
               argv=("/x/.venv/bin/hybridtrace", "opensnoop", "--json"), output="jsonl")
    p = profiled(t, "/tmp/out.prof")
    assert p.argv[1:6] == ("-m", "cProfile", "-o", "/tmp/out.prof", "-m")
    assert p.argv[6:] == ("hybridtrace", "opensnoop", "--json")
    assert p.name.endswith("(cProfile)") and p.kind == "open"
