"""Ground truth through the CLI: judge what `hybridtrace execsnoop|opensnoop --json` wrote.

check.run judges the events hybridtrace.trace() hands over; an auditor reads the
CLI's JSON Lines instead, which a bug in the JSON writers (jsonl.py, _jsonline.c)
could corrupt unseen. Here each session check.run opens is the CLI as a subprocess
with the options that make it see what the API session sees, and every line it
writes is read back into the typed event (jsonl.event_from_json) and judged by
the same code. A line that is not ASCII, not JSON, not valid against the schema,
not an event, or not byte for byte what the reference writer (json.dumps of
event_to_dict) makes of that event, is a failure (Result.bad_json), never
skipped; so are a CLI that exits badly, a closing summary that counts other
than the lines read, and kernel state the CLI left behind.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Optional

from hybridtrace import compiled, kernel_state
from hybridtrace.events import Event, LostEvent
from hybridtrace.output.jsonl import RecordError, event_from_dict, event_to_json_slow
from tools.groundtruth import check

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "hybridtrace/schemas/event.schema.json"
# The CLI's first stderr line once its session is attached, and its closing one
# (both left out with -Q, which is why it is not given: they time the start and
# count what was written).
_START = re.compile(rb"^hybridtrace: tracing (exec|open) with ")
_SUMMARY = re.compile(rb"^hybridtrace: (\d+) events shown, ")
READY_TIMEOUT = 120.0  # ebpf-bcc compiles its program first
EXIT_TIMEOUT = 60.0  # after SIGINT: the CLI drains what the kernel still holds
QUEUE_LINES = 100_000
_EOF = b""


class CliError(RuntimeError):
    """The CLI would not start, or ended badly; one line."""


def command(target: check.Target, kind: str, buffer_pages: Optional[int]) -> List[str]:
    """The CLI command that sees what ``target.open(kind, buffer_pages)`` sees: every
    process, failed execs too (-x), the same backend, mode and reader, no filter."""
    argv = [sys.executable, "-m", "hybridtrace", "execsnoop" if kind == "exec" else "opensnoop",
            "--backend", target.backend, "--json"]
    if target.backend == "ebpf-core":
        argv += ["--ebpf-attach", target.mode] if target.mode else []
    elif target.backend == "ftrace":
        argv += (["--tier", target.mode] if target.mode else []) + [
            "--ftrace-reader", target.reader or "raw"]  # as Target.open: the label decides
    if kind == "exec":
        argv.append("-x")
    if buffer_pages is not None:
        argv += ["-b", str(buffer_pages)]
    return argv


def child_env(pure_python: Optional[bool]) -> Dict[str, str]:
    """This environment, with the hybridtrace this process imported first on the path;
    HYBRIDTRACE_PURE_PYTHON set (True), removed (False) or kept (None)."""
    import hybridtrace

    env = dict(os.environ)
    root = str(Path(hybridtrace.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    if pure_python is True:
        env[compiled.PURE_PYTHON_ENV] = "1"
    elif pure_python is False:
        env.pop(compiled.PURE_PYTHON_ENV, None)
    return env


def writer(env: Dict[str, str]) -> str:
    """Which JSON writer the CLI uses under ``env``: "C" or "Python" (asked of a child)."""
    done = subprocess.run(
        [sys.executable, "-c", "from hybridtrace.output import jsonl; print(jsonl.c_writer())"],
        env=env, capture_output=True, text=True, check=True)
    return "C" if done.stdout.strip() == "True" else "Python"


# Keywords that constrain a value beyond its JSON type: a key with one of them anywhere
# in its subschema goes into a record's shape by value (LineChecker._shape).
_VALUE_KEYWORDS = {"const", "enum", "pattern", "format", "minimum", "maximum",
                   "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
                   "maxLength", "minItems", "maxItems", "uniqueItems"}


def _by_value(node: Any, defs: Dict[str, Any]) -> bool:
    """Whether a subschema constrains more than JSON types (following local $refs)."""
    if isinstance(node, list):
        return any(_by_value(n, defs) for n in node)
    if not isinstance(node, dict):
        return False
    if _VALUE_KEYWORDS & set(node):
        return True
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and \
            _by_value(defs[ref[len("#/$defs/"):]], defs):
        return True
    return any(_by_value(v, defs) for k, v in node.items() if k != "description")


def value_keys(schema: Dict[str, Any]) -> FrozenSet[str]:
    """Record keys whose validity depends on their value, not only its JSON type."""
    defs = schema.get("$defs", {})
    keys = set()
    for branch in [schema, *schema.get("oneOf", [])]:
        for key, sub in branch.get("properties", {}).items():
            if _by_value(sub, defs):
                keys.add(key)
    return frozenset(keys)


def _kind(value: Any) -> Any:
    """A value's JSON type, recursively for arrays and objects."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return type(value).__name__
    if isinstance(value, list):
        return ("list", tuple(_kind(v) for v in value))
    return ("object", tuple(sorted((k, _kind(v)) for k, v in value.items())))


class LineChecker:
    """Turns one line of the CLI's stdout into its event, or says why it cannot.

    jsonschema costs ~0.6 ms a record, too slow for a busy machine's every open; the
    verdict is kept per shape instead: each key's JSON type, and its value where the
    schema constrains values (value_keys: type, syscall, sources, container_id...).
    Records of one shape get one verdict, so that is exact; lost records, rare and
    with a minimum count, are validated each.
    """

    def __init__(self) -> None:
        try:
            import jsonschema  # type: ignore[import-untyped]
        except ImportError:
            raise CliError("--via-cli needs jsonschema to validate each line"
                           " (pip install -e '.[test]')") from None
        schema = json.loads(SCHEMA_PATH.read_text())
        self._validator = jsonschema.Draft202012Validator(schema)
        self._value_keys = value_keys(schema)
        self._verdicts: Dict[Any, Optional[str]] = {}

    def _shape(self, record: Dict[str, Any]) -> Any:
        return tuple(sorted((k, v if k in self._value_keys else _kind(v))
                            for k, v in record.items()))

    def _invalid(self, record: Any) -> Optional[str]:
        """Why ``record`` is not valid against the schema; None when it is."""
        shape = None
        if isinstance(record, dict) and record.get("type") in ("exec", "open"):
            shape = self._shape(record)
            if shape in self._verdicts:
                return self._verdicts[shape]
        error = next(iter(self._validator.iter_errors(record)), None)
        why = None if error is None else error.message[:200]
        if shape is not None:
            self._verdicts[shape] = why
        return why

    def event(self, line: bytes) -> Event:
        """The event on ``line`` (with its newline); RecordError with why not."""
        if not line.endswith(b"\n"):
            raise RecordError("no newline at the end of the output")
        text = line[:-1]
        if not text.isascii():
            raise RecordError("not ASCII (the writers escape every other character)")
        try:
            record = json.loads(text)
        except ValueError as exc:
            raise RecordError(f"not JSON: {exc}") from None
        why = self._invalid(record)
        if why is not None:
            raise RecordError(f"not valid against the schema: {why}")
        event = event_from_dict(record)
        if event_to_json_slow(event).encode() != text:
            raise RecordError("not the bytes json.dumps of event_to_dict gives its event")
        return event


def _show(line: bytes) -> str:
    return repr(line[:300]) + ("..." if len(line) > 300 else "")


class CliSession:
    """The CLI as a subprocess, with the poll/drain/close check.run calls on a session.

    Lines that fail LineChecker go to ``bad`` (shared by a run's sessions) with the
    session's kind, line number and why; the events of the others are returned.
    """

    def __init__(self, target: check.Target, kind: str, buffer_pages: Optional[int],
                 env: Dict[str, str], checker: LineChecker, bad: List[str]) -> None:
        self.kind = kind
        self._checker = checker
        self.bad = bad
        # Bounded: lines not yet checked hold the CLI up (its kernel buffer then fills
        # and it reports the loss) rather than this process's memory growing.
        self._lines: queue.Queue[bytes] = queue.Queue(QUEUE_LINES)
        self._stderr: List[bytes] = []
        self._read = self._lost = 0  # stdout lines, and those that were LostEvents
        self._started = threading.Event()
        self._closing = False
        self.proc = subprocess.Popen(command(target, kind, buffer_pages), env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self._threads = [threading.Thread(target=self._pump_stdout, daemon=True),
                         threading.Thread(target=self._pump_stderr, daemon=True)]
        for t in self._threads:
            t.start()
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._started.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise CliError(f"{kind} CLI did not start ({self._why()})")

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in itertools.chain(self.proc.stdout, [_EOF]):
            while not self._closing:  # closing: nobody reads the queue any more
                try:
                    self._lines.put(line, timeout=0.2)
                    break
                except queue.Full:
                    pass

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)
            if _START.match(line):
                self._started.set()

    def _why(self) -> str:
        status = self.proc.poll()
        ended = "still running" if status is None else f"exit status {status}"
        told = [ln.decode(errors="replace").strip() for ln in self._stderr if ln.strip()]
        return f"{ended}: {told[-1]}" if told else ended

    def _take(self, line: bytes) -> Optional[Event]:
        self._read += 1
        try:
            event = self._checker.event(line)
        except RecordError as exc:
            self.bad.append(f"{self.kind} line {self._read}: {exc}: {_show(line)}")
            return None
        if isinstance(event, LostEvent):
            self._lost += 1
        return event

    def _collect(self, first_wait: float, budget: Optional[float]) -> List[Event]:
        """What stdout has delivered, waiting up to ``first_wait`` s for the first line;
        for at most ``budget`` s (None: to the end), so the caller's loop keeps going
        on a machine whose other processes open faster than lines are checked."""
        out: List[Event] = []
        until = None if budget is None else time.monotonic() + budget
        try:
            line = self._lines.get(timeout=first_wait) if first_wait > 0 else \
                self._lines.get_nowait()
            while line != _EOF:
                event = self._take(line)
                if event is not None:
                    out.append(event)
                if until is not None and time.monotonic() > until:
                    return out
                line = self._lines.get(timeout=EXIT_TIMEOUT) if until is None else \
                    self._lines.get_nowait()
            self._lines.put(_EOF)  # still the end for the next call
        except queue.Empty:
            pass
        return out

    def poll(self, timeout: float) -> List[Event]:
        return self._collect(timeout, max(timeout, 0.05))

    def drain(self, timeout: float) -> List[Event]:
        """Stop the CLI as a user would (SIGINT: it drains the kernel's buffers and
        writes its summary), read everything it wrote, and check how it ended."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        out = self._collect(EXIT_TIMEOUT, None)  # to the end of its stdout: it exits
        try:
            self.proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.bad.append(f"{self.kind} CLI: still running {EXIT_TIMEOUT:g} s after SIGINT")
            self.close()
        for t in self._threads:
            t.join(10)
        if self.proc.returncode != 0:
            self.bad.append(f"{self.kind} CLI: {self._why()}")
        shown = [int(m.group(1)) for m in map(_SUMMARY.match, self._stderr) if m]
        if shown != [self._read - self._lost]:  # a line dropped or doubled on the way
            self.bad.append(f"{self.kind} CLI: its summary says {shown or 'nothing'} events"
                            f" shown; stdout had {self._read - self._lost} lines of events")
        left = kernel_state.leftovers(self.proc.pid)
        if left:
            self.bad.append(f"{self.kind} CLI left kernel state behind: "
                            f"{', '.join(map(str, left))}")
        return out

    def close(self) -> None:
        """End the CLI if it still runs (SIGINT, then SIGKILL); idempotent."""
        self._closing = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for t in self._threads:
            t.join(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def run(target: check.Target, seed: int, ops: int, rate: float = 0.0, jobs: int = 1,
        pure_python: Optional[bool] = None, overload: bool = False) -> check.Result:
    """check.run with the CLI's JSON as the events; ``pure_python`` picks the CLI's
    writer (True: the Python one, False: the C one if built, None: as this environment)."""
    if overload:
        raise CliError("--via-cli cannot starve the CLI's reader: drop --overload")
    env = child_env(pure_python)
    checker = LineChecker()
    bad: List[str] = []

    def opener(kind: str, pages: Optional[int]) -> Any:
        return CliSession(target, kind, pages, env, checker, bad)

    result = check.run(target, seed, ops, rate, jobs, opener=opener,
                       via=f"CLI --json, {writer(env)} writer")
    result.bad_json = bad
    return result
