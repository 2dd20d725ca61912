"""The Python API: ``trace(kind, ...)`` opens a Session on the best backend.

A Session is a context manager and an iterator of events; ``poll`` gives a
non-blocking (or time-bounded) read for embedding in other event loops.

Errors: every failure is a BackendError (hybridtrace.errors). RequestError
(also a ValueError): the arguments are wrong, raised before anything is
probed or loaded. SelectionError: nothing here can trace that (what to
change is in the message). StartError (a SelectionError): every backend that
should have worked failed to open.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Union

import attrs

from hybridtrace.backends import open_stream, remove_dead_sessions_leftovers
from hybridtrace.backends.base import Assessment, BackendError, EventStream
from hybridtrace.capabilities import probe
from hybridtrace.capabilities.model import Capabilities
from hybridtrace.errors import RequestError
from hybridtrace.events import Event, LostEvent
from hybridtrace.filtering import NONE, keeps_all, matches
from hybridtrace.pidns import nested, own_pidns
from hybridtrace.request import DEFAULT_MAX_ARGS, Filters, Kind, TraceRequest
from hybridtrace.scope import refusal, resolve
from hybridtrace.selector import Decision, SelectionError, check_choice, require

# Longest a poll holds the stream before looking again (close from another thread).
POLL_SLICE = 0.25


class StartError(SelectionError):
    """Every usable backend failed to open: a failure at run time, not in the request."""


@attrs.frozen(slots=True)
class SessionStats:
    captured: int  # events delivered (after filtering)
    lost: int  # events the kernel produced that we could not deliver
    duration: float  # seconds since the session opened
    # False when some loss was counted in ring-buffer records: ``lost`` is then an upper bound.
    lost_exact: bool = True
    # Losses nobody could count (recording switched off by someone else): not in ``lost``.
    lost_unknown: int = 0


class Session:
    """An open trace; close it (or leave the ``with`` block) to release the kernel.

    Safe to share between threads: polls take turns, and ``close()`` from
    another thread ends a waiting poll or an iteration cleanly (within
    POLL_SLICE seconds), after which polls return nothing.
    """

    def __init__(self, decision: Decision, stream: EventStream, request: TraceRequest,
                 fallbacks: List[str]) -> None:
        self.decision = decision
        self.request = request
        self.description = stream.description
        self.fallbacks = fallbacks  # why better candidates failed to open, if any
        self._stream: Optional[EventStream] = stream
        self._started = time.monotonic()
        self._captured = 0
        self._lost = 0
        self._lost_exact = True
        self._lost_unknown = 0
        self._lock = threading.RLock()  # one poll (or drain, close) at a time
        self._closing = False
        # Filters the stream applied exactly in the kernel: not judged again here.
        self._kernel_filters = getattr(stream, "kernel_filters", NONE)
        self._keeps_all = keeps_all(request.filters, request.scope, self._kernel_filters)

    @property
    def backend(self) -> Assessment:
        assert self.decision.chosen is not None
        return self.decision.chosen

    @property
    def stats(self) -> SessionStats:
        return SessionStats(self._captured, self._lost, time.monotonic() - self._started,
                            self._lost_exact, self._lost_unknown)

    def poll(self, timeout: Optional[float] = 0.0) -> List[Event]:
        """Events ready within ``timeout`` seconds (0: don't wait; None: wait for some).

        Returns nothing once the session is closed (or closing).
        """
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while not self._closing:
            left = POLL_SLICE if deadline is None else deadline - time.monotonic()
            with self._lock:
                stream = self._stream
                if stream is None or self._closing:
                    break
                out = self._accept(stream.poll(max(0.0, min(POLL_SLICE, left))))
            if out or (deadline is not None and time.monotonic() >= deadline):
                return out
        return []

    def _accept(self, batch: Sequence[Event]) -> List[Event]:
        if self._keeps_all and LostEvent not in map(type, batch):  # most batches: nothing to do
            self._captured += len(batch)
            return list(batch)
        out: List[Event] = []
        for event in batch:
            if isinstance(event, LostEvent):
                if event.count is None:
                    self._lost_unknown += 1
                else:
                    self._lost += event.count
                    self._lost_exact = self._lost_exact and event.exact
                out.append(event)
                continue
            if self._keeps_all or matches(event, self.request.filters, self.request.scope,
                                          self._kernel_filters):
                self._captured += 1
                out.append(event)
        return out

    def __iter__(self) -> Iterator[Event]:
        while not self._closing and self._stream is not None:
            yield from self.poll(POLL_SLICE)

    def run(self, callback: Callable[[Event], object], duration: Optional[float] = None) -> None:
        """Call ``callback`` for each event until ``duration`` seconds pass (or forever)."""
        deadline = None if duration is None else time.monotonic() + duration
        while not self._closing and self._stream is not None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            for event in self.poll(0.25 if left is None else min(0.25, left)):
                callback(event)

    def drain(self, grace: float = 2.0) -> List[Event]:
        """Stop recording and return what the kernel still holds, within ``grace`` seconds.

        The stream stops the kernel recording first (EventStream.stop).
        Whatever cannot be read in time is returned as a LostEvent, so captured +
        lost still accounts for every event recorded while the session ran.
        """
        out: List[Event] = []
        for batch in self.drain_batches(grace):
            out += batch
        return out

    def drain_batches(self, grace: float = 2.0) -> Iterator[List[Event]]:
        """drain() a batch at a time: a caller that writes each batch out holds one
        poll's worth of events, not the whole of the kernel's buffers (8 MiB per CPU
        are some 100k events, ~400 bytes each once decoded). ``grace`` counts the
        time spent reading, not the caller's between batches."""
        with self._lock:
            stream = self._stream
            if stream is None:
                return
            stream.stop()
        spent = 0.0
        while spent < grace:
            start = time.monotonic()
            batch = self.poll(0)
            spent += time.monotonic() - start
            if not batch:
                break
            yield batch
        with self._lock:
            stream = self._stream
            left = stream.unread() if stream is not None else None
            if left is not None and left.count > 0:
                self._lost += left.count
                self._lost_exact = self._lost_exact and left.exact
                yield [LostEvent(time.monotonic_ns(), left.count,
                                 "unread when the session ended", exact=left.exact)]

    def close(self) -> None:
        """Release every kernel resource; from any thread, any number of times."""
        self._closing = True  # a poll in another thread stops at its next slice
        with self._lock:
            stream, self._stream = self._stream, None
            if stream is not None:
                stream.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def trace(
    kind: Union[str, Kind],
    backend: str = "auto",
    *,
    pid: Optional[int] = None,
    tid: Optional[int] = None,
    uid: Optional[int] = None,
    ppid: Optional[int] = None,
    comm: Optional[Union[str, bytes]] = None,
    failed_only: bool = False,
    cgroup: Optional[Union[str, bytes]] = None,
    container: Optional[str] = None,
    mntns: Optional[int] = None,
    descendants_of: Optional[int] = None,
    cgroupmap: Optional[Union[str, bytes]] = None,
    mntnsmap: Optional[Union[str, bytes]] = None,
    max_args: int = DEFAULT_MAX_ARGS,
    tier: Optional[str] = None,
    ebpf_attach: Optional[str] = None,
    buffer_pages: Optional[int] = None,
    ftrace_reader: Optional[str] = None,
    capabilities: Optional[Capabilities] = None,
) -> Session:
    """Open a tracing session for ``kind`` ("exec" or "open").

    ``tier`` forces one ftrace tier; ``ebpf_attach`` forces how ebpf-core
    attaches: "tracepoint" (classic tracepoints, whose ids need a mounted
    tracefs), "tp_btf" (raw tracepoints by BTF name, no tracefs at all) or
    "raw_tp" (raw tracepoints on kernels without BTF; fewer fields).

    ``buffer_pages`` sizes the event buffer as BCC's ``opensnoop -b`` does:
    that many pages per CPU, a power of two (hybridtrace.buffer_size says what
    each backend makes of it); None keeps each backend's default.

    ``ftrace_reader`` picks how the ftrace backend reads its buffer: "raw" (the
    per-CPU binary pages, the default) or "text" (trace_pipe, whose comm and
    uid are less exact: docs/architecture.md says which fields differ). None
    means $HYBRIDTRACE_FTRACE_READER, else "raw".

    Where the traced task lives: ``cgroup`` (a cgroup v2 path, as a directory of the
    cgroup2 mount or as /proc/PID/cgroup shows it; that cgroup and everything under
    it), ``container`` (an id or id prefix as `docker ps` shows it: that container's
    cgroup and everything under it), ``mntns`` (a mount namespace inode),
    ``descendants_of`` (that process and everything it starts from now on, followed
    in the kernel, or by tracefs' set_event_pid with event-fork); ``cgroupmap`` and
    ``mntnsmap`` as BCC's options of that name: the path of a pinned BPF hash map whose
    8-byte keys are the cgroup ids or mount namespace inodes to trace, filled by the
    caller while the session runs (ebpf-core only).

    In a pid namespace of its own (a container without --pid=host), ``pid``, ``tid``
    and ``ppid`` are that namespace's pids, as are the events' (hybridtrace.pidns);
    a process outside it has none there: None.

    Raises a BackendError with one line that says what is wrong: RequestError
    for bad arguments (before anything is probed or loaded), SelectionError
    when nothing here can run (and how to fix it), StartError when every
    backend that should work failed to open.
    """
    filters = Filters(pid=pid, tid=tid, uid=uid, ppid=ppid, comm=comm,
                      failed_only=failed_only, cgroup=cgroup, container=container,
                      mntns=mntns, descendants_of=descendants_of, cgroupmap=cgroupmap,
                      mntnsmap=mntnsmap)
    request = TraceRequest(kind, filters, max_args=max_args, tier=tier,
                           buffer_pages=buffer_pages,
                           ftrace_reader=ftrace_reader)
    kind_value = request.kind.value
    check_choice(kind_value, backend, tier, ebpf_attach)
    request = attrs.evolve(request, scope=resolve(filters))
    pidns = own_pidns()
    if pidns is not None and nested(pidns):  # events carry that namespace's pids
        request = _in_pid_view(request, pidns)
    caps = capabilities if capabilities is not None else probe()
    decision = require(caps, kind_value, backend, tier, ebpf_attach)
    fallbacks: List[str] = []
    failures: Dict[str, str] = {}
    refused = [refusal(c.backend, c.tier, filters) for c in decision.usable_candidates]
    if refused and all(refused):
        raise RequestError(str(refused[0]))  # nothing here can: one line, before any load
    # Probe by doing: if the chosen backend fails to open, the next usable
    # candidate the user's choice allows gets its turn, and the reason is kept.
    for cand in decision.usable_candidates:
        try:
            stream = open_stream(cand, request, caps)
        except BackendError as exc:
            fallbacks.append(f"{cand.label}: {exc}")
            failures[cand.label] = str(exc)
            continue
        if cand.backend != "ftrace":  # an ftrace stream did this as it opened
            removed = remove_dead_sessions_leftovers()
            if removed:
                stream.description += f"; removed {len(removed)} leftover(s) of dead sessions"
        return Session(attrs.evolve(decision, chosen=cand, open_failures=failures), stream,
                       request, fallbacks)
    raise StartError("every usable backend failed to start: " + "; ".join(fallbacks))


def _in_pid_view(request: TraceRequest, pidns: int) -> TraceRequest:
    """The request for the kernel, from inside pid namespace ``pidns``: events are to
    carry its pids, and -p/-t/--ppid name them (pidns.py). --descendants-of's process
    tree is followed by host pids in the kernel: refused here."""
    if request.filters.descendants_of is not None:
        raise RequestError("--descendants-of: hybridtrace runs in a pid namespace of its own,"
                           " where the kernel cannot be given the tree's pids (run it with"
                           " --pid=host)")
    return attrs.evolve(request, pid_view=pidns)
