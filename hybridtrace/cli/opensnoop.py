"""`hybridtrace opensnoop`: BCC's opensnoop columns and flags, on any backend."""

from __future__ import annotations

import argparse
import os
from typing import Any, List

from hybridtrace.cli.common import (
    PROG,
    UsageError,
    add_common,
    open_session,
    resolve_user,
    run_session,
)
from hybridtrace.events import Event, OpenEvent
from hybridtrace.output.columns import OpenFormat, TimeColumn
from hybridtrace.output.fullpath import full_path


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "opensnoop",
        help="trace open() calls",
        description="Trace open/openat/openat2: one line per call, PID COMM FD ERR PATH.",
    )
    add_common(parser)
    parser.add_argument("-x", "--failed", action="store_true", help="only failed opens")
    parser.add_argument("-p", "--pid", type=int, metavar="PID", help="only this process")
    parser.add_argument("-t", "--tid", type=int, metavar="TID", help="only this thread")
    parser.add_argument("-n", "--name", metavar="NAME",
                        help="only processes whose comm contains NAME")
    parser.add_argument("-e", "--extended-fields", action="store_true",
                        help="include FLAGS (octal) and MODE columns")
    parser.add_argument("-f", "--flag-filter", action="append", default=[], metavar="FLAG",
                        help="only opens with this O_* flag set (repeatable: any of them)")
    parser.add_argument("-F", "--full-path", action="store_true",
                        help="show relative paths in full (from /proc, best effort)")
    parser.set_defaults(run=run)


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


def run(args: argparse.Namespace) -> int:
    uid = resolve_user(args.uid)
    masks = _flag_mask(args.flag_filter)
    name = args.name.encode("utf-8", "surrogateescape") if args.name else None
    fmt = OpenFormat(TimeColumn("wall" if args.timestamp else None), show_uid=args.print_uid,
                     extended=args.extended_fields)

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

    session = open_session("open", args, uid=uid, pid=args.pid, tid=args.tid,
                           failed_only=args.failed)
    return run_session(session, args, fmt.header(), keep, render)
