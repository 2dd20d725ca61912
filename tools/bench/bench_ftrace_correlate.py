#!/usr/bin/env python3
"""Throughput of the ftrace stream's user-space path: parse or decode, correlate.

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
from typing import Any, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from hybridtrace.backends.ftrace.correlate import Correlator, ProcLookup  # noqa: E402
from hybridtrace.backends.ftrace.format import EventFormat, read_format  # noqa: E402
from hybridtrace.backends.ftrace.pipe import PipeParser  # noqa: E402
from hybridtrace.backends.ftrace.probes import Role  # noqa: E402
from hybridtrace.backends.ftrace.raw_reader import Timeline  # noqa: E402
from hybridtrace.backends.ftrace.raw_records import RawRecord, RecordDecoder  # noqa: E402
from hybridtrace.backends.ftrace.ring_page import PageLayout, read_page_files  # noqa: E402
from hybridtrace.events import Source  # noqa: E402
from hybridtrace.request import Kind  # noqa: E402

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "ftrace_stream")
CHUNK = 1 << 16
PAGES_PER_READ = 256  # what one poll reads at most (MAX_READ_PER_POLL)


def _none(*_args: object) -> None:
    return None


def _pages(base: str, kind: str) -> Tuple[PageLayout, List[Tuple[int, bytes]]]:
    layout, pages = read_page_files(os.path.join(base, f"{kind}.pages"))
    # One timeline, as the reader sees it: pages in the order their first records happened.
    pages.sort(key=lambda item: int.from_bytes(item[1][:8], "little"))
    return layout, pages


def _copies(pages: List[Tuple[int, bytes]], count: int) -> List[Tuple[int, bytes]]:
    """The recording ``count`` times over, each copy later in time than the one before."""
    stamps = [int.from_bytes(page[:8], "little") for _, page in pages]
    span = max(stamps) - min(stamps) + 10_000_000
    return [(cpu, (ts + k * span).to_bytes(8, "little") + page[8:])
            for k in range(count) for (cpu, page), ts in zip(pages, stamps)]


def bench_raw(name: str, kind: str, meta: Dict[str, Any], formats: List[EventFormat],
              roles: Dict[str, Role], source: Optional[Source], seconds: float) -> str:
    """Decode only, then decode + timeline + correlate, as the raw reader does."""
    layout, pages = _pages(os.path.join(FIXTURES, name), kind)
    pages = _copies(pages, max(1, (4 << 20) // (len(pages) * layout.page_size)))
    gone = ProcLookup(*([_none] * 8))
    results = []
    for correlate in (False, True):
        records = 0
        start = time.process_time()
        while time.process_time() - start < seconds:
            decoder = RecordDecoder(formats, layout)
            timeline = Timeline()
            corr = Correlator(Kind(kind), roles, source, meta["max_args"], gone)
            for pos in range(0, len(pages), PAGES_PER_READ):
                batch: List[RawRecord] = []
                for cpu, page in pages[pos:pos + PAGES_PER_READ]:
                    decoder.decode_page(page, cpu, batch)
                records += len(batch)
                if correlate:
                    corr.feed_all(timeline.add(batch, None))
        elapsed = time.process_time() - start
        results.append(f"{records / elapsed:,.0f}")
    return (f"{name} {kind}: decode {results[0]} records/s; decode+correlate {results[1]}"
            " records/s (CPU time)")


def bench(name: str, kind: str, seconds: float) -> str:
    base = os.path.join(FIXTURES, name)
    with open(os.path.join(base, f"{kind}.json"), encoding="utf-8") as handle:
        meta = json.load(handle)
    formats: List[EventFormat] = [read_format(os.path.join(base, f"{kind}.formats"), s, n)
                                  for s, n in meta["formats"]]
    roles0 = {n: Role(what, index) for n, (what, index) in meta["roles"].items()}
    source0 = None if meta["probe_source"] is None else Source(meta["probe_source"])
    if os.path.isdir(os.path.join(base, f"{kind}.pages")):
        return bench_raw(name, kind, meta, formats, roles0, source0, seconds)
    with open(os.path.join(base, f"{kind}.trace_pipe.bin"), "rb") as handle:
        data = handle.read()
    if not data:
        return f"{name} {kind}: empty recording"
    data = data * max(1, (4 << 20) // len(data))
    roles = {n: Role(what, index) for n, (what, index) in meta["roles"].items()}
    source = None if meta["probe_source"] is None else Source(meta["probe_source"])
    gone = ProcLookup(*([_none] * 8))
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
