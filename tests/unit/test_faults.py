"""Faults and misuse without a kernel: every mistake is one clear line, never a traceback.

Bad requests raise RequestError (a BackendError and a ValueError) before
anything is probed or loaded; a better backend that fails to open is named in
Decision.why; output that cannot be written is one line and exit 1; a
Session is safe to share between threads. The same faults against the real
kernel are in tests/integration/test_faults.py.
"""

from __future__ import annotations

import argparse
import errno
import io
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

import attrs
import pytest

import hybridtrace
from hybridtrace import api
from hybridtrace.backends.base import Assessment, BackendError
from hybridtrace.capabilities.model import Capabilities
from hybridtrace.cli.common import OutputError, run_session, write_batch
from hybridtrace.events import Event, ExecEvent
from hybridtrace.request import Filters, Kind, TraceRequest
from hybridtrace.selector import decide
from tests.unit import fake_streams
from tests.unit.fake_streams import HOST, FakeStream
from tests.unit.kernel_trees import hermetic_env, probe_tree

__all__ = ["hermetic_env"]



# --- bad requests: RequestError, before anything is probed or loaded -------------------

BAD_CALLS = [
    (("exec",), {"pid": "12"}, "pid must be an integer, not str '12'"),
    (("exec",), {"pid": 2**40}, "pid must be between 1 and 4194303, not 1099511627776"),
    (("open",), {"pid": -1}, "pid must be between 1 and 4194303, not -1"),
    (("open",), {"pid": 0}, "pid must be between 1 and 4194303, not 0"),
    (("open",), {"tid": 99999999999}, "tid must be between 1 and 4194303"),
    (("open",), {"tid": True}, "tid must be an integer, not bool True"),
    (("exec",), {"ppid": -1}, "ppid must be between 0 and 4194303"),
    (("exec",), {"uid": -1}, "uid must be between 0 and 4294967294, not -1"),
    (("exec",), {"uid": 2**32 - 1}, "uid must be between 0 and 4294967294"),
    (("exec",), {"uid": 1.5}, "uid must be an integer, not float 1.5"),
    (("exec",), {"comm": 123}, "comm must be str or bytes, not int 123"),
    (("exec",), {"comm": "a" * 16}, "comm must be at most 15 bytes"),
    (("exec",), {"comm": b"a\0b"}, "comm must not contain a NUL byte"),
    (("open",), {"failed_only": "yes"}, "failed_only must be True or False, not 'yes'"),
    (("exec",), {"max_args": "3"}, "max_args must be an integer, not str '3'"),
    (("exec",), {"max_args": 0}, "max_args must be between 1 and 128, not 0"),
    (("nonsense",), {}, "unknown kind 'nonsense': expected one of exec, open"),
    ((None,), {}, "unknown kind None"),
    (("exec", "dtrace"), {}, "unknown backend 'dtrace'"),
    (("exec",), {"tier": "magic"}, "unknown ftrace tier 'magic'"),
    (("exec", "ebpf-core"), {"tier": "uprobe"}, "--tier applies to the ftrace backend only"),
]


@pytest.fixture
def nothing_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if trace() gets as far as probing the kernel or opening a stream."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a bad request reached the kernel")

    monkeypatch.setattr(api, "probe", refuse)
    monkeypatch.setattr(api, "open_stream", refuse)


@pytest.mark.parametrize(("args", "kwargs", "message"), BAD_CALLS)
def test_bad_request_raises_request_error_first(nothing_probed: None, args: Any,
                                                kwargs: Dict[str, Any], message: str) -> None:
    with pytest.raises(hybridtrace.RequestError) as info:
        hybridtrace.trace(*args, **kwargs)
    assert isinstance(info.value, hybridtrace.BackendError)
    assert isinstance(info.value, ValueError)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_good_edges_are_accepted() -> None:
    filters = Filters(pid=1, tid=4194303, uid=0, ppid=0, comm="kworker/0:1H-kb",
                      failed_only=True)
    assert filters.comm == b"kworker/0:1H-kb"
    assert Filters(uid=2**32 - 2, comm=b"").comm == b""
    # A name that is not UTF-8 comes back as its exact bytes.
    assert Filters(comm="x\udcff").comm == b"x\xff"
    assert TraceRequest("open").kind is Kind.OPEN  # type: ignore[arg-type]
    assert TraceRequest(Kind.EXEC, max_args=128).max_args == 128


def test_exceptions_are_exported_and_related() -> None:
    for name in ("BackendError", "RequestError", "SelectionError", "StartError", "Session",
                 "SessionStats"):
        assert name in hybridtrace.__all__ and hasattr(hybridtrace, name)
    assert issubclass(hybridtrace.RequestError, hybridtrace.BackendError)
    assert issubclass(hybridtrace.RequestError, ValueError)
    assert issubclass(hybridtrace.SelectionError, hybridtrace.BackendError)
    assert issubclass(hybridtrace.StartError, hybridtrace.SelectionError)
    assert hybridtrace.BackendError is BackendError


def fake_session(stream: Any, kind: str = "exec") -> api.Session:
    return fake_streams.fake_session(stream, TraceRequest(Kind(kind)))


def caps_here() -> Capabilities:
    return probe_tree(HOST)


# --- a better backend that fails to open ------------------------------------------------

def test_why_names_the_backend_that_failed_to_open(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = FakeStream()

    def open_stream(cand: Assessment, request: TraceRequest, caps: Capabilities) -> Any:
        if cand.backend == "ebpf-core":
            raise BackendError("cannot load BPF object ht_open: Too many open files")
        return stream

    monkeypatch.setattr(api, "open_stream", open_stream)
    with hybridtrace.trace("open", capabilities=caps_here()) as session:
        assert session.backend.label == "ftrace/uprobe"
        why = session.decision.why
        assert why.startswith("ftrace/uprobe chosen for open; not ebpf-core/")
        assert "failed to open: cannot load BPF object ht_open: Too many open files" in why
        assert "\n" not in why
        assert session.fallbacks  # each usable ebpf-core attach mode was tried, in order
        assert all(f.startswith("ebpf-core/") and f.endswith(
            ": cannot load BPF object ht_open: Too many open files") for f in session.fallbacks)
    assert stream.closed


def test_why_never_raises_for_a_skipped_usable_candidate() -> None:
    decision = decide(caps_here(), "exec")
    later = decision.usable_candidates[1]
    assert attrs.evolve(decision, chosen=later).why.startswith(f"{later.label} chosen for exec")


def test_every_backend_failing_is_a_start_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def open_stream(cand: Assessment, request: TraceRequest, caps: Capabilities) -> Any:
        raise BackendError(f"{cand.label} refused")

    monkeypatch.setattr(api, "open_stream", open_stream)
    with pytest.raises(hybridtrace.StartError) as info:
        hybridtrace.trace("exec", capabilities=caps_here())
    assert str(info.value).startswith("every usable backend failed to start: ebpf-core/")


# --- output that cannot be written -----------------------------------------------------

def cli_args(**overrides: Any) -> argparse.Namespace:
    values: Dict[str, Any] = {"quiet": False, "json": True, "duration": 2.0}
    values.update(overrides)
    return argparse.Namespace(**values)


def test_full_disk_is_one_line_summary_exit_1(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    stream = FakeStream()
    session = fake_session(stream)
    with open("/dev/full", "w") as full:
        monkeypatch.setattr(sys, "stdout", full)
        status = run_session(session, cli_args(), None, lambda e: True, str)
    assert status == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("hybridtrace: tracing exec with fake stream")
    assert lines[1] == "hybridtrace: cannot write output: No space left on device"
    assert "events shown" in lines[2]
    assert stream.closed and not stream.misuse


def test_full_disk_quiet_still_says_why(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    stream = FakeStream()
    with open("/dev/full", "w") as full:
        monkeypatch.setattr(sys, "stdout", full)
        status = run_session(fake_session(stream), cli_args(quiet=True, json=False), "HEADER",
                             lambda e: True, str)
    assert status == 1 and stream.closed
    assert capsys.readouterr().err == "hybridtrace: cannot write output: No space left on device\n"


def test_write_batch_turns_os_errors_into_output_error() -> None:
    class Failing(io.StringIO):
        def __init__(self, exc: OSError) -> None:
            super().__init__()
            self.exc = exc

        def write(self, text: str) -> int:
            raise self.exc

    event = ExecEvent(1, 2, 2, 1, 0, b"sh", b"/bin/sh", (b"sh",), 0)
    with pytest.raises(OutputError, match="cannot write output: Input/output error"):
        write_batch(Failing(OSError(errno.EIO, "Input/output error")), True, [event],
                    lambda e: True, str)
    with pytest.raises(BrokenPipeError):  # a closed pipe ends quietly, not as an error
        write_batch(Failing(BrokenPipeError(errno.EPIPE, "Broken pipe")), True, [event],
                    lambda e: True, str)


# --- one Session, several threads ------------------------------------------------------

def test_polls_from_two_threads_take_turns() -> None:
    stream = FakeStream()
    session = fake_session(stream)
    errors: List[BaseException] = []
    got: List[int] = []

    def poller() -> None:
        try:
            for _ in range(15):
                got.extend(e.timestamp_ns for e in session.poll(0.05))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=poller) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    session.close()
    assert not errors and not stream.misuse, (errors, stream.misuse)
    assert sorted(got) == list(range(1, stream.count + 1))  # each event delivered once
    assert session.stats.captured == len(got) == 30


def test_close_while_another_thread_iterates_ends_the_iteration() -> None:
    stream = FakeStream(wait=0.1)
    session = fake_session(stream)
    errors: List[BaseException] = []
    seen: List[Event] = []

    def iterate() -> None:
        try:
            for event in session:
                seen.append(event)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=iterate)
    thread.start()
    time.sleep(0.35)
    session.close()
    thread.join(5)
    assert not thread.is_alive(), "iteration did not end after close()"
    assert not errors and not stream.misuse, (errors, stream.misuse)
    assert seen and stream.closed
    assert session.poll(0.1) == [] and list(session) == []
    session.close()  # idempotent


def test_close_ends_a_poll_waiting_without_timeout() -> None:
    class Idle(FakeStream):
        def poll(self, timeout: Optional[float]) -> Sequence[Event]:
            super().poll(timeout)
            return []

    stream = Idle(wait=0.05)
    session = fake_session(stream)
    result: List[List[Event]] = []
    thread = threading.Thread(target=lambda: result.append(session.poll(None)))
    thread.start()
    time.sleep(0.2)
    session.close()
    thread.join(5)
    assert not thread.is_alive() and result == [[]]
    assert not stream.misuse, stream.misuse
