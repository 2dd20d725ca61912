"""The committed man pages are what tools/gen_man.py writes from the parsers today."""

from __future__ import annotations

import argparse

from hybridtrace.cli.main import build_parser
from tools import gen_man


def test_committed_pages_are_current() -> None:
    assert gen_man.main(["--check"]) == 0, "run: python -m tools.gen_man"


def test_every_option_of_every_command_is_in_its_page() -> None:
    pages = gen_man.pages()
    commands = gen_man._commands(build_parser())
    assert set(pages) == {"hybridtrace.1", *(f"hybridtrace-{c}.1" for c in commands)}
    for cmd, (_help, parser) in commands.items():
        text = pages[f"hybridtrace-{cmd}.1"]
        for action in parser._actions:
            for option in action.option_strings:
                assert f"\\fB{gen_man.roff(option)}\\fR" in text, (cmd, option)
        assert isinstance(parser, argparse.ArgumentParser)
    assert "\\- trace exec() calls" in pages["hybridtrace-execsnoop.1"]
    assert "opensnoop\\-bpfcc" in pages["hybridtrace-opensnoop.1"]


def test_roff_escapes_what_roff_would_read_as_requests() -> None:
    assert gen_man.roff(".x\n'y\na-b\\c") == "\\&.x\n\\&'y\na\\-b\\ec"
