"""The eprobe string self-test: its judgement of recorded kernels, and what follows from it.

Debian 6.12 lists eprobes but they read a fault for every syscall path; 6.1
reads them. The recorded trees keep the trace each kernel wrote for the test
(tools/record_kernel_tree.py), so the judgement is replayed on real output.
"""

from __future__ import annotations

from typing import List

import attrs
import pytest

from hybridtrace.backends.ftrace.requirements import assess_tier
from hybridtrace.capabilities.eprobe_selftest import SelfTest, verdict
from hybridtrace.selector import decide
from tests.unit.kernel_trees import probe_tree, tree_json, tree_names


def _recorded() -> List[str]:
    return [n for n in tree_names() if "eprobe_selftest" in tree_json(n, "live.json")]


def test_both_kinds_of_kernel_were_recorded() -> None:
    """6.1 (eprobes read paths) and 6.12 (they read faults) are both on record."""
    found = {n: tree_json(n, "live.json")["eprobe_selftest"] for n in _recorded()}
    assert "vm-debian-6.1-default" in found and "vm-debian-6.12-default" in found
    assert SelfTest(**found["vm-debian-6.1-default"]).reads_strings is True
    assert SelfTest(**found["vm-debian-6.12-default"]).reads_strings is False


@pytest.mark.parametrize("name", _recorded())
def test_recorded_trace_gives_the_recorded_verdict(name: str) -> None:
    live = tree_json(name, "live.json")
    test = SelfTest(**live["eprobe_selftest"])
    assert test.name in test.trace  # the probe fired: the verdict rests on a record
    assert [test.reads_strings] == list(live["eprobe_strings"].values())
    assert probe_tree(name).tracefs.eprobe_strings is test.reads_strings


def test_silence_is_not_a_verdict() -> None:
    assert verdict("# tracer: nop\n#\n", "ht_selftest", "/x") is None
    other = '  cat-1 [000] ..... 1.0: ht_other: (syscalls.sys_enter_openat) path="/x"\n'
    assert verdict(other, "ht_selftest", "/x") is None


def test_eprobes_that_read_no_strings_are_refused() -> None:
    """Both kinds need a path read (opens' path, failed execs' filename): refused, stable code."""
    caps = probe_tree("vm-debian-6.1-default")
    assert caps.tracefs.eprobes is True
    broken = attrs.evolve(caps, tracefs=attrs.evolve(caps.tracefs, eprobe_strings=False))
    for kind in ("exec", "open"):
        assert [r.code for r in assess_tier(broken, kind, "eprobe").reasons] == [
            "eprobe-string-fault"]
        assert decide(broken, kind, "ftrace", "eprobe").chosen is None
        assert decide(broken, kind, "ftrace", "kprobe").chosen is not None
    for strings in (True, None):  # working, or not known: judged as before
        fine = attrs.evolve(caps, tracefs=attrs.evolve(caps.tracefs, eprobe_strings=strings))
        assert assess_tier(fine, "open", "eprobe").reasons == []
        assert assess_tier(fine, "exec", "eprobe").reasons == []
