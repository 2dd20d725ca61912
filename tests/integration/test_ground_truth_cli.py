"""Never a wrong value in the CLI's JSON: ground truth judged on `--json` output.

test_ground_truth.py judges the events the API hands over; an auditor reads
`hybridtrace execsnoop|opensnoop --json`, whose writers (hybridtrace/output/jsonl.py
and _jsonline.c) could corrupt a field after that. Here the same workload runs
under each backend with the CLI as a subprocess (tools/groundtruth/via_cli.py):
every line it writes must parse, validate against the schema, read back into its
event and re-encode to the same bytes, and every event is judged field by field
by the same code. Both writers: the C one and the pure-Python one
(HYBRIDTRACE_PURE_PYTHON=1). Replay a failure with

    sudo .venv/bin/python -m tools.groundtruth --via-cli --seed SEED --ops N --backend LABEL

(HYBRIDTRACE_PURE_PYTHON=1 in front for the Python writer).
HYBRIDTRACE_GROUNDTRUTH_CLI_OPS (default 500) sets the size per backend,
HYBRIDTRACE_GROUNDTRUTH_SEED the seed (default: random, printed). The trace_pipe
reader targets (+text) are left to test_ground_truth.py: the writer comes after
the reader, and each target here costs two CLI start-ups.
"""

from __future__ import annotations

import os
import random

import pytest

from tests.integration.ground_truth_setup import ready
from tools.groundtruth import check, via_cli

OPS = int(os.environ.get("HYBRIDTRACE_GROUNDTRUTH_CLI_OPS", "500"))
SEED = int(os.environ.get("HYBRIDTRACE_GROUNDTRUTH_SEED", str(random.randrange(1 << 31))))
TARGETS = [t for t in check.TARGETS if t.reader is None]
WRITERS = {"C": False, "Python": True}  # name -> pure_python


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.label)
def test_cli_json_reports_no_wrong_value(target: check.Target, writer: str) -> None:
    ready(target)
    pure_python = WRITERS[writer]
    if via_cli.writer(via_cli.child_env(pure_python)) != writer:
        # gcc is here (the workload needs it), so the module should be too.
        pytest.fail("the C JSON writer (_jsonline) is not built: run tools/setup.sh")
    result = via_cli.run(target, SEED, OPS, pure_python=pure_python)
    print(result.summary())
    replay = (f"replay: sudo {'HYBRIDTRACE_PURE_PYTHON=1 ' if pure_python else ''}"
              f".venv/bin/python -m tools.groundtruth --via-cli --seed {SEED} --ops {OPS}"
              f" --backend {target.label}")
    assert result.via.endswith(f"{writer} writer"), result.via
    assert not result.bad_json, f"{result.summary()}\n{replay}"
    assert result.wrong_total == 0, f"{result.summary()}\n{replay}"
    assert not sum(result.ambiguous.values()), f"{result.summary()}\n{replay}"
    if result.lost == 0:  # as in the API's run: every call there but for unseen io_uring
        assert not result.unexplained_missing, f"{result.summary()}\n{replay}"
    assert result.matched["exec"] and result.matched["open"]
    assert not check.claims_broken(result), "\n".join([*check.claims_broken(result), replay])
    assert result.passed, f"{result.summary()}\n{replay}"
