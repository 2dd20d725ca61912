#!/usr/bin/env python3
"""Record what the ftrace stream reads from a live kernel, for correlator unit tests.

Run as root: ``python3 tools/record_ftrace_stream.py [--tier uprobe] [--name 6.18-host]``.
For each kind (exec, open) it opens the real stream (its instance, probes and
filters), taps the raw trace_pipe bytes while a workload of known children
runs, and writes into tests/fixtures/ftrace_stream/<name>-<tier>/:

  <kind>.trace_pipe.bin   the raw bytes read
  <kind>.formats/<system>/<event>/format   format files of every enabled event
  <kind>.json             probe roles, probe source, and what the workload did
                          (pids, argv, paths, fds, errnos) as the children reported it

and, read by the binary reader (trace_pipe_raw) in a second run, into
<name>-<tier>-raw/: the same files with <kind>.pages/ (header_page and the
pages of each CPU, cpuN.bin, whole and unfiltered) in place of the text.

With ``--workload tasks`` the children of tools/ftrace_task_workload.py run
instead (comm, uid and process changes; exec on the tracepoint tier, open on
the uprobe tier), into tests/fixtures/ftrace_tasks/<name>[-raw]/.

With ``--workload uring`` (kprobe and eprobe tiers, binary reader: the only one
that decodes io_uring's records) tools/groundtruth's gt opens through io_uring
(URING_OPS, below: failed opens into a fixed file slot among them) and logs what
each did, into tests/fixtures/ftrace_uring/<name>-<tier>-raw/open.*.

Bytes are stored as hex in JSON. The stream removes its kernel state on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ftrace_task_workload as tasks_workload

from hybridtrace.backends.ftrace.format import EventFormat
from hybridtrace.backends.ftrace.pipe import PipeParser
from hybridtrace.backends.ftrace.raw_records import RawRecord, RecordDecoder
from hybridtrace.backends.ftrace.ring_page import parse_header_page
from hybridtrace.backends.ftrace.settings import READER_ENV
from hybridtrace.backends.ftrace.stream import open_ftrace_stream
from hybridtrace.backends.ftrace.trace_record import TraceLine
from hybridtrace.capabilities import probe
from hybridtrace.request import Kind, TraceRequest

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "tests", "fixtures")
OUT = os.path.join(FIXTURES, "ftrace_stream")
TASKS_OUT = os.path.join(FIXTURES, "ftrace_tasks")
TASKS_TIERS = {Kind.EXEC: "tracepoint", Kind.OPEN: "uprobe"}
URING_OUT = os.path.join(FIXTURES, "ftrace_uring")
# (gt method, "file" or "missing", open flags): an open that succeeds; into a fixed
# slot, one the open itself fails (ENOENT) and two the kernel refuses while preparing
# them (O_CLOEXEC: EINVAL), IORING_OP_OPENAT's and OPENAT2's.
URING_OPS = [("uring_openat", "file", 0), ("uring_openat_direct", "missing", 0),
             ("uring_openat_direct", "file", os.O_CLOEXEC),
             ("uring_openat2_direct", "file", os.O_CLOEXEC)]
HOSTILE = [b"with space", b"quote\"'s", b"new\nline", b"\xff\xfe not utf-8", b"\x1b[31mred",
           b'k=v s="x"', b"   sh-1 [000] .....  1.000000: sys_execve -> 0x0", b""]

OPENER = r"""
import ctypes, json, os, sys
base = os.fsencode(sys.argv[1])
made = base + b'/pa th"=\n\xff'
out = []
fd = os.open(made, os.O_WRONLY | os.O_CREAT, 0o600)
out.append({"path": made.hex(), "fd": fd, "via": "open"})
miss = base + b'/missing dir/x'
try:
    os.open(miss, os.O_RDONLY)
except OSError as e:
    out.append({"path": miss.hex(), "errno": e.errno, "via": "open"})
dfd = os.open(base, os.O_RDONLY)
out.append({"path": base.hex(), "fd": dfd, "via": "open"})
rel = b'pa th"=\n\xff'
fd2 = os.open(rel, os.O_RDONLY, dir_fd=dfd)
out.append({"path": rel.hex(), "fd": fd2, "via": "openat", "dfd": dfd})
libc = ctypes.CDLL(None, use_errno=True)
made2 = base + b'/created'
fd3 = libc.creat(made2, 0o644)
out.append({"path": made2.hex(), "fd": fd3, "via": "creat"})
comm = open('/proc/self/comm', 'rb').read().rstrip(b'\n').hex()
print(json.dumps({"pid": os.getpid(), "opens": out, "comm": comm}), flush=True)
sys.stdin.read()
"""

READERS = {"text": [("text", "")], "raw": [("raw", "-raw")],
           "both": [("text", ""), ("raw", "-raw")]}
FEXEC = "import os; fd = os.open('/bin/true', os.O_RDONLY); os.execve(fd, ['true', 'fx y'], {})"


def _exec_workload(tmp: str) -> Dict[str, Any]:
    done: List[Dict[str, Any]] = []
    argv = [b"/bin/sh", b"-c", b"sleep 0.3", b"sh", *HOSTILE]
    child = subprocess.Popen(argv)
    done.append({"pid": child.pid, "argv": [a.hex() for a in argv], "filename": argv[0].hex(),
                 "retval": 0, "ppid": os.getpid()})
    missing = os.fsencode(tmp) + b"/no such/prog"
    with contextlib.suppress(FileNotFoundError):
        subprocess.Popen([missing, b"a=1"])
    done.append({"pid": None, "argv": [missing.hex(), b"a=1".hex()], "filename": missing.hex(),
                 "retval": -2, "ppid": os.getpid()})
    fexec = subprocess.Popen([sys.executable, "-c", FEXEC])
    done.append({"pid": fexec.pid, "argv": [b"true".hex(), b"fx y".hex()], "filename": None,
                 "retval": 0, "ppid": os.getpid(), "syscall": "execveat"})
    child.wait()
    fexec.wait()
    return {"execs": done}


def _open_workload(tmp: str) -> Dict[str, Any]:
    child = subprocess.Popen([sys.executable, "-c", OPENER, tmp], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdin is not None
    report: Dict[str, Any] = json.loads(child.stdout.readline())
    time.sleep(0.2)
    child.stdin.close()
    child.wait()
    child.stdout.close()
    return report


def _uring_workload(tmp: str) -> Dict[str, Any]:
    """gt's io_uring opens (URING_OPS) and what each really did, as gt logged it."""
    from tests.integration.uring_job import UringJob

    pid, opens = UringJob(tmp).run(URING_OPS)
    return {"pid": pid, "opens": [
        {"path": op.path.hex(), "method": op.method, "flags": op.flags, "fd": op.fd,
         "errno": op.errno, "tid": op.tid, "t0": op.t0, "t1": op.t1} for op in opens]}


def _ours(data: bytes, formats: Sequence[EventFormat], work: Dict[str, Any]) -> bytes:
    """Only the records of our workload (the rest of the system is noise)."""
    parser = PipeParser(formats)
    lines = parser.feed(data) + parser.flush()
    if "tasks" in work:
        return _descendants(lines)
    keep = {os.getpid()} if "execs" in work else {int(work["pid"])}
    for line in lines:
        if line.event == "sched_process_fork" and line.pid in keep:
            keep.add(int(line.args["child_pid"]))
    if "execs" in work:
        keep.discard(os.getpid())  # the recorder's own records, except its forks

    def ours(line: TraceLine) -> bool:
        if line.event == "sched_process_fork":
            return int(line.args["child_pid"]) in keep
        return line.pid in keep

    return b"".join(line.raw + b"\n" for line in lines if ours(line))


def _descendants(lines: List[TraceLine]) -> bytes:
    """The records of every task the recorder created (and their tasks), and the
    records creating them: the replay learns each one's comm and uid from those."""
    keep = {os.getpid()}
    kept: List[TraceLine] = []
    for line in lines:
        child = line.args.get("child_pid", line.args.get("pid"))
        if line.event in ("sched_process_fork", "task_newtask") and line.pid in keep:
            keep.add(int(child))  # type: ignore[arg-type]
            kept.append(line)
        elif line.pid in keep and line.pid != os.getpid():
            kept.append(line)
    return b"".join(line.raw + b"\n" for line in kept)


def _our_pages(decoder: RecordDecoder, pages: Dict[int, List[bytes]],
               work: Dict[str, Any]) -> Dict[int, List[bytes]]:
    """Pages holding a record of our workload (a page is kept whole or not at all)."""
    keep = {os.getpid()} if "execs" in work or "tasks" in work \
        else {os.getpid(), int(work["pid"])}
    decoded = {cpu: [_decode(decoder, cpu, page) for page in data]
               for cpu, data in pages.items()}
    every = sorted((rec for per_cpu in decoded.values() for recs in per_cpu for rec in recs),
                   key=lambda rec: rec[0])
    for rec in every:
        child = rec[5].get("child_pid", rec[5].get("pid"))
        if rec[2] in keep and rec[3] in ("sched_process_fork", "task_newtask") \
                and isinstance(child, int):
            keep.add(child)
    return {cpu: [page for page, recs in zip(pages[cpu], decoded[cpu])
                  if any(rec[2] in keep for rec in recs)] for cpu in pages}


def _decode(decoder: RecordDecoder, cpu: int, page: bytes) -> List[RawRecord]:
    records: List[RawRecord] = []
    decoder.decode_page(page, cpu, records)
    return records


def record(kind: Kind, tier: str, dest: str, reader: str, tasks: bool = False,
           uring: bool = False) -> None:
    caps = probe()
    chunks: List[bytes] = []
    pages: Dict[int, List[bytes]] = {}
    os.environ[READER_ENV] = reader
    with tempfile.TemporaryDirectory(prefix="ht-rec ") as tmp, \
            open_ftrace_stream(TraceRequest(kind), caps, tier) as stream:
        assert stream.reader is not None and stream.reader_kind == reader

        def tap(cpu: int, data: bytes) -> None:
            chunks.append(data)
            pages.setdefault(cpu, []).append(data)

        stream.reader.tap = tap
        if uring:
            work = _uring_workload(tmp)
        elif tasks:
            work = tasks_workload.exec_workload(tmp) if kind is Kind.EXEC \
                else tasks_workload.open_workload(tmp)
        else:
            work = _exec_workload(tmp) if kind is Kind.EXEC else _open_workload(tmp)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            stream.poll(0.2)
        with open(os.path.join(stream.instance_path or "", "events", "header_page"),
                  encoding="ascii") as handle:
            header_page = handle.read()
        fmt_dir = os.path.join(dest, f"{kind.value}.formats")
        for fmt in stream.formats:
            src = os.path.join(stream.instance_path or "", "events", fmt.system, fmt.name,
                               "format")
            os.makedirs(os.path.join(fmt_dir, fmt.system, fmt.name), exist_ok=True)
            with open(src, "rb") as handle, \
                    open(os.path.join(fmt_dir, fmt.system, fmt.name, "format"), "wb") as out:
                out.write(handle.read())
        meta = {
            "kernel": os.uname().release,
            "tier": tier,
            "recorder_pid": os.getpid(),
            "probe_source": None if stream.probe_source is None
            else stream.probe_source.value,
            "roles": {name: [r.what, r.index] for name, r in stream.roles.items()},
            "max_args": stream.request.max_args,
            "formats": [[f.system, f.name] for f in stream.formats],
            "reader": reader,
            **work,
        }
    if reader == "text":
        with open(os.path.join(dest, f"{kind.value}.trace_pipe.bin"), "wb") as handle:
            handle.write(_ours(b"".join(chunks), stream.formats, work))
    else:
        page_dir = os.path.join(dest, f"{kind.value}.pages")
        os.makedirs(page_dir, exist_ok=True)
        with open(os.path.join(page_dir, "header_page"), "w", encoding="ascii") as handle:
            handle.write(header_page)
        decoder = RecordDecoder(stream.formats, parse_header_page(header_page))
        for cpu, data in sorted(_our_pages(decoder, pages, work).items()):
            with open(os.path.join(page_dir, f"cpu{cpu}.bin"), "wb") as handle:
                handle.write(b"".join(data))
    with open(os.path.join(dest, f"{kind.value}.json"), "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=1, sort_keys=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="uprobe")
    parser.add_argument("--name", default=os.uname().release)
    parser.add_argument("--readers", choices=sorted(READERS), default="both")
    parser.add_argument("--workload", choices=("basic", "tasks", "uring"), default="basic")
    parser.add_argument("--out", help=f"directory of recordings (default: {OUT}, "
                        f"{TASKS_OUT} for --workload tasks, {URING_OUT} for uring)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("record_ftrace_stream: run as root", file=sys.stderr)
        return 2
    tasks = args.workload == "tasks"
    if args.workload == "uring":
        dest = os.path.join(args.out or URING_OUT, f"{args.name}-{args.tier}-raw")
        os.makedirs(dest, exist_ok=True)
        record(Kind.OPEN, args.tier, dest, "raw", uring=True)
        print(dest)
        return 0
    out = args.out or (TASKS_OUT if tasks else OUT)
    for reader, suffix in READERS[args.readers]:
        dest = os.path.join(out, f"{args.name}{suffix}" if tasks
                            else f"{args.name}-{args.tier}{suffix}")
        os.makedirs(dest, exist_ok=True)
        for kind in (Kind.EXEC, Kind.OPEN):
            record(kind, TASKS_TIERS[kind] if tasks else args.tier, dest, reader, tasks)
        print(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
