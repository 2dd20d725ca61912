"""Buffer statistics against recorded per_cpu/cpuN/stats and the records read with them."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from hybridtrace.backends.ftrace.buffer_stats import (
    CpuStats,
    loss_delta,
    parse_stats,
    read_stats,
)
from hybridtrace.backends.ftrace.trace_record import LOST
from tests.unit.ftrace_fixtures import Recording, phase_params

PHASES = phase_params()
_ids = [f"{rec.name}/{phase}" for rec, phase in PHASES]


def _readings(rec: Recording, phase: str) -> Tuple[Dict[int, CpuStats], Dict[int, CpuStats]]:
    raw = rec.stats(phase)
    before = {int(c[3:]): parse_stats(t, int(c[3:])) for c, t in raw["before"].items()}
    after = {int(c[3:]): parse_stats(t, int(c[3:])) for c, t in raw["after"].items()}
    return before, after


def _number(text: str, key: str) -> int:
    match = re.search(rf"^{key}: *(\d+)$", text, re.M)
    assert match, key
    return int(match.group(1))


@pytest.mark.parametrize(("rec", "phase"), PHASES, ids=_ids)
def test_counters_match_the_text(rec: Recording, phase: str) -> None:
    for when, texts in rec.stats(phase).items():
        for cpu_dir, text in texts.items():
            stats = parse_stats(text, int(cpu_dir[3:]))
            assert stats.entries == _number(text, "entries"), when
            assert stats.overrun == _number(text, "overrun")
            assert stats.commit_overrun == _number(text, "commit overrun")
            if "dropped events" in text:
                assert stats.dropped_events == _number(text, "dropped events")
            if "read events" in text:
                assert stats.read_events == _number(text, "read events")
            now = re.search(r"^now ts: *(\d+)\.(\d+)$", text, re.M)
            if now:
                assert stats.now_ts_ns == int(now.group(1)) * 10**9 + int(now.group(2)) * 1000


@pytest.mark.parametrize(("rec", "phase"), PHASES, ids=_ids)
def test_records_plus_losses_account_for_every_event(rec: Recording, phase: str) -> None:
    """Per CPU: records read == events read while recording + entries left at the end,
    and every [LOST n EVENTS] line matches the overrun counter."""
    before, after = _readings(rec, phase)
    records: Dict[int, int] = {}
    lost_lines: Dict[int, int] = {}
    for r in rec.parse(phase):
        if r.style == LOST:
            lost_lines[r.cpu] = lost_lines.get(r.cpu, 0) + int(r.args["count"])
        else:
            records[r.cpu] = records.get(r.cpu, 0) + 1
    for cpu, now in after.items():
        then = before[cpu]
        assert now.read_events is not None and then.read_events is not None
        read = now.read_events - then.read_events
        assert records.get(cpu, 0) == read + now.entries, cpu
        overrun = now.overrun - then.overrun
        assert lost_lines.get(cpu, 0) == overrun, cpu
    delta = loss_delta(before, after)
    if rec.phase(phase).get("lossy"):
        assert sum(delta.values()) > 0
    else:
        assert sum(delta.values()) == 0
        assert not lost_lines


def test_read_stats_reads_an_instance_tree(tmp_path: Path) -> None:
    recs: List[Tuple[Recording, str]] = [p for p in PHASES if p[0].phase(p[1]).get("lossy")]
    assert recs
    rec, phase = recs[0]
    texts = rec.stats(phase)["after"]
    for cpu_dir, text in texts.items():
        os.makedirs(tmp_path / "per_cpu" / cpu_dir)
        (tmp_path / "per_cpu" / cpu_dir / "stats").write_text(text)
    (tmp_path / "per_cpu" / "not-a-cpu").mkdir()
    got = read_stats(str(tmp_path))
    assert got == {int(c[3:]): parse_stats(t, int(c[3:])) for c, t in texts.items()}
    before, after = _readings(rec, phase)
    one_cpu = {min(before): before[min(before)]}
    delta = loss_delta(one_cpu, after)
    assert set(delta) == set(after)
    for cpu, stats in after.items():
        base = before[cpu].lost if cpu in one_cpu else 0
        assert delta[cpu] == stats.lost - base
