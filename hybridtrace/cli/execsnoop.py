"""`hybridtrace execsnoop`: BCC's execsnoop columns and flags, on any backend."""

from __future__ import annotations

import argparse
from typing import Any

from hybridtrace.cli.common import (
    add_common,
    compile_regex,
    open_session,
    resolve_user,
    run_session,
)
from hybridtrace.events import Event, ExecEvent
from hybridtrace.output.columns import ExecFormat, TimeColumn
from hybridtrace.request import DEFAULT_MAX_ARGS


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "execsnoop",
        help="trace exec() calls",
        description="Trace execve/execveat: one line per exec, PCOMM PID PPID RET ARGS.",
    )
    add_common(parser)
    parser.add_argument("-t", "--relative-time", action="store_true",
                        help="include a column of seconds since start")
    parser.add_argument("-x", "--fails", action="store_true", help="include failed execs")
    parser.add_argument("-q", "--quote", action="store_true",
                        help='quote each argument ("...")')
    parser.add_argument("-n", "--name", metavar="REGEX", help="only commands whose comm matches")
    parser.add_argument("-l", "--line", metavar="REGEX",
                        help="only execs whose arguments match (not the comm)")
    parser.add_argument("-P", "--ppid", type=int, metavar="PPID", help="only children of PPID")
    parser.add_argument("--max-args", type=int, default=DEFAULT_MAX_ARGS, metavar="N",
                        help=f"capture at most N arguments (default {DEFAULT_MAX_ARGS})")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    uid = resolve_user(args.uid)
    name = compile_regex(args.name, "-n")
    line = compile_regex(args.line, "-l")
    clock = TimeColumn("wall" if args.timestamp else "relative" if args.relative_time else None)
    fmt = ExecFormat(clock, show_uid=args.print_uid, quote=args.quote)

    def keep(event: Event) -> bool:
        if not isinstance(event, ExecEvent):
            return False
        if event.failed and not args.fails:
            return False
        if name is not None and not name.search(event.comm or b""):
            return False
        return line is None or line.search(b" ".join(event.argv or ())) is not None

    def render(event: Event) -> str:
        assert isinstance(event, ExecEvent)
        return fmt.line(event)

    session = open_session("exec", args, uid=uid, ppid=args.ppid, max_args=args.max_args)
    return run_session(session, args, fmt.header(), keep, render)
