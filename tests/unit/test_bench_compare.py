"""The bench's reproduction check, from the published docs/benchmarks/results.json and
copies of it changed here (the real numbers are never asserted, only how changes show)."""

from __future__ import annotations

import copy
import json
import os
import re
from typing import Any, Callable, Dict, List

import pytest

from tools.bench import run as bench_run
from tools.bench.compare import FLAT_POINTS, PACED_POINTS, compare, keyed, ranking, side_by_side
from tools.bench.report import render

RESULTS = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "docs", "benchmarks",
                       "results.json")
Run = Dict[str, Any]


def load() -> Dict[str, Any]:
    with open(RESULTS) as f:
        return json.load(f)  # type: ignore[no-any-return]


def pick(doc: Dict[str, Any], test: Callable[[Run], bool]) -> Run:
    found = [r for r in doc["runs"] if r["status"] == "ok" and r["tracer"] != "untraced"
             and test(r)]
    if not found:
        pytest.skip("the published run has no row of this kind")
    row: Run = found[0]
    return row


def cells(line: str) -> int:
    return len(re.split(r"(?<!\\)\|", line.strip())[1:-1])


def test_a_run_reproduces_itself() -> None:
    first = load()
    c = compare(first["runs"], copy.deepcopy(first)["runs"])
    assert c.shape_reproduced and c.same_order and not c.outside
    assert len(c.rows) == len(first["runs"]) and not c.only_first and not c.only_second
    assert len(c.targets) == 19 and not c.flipped
    table = side_by_side(c).splitlines()
    assert len(table) == 2 + len(first["runs"])
    assert all(cells(line) == cells(table[0]) for line in table)
    assert not any(" / " in line for line in table[2:])  # one value per cell when equal


def test_repeated_rows_are_kept_apart() -> None:
    runs = load()["runs"]
    keys = list(keyed(runs))
    assert len(keys) == len(runs)
    again = [k for k in keys if k[3] > 0]
    for k in again:
        assert (k[0], k[1], k[2], k[3] - 1) in keys


@pytest.mark.parametrize("paced", [True, False])
def test_numbers_within_and_beyond_tolerance(paced: bool) -> None:
    first = load()
    row = pick(first, lambda r: (r["rate_offered"] != 0) == paced
               and 0.5 <= r["captured_share"] <= 1.0)
    points = PACED_POINTS if paced else FLAT_POINTS
    key = next(k for k, r in keyed(first["runs"]).items() if r is row)
    for shift, inside in ((0.8 * points, True), (1.5 * points, False)):
        second = copy.deepcopy(first)
        keyed(second["runs"])[key]["captured_share"] -= shift / 100
        c = compare(first["runs"], second["runs"])
        assert c.shape_reproduced  # a number moved, not the shape
        outside = [r.key for r in c.outside]
        assert outside == ([] if inside else [key])
        if not inside:
            assert "captured" in c.outside[0].problems[0]


def test_unaccounted_event_of_ours_flips_the_target_and_the_shape() -> None:
    first = load()
    row = pick(first, lambda r: r["family"] == "hybridtrace" and r["unaccounted"] == 0)
    second = copy.deepcopy(first)
    key = next(k for k, r in keyed(first["runs"]).items() if r is row)
    keyed(second["runs"])[key]["unaccounted"] = 5
    c = compare(first["runs"], second["runs"])
    assert not c.shape_reproduced
    assert any(f"{key[0]} {key[1]}" in u and "second run" in u for u in c.unaccounted)
    accounted = [(x, y) for x, y in c.targets if x.key == "accounted"]
    assert len(accounted) == 1
    x, y = accounted[0]
    assert y.met is False and "unaccounted" in y.text
    assert ((x, y) in c.flipped) == (x.met is not False)
    assert any(r.key == key and "unaccounted 0 vs 5" in r.problems for r in c.outside)


def test_missing_row_and_changed_status_are_listed() -> None:
    first = load()
    second = copy.deepcopy(first)
    dropped = second["runs"].pop()
    row = pick(second, lambda r: True)
    row.update(status="cannot run", reason="refused")
    c = compare(first["runs"], second["runs"])
    assert not c.shape_reproduced
    assert c.only_first == [k for k, r in keyed(first["runs"]).items()
                            if r["tracer"] == dropped["tracer"]
                            and r["workload"] == dropped["workload"]
                            and r["rate_offered"] == dropped["rate_offered"]][-1:]
    assert [(k[0], x, y) for k, x, y in c.status_changed] == [(row["tracer"], "ok",
                                                                "cannot run")]
    text = render(first, second)
    assert "only in the first: " + dropped["tracer"] in text
    assert "ok / cannot run" in text


def test_a_tracer_losing_everywhere_changes_the_order_and_its_targets() -> None:
    first = load()
    order = ranking(first["runs"])
    if sum(len(g) for g in order) < 2:
        pytest.skip("fewer than two tracers ran the open loop")
    top = order[0][0][0]
    second = copy.deepcopy(first)
    for r in second["runs"]:
        if r["tracer"] == top and r["workload"] == "open-loop" and r["status"] == "ok":
            r.update(missed=1, lost_reported=1)
    c = compare(first["runs"], second["runs"])
    assert not c.same_order and not c.shape_reproduced
    assert c.order_second[-1] == [(top, 0.0)]
    text = render(first, second)
    assert "lossless open rate: **differs**" in text
    for x, y in c.flipped:  # listed with both values
        assert f"first: {'met' if x.met else '**missed**'}: {x.text}" in text or x.met is None
        assert y.text in text


def test_hostile_tracer_name_keeps_the_table_whole() -> None:
    first = load()
    name = pick(first, lambda r: True)["tracer"]
    for r in first["runs"]:
        if r["tracer"] == name:
            r["tracer"] = "evil | name\n| x"
    table = side_by_side(compare(first["runs"], copy.deepcopy(first)["runs"])).splitlines()
    assert len(table) == 2 + len(first["runs"])
    assert all(cells(line) == cells(table[0]) for line in table)


def test_render_only_rewrites_both_pages(tmp_path: Any) -> None:
    first = load()
    second = copy.deepcopy(first)
    second["reproduces"] = first["started"]
    os.makedirs(tmp_path / "second")
    (tmp_path / "second" / "results.json").write_text(json.dumps(second))
    assert bench_run.main(["--render-only", RESULTS, "--out", str(tmp_path)]) == 0
    page = (tmp_path / "README.md").read_text()
    assert "## Reproduction" in page and "[second/README.md](second/README.md)" in page
    assert "Shape of the table **reproduced**" in page and "Stale" not in page
    assert "../README.md#reproduction" in (tmp_path / "second" / "README.md").read_text()
    second["reproduces"] = "2000-01-01T00:00:00+00:00"  # made for another first run
    (tmp_path / "second" / "results.json").write_text(json.dumps(second))
    assert bench_run.main(["--render-only", RESULTS, "--out", str(tmp_path)]) == 0
    assert "**Stale**" in (tmp_path / "README.md").read_text()


def test_render_only_without_second_run_has_no_section(tmp_path: Any) -> None:
    assert bench_run.main(["--render-only", RESULTS, "--out", str(tmp_path)]) == 0
    assert "## Reproduction" not in (tmp_path / "README.md").read_text()


@pytest.mark.parametrize("bad", ["{", '{"runs": [{"tracer": "x"}]}'])
def test_bad_second_run_is_one_line(tmp_path: Any, capsys: Any, bad: str) -> None:
    os.makedirs(tmp_path / "second")
    (tmp_path / "second" / "results.json").write_text(bad)
    assert bench_run.main(["--render-only", RESULTS, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: ")


def test_reproduce_repeats_the_first_runs_options(tmp_path: Any, capsys: Any) -> None:
    given: List[str] = ["--reproduce", "--out", str(tmp_path)]
    assert bench_run._first_run(str(tmp_path), given) == 2  # no first run yet
    doc = load()
    doc["command"] = "python -m tools.bench --quick --tracers 'ebpf-core,libbpf tools'"
    (tmp_path / "results.json").write_text(json.dumps(doc))
    found = bench_run._first_run(str(tmp_path), given)
    assert not isinstance(found, int)
    assert found[1] == ["--quick", "--tracers", "ebpf-core,libbpf tools"]
    assert bench_run._first_run(str(tmp_path), [*given, "--quick"]) == 2
    doc["reproduces"] = doc["started"]  # a second run cannot be reproduced in turn
    (tmp_path / "results.json").write_text(json.dumps(doc))
    assert bench_run._first_run(str(tmp_path), given) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("bench: ") for line in err)
