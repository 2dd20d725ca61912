"""What execsnoop and opensnoop share: options, the session loop, clean endings."""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import re
import signal
import sys
import time
from types import FrameType
from typing import Any, Callable, Dict, Iterable, List, Optional, Pattern, TypeVar

from hybridtrace.api import Session, StartError, trace
from hybridtrace.backends.base import BackendError
from hybridtrace.errors import RequestError
from hybridtrace.events import Event, LostEvent
from hybridtrace.gc_pause import paused
from hybridtrace.output.columns import lost_line
from hybridtrace.output.escape import escape_bytes
from hybridtrace.output.jsonl import EVENT_SCHEMA, event_to_json
from hybridtrace.selector import CHOICES
from hybridtrace.vocabulary import CORE_ATTACH_MODES, FTRACE_READERS, FTRACE_TIERS

PROG = "hybridtrace"


class UsageError(Exception):
    """A mistake in the command line, or nothing here can trace it; one line, exit 2."""


class Failure(Exception):
    """A failure while running (the kernel refused, output cannot be written); one line, exit 1."""


class OutputError(Exception):
    """Writing the events to stdout failed (not a closed pipe: that ends quietly)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(f"cannot write output: {cause.strerror or cause}")


class _Stop:
    """Set by SIGINT/SIGTERM; checked between polls.

    A flag rather than an exception: an exception raised inside a ctypes
    callback (libbpf, BCC) is swallowed, and the session would never end.
    """

    requested = False

    @classmethod
    def handler(cls, signum: int, frame: Optional[FrameType]) -> None:
        cls.requested = True


def fail(message: str, status: int = 2) -> int:
    sys.stderr.write(f"{escape_bytes(message.encode(errors='replace'))}\n")
    return status


def add_common(parser: argparse.ArgumentParser, cgroup_flags: Iterable[str] = ("--cgroup",)
               ) -> None:
    parser.add_argument("--backend", choices=CHOICES, default="auto",
                        help="auto (default) picks the best this kernel allows")
    parser.add_argument("--tier", choices=FTRACE_TIERS,
                        help="force one ftrace tier (implies --backend ftrace)")
    parser.add_argument("--ebpf-attach", choices=CORE_ATTACH_MODES,
                        help="force how ebpf-core attaches (implies --backend ebpf-core):"
                        " tracepoint (classic, needs a mounted tracefs), tp_btf (raw"
                        " tracepoints by BTF name, no tracefs) or raw_tp (no BTF either)")
    parser.add_argument("--ftrace-reader", choices=FTRACE_READERS,
                        help="how the ftrace backend reads its buffer: raw (per-CPU binary"
                        " pages, the default) or text (trace_pipe)")
    parser.add_argument("--json", action="store_true",
                        help=f"JSON Lines, one event per line (schema {EVENT_SCHEMA})")
    parser.add_argument("-Q", "--quiet", action="store_true",
                        help="no start line and no summary on stderr")
    parser.add_argument("-d", "--duration", type=positive_float, metavar="SECONDS",
                        help="stop after this many seconds")
    parser.add_argument("-U", "--print-uid", action="store_true", help="print UID column")
    parser.add_argument("-u", "--uid", type=str, metavar="USER",
                        help="trace this user only (name or UID)")
    parser.add_argument("-b", "--buffer-pages", type=power_of_two, metavar="PAGES",
                        help="event buffer per CPU in pages, a power of two (as BCC's"
                        " opensnoop -b; default: each backend's own; the start line says"
                        " what the session got)")
    where = parser.add_argument_group("where the traced processes live")
    where.add_argument(*cgroup_flags, dest="cgroup", metavar="PATH",
                       help="only tasks in this cgroup v2 or below it (a directory of the"
                       " cgroup2 mount, or a path as /proc/PID/cgroup shows it)")
    where.add_argument("--container", metavar="ID",
                       help="only tasks of this container: its id or a prefix of it, as"
                       " `docker ps` or `podman ps` show it (found by its cgroup)")
    where.add_argument("--mntns", type=positive_int, metavar="INODE",
                       help="only tasks in this mount namespace (the inode of"
                       " /proc/PID/ns/mnt)")
    where.add_argument("--descendants-of", type=positive_int, metavar="PID",
                       help="only this process and everything it starts, including"
                       " processes started after tracing began")
    where.add_argument("--print-container", action="store_true",
                       help="print a CONTAINER column: the container's short id, - for"
                       " none, ? when unknown (--json has every origin field)")
    where.add_argument("--cgroupmap", metavar="MAPPATH",
                       help="only tasks whose cgroup id is a key of this pinned BPF hash"
                       " map, filled by you while we trace (as BCC's --cgroupmap)")
    where.add_argument("--mntnsmap", metavar="MAPPATH",
                       help="only tasks whose mount namespace inode is a key of this"
                       " pinned BPF hash map (as BCC's --mntnsmap)")


def where_filters(args: argparse.Namespace) -> Dict[str, Any]:
    """The where-filters for trace(): cgroup, container, mount namespace, process tree."""
    return {"cgroup": args.cgroup, "container": args.container, "mntns": args.mntns,
            "descendants_of": args.descendants_of, "cgroupmap": args.cgroupmap,
            "mntnsmap": args.mntnsmap}


N = TypeVar("N", int, float)


def _number(text: str, convert: Callable[[str], N], good: Callable[[N], bool],
            must: str) -> N:
    """An option's number, or argparse's one-line complaint."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not good(value):
        raise argparse.ArgumentTypeError(f"must be {must}: {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "positive")


def power_of_two(text: str) -> int:
    return _number(text, int, lambda v: v >= 1 and not v & (v - 1), "a power of two")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: v > 0, "positive")


def resolve_user(text: Optional[str]) -> Optional[int]:
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        return pwd.getpwnam(text).pw_uid
    except KeyError:
        raise UsageError(f"{PROG}: unknown user {text!r}") from None


def compile_regex(text: Optional[str], option: str) -> Optional[Pattern[bytes]]:
    if text is None:
        return None
    try:
        return re.compile(text.encode("utf-8", "surrogateescape"))
    except re.error as exc:
        raise UsageError(f"{PROG}: bad regular expression for {option}: {exc}") from None


def open_session(kind: str, args: argparse.Namespace, **filters: Any) -> Session:
    try:
        return trace(kind, args.backend, tier=args.tier, ebpf_attach=args.ebpf_attach,
                     buffer_pages=args.buffer_pages, ftrace_reader=args.ftrace_reader,
                     **filters)
    except RequestError as exc:
        raise UsageError(f"{PROG}: {exc}") from None
    except StartError as exc:
        raise Failure(f"{PROG}: {exc}") from None
    except BackendError as exc:
        raise UsageError(f"{PROG}: {exc} (run `hybridtrace doctor` for details)") from None


def run_session(
    session: Session,
    args: argparse.Namespace,
    header: Optional[str],
    keep: Callable[[Event], bool],
    render: Callable[[Event], str],
) -> int:
    """Print events until -d, Ctrl-C, SIGTERM or a closed stdout; always release the kernel.

    0 when it ends as asked (or stdout was closed: `| head`), 1 when the output
    cannot be written or the backend fails while running: one line, then the summary.
    """
    out = sys.stdout
    _Stop.requested = False
    previous = {sig: signal.signal(sig, _Stop.handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    deadline = None if args.duration is None else time.monotonic() + args.duration
    shown = status = 0
    try:
        if not args.quiet:  # why names the better candidates that failed to open, if any
            sys.stderr.write(f"{PROG}: tracing {session.decision.kind} with"
                             f" {session.description} ({session.decision.why})\n")
        if header and not args.json:
            _write(out, header + "\n")
        while not _Stop.requested:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            # The batch is written and freed before the collector may run again: else
            # its first pass traverses every event still alive (gc_pause.py).
            with paused():
                batch = session.poll(0.2 if left is None else min(0.2, left))
                if batch:
                    shown += write_batch(out, args.json, batch, keep, render)
                del batch
        # What the kernel recorded before the end is shown (or counted lost), not dropped.
        for batch in session.drain_batches():
            shown += write_batch(out, args.json, batch, keep, render)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # `| head` closed the pipe: stop quietly, as other tools do.
        _discard(out)
    except OutputError as exc:  # a full disk, a vanished device: say so, still summarize
        _discard(out)
        status = fail(f"{PROG}: {exc}", 1)
    except BackendError as exc:  # the backend failed while running
        status = fail(f"{PROG}: {exc}", 1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stats = session.stats
        session.close()
    if not args.quiet:
        lost = (f"{stats.lost} lost" if stats.lost_exact
                else f"up to {stats.lost} lost (counted in ring-buffer records)")
        if stats.lost_unknown:
            lost += f" and an unknown number in {stats.lost_unknown} gap(s) of recording"
        sys.stderr.write(f"{PROG}: {shown} events shown, {lost},"
                         f" {stats.duration:.1f} s ({session.backend.label})\n")
    return status


def _discard(out: Any) -> None:
    """Point stdout at /dev/null: what Python still holds for it is flushed there at exit,
    without a second error."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())


def _write(out: Any, text: str) -> None:
    """Write and flush; a failure other than a closed pipe becomes OutputError."""
    try:
        out.write(text)
        out.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(exc) from exc


def write_batch(out: Any, as_json: bool, batch: Iterable[Event], keep: Callable[[Event], bool],
                render: Callable[[Event], str]) -> int:
    """Format one poll batch and hand it to ``out`` in one write and one flush.

    Per batch rather than per event: at ~45k events/s a write() and a flush
    per line cost more than the formatting; one flush per batch still keeps
    `| grep` live. Returns how many events were shown (lost records aside).
    """
    encode = event_to_json if as_json else render
    lines: List[str] = []
    append = lines.append
    losses = 0
    for event in batch:
        if isinstance(event, LostEvent):
            if as_json:
                append(event_to_json(event))
                losses += 1
            else:
                sys.stderr.write(lost_line(event) + "\n")
        elif keep(event):
            append(encode(event))
    if lines:
        append("")  # the final newline, without copying the text again
        _write(out, "\n".join(lines))
    return len(lines) - 1 - losses if lines else 0
