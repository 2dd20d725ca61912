#!/usr/bin/env python3
"""Micro benchmark of the CLI's output cost per event (not a test: numbers depend on the machine).

Feeds open events through the same batch writer and formatters `hybridtrace
opensnoop` uses (text columns, or --json), writing to /dev/null, and prints
CPU microseconds per event (process time, so other load on the machine
matters little). The events are either recorded from a real session or
synthetic (realistic paths, plus a small share of hostile strings):

    sudo .venv/bin/python tools/bench/bench_output.py --record /tmp/opens.jsonl
    .venv/bin/python tools/bench/bench_output.py --events /tmp/opens.jsonl
    .venv/bin/python tools/bench/bench_output.py --profile json   # cProfile, top 15

To compare with another tree, put it first on PYTHONPATH (the script only
uses `hybridtrace.cli.common` and `hybridtrace.output`).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
from typing import IO, Any, Callable, Dict, List, Sequence

from hybridtrace.cli import common
from hybridtrace.events import Event, OpenEvent, Source
from hybridtrace.output.columns import OpenFormat
from hybridtrace.output.jsonl import decode_bytes, event_to_json

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH = 512  # events per poll batch, as the ring buffer reader hands them over at ~45k/s

Writer = Callable[..., int]


def _writer() -> Writer:
    found = getattr(common, "write_batch", None) or getattr(common, "_write", None)
    assert callable(found)
    return found  # type: ignore[no-any-return]


def synthetic(count: int, hostile_share: float = 0.01, seed: int = 1) -> List[Event]:
    """Opens like a busy machine's: mostly ASCII paths, a few hostile strings."""
    rng = random.Random(seed)
    comms = [b"openloop", b"systemd-journal", b"python3", b"bash", b"node", b"caf\xc3\xa9"]
    dirs = [b"/tmp/ht-bench/O-8f3a2c-", b"/usr/lib/x86_64-linux-gnu/lib", b"/proc/self/",
            b"/etc/ld.so.cache", b"/home/user/.cache/pip/http/", b"relative/dir/"]
    hostile = [b"\x1b[2J\x1b]0;pwned\x07", b"a\nb", b"\xff\xfe bad", b"tab\tback\\slash",
               "bidi \u202e zw \u200b".encode(), "\u65e5\u672c/\u00e9".encode(), b"\x7f"]
    events: List[Event] = []
    for seq in range(count):
        path = rng.choice(dirs) + str(seq).encode()
        comm = rng.choice(comms)
        if rng.random() < hostile_share:
            path += rng.choice(hostile)
        failed = rng.random() < 0.6
        events.append(OpenEvent(
            timestamp_ns=1_000_000_000 + seq * 22_000, pid=1000 + seq % 7, tid=1000 + seq % 7,
            uid=0, comm=comm, path=path, flags=0o100101 if seq % 3 else 0, mode=0o644,
            fd=None if failed else 3 + seq % 50, errno=2 if failed else None,
            path_source=Source.SYSCALL_ENTRY, syscall="openat", dfd=-100))
    return events


def load(path: str) -> List[Event]:
    """Events saved by --record (hybridtrace.event/6 JSON Lines, exact bytes)."""
    import json

    events: List[Event] = []
    with open(path, encoding="ascii") as handle:
        for line in handle:
            rec = json.loads(line)
            if rec["type"] != "open":
                continue
            events.append(OpenEvent(
                timestamp_ns=rec["timestamp_ns"], pid=rec["pid"], tid=rec["tid"],
                uid=rec["uid"], comm=decode_bytes(rec["comm"]), path=decode_bytes(rec["path"]),
                flags=rec["flags"], mode=rec["mode"], fd=rec["fd"], errno=rec["errno"],
                path_source=Source(rec["path_source"]) if rec["path_source"] else None,
                syscall=rec["syscall"], dfd=rec["dfd"], path_truncated=rec["path_truncated"]))
    return events


def record(path: str, seconds: float, backend: str) -> int:
    """Trace a flat-out open loop (root) and save every open event seen."""
    from hybridtrace.api import trace

    gcc = shutil.which("gcc")
    if gcc is None:
        sys.stderr.write("bench_output: gcc not found\n")
        return 2
    with tempfile.TemporaryDirectory(prefix="ht-bench-out-") as tmp:
        loop = os.path.join(tmp, "openloop")
        subprocess.run([gcc, "-O2", "-o", loop, os.path.join(HERE, "c", "openloop.c")],
                       check=True)
        events: List[Event] = []
        with trace("open", backend) as session, open(path, "w", encoding="ascii") as out:
            child = subprocess.Popen([loop, os.path.join(tmp, "O-bench-"), "0", str(seconds)],
                                     stdout=subprocess.DEVNULL)
            while child.poll() is None:
                events += session.poll(0.1)
            events += session.drain()
            for event in events:
                out.write(event_to_json(event) + "\n")
    print(f"recorded {len(events)} events to {path}")
    return 0


def _modes() -> Dict[str, Dict[str, Any]]:
    return {
        "text": {"json": False, "fmt": OpenFormat()},
        "text -T -U -e": {"json": False, "fmt": OpenFormat(elapsed=True, show_uid=True,
                                                           extended=True)},
        "json": {"json": True, "fmt": OpenFormat()},
    }


def run_mode(events: Sequence[Event], as_json: bool, fmt: OpenFormat, out: IO[str]) -> int:
    """Everything the CLI does per event after the session hands it over."""
    write = _writer()

    def keep(event: Event) -> bool:
        return isinstance(event, OpenEvent)

    def render(event: Event) -> str:
        assert isinstance(event, OpenEvent)
        return fmt.line(event, event.path)

    shown = 0
    for pos in range(0, len(events), BATCH):
        shown += write(out, as_json, events[pos : pos + BATCH], keep, render)
    return shown


def measure(events: Sequence[Event], repeat: int) -> Dict[str, float]:
    results = {}
    with open(os.devnull, "w", encoding="utf-8") as out:
        for label, mode in _modes().items():
            best = float("inf")
            for _ in range(repeat):
                start = time.process_time()
                shown = run_mode(events, mode["json"], mode["fmt"], out)
                best = min(best, time.process_time() - start)
            assert shown == len(events)
            results[label] = best / len(events) * 1e6
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", metavar="FILE", help="JSON Lines saved by --record")
    parser.add_argument("--record", metavar="FILE", help="record a real session to FILE (root)")
    parser.add_argument("--seconds", type=float, default=2.0, help="--record: open loop time")
    parser.add_argument("--backend", default="ebpf-core", help="--record: backend")
    parser.add_argument("--count", type=int, default=100_000, help="synthetic events")
    parser.add_argument("--hostile", type=float, default=0.01, help="synthetic hostile share")
    parser.add_argument("--repeat", type=int, default=5, help="best of N runs")
    parser.add_argument("--profile", choices=sorted(_modes()), help="cProfile one mode")
    args = parser.parse_args()
    if args.record:
        return record(args.record, args.seconds, args.backend)
    events = load(args.events) if args.events else synthetic(args.count, args.hostile)
    if not events:
        sys.stderr.write("bench_output: no open events to format\n")
        return 2
    source = args.events or f"synthetic ({args.hostile:.0%} hostile)"
    print(f"{len(events)} open events from {source}, batches of {BATCH}")
    if args.profile:
        mode = _modes()[args.profile]
        with open(os.devnull, "w", encoding="utf-8") as out:
            prof = cProfile.Profile()
            prof.runcall(run_mode, events, mode["json"], mode["fmt"], out)
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        return 0
    for label, usec in measure(events, args.repeat).items():
        print(f"{label:14s}: {usec:6.2f} CPU us/event")
    return 0


if __name__ == "__main__":
    sys.exit(main())
