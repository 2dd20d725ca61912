"""Entry point: dispatch to execsnoop, opensnoop, doctor and cleanup.

Anything a user can cause ends in one line on stderr, never a traceback: exit
status 2 for a mistake in the command line (or nothing here can trace what
was asked), 1 for a failure while running (no backend would open, output
cannot be written).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from hybridtrace import __version__
from hybridtrace.cli import cleanup, doctor, execsnoop, opensnoop
from hybridtrace.cli.common import PROG, Failure, UsageError, fail


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's own usage dump is noise in a pipeline: one line, exit 2.
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hybridtrace",
        description="Trace process execs and file opens on any Linux kernel.",
    )
    parser.add_argument("--version", action="version", version=f"hybridtrace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in (execsnoop, opensnoop, doctor, cleanup):
        # Each command module declares its name and one-line help, its examples
        # (EXAMPLES, optional), add_arguments() and run(); its docstring is the
        # command's description (`hybridtrace COMMAND --help`, the man page).
        examples = getattr(module, "EXAMPLES", None)
        description = " ".join(str(module.__doc__).split())
        command = sub.add_parser(
            module.NAME, help=module.HELP, description=description, epilog=examples,
            formatter_class=argparse.RawDescriptionHelpFormatter if examples
            else argparse.HelpFormatter)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        status: int = args.run(args)
        return status
    except UsageError as exc:
        return fail(str(exc))
    except Failure as exc:
        return fail(str(exc), 1)
    except OSError as exc:
        # What the machine refused (no file descriptors or memory left, a read-only or
        # full filesystem) where no narrower handler knew better: still one line.
        where = f": {exc.filename}" if exc.filename else ""
        return fail(f"{PROG}: {exc.strerror or exc}{where}", 1)
