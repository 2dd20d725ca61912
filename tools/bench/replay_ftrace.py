"""The ftrace reader's CPU per open, stage by stage, replaying a recorded session.

A live profile (stage_profile.py) moves with the machine's load and with every
other process's opens; this replays the exact pages a session read, so two
versions of the code can be compared on the same input.

    python -m tools.bench.replay_ftrace record --tier uprobe --rate 50000 DIR   (root)
    python -m tools.bench.replay_ftrace replay DIR [DIR...] [--repeat 5]

``record`` runs the open loop at a fixed rate beside a real ftrace stream and
saves the pages it read, its format files and header_page (the layout of
tools/record_ftrace_stream.py's ``-raw`` recordings, which replay too).
``replay`` feeds them, 256 pages per round as a poll reads them, through
decode, the timeline (merge, hold-back, TraceLines), the change ledger,
correlate, origin proofs and JSON; /proc is never read (the processes are
gone: the threads' comm, uid and pid answer as a live thread's would, older
than its records; origin readings one fixed value; the rest None). Each stage's
cost is the difference of the best of ``--repeat`` runs stopped after it, in
process CPU time per open. HYBRIDTRACE_PURE_PYTHON=1 replays without the C
decoder, ``--gc-each-round`` without holding off the cycle collector (the code
before both: compare on the same recording). Not a test: numbers depend on the
machine.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Tuple

from hybridtrace.backends.ftrace.correlate import Correlator, ProcLookup
from hybridtrace.backends.ftrace.format import EventFormat, read_format
from hybridtrace.backends.ftrace.origin_proof import (
    NOTED_EVENTS,
    ChangeLedger,
    OriginFiller,
    TaskReading,
)
from hybridtrace.backends.ftrace.probes import Role
from hybridtrace.backends.ftrace.raw_reader import Timeline
from hybridtrace.backends.ftrace.raw_records import RawRecord, RecordDecoder, c_loop
from hybridtrace.backends.ftrace.ring_page import PageLayout, read_page_files
from hybridtrace.events import OpenEvent, Source
from hybridtrace.gc_pause import paused
from hybridtrace.output.jsonl import event_to_json
from hybridtrace.request import Kind

STAGES = ("decode", "timeline", "ledger", "correlate", "origin", "json")
PAGES_PER_ROUND = 256
_FAR = 10 ** 19  # every record is complete: nothing waits for a later round
_READING = TaskReading(0, 0, 1, 2, b"/user.slice", (1,), (1,))


class Recording:
    """One saved session: its pages in the order they were read, and what decodes them."""

    def __init__(self, path: str) -> None:
        with open(os.path.join(path, "open.json"), encoding="utf-8") as handle:
            meta = json.load(handle)
        self.path = path
        self.formats: List[EventFormat] = [
            read_format(os.path.join(path, "open.formats"), system, name)
            for system, name in meta["formats"]]
        self.roles = {name: Role(what, index) for name, (what, index) in meta["roles"].items()}
        self.source = None if meta["probe_source"] is None else Source(meta["probe_source"])
        self.max_args = int(meta["max_args"])
        self.layout: PageLayout
        self.layout, pages = read_page_files(os.path.join(path, "open.pages"))
        # Interleave the CPUs by page time stamp, as successive polls would meet them.
        self.pages: List[Tuple[int, bytes]] = sorted(
            pages, key=lambda item: int.from_bytes(item[1][:8], "little"))


def _none(*_args: object) -> None:
    return None


# /proc as a live session finds it: every thread there since long before its records
# (comm and uid read, pid = tid), so the comm, uid and pid proofs run as they do live.
def _task_state(_tid: int) -> Tuple[int, bytes, int]:
    return 0, b"replayed", 0


def _identity(tid: int) -> Tuple[int, int]:
    return 0, tid


def run(rec: Recording, upto: int, pause_gc: bool = True,
        per_round: int = PAGES_PER_ROUND) -> int:
    """Replay through the first ``upto`` stages; returns the open events made (or 0)."""
    decoder = RecordDecoder(rec.formats, rec.layout)
    timeline = Timeline()
    ledger = ChangeLedger()
    correlator = Correlator(Kind.OPEN, rec.roles, rec.source, rec.max_args,
                            ProcLookup(*([_none] * 6), _task_state, _identity),
                            boot_offset=10 ** 18, fd_proof=True)
    origin = OriginFiller(10 ** 18, ledger, True, read=lambda _tid: _READING)
    opens = 0
    for pos in range(0, len(rec.pages), per_round):
        with paused() if pause_gc else contextlib.nullcontext():  # as the stream's poll
            opens += _round(rec, rec.pages[pos:pos + per_round], upto, decoder, timeline,
                            ledger, correlator, origin)
    return opens


def _round(rec: Recording, pages: List[Tuple[int, bytes]], upto: int, decoder: RecordDecoder,
           timeline: Timeline, ledger: ChangeLedger, correlator: Correlator,
           origin: OriginFiller) -> int:
    """One poll's pages through the first ``upto`` stages; the open events it made."""
    fresh: List[RawRecord] = []
    for cpu, page in pages:
        decoder.decode_page(page, cpu, fresh)
    if upto < 2:
        return 0
    lines = timeline.add(fresh, None)
    if upto < 3:
        return 0
    lines = [line for line in lines if line.event not in NOTED_EVENTS or not ledger.feed(line)]
    if upto < 4:
        return 0
    events = correlator.feed_all(lines, timeline.later, _FAR)
    if upto >= 5:
        events = origin.fill(events, _FAR)
    if upto >= 6:
        "\n".join(event_to_json(event) for event in events)
    return sum(1 for event in events if isinstance(event, OpenEvent))


def _best(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def replay(path: str, repeat: int, pause_gc: bool = True,
           per_round: int = PAGES_PER_ROUND) -> Dict[str, Any]:
    rec = Recording(path)
    opens = run(rec, 4, pause_gc, per_round)
    per_stage: Dict[str, float] = {}
    before = 0.0
    for index, stage in enumerate(STAGES, start=1):
        total = _best(lambda index=index: run(rec, index, pause_gc, per_round), repeat)  # type: ignore[misc]
        per_stage[stage] = (total - before) * 1e6 / max(opens, 1)
        before = total
    return {"recording": path, "opens": opens, "pages": len(rec.pages),
            "decoder": "C" if c_loop() is not None else "pure Python", "gc_paused": pause_gc,
            "pages_per_round": per_round,
            "us_per_open": per_stage, "total_us_per_open": before * 1e6 / max(opens, 1)}


def record(tier: str, rate: int, seconds: float, dest: str) -> None:
    """Save the pages a live session reads beside the open loop (root)."""
    from hybridtrace.backends.ftrace.stream import open_ftrace_stream
    from hybridtrace.capabilities import probe
    from hybridtrace.request import TraceRequest
    from tools.bench.workloads import build

    work = tempfile.mkdtemp(prefix="replay-ftrace-")
    bins = build(work)
    pages: Dict[int, List[bytes]] = {}
    with open_ftrace_stream(TraceRequest(Kind.OPEN), probe(), tier) as stream:
        stream.reader.tap = lambda cpu, page: pages.setdefault(cpu, []).append(page)
        loop = subprocess.Popen([bins.openloop, os.path.join(work, "O-"), str(rate),
                                 str(seconds)], stdout=subprocess.DEVNULL)
        events = 0
        while loop.poll() is None:
            events += len(stream.poll(0.05))
        settle = time.monotonic() + 1.0
        while time.monotonic() < settle:
            events += len(stream.poll(0.05))
        instance = stream.instance_path
        page_dir = os.path.join(dest, "open.pages")
        os.makedirs(page_dir, exist_ok=True)
        with open(os.path.join(instance, "events", "header_page"), "rb") as src, \
                open(os.path.join(page_dir, "header_page"), "wb") as out:
            out.write(src.read())
        for fmt in stream.formats:
            target = os.path.join(dest, "open.formats", fmt.system, fmt.name)
            os.makedirs(target, exist_ok=True)
            with open(os.path.join(instance, "events", fmt.system, fmt.name, "format"),
                      "rb") as src, open(os.path.join(target, "format"), "wb") as out:
                out.write(src.read())
        meta = {"tier": tier, "rate": rate, "seconds": seconds, "events": events,
                "probe_source": None if stream.probe_source is None
                else stream.probe_source.value,
                "roles": {name: [role.what, role.index] for name, role in stream.roles.items()},
                "max_args": stream.request.max_args,
                "formats": [[fmt.system, fmt.name] for fmt in stream.formats]}
    for cpu, data in pages.items():
        with open(os.path.join(page_dir, f"cpu{cpu}.bin"), "wb") as out:
            out.write(b"".join(data))
    with open(os.path.join(dest, "open.json"), "w", encoding="utf-8") as out:
        json.dump(meta, out, indent=1)
    print(f"{dest}: {sum(map(len, pages.values()))} pages, {events} events")


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.replay_ftrace",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record", help="save a live session's pages (root)")
    rec.add_argument("--tier", default="uprobe")
    rec.add_argument("--rate", type=int, default=50000)
    rec.add_argument("--seconds", type=float, default=2.0)
    rec.add_argument("dest")
    rep = sub.add_parser("replay", help="CPU per open per stage")
    rep.add_argument("recordings", nargs="+")
    rep.add_argument("--repeat", type=int, default=5, help="best of N runs per stage")
    rep.add_argument("--json", action="store_true", help="one JSON object per recording")
    rep.add_argument("--gc-each-round", action="store_true",
                     help="leave the cycle collector on inside rounds (as before gc_pause.py)")
    rep.add_argument("--pages-per-round", type=int, default=PAGES_PER_ROUND,
                     help="pages per poll: 256 is a poll's most (overload); a steady 50k"
                     " opens/s session reads a few per poll")
    args = parser.parse_args(argv)
    if args.cmd == "record":
        record(args.tier, args.rate, args.seconds, args.dest)
        return 0
    for path in args.recordings:
        result = replay(path, args.repeat, not args.gc_each_round, args.pages_per_round)
        if args.json:
            print(json.dumps(result))
            continue
        print(f"{path}: {result['opens']} opens, decoder {result['decoder']},"
              f" collector {'held off' if result['gc_paused'] else 'on'}, µs per open:")
        for stage, value in result["us_per_open"].items():
            print(f"  {stage:<10} {value:6.2f}")
        print(f"  {'total':<10} {result['total_us_per_open']:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
