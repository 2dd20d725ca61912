"""Shell completion is what tools/gen_completion.py writes from the parsers today, and
really completes in bash (and parses in zsh)."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import List

import pytest

from tools import gen_completion

SCRIPT = os.path.join(gen_completion.OUT_DIR, gen_completion.BASH)


def test_committed_scripts_are_current() -> None:
    assert gen_completion.main(["--check"]) == 0, "run: python -m tools.gen_completion"


def _complete(words: List[str]) -> List[str]:
    """COMPREPLY for the command line ``words`` (the last one being completed)."""
    quoted = " ".join(f"'{w}'" for w in words)
    script = (f"source '{SCRIPT}'; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1};"
              " _hybridtrace; printf '%s\\n' \"${COMPREPLY[@]}\"")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    return [w for w in out.stdout.split("\n") if w]


def test_bash_completes_commands_options_and_choices() -> None:
    assert _complete(["hybridtrace", "o"]) == ["opensnoop"]
    assert "--ebpf-attach" in _complete(["hybridtrace", "opensnoop", "--eb"])
    assert _complete(["hybridtrace", "execsnoop", "--ebpf-attach", "tp"]) == ["tp_btf"]
    assert _complete(["hybridtrace", "opensnoop", "--tier", ""]) == [
        "kprobe", "eprobe", "uprobe", "tracepoint"]
    assert _complete(["hybridtrace", "opensnoop", "-p", ""]) == []  # a pid: nothing to offer
    assert "--json" in _complete(["hybridtrace", "doctor", "--"])


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed (tools/setup.sh"
                    " installs it)")
def test_zsh_script_parses() -> None:
    path = os.path.join(gen_completion.OUT_DIR, gen_completion.ZSH)
    subprocess.run(["zsh", "-n", path], check=True)
