"""What the side benchmarks (syscall_cost, soak) share: running a tracer as a user
runs it, and publishing a result beside the main benchmark's.

A tracer's stdout is drained by a thread (nothing is kept but byte and line
counts), so a long run never fills a pipe or a disk; its stderr is drained by
another and kept (a start line, warnings, a summary: small). Readiness is the
first byte on stdout (the reference tools print their header once attached) or,
for a tracer that says so on stderr (our CLI's start line), a marker there.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Any, Callable, Dict, List, Optional, Sequence, Tuple

from hybridtrace import tracefs
from tools.bench import bpf_stats, machine, workloads
from tools.bench.tracers import OURS, hybridtrace_cli

START_LINE = b"hybridtrace: tracing "  # our CLI's start line: attached

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

READY_TIMEOUT = 60.0
STDERR_KEPT = 1 << 16  # bytes of stderr kept (its end): a tracer that floods it is cut


class NotStarted(RuntimeError):
    """The tracer exited, or showed no sign of readiness in time; the message is whole."""


class Running:
    def __init__(self, argv: List[str], settle: float = 0.5,
                 ready_timeout: float = READY_TIMEOUT,
                 ready_on_stderr: Optional[bytes] = None,
                 out_path: Optional[str] = None) -> None:
        """With ``out_path``, stdout goes to that file (as the main benchmark keeps it,
        nothing read while it runs) and byte and line counts stay 0."""
        self.argv = argv
        if out_path:
            with open(out_path, "wb") as out:  # the child keeps its own copy
                self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE)
        else:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.bytes_out = 0
        self.lines_out = 0
        self._err = bytearray()
        self._marker = ready_on_stderr
        self._ready = threading.Event()
        self._threads = [threading.Thread(target=self._read_err, daemon=True)]
        if not out_path:
            self._threads.append(threading.Thread(target=self._read_out, daemon=True))
        for t in self._threads:
            t.start()
        started = time.monotonic()
        while not self._ready.wait(0.05):
            if out_path and self._marker is None and os.path.getsize(out_path) > 0:
                break
            if self.proc.poll() is not None:
                err = self.stop()
                raise NotStarted(f"{argv[0]} exited {self.proc.returncode} before it was"
                                 f" ready: {one_line(err) or 'nothing on stderr'}")
            if time.monotonic() - started > ready_timeout:
                err = self.stop()
                sign = "start line on stderr" if ready_on_stderr else "output"
                raise NotStarted(f"{argv[0]} showed no {sign} within {ready_timeout:g} s"
                                 f" (stopped; stderr: {one_line(err) or 'empty'})")
        self.ready_s = time.monotonic() - started
        time.sleep(settle)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_out(self) -> None:
        stream: IO[bytes] = self.proc.stdout  # type: ignore[assignment]
        while True:
            chunk = stream.read1(1 << 16)  # type: ignore[attr-defined]
            if not chunk:
                return
            self.bytes_out += len(chunk)
            self.lines_out += chunk.count(b"\n")
            if self._marker is None:
                self._ready.set()

    def _read_err(self) -> None:
        stream: IO[bytes] = self.proc.stderr  # type: ignore[assignment]
        for line in iter(stream.readline, b""):
            self._err += line
            del self._err[:-STDERR_KEPT]
            if self._marker is not None and self._marker in line:
                self._ready.set()

    def stop(self) -> str:
        """SIGINT (a clean ending, as Ctrl-C), then its whole stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # ours, by its pid
            self.proc.wait()
        for t in self._threads:
            t.join(5)
        return self._err.decode(errors="replace")

    def returncode(self) -> Optional[int]:
        return self.proc.returncode


def rounds_parser(module: str, doc: str, duration: float, rounds: int) -> argparse.ArgumentParser:
    """Options of a side benchmark that runs a loop under every tracer, rounds over them."""
    from hybridtrace.cli.common import positive_float

    p = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.splitlines()[0])
    p.add_argument("--duration", type=positive_float, default=duration,
                   help="seconds per loop run")
    p.add_argument("--rounds", type=int, default=rounds, help="rounds over every tracer")
    p.add_argument("--out", default=os.path.join(REPO, "docs", "benchmarks"))
    return p


def generated_by(module: str, result: Dict[str, Any]) -> str:
    """A side page's first words: the command, the date and the machine."""
    m = result["machine"]
    return (f"Generated by `python -m {module}` on {result['date']}: kernel {m['kernel']},"
            f" {m['cpus']} CPUs ({m['cpu']}), commit {m['hybridtrace_commit']}")


def ready_to_trace(prog: str) -> bool:
    """Root, and tracefs mounted (classic tracepoints and libbpf-tools need it); a side
    benchmark that may not trace says why on stderr."""
    if os.geteuid() != 0:
        print(f"{prog}: run as root (the tracers need it)", file=sys.stderr)
        return False
    path, mounted = tracefs.ensure_mounted()
    if mounted:
        print(f"{prog}: mounted tracefs at {path} for the classic tracepoints", file=sys.stderr)
    return True


def one_line(text: str) -> str:
    """Every non-empty line of ``text``, joined: a message for a table cell or a log."""
    return " / ".join(ln.strip() for ln in text.splitlines() if ln.strip())


def publish(out: str, stem: str, settings: Dict[str, Any], rows: Dict[str, Any],
            render: Callable[[Dict[str, Any]], str]) -> str:
    """Write ``stem``.json (everything measured) and ``stem``.md (its page); return the page."""
    result = {"date": datetime.date.today().isoformat(), "machine": machine.describe(REPO),
              **settings, "tracers": rows}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{stem}.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    text = render(result)
    with open(os.path.join(out, f"{stem}.md"), "w") as f:
        f.write(text)
    return text


Tracers = List[Tuple[str, List[str], Optional[bytes]]]  # (name, argv, start marker on stderr)


def core_beside_libbpf(snoop: str, options: Sequence[str], libbpf: str) -> Tracers:
    """ebpf-core's two attach modes, started as tools.bench starts them, then the
    libbpf-tools program ``libbpf``, line-buffered: its output is a file, where stdio
    keeps its header alone in the buffer, and on a quiet machine nothing else comes to
    show it is ready."""
    cli = hybridtrace_cli(REPO)
    out: Tracers = [(f"hybridtrace {name}", [cli, snoop, "--json", *options, *opts], START_LINE)
                    for name, opts in OURS if name in ("ebpf-core", "ebpf-core/tp_btf")]
    out.append(("libbpf-tools", ["stdbuf", "-oL", libbpf], None))
    return out


def side_run(prog: str, out: str, measure: Callable[[Any], Dict[str, Any]],
             settings: Dict[str, Any], render: Callable[[Dict[str, Any]], str]) -> int:
    """A side benchmark's whole run: checks, workloads built, ``measure(binaries)``,
    the load before and after, the page written (``prog``.md/.json in ``out``)."""
    if not ready_to_trace(prog):
        return 2
    load_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix=f"ht-{prog}-bin-") as work:
        try:
            rows = measure(workloads.build(work))
        except (workloads.WorkloadError, bpf_stats.StatsError,
                subprocess.CalledProcessError) as exc:
            print(f"{prog}: {one_line(str(exc))}", file=sys.stderr)
            return 1
    settings = {**settings, "load_start": load_start,
                "load_end": [round(x, 2) for x in os.getloadavg()]}
    print(publish(out, prog, settings, rows, render))
    return 0
