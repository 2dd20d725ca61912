"""`hybridtrace execsnoop` / `opensnoop` against BCC's own tools, line by line.

BCC's execsnoop-bpfcc and opensnoop-bpfcc (Debian's bpfcc-tools) compile their
programs at start against the running kernel's headers, and execsnoop attaches
kprobes: the Debian 6.1 VM with headers has both (the VM CI cell runs this test
and requires it to pass, tools/vm), this host has neither (skipped).

Every flag set runs in BCC's tool and in ours at once over one workload, with no
hybridtrace-only option, so the outputs must be the same bytes except for time
values (masked) and other processes' lines (kept out by the workload's pids). A
BCC tool compiles for tens of seconds under TCG, so each flag set pairs a flag
that changes the format with a filter, and BCC runs once per set: 6 execsnoop
and 6 opensnoop sets cover every flag the two tools' issue asks for. The one
deliberate difference the workload meets (BCC's `...` after exactly
--max-args arguments, README "Where the output still differs from BCC") is
applied to BCC's lines by name, so anything else that differs fails.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Callable, Dict, List, Optional, Sequence, Set, Tuple

import pytest

from tests.conftest import TIME_SCALE, require_backend
from tests.integration.conftest import leftovers
from tests.integration.test_cli import Tracer
from tests.reference_formats import bcc_exec_header, bcc_open_header

# The label tools/vm requires in its CI cell (a skip there is a failure).
LABEL = "bcc-tools"
# Two uids no user here has: the workload's, and a bystander's that -u and -p keep out.
WORKLOAD_UID = 40000 + os.getpid() % 20000
OTHER_UID = WORKLOAD_UID + 1
MAX_ARGS = 4
# opensnoop -d: long enough for our -d to start after BCC's and the workload to run.
OPEN_DURATION = int(6 * TIME_SCALE)

# sh opens files itself (a builtin's redirections, and dash opens a command's
# redirection before it forks), fails an open, and forks children that exec, fail
# to open, fail to exec, print quotes, and have fewer, exactly and more than
# MAX_ARGS arguments (the path counts as one).
WORKLOAD = (
    "read go; : > {d}/w1; exec 3<> {d}/rw; exec 3>&-; true < /ht-bcc-nope-sh;"
    " for i in 1 2; do /bin/cat /etc/hostname /ht-bcc-nope-$i;"
    " /bin/echo 'two words' 'q\"uote' x$i > {d}/echo$i; /ht-bcc-missing-$i a$i; done;"
    " /bin/true x y; /bin/true 1 2 3; /bin/true a b c d e; exit 0"
)
BYSTANDER = "read go; : > {d}/other; /bin/cat /etc/hostname /ht-bcc-other; exit 0"

# Each set runs once in BCC's tool and in ours. Beside the default, one set holds
# every option that changes the format, the others the filters, chosen so that each
# filter keeps out a line the others let through: -n drops the echo lines -l keeps,
# -l the second cat -n keeps; -p the bystander's write -f keeps, -f sh's failed read.
EXEC_SETS: List[List[str]] = [
    [],
    ["-T", "-t", "-U", "-q", "-x", "-u", str(WORKLOAD_UID)],
    ["--max-args", str(MAX_ARGS), "-n", "^(cat|true)$", "-l", "nope-1|^/bin/ec| [1a] "],
]
OPEN_SETS: List[List[str]] = [  # "-p" gets the workload's pid when it exists
    ["-e", "-p", "-f", "O_WRONLY", "-f", "O_RDWR"],
    [],
    ["-T", "-U", "-x", "-n", "cat", "-d", str(OPEN_DURATION)],  # ends by itself
]
# Sets whose filter alone keeps every other process out: compared whole, unfiltered.
KERNEL_FILTERED = ("-u", "-p")


def bcc_unavailable() -> Optional[str]:
    """Why BCC's tools cannot run here, or None."""
    why = [f"no {t}" for t in ("execsnoop-bpfcc", "opensnoop-bpfcc") if not _tool(t)]
    build = f"/lib/modules/{os.uname().release}/build"
    if not os.path.isdir(build):
        why.append(f"no kernel headers at {build} (BCC's tools compile against them)")
    if not os.path.isdir("/sys/bus/event_source/devices/kprobe"):
        why.append("no kprobes (BCC's execsnoop attaches kprobes)")
    return "; ".join(why) or None


def _tool(name: str) -> Optional[str]:
    path = shutil.which(name) or f"/usr/sbin/{name}"
    return path if os.path.exists(path) else None


class BccTool:
    """One of BCC's tools running, ready once its header is out: it prints the header
    after compiling and attaching. Its output goes to a file, not a pipe: an unfiltered
    opensnoop prints every file the later BCC compiles open, which would fill a pipe
    nobody reads yet and stall it."""

    def __init__(self, name: str, flags: Sequence[str]) -> None:
        path = _tool(name)
        assert path is not None
        self.argv = [path, *flags]
        # Open while the tool runs, closed by stop().
        self.out = tempfile.TemporaryFile()  # noqa: SIM115
        self.err = tempfile.TemporaryFile()  # noqa: SIM115
        started = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdout=self.out, stderr=self.err,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        while b"\n" not in self.output() and self.proc.poll() is None:
            time.sleep(0.2)
        self.start_seconds = time.monotonic() - started
        assert b"\n" in self.output(), f"{self.argv} did not start: {self.stderr()}"

    def output(self) -> bytes:
        self.out.seek(0)
        return self.out.read()

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read().decode(errors="replace")[-600:]

    def rss_mib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            kib = next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:"))
        return kib // 1024

    def stop(self) -> List[str]:
        """End it as Ctrl-C does. BCC's tools end on KeyboardInterrupt, which is lost
        when the signal comes while Python runs their perf buffer callback (ctypes
        swallows the exception), so the signal is repeated until the tool ends."""
        for _ in range(int(30 * TIME_SCALE)):
            if self.proc.poll() is not None:
                break
            self.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1)
        assert self.proc.poll() is not None, f"{self.argv} did not end on SIGINT"
        lines = self.output().decode().splitlines()
        self.out.close()
        self.err.close()
        return lines


def kill(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    if proc.poll() is None:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------ reading the lines


def exec_prefix(flags: Sequence[str]) -> int:
    """Width of the time and uid cells before PCOMM: BCC's %-9s, %-8.3f, %-6d."""
    return 9 * ("-T" in flags) + 8 * ("-t" in flags) + 6 * ("-U" in flags)


def open_prefix(flags: Sequence[str]) -> int:
    return 14 * ("-T" in flags) + 6 * ("-U" in flags)  # %-14.9f, %-6d


def exec_pids(line: str, flags: Sequence[str]) -> Tuple[int, int]:
    """(PID, PPID) of an execsnoop line: after the 16-column PCOMM and a space."""
    pid, ppid = line[exec_prefix(flags) + 17:].split()[:2]
    return int(pid), int(ppid) if ppid.isdigit() else -1


def open_pid(line: str, flags: Sequence[str]) -> int:
    return int(line[open_prefix(flags):].split()[0])


TIME_CELLS = {  # (flag, where the cell starts given the flags, width, what it must look like)
    "exec": [("-T", lambda f: 0, 9, r"\d\d:\d\d:\d\d "),
             ("-t", lambda f: 9 * ("-T" in f), 8, r"\d+\.\d{3} *")],
    "open": [("-T", lambda f: 0, 14, r"\d+\.\d{9} *")],
}


def masked(kind: str, line: str, flags: Sequence[str]) -> str:
    """The line with each time cell that has the right form replaced by `#`s (a cell of
    the wrong form stays, so the comparison shows it)."""
    for flag, start_of, width, form in TIME_CELLS[kind]:
        if flag in flags:
            start = start_of(flags)
            if re.fullmatch(form, line[start:start + width]):
                line = line[:start] + "#" * width + line[start + width:]
    return line


# The workload's execs with exactly MAX_ARGS and more than MAX_ARGS words (path included).
EXACT_ARGS = ["/bin/true", "1", "2", "3"]
MORE_ARGS = ["/bin/true", "a", "b", "c"]  # ... "d" "e": cut


def deliberate(kind: str, flags: Sequence[str], bcc_line: str) -> str:
    """BCC's line as ours must read where we differ on purpose (README, "Where the
    output still differs from BCC"). BCC ends ARGS with one more word once argv has
    --max-args entries, cut or not: `...` as it means to, or, where the kernel refuses
    the bpf_probe_read_user() of that `...` from BPF's own stack (x86-64 6.1), an empty
    word. We print `...` only after an argv that was cut."""
    if kind != "exec" or "--max-args" not in flags:
        return bcc_line
    for words, cut in ((EXACT_ARGS, False), (MORE_ARGS, True)):
        if "-q" in flags:
            shown, markers, ours = [f'"{w}"' for w in words], [' "..."', ' ""'], ' "..."'
        else:
            shown, markers, ours = words, [" ...", " "], " ..."
        for marker in markers:
            if bcc_line.endswith(" " + " ".join(shown) + marker):
                return bcc_line[: -len(marker)] + (ours if cut else "")
    return bcc_line


def workload_lines(kind: str, flags: Sequence[str], pids: Optional[Set[int]]
                   ) -> Callable[[str], bool]:
    """Which lines are the workload's: those of ``pids`` (every line when None)."""
    if pids is None:
        return lambda line: True
    if kind == "exec":
        return lambda line: exec_pids(line, flags)[0] in pids
    return lambda line: open_pid(line, flags) in pids


def compared(kind: str, flags: Sequence[str], lines: List[str],
             keep: Callable[[str], bool]) -> List[str]:
    return [masked(kind, ln, flags) for ln in lines[1:] if keep(ln)]


# ------------------------------------------------------------------ the run


class SideBySide:
    """Both workloads waiting, BCC's tools and ours tracing; run() lets the workload go."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="ht-bcc-")
        os.chmod(self.dir, 0o777)
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}  # C locale: no locale files opened
        self.work = self._spawn(WORKLOAD.format(d=self.dir), WORKLOAD_UID, env)
        self.other = self._spawn(BYSTANDER.format(d=self.dir), OTHER_UID, env)
        pid = str(self.work.pid)
        self.sets: List[Tuple[str, List[str]]] = (
            [("execsnoop", f) for f in EXEC_SETS]
            + [("opensnoop", [a for f in flags for a in ([f, pid] if f == "-p" else [f])])
               for flags in OPEN_SETS])
        self.bcc: Dict[int, BccTool] = {}  # by the set's index, as they start
        self.ours: Dict[int, Tracer] = {}
        self.seconds: Dict[str, float] = {}
        self.errors: Dict[int, str] = {}  # each of ours' stderr
        self.files: List[IO[bytes]] = []  # our tracers' outputs

    @staticmethod
    def _spawn(script: str, uid: int, env: Dict[str, str]) -> subprocess.Popen:  # type: ignore[type-arg]
        return subprocess.Popen(["/bin/sh", "-c", script], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                preexec_fn=lambda: os.setuid(uid))

    def start(self) -> None:
        """BCC's tools one at a time (a compile takes the CPU and ~130 MiB for tens of
        seconds), then ours; the -d pair last, so that their clocks start just before
        the workload. Every output goes to a file: the unfiltered opensnoops print
        whatever the later BCC compile opens."""
        last = [i for i, (_, flags) in enumerate(self.sets) if "-d" in flags]
        first = [i for i in range(len(self.sets)) if i not in last]

        def tracer(i: int) -> Tracer:
            out = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
            self.files.append(out)
            return Tracer([self.sets[i][0], *self.sets[i][1]], stdout=out)

        for i in first:
            self.bcc[i] = BccTool(f"{self.sets[i][0]}-bpfcc", self.sets[i][1])
        started = time.monotonic()
        with ThreadPoolExecutor(len(first)) as pool:
            self.ours.update(zip(first, pool.map(tracer, first)))
        self.seconds["ours start"] = time.monotonic() - started
        for i in last:
            self.bcc[i] = BccTool(f"{self.sets[i][0]}-bpfcc", self.sets[i][1])
            self.ours[i] = tracer(i)

    def run(self) -> None:
        time.sleep(1)  # BCC opens its perf buffer just after the header
        started = time.monotonic()
        for proc in (self.work, self.other):
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.close()
        assert self.work.wait(timeout=60 * TIME_SCALE) == 0
        assert self.other.wait(timeout=60 * TIME_SCALE) == 0
        self.seconds["workload"] = time.monotonic() - started
        time.sleep(1 * TIME_SCALE)

    def stop(self) -> List[Tuple[str, List[str], List[str], List[str]]]:
        """[(tool, flags, BCC's lines, ours)], header first: the others stopped while
        the -d pair runs out its time and ends by itself."""
        timed = [i for i, (_, f) in enumerate(self.sets) if "-d" in f]
        out: Dict[int, Tuple[str, List[str], List[str], List[str]]] = {}
        for i in [i for i in range(len(self.sets)) if i not in timed]:
            out[i] = self._collect(i)
        waited = time.monotonic()
        deadline = waited + OPEN_DURATION + 60 * TIME_SCALE
        while any(self.bcc[i].proc.poll() is None for i in timed):
            # BCC checks -d only when a poll returns, so give it an open to return on.
            assert time.monotonic() < deadline, "BCC's opensnoop -d did not end"
            with open("/etc/hostname", "rb"):
                pass
            time.sleep(0.5)
        for i in timed:
            assert self.ours[i].proc.wait(timeout=60 * TIME_SCALE) == 0, "our -d did not end"
            out[i] = self._collect(i)
        self.seconds["waited for -d"] = time.monotonic() - waited
        return [out[i] for i in range(len(self.sets))]

    def _collect(self, i: int) -> Tuple[str, List[str], List[str], List[str]]:
        tool, flags = self.sets[i]
        text, err = self.ours[i].stop()
        assert self.ours[i].proc.returncode == 0, err
        assert not leftovers(self.ours[i].proc.pid)
        self.errors[i] = err.strip()[-300:]  # LOST lines, if any, say what went
        return tool, flags, self.bcc[i].stop(), text.splitlines()

    def close(self) -> None:
        for proc in [self.work, self.other, *(b.proc for b in self.bcc.values()),
                     *(t.proc for t in self.ours.values())]:
            kill(proc)
        for f in self.files:
            f.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.mark.timeout(int(600 * max(1.0, TIME_SCALE / 2)))
def test_same_lines_as_bcc_for_every_flag() -> None:
    why = bcc_unavailable()
    if why:
        require_backend(LABEL, why)
    run = SideBySide()
    try:
        run.start()
        started = [(f"{t} {' '.join(f)}", round(run.bcc[i].start_seconds),
                    run.bcc[i].rss_mib()) for i, (t, f) in enumerate(run.sets)]
        print("BCC start-up (compile and attach) s, RSS MiB:", started)
        run.run()
        results = run.stop()
    finally:
        run.close()
    print("seconds:", {k: round(v, 1) for k, v in run.seconds.items()})
    sh = run.work.pid

    # The workload's processes: sh and the children it forked (they all exec or try to),
    # as both tools' execsnoop -x saw them.
    pids: Set[int] = {sh}
    for tool, flags, theirs, ours in results:
        if tool == "execsnoop" and "-x" in flags:
            for line in theirs[1:] + ours[1:]:
                pid, ppid = exec_pids(line, flags)
                if ppid == sh:
                    pids.add(pid)

    problems: List[str] = []
    for i, (tool, flags, theirs, ours) in enumerate(results):
        err = run.errors[i]
        kind = "exec" if tool == "execsnoop" else "open"
        name = f"{tool} {' '.join(flags)}".strip()
        reference = (bcc_exec_header("-T" in flags, "-t" in flags, "-U" in flags)
                     if kind == "exec" else
                     bcc_open_header("-T" in flags, "-U" in flags, False, "-e" in flags))
        if theirs[0] != reference:  # BCC itself pins tests/reference_formats.py
            problems.append(f"{name}: BCC's header {theirs[0]!r}, reference {reference!r}")
        whole = any(f in flags for f in KERNEL_FILTERED)
        keep = workload_lines(kind, flags, None if whole else pids)
        want = [deliberate(kind, flags, ln) for ln in compared(kind, flags, theirs, keep)]
        got = compared(kind, flags, ours, keep)
        if [ours[0], *got] != [theirs[0], *want]:
            diff = difflib.unified_diff([theirs[0], *want], [ours[0], *got], "BCC", "ours",
                                        lineterm="", n=1)
            problems.append(f"{name}:\n" + "\n".join(diff) + f"\nours on stderr: {err}")
        check_coverage(kind, flags, want, sh, problems, name)
        # the bystander was traced (so -u and -p had someone to keep out)
        if not flags and not any("/ht-bcc-other" in ln for ln in theirs):
            problems.append(f"{name}: BCC never saw the bystander (uid {OTHER_UID})")
    if problems:
        for tool, flags, theirs, ours in results:  # the whole outputs, for the record
            print(f"--- {tool} {' '.join(flags)}: BCC", *theirs[-60:], "--- ours", *ours[-60:],
                  sep="\n")
    assert not problems, "\n\n".join(problems)


def check_coverage(kind: str, flags: Sequence[str], lines: List[str], sh: int,
                   problems: List[str], name: str) -> None:
    """The workload's lines are there, as many as each flag set must show: two outputs
    both empty or both short would otherwise compare equal."""
    if kind == "exec":
        # 2 cat, 2 echo, 3 true; -x adds 2 failed execs; -n and -l leave the first
        # cat and the two true with 3 and 5 arguments
        count = 3 if "-l" in flags else 9 if "-x" in flags else 7
        if len(lines) != count:
            problems.append(f"{name}: {len(lines)} workload lines, expected {count}")
        uid = 9 * ("-T" in flags) + 8 * ("-t" in flags)
        if "-U" in flags and any(ln[uid:uid + 6] != f"{WORKLOAD_UID:<6}" for ln in lines):
            problems.append(f"{name}: a line without uid {WORKLOAD_UID}")
        return
    paths = sorted(ln.rsplit(" ", 1)[-1].rsplit("/", 1)[-1] for ln in lines)
    if "-p" in flags:  # sh's own opens for writing
        if paths != ["echo1", "echo2", "rw", "w1"] or any(
                not ln.startswith(f"{sh:<6} ") for ln in lines):
            problems.append(f"{name}: not sh's four writes: {lines}")
    elif "-x" in flags:  # cat's failed opens
        if paths != ["ht-bcc-nope-1", "ht-bcc-nope-2"]:
            problems.append(f"{name}: not cat's two failed opens: {lines}")
    elif not {"w1", "rw", "ht-bcc-nope-sh", "hostname", "ht-bcc-nope-1"} <= set(paths):
        problems.append(f"{name}: workload opens missing: {lines}")
