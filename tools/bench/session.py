"""Run one tracer under one workload and measure it.

The sequence: start the tracer; prime it (marker events every 20 ms until
one shows up in its output, which also times its start-up); run the
workload; fence (marker events until one shows up, so everything before it
has been read, on every CPU); stop it with SIGINT; account. A tracer that
exits before it shows a marker "cannot run here", with its first diagnostic
line (and its last) as the reason.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import tempfile
import time
from typing import Any, Dict, List, Optional, Set, Tuple

import attrs

from tools.bench import procstat
from tools.bench.accounting import ExecExpectation, Tally, tally_exec, tally_open
from tools.bench.fixtures import record, record_failure
from tools.bench.leftovers import leftovers
from tools.bench.observed import Parsed
from tools.bench.parse_jsonl import parse_jsonl
from tools.bench.parse_text import parse_text
from tools.bench.tracers import Tracer
from tools.bench.workloads import Binaries, Outcome, Workload, child_copy, run

BATCH = {"open": 20, "exec": 5}  # marker events per 20 ms
_START_LINE = re.compile(rb"^hybridtrace: tracing \w+ with ", re.M)
TICK = 0.02
STOP_TIMEOUT = 10.0
FENCE_TIMEOUT = 30.0


@attrs.frozen(slots=True)
class Context:
    bins: Binaries
    workdir: str
    ready_timeout: float
    record: Optional[str] = None  # directory to save raw outputs to, as test fixtures


@attrs.define
class _Marker:
    """Issues marker events in batches and finds them in a growing output file."""

    kind: str
    letter: str
    rundir: str
    token: str
    primer: str
    since_ns: int = 0  # CLOCK_MONOTONIC: events before this do not count as seen
    opened_at: Optional[float] = None  # when our CLI printed its start line
    # A fence issues markers from every CPU and is seen only when each CPU's shows:
    # tracers that read per-CPU buffers may be far behind on one CPU only.
    per_cpu: bool = False
    issued: List[Tuple[int, float]] = attrs.Factory(list)
    seq: int = 0
    times: List[float] = attrs.Factory(list)
    cpu_of: Dict[int, int] = attrs.Factory(dict)
    seen_cpus: Set[int] = attrs.Factory(set)
    cpus: List[int] = attrs.Factory(lambda: sorted(os.sched_getaffinity(0)))

    @property
    def tag(self) -> bytes:
        return f"{self.letter}-{self.token}-".encode()

    def _one(self, children: List[int]) -> None:
        name = f"{self.tag.decode()}{self.seq}"
        if self.kind == "open":
            with contextlib.suppress(OSError):
                os.close(os.open(os.path.join(self.rundir, name), os.O_RDONLY))
        else:  # posix_spawn returns once the child has exec'd (CLONE_VFORK)
            children.append(os.posix_spawn(self.primer, [self.primer, name], {}))
        # times[seq]: when marker seq had certainly happened; a tracer that printed it
        # was attached by then (under load the call itself may take a while)
        self.times.append(time.monotonic())
        self.seq += 1

    def issue(self) -> None:
        self.issued.append((self.seq, time.monotonic()))
        children: List[int] = []
        if not self.per_cpu:
            for _ in range(BATCH[self.kind]):
                self._one(children)
        else:
            try:
                for cpu in self.cpus:
                    os.sched_setaffinity(0, {cpu})  # children inherit it
                    for _ in range(max(1, BATCH[self.kind] // len(self.cpus))):
                        self.cpu_of[self.seq] = cpu
                        self._one(children)
            finally:
                os.sched_setaffinity(0, self.cpus)
        for pid in children:
            os.waitpid(pid, 0)

    def first_issue_time(self, text: bytes) -> Optional[float]:
        """Issue time of the earliest marker found in text (None: none found)."""
        seqs = [int(m) for m in re.findall(re.escape(self.tag) + rb"(\d+)", text)]
        if not seqs and not self.seen_without_marker(text):
            return None
        if not seqs:  # marker not captured, the event was: the latest batch bounds it
            return self.issued[-1][1]
        if self.per_cpu:
            self.seen_cpus.update(self.cpu_of[s] for s in seqs if s in self.cpu_of)
            if not self.seen_cpus.issuperset(self.cpus):
                return None
        first = min((s for s in seqs if s < len(self.times)), default=None)
        return self.issued[-1][1] if first is None else self.times[first]

    def watch_start_line(self, out_path: str) -> None:
        """When our CLI said "tracing ... with": its session is open (BPF loaded or
        compiled, probes attached), which for ebpf-bcc is mostly BCC's compile time."""
        if self.opened_at is not None:
            return
        err = os.path.join(os.path.dirname(out_path), "stderr")
        with open(err, "rb") as f:
            if _START_LINE.search(f.read(4096)):
                self.opened_at = time.monotonic()

    def seen_without_marker(self, text: bytes) -> bool:
        """An event of ours whose string the tracer did not capture (e.g. tracepoint tier)."""
        if self.kind == "exec":
            return f"hp{self.token}".encode() in text  # the primer's comm
        # Our opens (markers, reading the output file) printed without a path; only
        # our JSON has timestamps to tell them from opens made before the workload.
        pattern = rb'"type":"open","timestamp_ns":(\d+),"pid":%d,' % os.getpid()
        return any(int(ts) >= self.since_ns for ts in re.findall(pattern, text))

    def wait_seen(self, proc: subprocess.Popen[bytes], out_path: str,
                  timeout: float, offset: int = 0) -> Optional[float]:
        """Issue batches until one shows in the output after offset; its issue time."""
        deadline = time.monotonic() + timeout
        carry = b""
        while time.monotonic() < deadline and proc.poll() is None:
            self.issue()
            time.sleep(TICK)
            self.watch_start_line(out_path)
            with open(out_path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
            text = carry + chunk
            cut = text.rfind(b"\n") + 1  # whole lines only: a split marker misleads
            found = self.first_issue_time(text[:cut])
            if found is not None:
                return found
            carry = text[cut:]
        return None


def _printable(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return "".join(c if c.isprintable() else "?" for c in text)[:300]


_DIAGNOSTIC = re.compile(rb"unable to|cannot|can't|failed to|no usable|not permitted", re.I)


def why_not(*paths: str) -> str:
    """One line for a tracer that could not start: its first diagnostic and its last word."""
    lines: List[bytes] = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                lines += [ln.strip() for ln in f.read().splitlines()[:100] if ln.strip()]
        except OSError:
            continue
    lines = [ln for ln in lines
             if not ln.startswith((b"File ", b"Traceback", b"^", b"raise "))]
    if not lines:
        return ""
    first = next((ln for ln in lines if _DIAGNOSTIC.search(ln)), lines[-1])
    if first == lines[-1]:
        return _printable(first)
    return f"{_printable(first)} / {_printable(lines[-1])}"


def stop(proc: subprocess.Popen[bytes]) -> Tuple[str, int, float, Dict[str, float]]:
    """SIGINT, then SIGTERM, then SIGKILL, by pid; (signal used, status, seconds, rusage)."""
    start = time.monotonic()
    if proc.returncode is not None:  # exited by itself and already reaped
        return "exited", proc.returncode, 0.0, {"cpu_s": 0.0, "maxrss_kb": 0.0}
    for sig, grace in ((signal.SIGINT, STOP_TIMEOUT), (signal.SIGTERM, 5.0),
                       (signal.SIGKILL, 5.0)):
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                proc.returncode = (-os.WTERMSIG(status) if os.WIFSIGNALED(status)
                                   else os.WEXITSTATUS(status))
                return (signal.Signals(sig).name, proc.returncode, time.monotonic() - start,
                        {"cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss})
            time.sleep(0.02)
    raise RuntimeError(f"tracer {proc.pid} survived SIGKILL")


def relevant(line: bytes, token: bytes, pid: int) -> bool:
    """Cheap pre-filter: lines that can be the workload's events or loss reports.

    Other processes' events (often millions of lines) need no parsing; the
    loop's own pid covers its events whose marker was not captured, the
    token its markers, "hx<token>" its exec children's comm.
    """
    return (token in line or b'"lost"' in line or b'"pid":%d,' % pid in line
            or line.startswith(b"%d " % pid) or b"Possibly lost" in line or b"Lost " in line)


def parse_output(tracer: Tracer, out_path: str, err_path: str, token: str = "",
                 pid: int = 0) -> Parsed:
    with open(out_path, "rb") as f:
        out = f.read().splitlines()
    with open(err_path, "rb") as f:
        err = f.read().splitlines()
    if token:
        mark = token.encode()
        out = [ln for ln in out if relevant(ln, mark, pid)]
    if tracer.output == "jsonl":
        return parse_jsonl(out, err)
    return parse_text(tracer.kind, out, err)


def tally(outcome: Outcome, parsed: Parsed) -> Tally:
    want = outcome.expectation
    if isinstance(want, ExecExpectation):
        return tally_exec(parsed.events, want, parsed.lost)
    return tally_open(parsed.events, want, parsed.lost)


def base_result(tracer: Optional[Tracer], w: Workload) -> Dict[str, Any]:
    return {
        "tracer": tracer.name if tracer else "untraced",
        "family": tracer.family if tracer else "none",
        "command": list(tracer.argv) if tracer else [],
        "env": dict(tracer.env) if tracer else {},
        "kind": w.kind, "workload": w.name, "rate_offered": w.rate, "duration_s": w.duration,
        "loadavg_1m": round(os.getloadavg()[0], 2),  # other load on the machine: noise
    }


def run_untraced(w: Workload, ctx: Context) -> Dict[str, Any]:
    rundir = tempfile.mkdtemp(prefix="base-", dir=ctx.workdir)
    outcome = run(w, ctx.bins, rundir, secrets.token_hex(3))
    result = base_result(None, w)
    result.update(status="ok", produced=outcome.produced, elapsed_s=round(outcome.elapsed_s, 3),
                  achieved_rate=round(outcome.achieved_rate, 1))
    return result


def set_baseline(traced: List[Dict[str, Any]], untraced: List[Dict[str, Any]]) -> None:
    """Throughput relative to the mean of the untraced runs before and after the tracers."""
    rates = [u["achieved_rate"] for u in untraced if u["status"] == "ok"]
    base = sum(rates) / len(rates) if rates else 0.0
    for r in traced:
        if r["status"] == "ok":
            r["baseline_rate"] = round(base, 1)
            r["throughput_relative"] = round(r["achieved_rate"] / base, 4) if base else None


def run_traced(tracer: Tracer, w: Workload, ctx: Context) -> Dict[str, Any]:
    rundir = tempfile.mkdtemp(prefix="run-", dir=ctx.workdir)
    token = secrets.token_hex(3)
    primer = child_copy(ctx.bins, rundir, f"hp{token}")
    out_path = os.path.join(rundir, "stdout")
    err_path = os.path.join(rundir, "stderr")
    result = base_result(tracer, w)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(tracer.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, **tracer.env})
    first: Optional[float] = None
    try:
        prime = _Marker(tracer.kind, "P", rundir, token, primer)
        first = prime.wait_seen(proc, out_path, ctx.ready_timeout)
        if first is None:
            exited = proc.poll() is not None
            _, code, _, _ = stop(proc)
            reason = (why_not(out_path, err_path) if exited else "") \
                or f"no event within {ctx.ready_timeout:.0f} s"
            result.update(status="cannot run" if exited else "not ready", reason=reason,
                          exit_code=code, leftovers=leftovers(proc.pid))
            if ctx.record and exited:
                record_failure(ctx.record, tracer, w, out_path, err_path, reason)
            return result
        ready_s = time.monotonic() - t0
        time.sleep(0.2)
        cpu0 = procstat.cpu_seconds(proc.pid)
        w0 = time.monotonic()
        outcome = run(w, ctx.bins, rundir, token)
        fence = _Marker(tracer.kind, "F", rundir, token, primer, time.monotonic_ns(),
                        per_cpu=True)
        fenced = fence.wait_seen(proc, out_path, FENCE_TIMEOUT,
                                 os.path.getsize(out_path)) is not None
        time.sleep(0.1)
        cpu = procstat.cpu_seconds(proc.pid) - cpu0
        window = time.monotonic() - w0
        rss = procstat.peak_rss_kb(proc.pid)
    finally:
        how, code, stop_s, usage = stop(proc)  # also on errors and Ctrl-C of the bench
    parsed = parse_output(tracer, out_path, err_path, token, outcome.pid)
    counts = tally(outcome, parsed)
    if ctx.record:
        record(ctx.record, tracer, w, outcome, token, out_path, err_path)
    rate = outcome.achieved_rate
    if how == "exited":  # before it was told to stop
        result.update(reason=why_not(out_path, err_path) or f"exit status {code}")
    result.update(
        status="ok" if how != "exited" else "died",
        produced=counts.produced, captured=counts.captured,
        correct=counts.correct, duplicates=counts.duplicates, lost_reported=parsed.lost,
        lost_reports=parsed.lost_reports, missed=counts.missed, unaccounted=counts.unaccounted,
        captured_share=counts.captured_share, correct_share=counts.correct_share,
        elapsed_s=round(outcome.elapsed_s, 3), achieved_rate=round(rate, 1),
        throughput_relative=None,
        cpu_s=round(cpu, 3), window_s=round(window, 3),
        cpu_s_per_100k=None if counts.produced == 0 else round(cpu * 1e5 / counts.produced, 3),
        cpu_s_total=round(usage["cpu_s"], 3), peak_rss_kb=rss, maxrss_kb=int(usage["maxrss_kb"]),
        first_event_s=round(first - t0, 3), ready_s=round(ready_s, 3), fenced=fenced,
        session_open_s=None if prime.opened_at is None else round(prime.opened_at - t0, 3),
        stopped_by=how, exit_code=code, stop_s=round(stop_s, 3),
        unparsed_lines=parsed.unparsed_lines, leftovers=leftovers(proc.pid),
    )
    return result
