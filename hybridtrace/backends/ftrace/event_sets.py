"""Which tracefs events an ftrace session enables besides its syscalls and probes.

Each list says what it proves; the stream enables what the kernel has of them.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from hybridtrace import vocabulary
from hybridtrace.backends.ftrace import uring
from hybridtrace.backends.ftrace.instance import Instance
from hybridtrace.request import Kind, TraceRequest

# Comm and uid changes, for both readers (records carry neither usably; see tasks.py).
TASK_EVENTS = [("task", "task_newtask"), ("task", "task_rename"),
               *[("syscalls", f"sys_{side}_{name}") for name in ("setuid", "setreuid", "setresuid")
                 for side in ("enter", "exit")]]
# Every session, both readers: which process each thread is in (threads.py). With them
# the threads alive at the start can be listed once (a seed): any later exit or new task
# taking an id is recorded, so a parent that exited before we read still has its process.
THREAD_PROOF_EVENTS = [("task", "task_newtask"), ("sched", "sched_process_exec"),
                       ("sched", "sched_process_exit")]
# Open sessions, both readers: what may free or replace an fd before /proc is read
# (fd_ledger.py). The first ones are needed to prove any /proc fd link; the others
# exist only on some kernels and architectures.
FD_PROOF_EVENTS = [*THREAD_PROOF_EVENTS,
                   ("syscalls", "sys_enter_close"), ("syscalls", "sys_exit_close"),
                   ("syscalls", "sys_enter_dup3"), ("syscalls", "sys_exit_dup3")]
FD_OPTIONAL_EVENTS = [("syscalls", "sys_enter_dup2"), ("syscalls", "sys_exit_dup2"),
                      ("syscalls", "sys_enter_close_range"), ("syscalls", "sys_exit_close_range"),
                      ("syscalls", "sys_enter_io_uring_enter")]


def syscall_events(kind: Kind) -> List[str]:
    return [vocabulary.event_name(tp) for name in vocabulary.syscalls_for(kind.value)
            for tp in (vocabulary.enter(name), vocabulary.exit_of(name))]


def uring_events(inst: Instance, raw: bool) -> List[Tuple[str, str]]:
    """io_uring's events this kernel has, for opens made with no open syscall (uring.py).
    Only the binary reader decodes them (their trace_pipe lines are free text)."""
    group = vocabulary.IO_URING_GROUP
    present = [(group, e) for e in uring.EVENTS if inst.has_event(group, e)]
    names = {e for _, e in present}
    if not raw or vocabulary.IO_URING_COMPLETE not in names or not names & set(
            uring.SUBMIT_EVENTS):
        return []
    return present


def uring_unseen(request: TraceRequest, raw: bool,
                  events: Sequence[Tuple[str, str]]) -> Optional[str]:
    """Why this open session does not see io_uring opens (None: it does)."""
    if request.kind is not Kind.OPEN or events:
        return None
    if not raw:
        return "the trace_pipe reader does not decode io_uring's events"
    return "the kernel has no io_uring submit and complete events"
