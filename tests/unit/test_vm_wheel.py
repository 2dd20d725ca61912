"""The wheel install check of the arm64 matrix rows (tools/vm/wheel_check.py): which
cells run it, what counts as passing, and how the report shows it (no VM here)."""

from __future__ import annotations

import copy
from typing import Any, Dict

from tools.vm import matrix, report, wheel_check

VENV = "/tmp/ht-wheel-x/venv"


def _result() -> Dict[str, Any]:
    ok = {"rc": 0, "seconds": 1.0}
    return {"wheel": "hybridtrace-0.1.0-py3-none-any.whl",
            "steps": {"venv": ok, "pip install": ok, "import": ok, "doctor": ok},
            "module": f"{VENV}/lib/python3.11/site-packages/hybridtrace/__init__.py",
            "machine": "aarch64", "doctor": {"exec": "ebpf-core", "open": "ebpf-core"},
            "trace": {"rc": 0, "ready_seconds": 40.0, "markers": 8, "seen": 8,
                      "duplicates": 0, "wrong": [], "events": 30}}


def test_only_another_architectures_default_rows_install_the_wheel() -> None:
    assert matrix.wheel_cell("6.1-arm64", "default")
    assert matrix.wheel_cell("6.12-arm64", "default")
    assert not matrix.wheel_cell("6.1-arm64", "headers")
    assert not matrix.wheel_cell("6.1", "default")
    assert not matrix.wheel_cell("host", "default")


def test_the_check_passes_only_from_the_wheel_with_every_marker_right() -> None:
    assert wheel_check.passed(_result(), VENV)
    broken = []
    for path, value in ((("module",), "/repo/hybridtrace/__init__.py"),
                        (("trace", "seen"), 7), (("trace", "duplicates"), 1),
                        (("trace", "wrong"), ["m: filename '/bin/x'"]),
                        (("trace", "rc"), 1), (("doctor", "open"), None),
                        (("steps", "pip install", "rc"), 1), (("trace", "markers"), 0)):
        r = copy.deepcopy(_result())
        target = r
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        broken.append(wheel_check.passed(r, VENV))
    assert not any(broken)


def test_a_failed_wheel_check_fails_its_row_and_shows_in_the_findings() -> None:
    failed = _result()
    failed["trace"]["seen"] = 5
    failed["passed"] = False
    row = {"kernel": "6.1-arm64", "release": "6.1.0-x-arm64", "vm": True,
           "variant": "default", "groups": {}, "completed": True,
           "steps": {"wheel": {"rc": 1}}, "wheel": failed}
    assert not matrix._ok(row, ci=False)
    text = "\n".join(report._findings([row]))
    assert "**FAILED**" in text and "saw 5 of 8 marker execs" in text
    row["wheel"] = dict(_result(), passed=True)
    assert matrix._ok(row, ci=False)
    assert "passed: hybridtrace-0.1.0-py3-none-any.whl installed with pip --no-index on" \
        " aarch64" in "\n".join(report._findings([row]))
    row["wheel"] = None  # the step ran, wrote nothing
    assert not matrix._ok(row, ci=False)
    assert "no result" in "\n".join(report._findings([row]))
