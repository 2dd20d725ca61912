"""Trace open/openat/openat2/creat: one line per call, PID COMM FD ERR PATH, as BCC's
opensnoop.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Dict, List

from hybridtrace.cli.common import (
    PROG,
    UsageError,
    add_common,
    open_session,
    resolve_user,
    run_session,
    where_filters,
)
from hybridtrace.events import Event, OpenEvent
from hybridtrace.output.columns import OpenFormat
from hybridtrace.output.fullpath import full_path

EXAMPLES = """examples:
  hybridtrace opensnoop                        # trace all open() calls
  hybridtrace opensnoop -T                     # include seconds since the first event
  hybridtrace opensnoop -U                     # include UID
  hybridtrace opensnoop -x                     # only show failed opens
  hybridtrace opensnoop -p 181                 # only trace PID 181
  hybridtrace opensnoop -t 123                 # only trace TID 123
  hybridtrace opensnoop -u 1000                # only trace UID 1000
  hybridtrace opensnoop -d 10                  # trace for 10 seconds only
  hybridtrace opensnoop -n main                # only process names containing "main"
  hybridtrace opensnoop -e                     # show extended fields (FLAGS)
  hybridtrace opensnoop -f O_WRONLY -f O_RDWR  # only opens for writing
  hybridtrace opensnoop -F                     # relative paths in full
  hybridtrace opensnoop --cgroup /system.slice/cron.service  # one cgroup and below
  hybridtrace opensnoop --via                  # say which opens came through io_uring
"""


NAME = "opensnoop"
HELP = "trace open() calls"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("-T", "--timestamp", action="store_true",
                        help="include seconds since the first event (TIME(s)) on output")
    parser.add_argument("-x", "--failed", action="store_true", help="only show failed opens")
    parser.add_argument("-p", "--pid", type=int, metavar="PID", help="trace this PID only")
    parser.add_argument("-t", "--tid", type=int, metavar="TID",
                        help="trace this TID only (TID trumps PID); the first column is TID")
    parser.add_argument("-n", "--name", metavar="NAME",
                        help="only print process names containing this name")
    # The dash spellings: libbpf-tools' --extended-fields, and ours before BCC's.
    parser.add_argument("-e", "--extended_fields", "--extended-fields", dest="extended_fields",
                        action="store_true", help="show extended fields (FLAGS, octal)")
    parser.add_argument("-f", "--flag_filter", "--flag-filter", dest="flag_filter",
                        action="append", default=[], metavar="FLAG",
                        help="only opens with this O_* flag (repeatable: any of them);"
                        " O_RDONLY, O_WRONLY and O_RDWR match the access mode")
    parser.add_argument("-F", "--full-path", action="store_true",
                        help="show full path for an open file with relative path"
                        " (from /proc, best effort)")
    parser.add_argument("--via", action="store_true",
                        help="include VIA: how the open arrived, syscall or io_uring"
                        " (no open syscall; not in BCC)")


def _flag_mask(names: List[str]) -> List[int]:
    masks = []
    for name in names:
        value = getattr(os, name.upper(), None) if name.upper().startswith("O_") else None
        if not isinstance(value, int):
            raise UsageError(f"{PROG}: unknown open flag {name!r} (expected e.g. O_WRONLY)")
        masks.append(value)
    return masks


def _has_flag(flags: int, mask: int) -> bool:
    if mask in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR):  # access modes are a field, not bits
        return flags & os.O_ACCMODE == mask
    return flags & mask == mask


def session_filters(args: argparse.Namespace) -> Dict[str, Any]:
    """The filters the backend applies; as in BCC, a TID trumps a PID (-t alone decides)."""
    return {"uid": resolve_user(args.uid), "pid": None if args.tid is not None else args.pid,
            "tid": args.tid, "failed_only": args.failed, **where_filters(args)}


def run(args: argparse.Namespace) -> int:
    filters = session_filters(args)
    masks = _flag_mask(args.flag_filter)
    name = args.name.encode("utf-8", "surrogateescape") if args.name else None
    fmt = OpenFormat(elapsed=args.timestamp, show_uid=args.print_uid,
                     extended=args.extended_fields, show_tid=args.tid is not None,
                     show_container=args.print_container,
                     show_via=args.via)

    def keep(event: Event) -> bool:
        if not isinstance(event, OpenEvent):
            return False
        if name is not None and name not in (event.comm or b""):
            return False
        return not masks or (
            event.flags is not None and any(_has_flag(event.flags, m) for m in masks)
        )

    def render(event: Event) -> str:
        assert isinstance(event, OpenEvent)
        path = full_path(event.pid, event.dfd, event.path) if args.full_path else event.path
        return fmt.line(event, path)

    session = open_session("open", args, **filters)
    return run_session(session, args, fmt.header(), keep, render)
