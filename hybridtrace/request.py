"""What a user asks a backend to trace, independent of how it is traced.

Every value is checked here, once, when the request is built: a bad one
raises RequestError before anything is probed or loaded into the kernel.
"""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import attrs

from hybridtrace.errors import RequestError
from hybridtrace.vocabulary import FTRACE_READERS

if TYPE_CHECKING:
    from hybridtrace.scope import Scope

DEFAULT_MAX_ARGS = 20
# Each argv element and path is captured up to this many bytes (longer ones are
# cut and flagged). Matches the ring-buffer record layout of the eBPF engine.
ARG_SIZE = 256
PATH_SIZE = 512


# Linux never assigns a pid (or tid) of PID_MAX_LIMIT or more: pid_max is at most
# 4194304 (64-bit). Pid 0 is the idle task, which neither execs nor opens, but
# it is the parent of init and kthreadd, so a ppid filter of 0 can match.
PID_MAX_LIMIT = 1 << 22
# (uid_t)-1 is not a uid: setresuid() reads it as "unchanged".
UID_MAX = (1 << 32) - 2
TASK_COMM_LEN = 16  # a task's comm: up to 15 bytes and a NUL
# buffer_pages: BCC's -b, pages per CPU, a power of two (1 GiB per CPU at most).
MAX_BUFFER_PAGES = 1 << 18


class Kind(str, enum.Enum):
    EXEC = "exec"
    OPEN = "open"


Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _integer(low: int, high: int, note: str = "") -> Validator:
    """None, or an int (not a bool) from ``low`` to ``high``."""

    def check(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(f"{attr.name} must be an integer, not {type(value).__name__}"
                               f" {value!r}")
        if not low <= value <= high:
            raise RequestError(f"{attr.name} must be between {low} and {high}{note},"
                               f" not {value}")

    return check


def _comm(value: Union[str, bytes, None]) -> Optional[bytes]:
    """A task name as the kernel keeps it: bytes, at most 15 of them, no NUL."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    elif isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if not isinstance(value, bytes):
        raise RequestError(f"comm must be str or bytes, not {type(value).__name__} {value!r}")
    if b"\0" in value:
        raise RequestError(f"comm must not contain a NUL byte: {value!r}")
    if len(value) >= TASK_COMM_LEN:
        raise RequestError(f"comm must be at most {TASK_COMM_LEN - 1} bytes (the kernel keeps"
                           f" no more of a task's name), not {len(value)}: {value!r}")
    return value


def _text_path(value: Union[str, bytes, None]) -> Optional[str]:
    """A filesystem path given as str or bytes: non-empty, no NUL."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    if not isinstance(value, str):
        raise RequestError(f"a path must be str or bytes, not {type(value).__name__} {value!r}")
    if not value or "\0" in value:
        raise RequestError(f"not a path: {value!r}")
    return value


_CONTAINER_PREFIX = re.compile(r"[0-9a-f]{1,64}")


def _container(value: Union[str, bytes, None]) -> Optional[str]:
    """A container id or a prefix of one, as `docker ps` and `podman ps` show them."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        raise RequestError(f"container must be a str, not {type(value).__name__} {value!r}")
    lowered = value.lower()
    if not _CONTAINER_PREFIX.fullmatch(lowered):
        raise RequestError(f"container must be an id or a prefix of one (1 to 64 hex digits),"
                           f" not {value!r}")
    return lowered


def _boolean(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise RequestError(f"{attr.name} must be True or False, not {value!r}")


def _kind(value: Union[str, Kind]) -> Kind:
    try:
        return Kind(value)
    except ValueError:
        raise RequestError(f"unknown kind {value!r}: expected one of"
                           f" {', '.join(k.value for k in Kind)}") from None


@attrs.frozen(slots=True)
class Filters:
    """Filters a backend applies in the kernel where it can, in user space otherwise.

    The tracer's own process is always excluded.
    """

    pid: Optional[int] = attrs.field(default=None, validator=_integer(1, PID_MAX_LIMIT - 1))
    tid: Optional[int] = attrs.field(default=None, validator=_integer(1, PID_MAX_LIMIT - 1))
    uid: Optional[int] = attrs.field(default=None, validator=_integer(0, UID_MAX))
    ppid: Optional[int] = attrs.field(default=None, validator=_integer(
        0, PID_MAX_LIMIT - 1, " (0: children of the kernel, such as init)"))
    # Exact match on the task comm (a str is encoded as UTF-8).
    comm: Optional[bytes] = attrs.field(default=None, converter=_comm)
    failed_only: bool = attrs.field(default=False, validator=_boolean)
    # Where the task lives (scope.py resolves the first two when a session starts):
    # a cgroup v2 path and everything under it (libbpf-tools' -c), a container by id
    # or id prefix (its cgroup and everything under it), a mount namespace inode.
    cgroup: Optional[str] = attrs.field(default=None, converter=_text_path)
    container: Optional[str] = attrs.field(default=None, converter=_container)
    mntns: Optional[int] = attrs.field(default=None, validator=_integer(1, (1 << 32) - 1))
    # The process and everything it starts from then on (forks followed in the kernel).
    descendants_of: Optional[int] = attrs.field(
        default=None, validator=_integer(1, PID_MAX_LIMIT - 1))
    # BCC's --cgroupmap and --mntnsmap: the path of a pinned BPF hash map whose keys are
    # the cgroup ids or mount namespace inodes to trace, filled by someone else, looked
    # up for every event (pinned_maps.py).
    cgroupmap: Optional[str] = attrs.field(default=None, converter=_text_path)
    mntnsmap: Optional[str] = attrs.field(default=None, converter=_text_path)


def _buffer_pages(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
    _integer(1, MAX_BUFFER_PAGES)(_inst, attr, value)
    if value is not None and value & (value - 1):
        raise RequestError(f"{attr.name} must be a power of two, not {value}")


def _ftrace_reader(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value not in FTRACE_READERS:
        raise RequestError(f"{attr.name} must be one of {', '.join(FTRACE_READERS)},"
                           f" not {value!r}")


@attrs.frozen(slots=True)
class TraceRequest:
    kind: Kind = attrs.field(converter=_kind)
    filters: Filters = Filters()
    max_args: int = attrs.field(default=DEFAULT_MAX_ARGS)
    # Force one ftrace tier ("kprobe", "eprobe", "uprobe", "tracepoint"); None = best.
    tier: Optional[str] = None
    # Event buffer per CPU in pages (BCC's opensnoop -b); None: each backend's default.
    # hybridtrace.buffer_size says what it becomes in each backend.
    buffer_pages: Optional[int] = attrs.field(default=None, validator=_buffer_pages)
    # How ftrace reads its buffer (vocabulary.FTRACE_READERS); None: raw pages, else
    # $HYBRIDTRACE_FTRACE_READER, falling back to trace_pipe where pages can't be read.
    ftrace_reader: Optional[str] = attrs.field(default=None, validator=_ftrace_reader)
    # The where-filters resolved on this machine (scope.resolve); None: resolve when opened.
    scope: Optional[Scope] = None
    # The tracer's pid namespace inode when it is not the host's: the kernel side gives
    # events that namespace's pids (pidns.py). None: the host's pids.
    pid_view: Optional[int] = None

    @max_args.validator
    def _check_max_args(self, attr: attrs.Attribute[Any], value: int) -> None:
        _integer(1, 128)(self, attr, value)
        if value is None:
            raise RequestError("max_args must be an integer, not None")
