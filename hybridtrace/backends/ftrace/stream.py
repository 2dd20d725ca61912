"""The ftrace EventStream: one private instance, one tier of probes, trace_pipe.

Opening creates (in this order) the instance, the probe group, filters and
enabled events, then opens trace_pipe; every failure on the way, ``close()``,
garbage collection and interpreter exit undo exactly what was made (events
disabled before probes are removed: the kernel refuses to delete a busy probe).
What it assembles is decided elsewhere: which probes (probe_plan.py), which other
events (event_sets.py), the filter strings (filter_exprs.py), the environment's
fallbacks (settings.py); it owns the session's life and its loss accounting.
"""

from __future__ import annotations

import functools
import os
import select
import time
import weakref
from operator import countOf
from typing import Callable, List, Optional, Sequence, Tuple, Union

from hybridtrace import buffer_size, process_tree, tracefs, vocabulary
from hybridtrace.backends.base import BackendError, StreamStats, Unread
from hybridtrace.backends.ftrace import (
    buffer_stats,
    event_sets,
    filter_exprs,
    probe_plan,
    probes,
    settings,
)
from hybridtrace.backends.ftrace.cleanup import remove_stale
from hybridtrace.backends.ftrace.correlate import Correlator, ProcLookup
from hybridtrace.backends.ftrace.event_sets import (
    FD_OPTIONAL_EVENTS,
    FD_PROOF_EVENTS,
    TASK_EVENTS,
    THREAD_PROOF_EVENTS,
)
from hybridtrace.backends.ftrace.fd_ledger import INF
from hybridtrace.backends.ftrace.format import EventFormat, FormatError, read_format
from hybridtrace.backends.ftrace.instance import (
    DEFAULT_BUFFER_KB,
    Instance,
    read_file,
    session_name,
)
from hybridtrace.backends.ftrace.origin_proof import (
    LEDGER_EVENTS,
    NOTED_EVENTS,
    ChangeLedger,
    OriginFiller,
)
from hybridtrace.backends.ftrace.proc_snapshots import ProcSnapshots
from hybridtrace.backends.ftrace.raw_reader import RawReader
from hybridtrace.backends.ftrace.reaper import Reaper
from hybridtrace.backends.ftrace.ring_page import PageFormatError
from hybridtrace.backends.ftrace.text_reader import TextReader
from hybridtrace.backends.ftrace.threads import Listing, boot_offset_ns
from hybridtrace.backends.ftrace.trace_record import TraceLine
from hybridtrace.backends.ftrace.uring import (
    FAILED_EVENT,
    FAILED_PROBE,
    PATH_PROBE,
    SUBMIT_EVENTS,
    SUBMIT_PROBE,
)
from hybridtrace.capabilities.model import Capabilities
from hybridtrace.events import Event, LostEvent, Source
from hybridtrace.filtering import keeps_all, matches
from hybridtrace.gc_pause import paused
from hybridtrace.request import Kind, TraceRequest

TAMPER_CHECK_S = 0.5  # how often a session checks that its instance still records as set up
MAX_READ_PER_POLL = 1 << 20  # bytes decoded per poll: ~10k records, so poll returns promptly
HELD_BACK_WAIT = 0.005  # s: how soon to look again while the raw reader holds records back
# s between two reads of the buffers while recording. While records flow the buffers are
# always readable, so without it a session read again at once, found a few records and paid
# each read's fixed costs (loss counters, /proc) for them: a whole CPU at any rate.
READ_INTERVAL = 0.005
Reader = Union[RawReader, TextReader]


class _Resources:
    """What one stream holds in the kernel; ``release`` is safe to call twice."""

    def __init__(self, tracefs_path: str) -> None:
        self.tracefs_path = tracefs_path
        self.instance: Optional[Instance] = None
        self.probes: List[probes.ProbeDef] = []
        self.reader: Optional[Reader] = None
        # Started before anything exists in the kernel: a kill at any later point is seen.
        self.reaper: Optional[Reaper] = Reaper(tracefs_path)

    def release(self) -> List[str]:
        problems = self._remove()
        reaper, self.reaper = self.reaper, None
        if reaper is not None and not problems:
            reaper.release()
        # With problems left, the reaper is not told goodbye: it retries when we exit.
        return problems

    def _remove(self) -> List[str]:
        problems: List[str] = []
        inst, self.instance = self.instance, None
        if inst is not None:
            inst.disable_all()
        reader, self.reader = self.reader, None
        if reader is not None:
            reader.close()
        if inst is not None:
            try:
                inst.remove()
            except OSError as exc:
                problems.append(f"instance {inst.name}: {exc.strerror}")
        defs, self.probes = self.probes, []
        defs = [d for d in defs if not probes.remove_one(
            self.tracefs_path, d.file, d.group, d.name)]
        problems += [f"probe {d.group}/{d.name}" for d in defs]
        return problems


class FtraceStream:
    """An open ftrace session (see module docstring)."""

    def __init__(self, request: TraceRequest, caps: Capabilities, tier: str,
                 buffer_kb: int = DEFAULT_BUFFER_KB) -> None:
        self.request = request
        self.tier = tier
        path, mounted = tracefs.ensure_mounted()
        stale = remove_stale(path)
        self._res = _Resources(path)
        self._finalizer = weakref.finalize(self, self._res.release)
        try:
            self._open(caps, path, buffer_kb)
        except BaseException:
            self._finalizer()
            raise
        assert self._res.instance is not None
        notes = [f"tracefs instance {self._res.instance.name}",
                 f"{buffer_kb} KiB buffer per CPU"]
        if self._res.probes:
            notes.append(f"{len(self._res.probes)} probes in group {self._group}")
        notes.append("per-CPU binary buffers" if self.reader_kind == "raw" else "trace_pipe text")
        if mounted:
            notes.append(f"tracefs mounted at {path} by hybridtrace")
        if stale:
            notes.append(f"removed {len(stale)} leftover(s) of dead sessions")
        if request.kind is Kind.OPEN:
            notes.append(f"io_uring opens: NOT seen ({self.io_uring_unseen})"
                         if self.io_uring_unseen is not None else
                         "io_uring opens: seen, without paths (io_uring's tracepoints)"
                         if self.uring_path_probe is None else
                         "io_uring opens: seen, with paths (the kernel's copy, read by a"
                         f" {self.tier} on {self.uring_path_probe.line.split()[1]})")
        self.description = f"ftrace/{tier} ({'; '.join(notes)})"
        self._captured = 0
        self._lost = 0
        # What the kernel reports once configured (6.1 shows 8195 for 8192): the size
        # tampering is judged against, never a value it would round again.
        self.buffer_kb = buffer_kb
        self._buffer_setting = _setting(self._res.instance, "buffer_size_kb")
        self._stopped = False
        self._next_check = 0.0
        self._last_read = 0.0  # time.monotonic() of the last read

    def _open(self, caps: Capabilities, path: str, buffer_kb: int) -> None:
        request = self.request
        name = session_name()
        self._group = name
        present = sorted(e for e in event_sets.syscall_events(request.kind)
                         if os.path.isdir(os.path.join(path, "events", "syscalls", e)))
        if not present:
            raise BackendError("no syscall tracepoints for this kind in tracefs "
                               "(CONFIG_FTRACE_SYSCALLS off?)")
        if self.tier == "eprobe":
            probe_plan.check_eprobe_strings(caps, path)
        defs = probe_plan.probe_defs(self.tier, request, caps, name, path, present)
        raw = settings.reader_choice(request) == "raw"
        if not raw:  # the text reader decodes no io_uring records: no path probe for them
            defs = [d for d in defs if d.role.what != probes.URING]
        self.uring_path_probe = next((d for d in defs if d.role.what == probes.URING), None)
        uring_probes = [d.name for d in defs if d.role.what == probes.URING]
        inst = self._res.instance = Instance(path, name)
        clock = _mono_clock(inst.path)
        inst.configure(buffer_kb, clock)
        probes.add(path, defs, self._res.probes)
        events = [("syscalls", e) for e in present]
        if request.kind is Kind.EXEC:
            events += [("sched", "sched_process_exec"), ("sched", "sched_process_fork")]
        events += [(name, n) for n in dict.fromkeys(d.name for d in defs)]  # shared names
        events += [e for e in TASK_EVENTS if inst.has_event(*e)]
        thread_proof = clock == "mono" and all(inst.has_event(*e) for e in THREAD_PROOF_EVENTS)
        if thread_proof:
            events += [e for e in THREAD_PROOF_EVENTS if e not in events]
        fd_proof = False
        uring: List[Tuple[str, str]] = []
        if request.kind is Kind.OPEN:
            fd_proof = clock == "mono" and all(inst.has_event(*e) for e in FD_PROOF_EVENTS)
            events += [e for e in FD_PROOF_EVENTS + FD_OPTIONAL_EVENTS
                       if inst.has_event(*e) and e not in events]
            uring = event_sets.uring_events(inst, raw)
            events += uring
        self.io_uring_unseen = event_sets.uring_unseen(request, raw, uring)
        if self.uring_path_probe is not None and not uring:  # nothing to pair them with
            events[:] = [e for e in events if not (e[0] == name and e[1] in uring_probes)]
            self.uring_path_probe = None
        # eprobes stand in for the submit and failure tracepoints' records (uring.py)
        stand_ins = (SUBMIT_EVENTS if SUBMIT_PROBE in uring_probes else ()) + (
            (FAILED_EVENT,) if FAILED_PROBE in uring_probes else ())
        if self.uring_path_probe is not None:
            events[:] = [e for e in events if e not in uring or e[1] not in stand_ins]
        ledger_ok = clock == "mono" and all(inst.has_event(*e) for e in LEDGER_EVENTS)
        if ledger_ok:
            events += [e for e in LEDGER_EVENTS if e not in events]
        formats = self._formats(inst, events)
        self._set_filters(inst, events)
        follows = request.filters.descendants_of is not None or request.filters.pid is not None
        followed = False  # set_event_pid in force
        if request.filters.descendants_of is not None:
            self._follow_tree(inst, request.filters.descendants_of)
            followed = True
        elif request.filters.pid is not None:
            followed = self._follow_pid(inst, request.filters.pid)
        self._res.reader = self._reader(inst, formats, raw, clock == "mono")
        enabling = time.monotonic_ns()
        for system, event in events:
            inst.enable(system, event)
        # Every thread now: its exit, a new task taking its id, its renames and setuids
        # from here on will be recorded.
        seed = Listing.take(enabling) if thread_proof else None
        self.formats = formats  # of every enabled event, as this kernel describes them
        self.roles = {d.name: d.role for d in defs}
        source = {"uprobe": Source.LIBC_PROBE, "tracepoint": None}.get(
            self.tier, Source.SYSCALL_ENTRY)
        self.probe_source = source
        proc = ProcLookup()
        reader = self._res.reader
        if self.tier == "tracepoint" and isinstance(reader, RawReader):
            # Its strings all come from /proc: read it the moment a record is decoded.
            snaps = ProcSnapshots(execs=request.kind is Kind.EXEC,
                                  opens=request.kind is Kind.OPEN)
            reader.on_decoded = snaps.take
            proc = snaps.lookup()
        boot = boot_offset_ns() if clock == "mono" else None
        # io_uring's threads escape set_event_pid: their completions go unrecorded.
        self._correlator = Correlator(request.kind, self.roles, source, request.max_args, proc,
                                      boot, fd_proof, seed, uring_results=not followed)
        # With set_event_pid, a migration done by an untraced task is not recorded.
        self._ledger = ChangeLedger(migrations_seen=not follows)
        self._origin = OriginFiller(boot, self._ledger, ledger_ok)
        self._keeps_all = keeps_all(request.filters, request.scope)
        self._stats = buffer_stats.read_stats(inst.path)
        self._poller = select.poll()
        for fd in self._res.reader.fds.values():
            self._poller.register(fd, select.POLLIN)

    @staticmethod
    def _reader(inst: Instance, formats: Sequence[EventFormat], raw: bool,
                monotonic: bool) -> Reader:
        """The binary per-CPU reader, or trace_pipe where the pages can't be read."""
        if raw:
            try:
                return RawReader(inst.path, formats, monotonic)
            except (OSError, PageFormatError, ValueError):
                pass
        try:
            return TextReader(inst.path, formats, monotonic)
        except OSError as exc:
            raise BackendError(f"cannot open {inst.path}/trace_pipe: {exc.strerror}") from None

    @staticmethod
    def _formats(inst: Instance, events: Sequence[Tuple[str, str]]) -> List[EventFormat]:
        try:
            return [read_format(inst.events_dir(), system, event) for system, event in events]
        except FormatError as exc:
            raise BackendError(str(exc)) from None

    def _set_filters(self, inst: Instance, events: Sequence[Tuple[str, str]]) -> None:
        comm = self.request.filters.comm
        # comm changes at exec, so exec records can't be filtered on it in the kernel.
        with_comm = (comm is not None and self.request.kind is Kind.OPEN
                     and filter_exprs.SAFE_COMM.match(comm) is not None)
        for system, event in events:
            if event in ("sched_process_fork", "task_newtask"):
                continue  # our own forks name our children's parent: keep them all
            if (system, event) in LEDGER_EVENTS:
                continue  # a migration (or setns) by anyone, us included, must be seen
            if (system, event) in FD_PROOF_EVENTS + FD_OPTIONAL_EVENTS or (
                    system == self._group and event == PATH_PROBE):
                # io_uring's open handler kprobe: any task (io-wq workers); uring.py pairs it.
                # Any thread of a process may close what another opened: no comm, no tid.
                inst.set_filter(system, event, f"common_pid != {os.getpid()}")
                continue
            # A rename *to* the comm asked for is written under the old comm.
            comm_here = with_comm and (system, event) not in TASK_EVENTS
            expr: Callable[[bool], str] = functools.partial(filter_exprs.filter_expr, self.request)
            if system == vocabulary.IO_URING_GROUP or event in (SUBMIT_PROBE, FAILED_PROBE):
                # the eprobes on io_uring's tracepoints: filtered as the tracepoint they copy
                expr = functools.partial(filter_exprs.uring_filter, self.request, event)
            try:
                inst.set_filter(system, event, expr(comm_here))
            except BackendError:
                if not comm_here:
                    raise
                with_comm = False  # an old kernel without the comm filter field
                inst.set_filter(system, event, expr(False))

    @staticmethod
    def _follow_tree(inst: Instance, root: int) -> None:
        """--descendants-of: the tree now, and (event-fork) every task it forks from now on.

        Tasks forked between reading /proc and event-fork taking effect are found by
        reading again, until nothing new appears."""
        seeded = process_tree.tree_threads(root)
        if not seeded:
            raise BackendError(f"--descendants-of: process {root} is gone")
        if not inst.set_option("set_event_pid", " ".join(map(str, sorted(seeded)))) or \
                not inst.set_option("options/event-fork", "1"):
            raise BackendError("--descendants-of: this kernel's tracefs has no set_event_pid"
                               " with the event-fork option")
        for _ in range(5):
            new = process_tree.tree_threads(root) - seeded
            if not new:
                break
            try:
                fd = os.open(os.path.join(inst.path, "set_event_pid"), os.O_WRONLY | os.O_APPEND)
                try:
                    os.write(fd, " ".join(map(str, sorted(new))).encode())
                finally:
                    os.close(fd)
            except OSError as exc:
                raise BackendError(f"--descendants-of: cannot add to set_event_pid:"
                                   f" {exc.strerror}") from None
            seeded |= new

    @staticmethod
    def _follow_pid(inst: Instance, pid: int) -> bool:
        """Record only this process's threads (and what they fork); False: the kernel
        cannot (no set_event_pid), and every task is recorded."""
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            tids = [str(pid)]
        if inst.set_option("set_event_pid", " ".join(tids)):
            inst.set_option("options/event-fork", "1")
            return True
        return False

    # -- EventStream -------------------------------------------------------

    @property
    def reader(self) -> Optional[Reader]:
        return self._res.reader

    @property
    def reader_kind(self) -> str:
        """"raw" (per-CPU binary buffers) or "text" (trace_pipe)."""
        return "raw" if isinstance(self._res.reader, RawReader) else "text"

    @property
    def instance_path(self) -> Optional[str]:
        inst = self._res.instance
        return inst.path if inst is not None else None

    @property
    def records(self) -> int:
        """trace records decoded so far (for loss accounting checks)."""
        return self._correlator.records

    def poll(self, timeout: Optional[float]) -> Sequence[Event]:
        reader = self._res.reader
        if reader is None:
            return []
        self._pace(reader, timeout)
        with paused():
            out = self._read(reader)
        if not out:
            wait = timeout
            held = bool(reader.pending or self._correlator.awaiting or self._origin.awaiting)
            if held:
                wait = HELD_BACK_WAIT if wait is None else min(wait, HELD_BACK_WAIT)
            wait_ms = None if wait is None else max(0, int(wait * 1000))
            if self._poller.poll(wait_ms) or held:
                self._pace(reader, wait)
                with paused():
                    out = self._read(reader)
            else:
                out += self._losses()  # _read looks for them itself
        out += self._tampering()
        # The kernel's filters cannot say everything (a comm it cannot quote, a ppid): the
        # stream is used alone too (tools, tests), so it applies the same pass Session does.
        kept = out if self._keeps_all else \
            [e for e in out if matches(e, self.request.filters, self.request.scope)]
        self._captured += len(kept) - countOf(map(type, kept), LostEvent)
        return kept

    def _pace(self, reader: Reader, timeout: Optional[float]) -> None:
        """Wait out READ_INTERVAL since the last read (within ``timeout``); not once
        recording stopped, when what is left is read as fast as it can be (drain)."""
        if reader.stopped or timeout == 0:
            return
        rest = self._last_read + READ_INTERVAL - time.monotonic()
        if rest > 0:
            time.sleep(rest if timeout is None else min(rest, timeout))

    def _read(self, reader: Reader) -> List[Event]:
        """Decode what is due; /proc is consulted after the whole batch.

        Losses are looked for between reading and correlating: a record lost
        before this read may have been one that proves (or disproves) an fd.
        """
        self._last_read = time.monotonic()
        lines: List[TraceLine] = reader.read(MAX_READ_PER_POLL)
        if reader.stopped:
            lines += reader.flush()
        lost = self._losses()
        corr, origin = self._correlator, self._origin
        feed = self._ledger.feed
        lines = [line for line in lines if line.event not in NOTED_EVENTS or not feed(line)]
        if not lines and not corr.awaiting and not origin.awaiting:
            return lost
        events = corr.feed_all(lines, reader.later, reader.complete) + lost
        return origin.fill(events, reader.complete)

    def _losses(self) -> List[Event]:
        inst = self._res.instance
        if inst is None:
            return []
        now = buffer_stats.read_stats(inst.path)
        out: List[Event] = []
        for cpu, count in sorted(buffer_stats.loss_delta(self._stats, now).items()):
            if count > 0:
                self._lost += count
                out.append(LostEvent(time.monotonic_ns(), count,
                                     f"trace buffer overrun (cpu {cpu})", cpu, exact=False))
        if out:
            self._correlator.gap(-INF, time.monotonic_ns())  # lost: anything before now
            self._ledger.gap(-INF, time.monotonic_ns())
        self._stats = now
        return out

    def _tampering(self) -> List[Event]:
        """Someone else switched our recording off or resized our buffer: the kernel counts
        nothing lost for either, so we look (twice a second), say so, and restore it."""
        now = time.monotonic()
        inst = self._res.instance
        if inst is None or self._stopped or now < self._next_check:
            return []
        self._next_check = now + TAMPER_CHECK_S
        if not os.path.isdir(inst.path):
            raise BackendError(f"tracefs instance {inst.name} was removed by someone else:"
                               " recording ended")
        changed: List[str] = []
        if _setting(inst, "tracing_on") != "1":
            changed.append("tracing_on was switched off")
            inst.set_option("tracing_on", "1")
        size = _setting(inst, "buffer_size_kb")
        if self._buffer_setting is not None and size != self._buffer_setting:
            changed.append(f"buffer_size_kb was changed to {size}")
            inst.set_option("buffer_size_kb", str(self.buffer_kb))  # as configured
            self._buffer_setting = _setting(inst, "buffer_size_kb")
        if not changed:
            return []
        self._correlator.gap(-INF, time.monotonic_ns())  # records may be missing: before now
        self._ledger.gap(-INF, time.monotonic_ns())
        return [LostEvent(time.monotonic_ns(), None, f"{' and '.join(changed)} by someone else"
                          " (restored); how many events went unrecorded is unknown",
                          exact=False)]

    @property
    def stats(self) -> StreamStats:
        return StreamStats(self._captured, self._lost)

    def stop(self) -> None:
        """Stop recording (the buffer stays readable): Session.drain reads the rest."""
        inst = self._res.instance
        if inst is not None:
            self._correlator.gap(time.monotonic_ns())  # nothing after this is recorded
            self._ledger.gap(time.monotonic_ns())
            self._stopped = True
            inst.set_option("tracing_on", "0")
        if self._res.reader is not None:
            self._res.reader.stopped = True

    def unread(self) -> Unread:
        """Records still in the instance's buffer, that the session will never read:
        at most that many events (several records make one)."""
        inst = self._res.instance
        if inst is None:
            return Unread()
        records = sum(cpu.entries for cpu in buffer_stats.read_stats(inst.path).values())
        return Unread(records, exact=False)

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> FtraceStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _setting(inst: Instance, name: str) -> Optional[str]:
    try:
        return read_file(os.path.join(inst.path, name)).strip()
    except OSError:
        return None


def _mono_clock(inst_path: str) -> Optional[str]:
    """"mono" when offered: timestamps then match the other backends' CLOCK_MONOTONIC."""
    try:
        with open(os.path.join(inst_path, "trace_clock"), encoding="ascii") as handle:
            clocks = handle.read().replace("[", " ").replace("]", " ").split()
    except OSError:
        return None
    return "mono" if "mono" in clocks else None


def open_ftrace_stream(request: TraceRequest, caps: Capabilities, tier: str,
                       buffer_kb: Optional[int] = None) -> FtraceStream:
    """Open the ftrace backend at ``tier`` ("kprobe", "eprobe", "uprobe", "tracepoint").

    ``buffer_kb`` is the ring buffer size per CPU; by default the request's
    ``buffer_pages`` (that many pages per CPU), else $HYBRIDTRACE_FTRACE_BUFFER_KB,
    else DEFAULT_BUFFER_KB.
    """
    if buffer_kb is None and request.buffer_pages is not None:
        buffer_kb = buffer_size.ftrace_kb(request.buffer_pages)
    return FtraceStream(request, caps, tier,
                        settings.buffer_kb() if buffer_kb is None else buffer_kb)

