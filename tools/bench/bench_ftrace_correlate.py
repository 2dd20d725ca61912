#!/usr/bin/env python3
"""Throughput of the ftrace stream's user-space path: parse trace_pipe text, correlate.

Replays the recordings in tests/fixtures/ftrace_stream/ (made by
tools/record_ftrace_stream.py on a real kernel) many times in 64 KiB chunks,
as the stream reads them, through PipeParser and the Correlator, with /proc
lookups disabled (the processes are gone; this measures our code only).
Prints records per second for each recording. Not a test: numbers depend on
the machine. Run: ``python tools/bench/bench_ftrace_correlate.py [--seconds 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import List

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from hybridtrace.backends.ftrace.correlate import Correlator, ProcLookup  # noqa: E402
from hybridtrace.backends.ftrace.format import EventFormat, read_format  # noqa: E402
from hybridtrace.backends.ftrace.pipe import PipeParser  # noqa: E402
from hybridtrace.backends.ftrace.probes import Role  # noqa: E402
from hybridtrace.events import Source  # noqa: E402
from hybridtrace.request import Kind  # noqa: E402

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "ftrace_stream")
CHUNK = 1 << 16


def _none(*_args: object) -> None:
    return None


def bench(name: str, kind: str, seconds: float) -> str:
    base = os.path.join(FIXTURES, name)
    with open(os.path.join(base, f"{kind}.json"), encoding="utf-8") as handle:
        meta = json.load(handle)
    formats: List[EventFormat] = [read_format(os.path.join(base, f"{kind}.formats"), s, n)
                                  for s, n in meta["formats"]]
    with open(os.path.join(base, f"{kind}.trace_pipe.bin"), "rb") as handle:
        data = handle.read()
    if not data:
        return f"{name} {kind}: empty recording"
    data = data * max(1, (4 << 20) // len(data))
    roles = {n: Role(what, index) for n, (what, index) in meta["roles"].items()}
    source = None if meta["probe_source"] is None else Source(meta["probe_source"])
    gone = ProcLookup(*([_none] * 9))
    records = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        parser = PipeParser(formats)
        corr = Correlator(Kind(kind), roles, source, meta["max_args"], gone)
        for pos in range(0, len(data), CHUNK):
            corr.feed_all(parser.feed(data[pos:pos + CHUNK]) + parser.flush())
        corr.flush()
        records += corr.records
    elapsed = time.perf_counter() - start
    return f"{name} {kind}: {records / elapsed:,.0f} records/s ({records} in {elapsed:.2f}s)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    for name in sorted(os.listdir(FIXTURES)):
        for kind in ("exec", "open"):
            if os.path.exists(os.path.join(FIXTURES, name, f"{kind}.json")):
                print(bench(name, kind, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
