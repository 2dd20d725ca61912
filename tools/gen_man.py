#!/usr/bin/env python3
"""Man pages for hybridtrace and each of its commands, written from the argument parsers.

The pages are committed (man/man1/) and installed with the package
(pyproject: data-files, into share/man/man1 of the environment), so a page
never says something the parser does not do:

    python -m tools.gen_man            # (re)write man/man1/*.1
    python -m tools.gen_man --check    # exit 1 if the committed pages differ
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Tuple

from hybridtrace import __version__
from hybridtrace.cli.main import build_parser

MAN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "man", "man1")
SEE_ALSO = {
    "execsnoop": ["execsnoop-bpfcc(8)", "execsnoop(8)"],
    "opensnoop": ["opensnoop-bpfcc(8)", "opensnoop(8)"],
}
WIDTH = 80  # argparse wraps usage to $COLUMNS: fixed, so the pages do not depend on a terminal


def roff(text: str) -> str:
    """Text safe in a roff body: backslashes and hyphens escaped, no line starting a request."""
    out = []
    for line in text.replace("\\", "\\e").replace("-", "\\-").split("\n"):
        out.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(out)


def _commands(parser: argparse.ArgumentParser) -> Dict[str, Tuple[str, argparse.ArgumentParser]]:
    """Each subcommand's name, one-line help and parser."""
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return {name: (helps.get(name, ""), sub) for name, sub in action.choices.items()}
    return {}


def _option(action: argparse.Action) -> List[str]:
    if action.option_strings:
        value = ""
        if action.nargs != 0:
            metavar = action.metavar or (
                "{" + ",".join(map(str, action.choices)) + "}" if action.choices
                else action.dest.upper())
            value = f" \\fI{roff(str(metavar))}\\fR"
        names = ", ".join(f"\\fB{roff(o)}\\fR" for o in action.option_strings)
        head = names + value
    else:
        head = f"\\fI{roff(str(action.metavar or action.dest))}\\fR"
    return [".TP", head, roff((action.help or "").replace("%%", "%"))]


def _usage(parser: argparse.ArgumentParser) -> str:
    os.environ["COLUMNS"] = str(WIDTH)
    lines = parser.format_usage().rstrip("\n").split("\n")
    prefix = "usage: "
    if lines[0].startswith(prefix):  # argparse indents the rest under the words after it
        lines = [lines[0][len(prefix):]] + [ln[len(prefix):] if ln.startswith(" " * len(prefix))
                                            else ln for ln in lines[1:]]
    return "\n".join(lines)


def page(name: str, summary: str, parser: argparse.ArgumentParser, see_also: List[str],
         commands: Dict[str, Tuple[str, argparse.ArgumentParser]]) -> str:
    title = name.upper()
    lines = [f'.TH {roff(title)} 1 "" "hybridtrace {__version__}" "User Commands"',
             ".SH NAME", f"{roff(name)} \\- {roff(summary)}",
             ".SH SYNOPSIS", ".nf", roff(_usage(parser)), ".fi"]
    if parser.description:
        lines += [".SH DESCRIPTION", roff(parser.description)]
    if commands:
        lines.append(".SH COMMANDS")
        for cmd, (helptext, _sub) in commands.items():
            lines += [".TP", f"\\fB{roff(cmd)}\\fR", f"{roff(helptext)} (see \\fBhybridtrace\\-"
                      f"{roff(cmd)}\\fR(1))"]
    options = [a for a in parser._actions if not isinstance(a, argparse._SubParsersAction)]
    if options:
        lines.append(".SH OPTIONS")
        for action in options:
            lines += _option(action)
    if parser.epilog:
        epilog = parser.epilog.strip("\n")
        first, _, rest = epilog.partition("\n")
        if first.rstrip(":").lower() == "examples":
            epilog = rest
        lines += [".SH EXAMPLES", ".nf", roff(epilog), ".fi"]
    if see_also:
        lines += [".SH SEE ALSO", ", ".join(f"\\fB{roff(s.split('(')[0])}\\fR({s.split('(')[1]}"
                                           for s in see_also)]
    return "\n".join(lines) + "\n"


def pages() -> Dict[str, str]:
    """File name -> page text, for hybridtrace(1) and hybridtrace-COMMAND(1)."""
    parser = build_parser()
    commands = _commands(parser)
    out = {"hybridtrace.1": page("hybridtrace", parser.description or "", parser,
                                 [f"hybridtrace-{c}(1)" for c in commands], commands)}
    for cmd, (helptext, sub) in commands.items():
        out[f"hybridtrace-{cmd}.1"] = page(f"hybridtrace-{cmd}", helptext, sub,
                                           ["hybridtrace(1)", *SEE_ALSO.get(cmd, [])], {})
    return out


def out_of_date(want: Dict[str, str], directory: str) -> List[str]:
    """Files of ``directory`` that differ from ``want`` (name -> text), are missing,
    or are not wanted at all."""
    stale = []
    for name, text in sorted(want.items()):
        try:
            with open(os.path.join(directory, name)) as handle:
                same = handle.read() == text
        except OSError:
            same = False
        if not same:
            stale.append(name)
    present = set(os.listdir(directory)) if os.path.isdir(directory) else set()
    return stale + sorted(present - set(want))


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare, do not write")
    args = ap.parse_args(argv)
    want = pages()
    if args.check:
        stale = out_of_date(want, MAN_DIR)
        if stale:
            print(f"gen_man: out of date: {', '.join(stale)} (run python -m tools.gen_man)",
                  file=sys.stderr)
            return 1
        return 0
    os.makedirs(MAN_DIR, exist_ok=True)
    for name in os.listdir(MAN_DIR):
        if name not in want:
            os.unlink(os.path.join(MAN_DIR, name))
    for name, text in want.items():
        with open(os.path.join(MAN_DIR, name), "w") as handle:
            handle.write(text)
    print(f"wrote {len(want)} pages to {os.path.normpath(MAN_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
