"""Trace execve/execveat: one line per exec, PCOMM PID PPID RET ARGS (ARGS: the path
given to exec, then argv[1:]), as BCC's execsnoop.
"""

from __future__ import annotations

import argparse
from typing import Callable

from hybridtrace.cli.common import (
    add_common,
    compile_regex,
    open_session,
    resolve_user,
    run_session,
    where_filters,
)
from hybridtrace.events import Event, ExecEvent
from hybridtrace.output.columns import ExecFormat, args_bytes
from hybridtrace.request import DEFAULT_MAX_ARGS

EXAMPLES = """examples:
  hybridtrace execsnoop                # trace all exec() calls
  hybridtrace execsnoop -x             # include failed exec()s
  hybridtrace execsnoop -T             # include time (HH:MM:SS)
  hybridtrace execsnoop -t             # include seconds since start
  hybridtrace execsnoop -P 181         # only new processes whose parent PID is 181
  hybridtrace execsnoop -U -u 1000     # include UID; only trace UID 1000
  hybridtrace execsnoop -q             # add "quotemarks" around arguments
  hybridtrace execsnoop -n main        # only commands whose name matches "main"
  hybridtrace execsnoop -l tpkg        # only commands whose arguments match "tpkg"
  hybridtrace execsnoop --json -d 10   # JSON Lines for 10 seconds
  hybridtrace execsnoop --container 3f2a --print-container  # one container's execs
  hybridtrace execsnoop --descendants-of 1234  # process 1234 and all it starts
"""


NAME = "execsnoop"
HELP = "trace exec() calls"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, ("-c", "--cgroup"))
    parser.add_argument("-T", "--time", action="store_true",
                        help="include time column on output (HH:MM:SS)")
    # --relative-time: this option's spelling before it took BCC's --timestamp
    parser.add_argument("-t", "--timestamp", "--relative-time", dest="timestamp",
                        action="store_true", help="include seconds since start on output")
    parser.add_argument("-x", "--fails", action="store_true", help="include failed exec()s")
    parser.add_argument("-q", "--quote", action="store_true",
                        help='add quotemarks (") around arguments')
    parser.add_argument("-n", "--name", metavar="NAME",
                        help="only print commands whose name (comm) matches this regex")
    parser.add_argument("-l", "--line", metavar="LINE",
                        help="only print commands whose ARGS (path and arguments) match"
                        " this regex")
    parser.add_argument("-P", "--ppid", type=int, metavar="PPID",
                        help="trace this parent PID only")
    parser.add_argument("--max-args", type=int, default=DEFAULT_MAX_ARGS, metavar="MAX_ARGS",
                        help="maximum number of arguments parsed and displayed, path"
                        f" included (default {DEFAULT_MAX_ARGS})")


def event_filter(args: argparse.Namespace) -> Callable[[Event], bool]:
    """What BCC's execsnoop filters in user space: -x, -n on the comm, -l on ARGS."""
    name = compile_regex(args.name, "-n")
    line = compile_regex(args.line, "-l")

    def keep(event: Event) -> bool:
        if not isinstance(event, ExecEvent):
            return False
        if event.failed and not args.fails:
            return False
        if name is not None and not name.search(event.comm or b""):
            return False
        return line is None or line.search(args_bytes(event)) is not None

    return keep


def run(args: argparse.Namespace) -> int:
    uid = resolve_user(args.uid)
    keep = event_filter(args)
    fmt = ExecFormat(wall=args.time, elapsed=args.timestamp, show_uid=args.print_uid,
                     quote=args.quote, show_container=args.print_container)

    def render(event: Event) -> str:
        assert isinstance(event, ExecEvent)
        return fmt.line(event)

    session = open_session("exec", args, uid=uid, ppid=args.ppid, max_args=args.max_args,
                           **where_filters(args))
    return run_session(session, args, fmt.header(), keep, render)
