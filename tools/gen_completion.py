#!/usr/bin/env python3
"""Shell completion for bash and zsh, written from the argument parsers.

Committed (completions/) and installed with the package (pyproject:
data-files, into share/bash-completion/completions and share/zsh/site-functions
of the environment), so completion offers exactly the commands, options and
choices the parser takes. Static scripts rather than argcomplete: no Python
runs at each <Tab>, and nothing is added to the package's dependencies.

    python -m tools.gen_completion            # (re)write completions/*
    python -m tools.gen_completion --check    # exit 1 if the committed scripts differ
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from hybridtrace.cli.main import build_parser
from tools.gen_man import _commands, out_of_date

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "completions")
BASH = "hybridtrace.bash"
ZSH = "_hybridtrace"


def _options(parser: argparse.ArgumentParser) -> List[Tuple[List[str], bool, Sequence[str], str]]:
    """(spellings, takes a value, its choices, help) of each option."""
    out = []
    for action in parser._actions:
        if not action.option_strings:
            continue
        choices = [str(c) for c in action.choices] if action.choices else []
        out.append((list(action.option_strings), action.nargs != 0, choices,
                    (action.help or "").replace("%%", "%")))
    return out


def _words(items: Sequence[str]) -> str:
    return " ".join(items)


def bash(parser: argparse.ArgumentParser) -> str:
    commands = _commands(parser)
    lines = [
        "# bash completion for hybridtrace (written by tools/gen_completion.py; do not edit)",
        "_hybridtrace() {",
        '    local cur prev cmd i',
        '    cur="${COMP_WORDS[COMP_CWORD]}"',
        '    prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '    cmd=""',
        '    for ((i = 1; i < COMP_CWORD; i++)); do',
        '        case "${COMP_WORDS[i]}" in',
        f'            {"|".join(commands)}) cmd="${{COMP_WORDS[i]}}"; break ;;',
        '        esac',
        '    done',
        '    case "$cmd" in',
    ]
    top = [o for names, _v, _c, _h in _options(parser) for o in names]
    lines += ['        "")',
              f'            COMPREPLY=($(compgen -W "{_words([*commands, *top])}" -- "$cur"))',
              '            return ;;']
    for name, (_help, sub) in commands.items():
        opts = _options(sub)
        lines.append(f"        {name})")
        lines.append('            case "$prev" in')
        for names, takes, choices, _h in opts:
            if not takes:
                continue
            if choices:
                reply = f'COMPREPLY=($(compgen -W "{_words(choices)}" -- "$cur"))'
            elif any("root" in n or "file" in n for n in names):
                reply = 'COMPREPLY=($(compgen -f -- "$cur"))'
            else:
                reply = "COMPREPLY=()"  # a number, a name, a regex: nothing to offer
            lines.append(f"                {'|'.join(names)}) {reply}; return ;;")
        lines.append("            esac")
        every = [o for names, _v, _c, _h in opts for o in names]
        lines.append(f'            COMPREPLY=($(compgen -W "{_words(every)}" -- "$cur"))')
        lines.append("            return ;;")
    lines += ["    esac", "}", "complete -F _hybridtrace hybridtrace", ""]
    return "\n".join(lines)


def _zsh_quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "'\\''").replace("[", "\\[").replace(
        "]", "\\]").replace(":", "\\:")


def _zsh_spec(names: List[str], takes: bool, choices: Sequence[str], helptext: str) -> str:
    first = helptext.split(". ")[0].split("\n")[0]
    desc = _zsh_quote(first[:70])
    value = ""
    if takes:
        value = f":value:({' '.join(choices)})" if choices else ":value:"
    if len(names) == 1:
        return f"'{names[0]}[{desc}]{value}'"
    group = " ".join(names)
    return f"'({group})'{{{','.join(names)}}}'[{desc}]{value}'"


def zsh(parser: argparse.ArgumentParser) -> str:
    commands = _commands(parser)
    lines = ["#compdef hybridtrace",
             "# zsh completion for hybridtrace (written by tools/gen_completion.py; do not edit)",
             "", "_hybridtrace() {", "    local -a commands", "    commands=("]
    for name, (helptext, _sub) in commands.items():
        lines.append(f"        '{name}:{_zsh_quote(helptext)}'")
    lines += ["    )",
              "    if (( CURRENT == 2 )); then",
              "        _describe 'command' commands",
              "        return",
              "    fi",
              "    case ${words[2]} in"]
    for name, (_help, sub) in commands.items():
        specs = [_zsh_spec(*opt) for opt in _options(sub)]
        lines.append(f"        {name})")
        lines.append("            words=(${words[2,-1]}); (( CURRENT-- ))")
        lines.append("            _arguments -s \\")
        lines += [f"                {spec}" + (" \\" if i < len(specs) - 1 else "")
                  for i, spec in enumerate(specs)]
        lines.append("            ;;")
    lines += ["    esac", "}", "", '_hybridtrace "$@"', ""]
    return "\n".join(lines)


def scripts() -> Dict[str, str]:
    parser = build_parser()
    return {BASH: bash(parser), ZSH: zsh(parser)}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare, do not write")
    args = ap.parse_args(argv)
    want = scripts()
    if args.check:
        stale = out_of_date(want, OUT_DIR)
        if stale:
            print(f"gen_completion: out of date: {', '.join(stale)}"
                  " (run python -m tools.gen_completion)", file=sys.stderr)
            return 1
        return 0
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, text in want.items():
        with open(os.path.join(OUT_DIR, name), "w") as handle:
            handle.write(text)
        print(f"wrote completions/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
