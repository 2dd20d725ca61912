"""Every mistake a user can make ends in one line on stderr and exit status 2."""

from __future__ import annotations

import subprocess
import sys
from typing import List

import pytest

CASES = [
    (["execsnoop", "-u", "no-such-user-xyz"], "unknown user 'no-such-user-xyz'"),
    (["execsnoop", "-n", "("], "bad regular expression for -n"),
    (["execsnoop", "-l", "[a-"], "bad regular expression for -l"),
    (["opensnoop", "--backend", "dtrace"], "invalid choice: 'dtrace'"),
    (["execsnoop", "--tier", "magic"], "invalid choice: 'magic'"),
    (["opensnoop", "-f", "O_BOGUS"], "unknown open flag 'O_BOGUS'"),
    (["opensnoop", "-p", "notapid"], "invalid int value"),
    (["execsnoop", "-d", "-3"], "must be positive"),
    (["execsnoop", "--max-args", "0"], "max_args must be between 1 and 128"),
    (["execsnoop", "--backend", "ebpf-core", "--tier", "uprobe"], "--tier applies to the ftrace"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    # Checked before the kernel is probed: the same line as root or not.
    (["opensnoop", "-p", "-1", "-d", "1"], "pid must be between 1 and 4194303, not -1"),
    (["opensnoop", "-t", "99999999999"], "tid must be between 1 and 4194303, not 99999999999"),
    (["execsnoop", "-P", "-1"], "ppid must be between 0 and 4194303"),
    (["execsnoop", "-u", "4294967295"], "uid must be between 0 and 4294967294"),
    (["opensnoop", "-p", "0"], "pid must be between 1 and 4194303, not 0"),
]


def run_cli(args: List[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hybridtrace", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(("args", "message"), CASES)
def test_user_error_is_one_line_exit_2(args: List[str], message: str) -> None:
    result = run_cli(args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hybridtrace") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_the_flags() -> None:
    exec_help = run_cli(["execsnoop", "--help"]).stdout
    for flag in ("-T", "-t", "-U", "-u", "-x", "-q", "-n", "-l", "-P", "--max-args", "-d",
                 "--backend", "--json", "-Q"):
        assert f"{flag}" in exec_help
    open_help = run_cli(["opensnoop", "--help"]).stdout
    for flag in ("-T", "-U", "-x", "-p", "-t", "-u", "-d", "-n", "-e", "-f", "-F", "--backend",
                 "--json", "-Q"):
        assert f"{flag}" in open_help


def test_what_the_machine_refuses_is_one_line_exit_1(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """No file descriptors left (found with `ulimit -n 16`: a module import failed in the
    middle of starting): one line naming the error and the file, status 1."""
    from hybridtrace.cli import cleanup, main

    def refuse(_args: object) -> int:
        raise OSError(24, "Too many open files", "/x/cleanup.py")

    monkeypatch.setattr(cleanup, "run", refuse)
    assert main.main(["cleanup"]) == 1
    out = capsys.readouterr()
    assert out.err == "hybridtrace: Too many open files: /x/cleanup.py\n" and out.out == ""
