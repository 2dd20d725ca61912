"""Faults and misuse against the real kernel: one clear line, the kernel released.

A full filesystem or /dev/full as stdout, a reader that closes the pipe, a
better backend that cannot open (too few file descriptors), one Session used
from several threads. The pure checks are in tests/unit/test_faults.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Iterator, List, Union

import pytest

import hybridtrace
from hybridtrace.capabilities import probe
from hybridtrace.selector import decide
from tests.integration.conftest import leftovers, mount_tracefs_for
from tests.integration.test_cli import backend_args

HYBRIDTRACE = [sys.executable, "-m", "hybridtrace"]
ERROR_FULL = "hybridtrace: cannot write output: No space left on device"


def busy(seconds: float) -> None:
    """Opens and execs for the tracer to report."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        subprocess.run(["/bin/cat", "/etc/hostname"], stdout=subprocess.DEVNULL)
        time.sleep(0.01)


def start(args: List[str], stdout: Union[int, IO[Any]]) -> subprocess.Popen[bytes]:
    """A tracer, returned once it has printed its start line."""
    proc = subprocess.Popen([*HYBRIDTRACE, *args], stdout=stdout, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    assert "tracing" in line, line + (proc.stderr.read().decode() if proc.poll() else "")
    return proc


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 16 KiB tmpfs, unmounted afterwards."""
    mount = tmp_path / "full"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "ht-faults", str(mount)],
                   check=True)
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)]).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.mark.parametrize("label", ["ebpf-core", "ftrace/uprobe"])
def test_full_filesystem_is_one_line_summary_exit_1(label: str, tiny_tmpfs: Path) -> None:
    backend = backend_args(label)
    with open(tiny_tmpfs / "events.jsonl", "wb") as out:
        proc = start(["opensnoop", "--json", "-d", "4", *backend], out)
        busy(2.5)
        proc.wait(timeout=60)
    # Not communicate(): with a timeout it reads the pipe itself, and would miss what
    # readline() in start() already buffered (the error can follow the start line at once).
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    lines = err.splitlines()
    assert lines[0] == ERROR_FULL, err
    assert len(lines) == 2 and "events shown" in lines[1], err
    assert (tiny_tmpfs / "events.jsonl").stat().st_size > 8 << 10  # it did write until full
    assert not leftovers(proc.pid)


def test_dev_full_quiet_is_only_the_error() -> None:
    with open("/dev/full", "wb") as full:
        done = subprocess.run([*HYBRIDTRACE, "execsnoop", "-Q", "-d", "2"], stdout=full,
                              stderr=subprocess.PIPE, timeout=60)
    assert done.returncode == 1
    assert done.stderr.decode() == ERROR_FULL + "\n"


def test_closed_pipe_ends_quietly_with_status_0() -> None:
    proc = start(["opensnoop", "-d", "20"], subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().split()[:2] == [b"PID", b"COMM"]
    proc.stdout.close()  # what `| head -1` does
    deadline = time.monotonic() + 20
    while proc.poll() is None and time.monotonic() < deadline:
        busy(0.2)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    proc.wait(timeout=10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Broken pipe" not in err and "Exception" not in err
    assert err.splitlines()[-1].startswith("hybridtrace: ") and "events shown" in err
    assert not leftovers(proc.pid)


def _core_then_ftrace() -> None:
    """Classic tracepoints first (their 8 programs need more than 16 fds; tp_btf's 2 do not)."""
    mount_tracefs_for("tracepoint")
    decision = decide(probe(), "open")
    usable = [c.label for c in decision.usable_candidates]
    if usable[:1] != ["ebpf-core/tracepoint"] or not any(u.startswith("ftrace") for u in usable):
        pytest.skip(f"needs ebpf-core/tracepoint and an ftrace tier usable here, not {usable}")


def test_fallback_start_line_says_why() -> None:
    _core_then_ftrace()
    done = subprocess.run(["/bin/bash", "-c", 'ulimit -n 16; exec "$@"', "bash", *HYBRIDTRACE,
                           "opensnoop", "-d", "1"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "Traceback" not in err and "StopIteration" not in err, err
    first, summary = err.splitlines()
    assert first.startswith("hybridtrace: tracing open with "), first
    assert "; not ebpf-core/tracepoint: failed to open: " in first
    assert "Too many open files" in first
    assert "events shown" in summary


def test_fallback_decision_why_in_the_api() -> None:
    _core_then_ftrace()
    script = ("import hybridtrace\n"
              "with hybridtrace.trace('open') as s:\n"
              "    print(s.backend.label)\n"
              "    print(s.decision.why)\n"
              "    print(len(s.fallbacks))\n")
    done = subprocess.run(["/bin/bash", "-c", 'ulimit -n 16; exec "$@"', "bash",
                           sys.executable, "-c", script],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    label, why, fallbacks = done.stdout.splitlines()
    assert label != "ebpf-core/tracepoint" and int(fallbacks) >= 1
    assert why.startswith(f"{label} chosen for open; not ebpf-core/tracepoint: failed to open: ")


def test_bad_request_loads_nothing() -> None:
    for kwargs in ({"pid": "12"}, {"pid": 2**40}, {"comm": 123}):
        with pytest.raises(hybridtrace.RequestError):
            hybridtrace.trace("exec", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(hybridtrace.RequestError):
        hybridtrace.trace("nonsense")
    assert not leftovers(os.getpid())


@pytest.mark.parametrize("label", ["ebpf-core", "ftrace/uprobe"])
def test_one_session_several_threads(label: str) -> None:
    backend, _, tier = label.partition("/")
    backend_args(label)  # skips when this backend cannot run here
    session = hybridtrace.trace("exec", backend, tier=tier or None)
    errors: List[BaseException] = []
    seen: List[int] = []

    def guarded(body: object) -> None:
        try:
            body()  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    def iterate() -> None:
        for event in session:
            seen.append(event.timestamp_ns)

    def poll() -> None:
        end = time.monotonic() + 3.0  # goes on polling through close() and after it
        while time.monotonic() < end:
            session.poll(0.05)

    threads = [threading.Thread(target=guarded, args=(body,)) for body in (iterate, poll, poll)]
    for thread in threads:
        thread.start()
    busy(1.5)
    session.close()
    for thread in threads:
        thread.join(10)
    assert not any(t.is_alive() for t in threads), "a thread kept running after close()"
    assert not errors, errors
    assert seen
    assert session.poll(0.1) == []
