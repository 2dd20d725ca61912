#!/usr/bin/env python3
"""Micro benchmark of the trace_pipe parser (not a test: numbers depend on the machine).

Replays recorded trace_pipe bytes (tests/fixtures/trace_pipe/<kernel>/) through
PipeParser in 64 KiB chunks, as the stream reads them, and prints records/s
with and without the event formats.

    .venv/bin/python tools/bench/bench_pipe_parser.py [--kernel 6.18-host] [--records 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import List, Sequence, Tuple

from hybridtrace.backends.ftrace.format import EventFormat, read_format
from hybridtrace.backends.ftrace.pipe import PipeParser

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "trace_pipe")
CHUNK = 65536


def _load(kernel: str) -> Tuple[bytes, List[EventFormat]]:
    base = os.path.join(FIXTURES, kernel)
    with open(os.path.join(base, "manifest.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)
    formats = [read_format(os.path.join(base, "formats"), f["system"], f["name"])
               for f in manifest["formats"]]
    data = b""
    for phase in manifest["phases"]:
        if phase["workload"] and not phase.get("lossy"):
            with open(os.path.join(base, f"trace_pipe.{phase['name']}.bin"), "rb") as handle:
                data += handle.read()
    return data, formats


def _run(data: bytes, formats: Sequence[EventFormat]) -> Tuple[int, float]:
    parser = PipeParser(formats)
    count = 0
    start = time.perf_counter()
    for pos in range(0, len(data), CHUNK):
        count += len(parser.feed(data[pos : pos + CHUNK]))
    count += len(parser.flush())
    return count, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kernel", default="6.18-host")
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args()
    sample, formats = _load(args.kernel)
    per_copy = sample.count(b"\n")
    data = sample * max(1, args.records // per_copy)
    lines = data.count(b"\n")
    print(f"{len(data) / 1e6:.1f} MB of {args.kernel} trace_pipe, {lines} lines")
    for label, fmts in (("with formats", formats), ("generic", [])):
        best = min((_run(data, fmts) for _ in range(3)), key=lambda r: r[1])
        count, seconds = best
        print(f"{label:13s}: {count} records in {seconds:.3f} s = {count / seconds:,.0f}/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
