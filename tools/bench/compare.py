"""Does a second run of the bench reproduce the first's shape? (pure: two results documents in)

Shape: the same rows (tracer x workload x rate, with the same status, so a tracer
that cannot run here cannot run in both), the same met/missed pattern per target,
the same order of tracers by lossless open rate, and nothing of ours unaccounted.
Numbers: per row, captured % and argv/path ok % within a stated tolerance, and
lossless (nothing missed or lost) in both runs or in neither. Throughput and CPU
are shown side by side but not judged: on a shared 2-CPU machine they follow
whatever else runs.
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from tools.bench.table import cell, num, pct, rate
from tools.bench.targets import Verdict, lossless_rate, mark, verdicts

Run = Dict[str, Any]
Key = Tuple[str, str, int, int]  # tracer, workload, offered rate (0 = max), occurrence

PACED_POINTS = 2.0  # percentage points allowed on paced rows
FLAT_POINTS = 10.0  # on flat-out rows, where loss depends on the CPU share a tracer gets
TOLERANCE = (f"captured % and argv/path ok % within {PACED_POINTS:g} points on paced rows"
             f" and {FLAT_POINTS:g} points on flat-out rows; lossless (nothing missed or"
             " reported lost) in both runs or in neither; unaccounted exactly 0 in both for"
             " hybridtrace tracers, and zero in both or non-zero in both for the others")


class Row(NamedTuple):
    key: Key
    first: Run
    second: Run
    problems: List[str]  # empty: within tolerance


class Comparison(NamedTuple):
    only_first: List[Key]
    only_second: List[Key]
    status_changed: List[Tuple[Key, str, str]]
    targets: List[Tuple[Verdict, Verdict]]
    flipped: List[Tuple[Verdict, Verdict]]
    order_first: List[List[Tuple[str, float]]]
    order_second: List[List[Tuple[str, float]]]
    unaccounted: List[str]  # rows of ours with unaccounted events, in either run
    rows: List[Row]  # rows in both runs

    @property
    def same_order(self) -> bool:
        return [[n for n, _ in g] for g in self.order_first] == \
            [[n for n, _ in g] for g in self.order_second]

    @property
    def shape_reproduced(self) -> bool:
        return not (self.only_first or self.only_second or self.status_changed
                    or self.flipped or self.unaccounted) and self.same_order

    @property
    def judged(self) -> List[Row]:
        return [r for r in self.rows if _traced_ok(r.first) and _traced_ok(r.second)]

    @property
    def outside(self) -> List[Row]:
        return [r for r in self.rows if r.problems]


def _traced_ok(r: Run) -> bool:
    return bool(r["status"] == "ok" and r["tracer"] != "untraced")


def keyed(runs: List[Run]) -> Dict[Key, Run]:
    """Rows by key, in run order; a repeated row (flat-out untraced) gets occurrence 1, 2..."""
    found: Dict[Key, Run] = {}
    seen: Dict[Tuple[str, str, int], int] = {}
    for r in runs:
        base = (r["tracer"], r["workload"], r["rate_offered"])
        n = seen.get(base, 0)
        seen[base] = n + 1
        found[(base[0], base[1], base[2], n)] = r
    return found


def label(key: Key) -> str:
    again = f" (#{key[3] + 1})" if key[3] else ""
    return f"{key[0]} {key[1]}@{rate(key[2])}{again}"


def ranking(runs: List[Run]) -> List[List[Tuple[str, float]]]:
    """Tracers by lossless open rate, highest first; equal rates share a place."""
    names: List[str] = []
    for r in runs:
        if r["tracer"] != "untraced" and r["workload"] == "open-loop" and r["tracer"] not in names:
            names.append(r["tracer"])
    rated = [(n, v) for n in names for v in [lossless_rate(runs, n)] if v is not None]
    groups: List[List[Tuple[str, float]]] = []
    for name, value in sorted(rated, key=lambda nv: (-nv[1], nv[0])):
        if groups and groups[-1][0][1] == value:
            groups[-1].append((name, value))
        else:
            groups.append([(name, value)])
    return groups


def _lossless(r: Run) -> bool:
    return bool(r["missed"] == 0 and r["lost_reported"] == 0)


def row_problems(a: Run, b: Run) -> List[str]:
    """Why two runs of one row differ beyond the tolerance (nothing for untraced/not-run rows)."""
    if not (_traced_ok(a) and _traced_ok(b)):
        return []
    points = FLAT_POINTS if a["rate_offered"] == 0 else PACED_POINTS
    problems = []
    for field, name in (("captured_share", "captured"), ("correct_share", "argv/path ok")):
        x, y = a[field], b[field]  # None: nothing to judge (no event had the field)
        if (x is None) != (y is None) or (x is not None and abs(100 * x - 100 * y) > points):
            problems.append(f"{name} {pct(x)} vs {pct(y)}")
    if _lossless(a) != _lossless(b):
        problems.append("lossless in the " + ("first" if _lossless(a) else "second")
                        + " run only")
    ua, ub = a["unaccounted"], b["unaccounted"]
    if (a["family"] == "hybridtrace" and (ua or ub)) or (bool(ua) != bool(ub)):
        problems.append(f"unaccounted {ua:,} vs {ub:,}")
    return problems


def compare(first: List[Run], second: List[Run]) -> Comparison:
    a, b = keyed(first), keyed(second)
    both = [k for k in a if k in b]
    changed = [(k, a[k]["status"], b[k]["status"]) for k in both
               if a[k]["status"] != b[k]["status"]]
    pairs = list(zip(verdicts(first), verdicts(second)))
    flipped = [(x, y) for x, y in pairs if x.key != y.key or x.met != y.met]
    unaccounted = [f"{label(k)}: {r['unaccounted']:,} in the {which} run"
                   for which, runs in (("first", a), ("second", b)) for k, r in runs.items()
                   if _traced_ok(r) and r["family"] == "hybridtrace" and r["unaccounted"]]
    return Comparison(
        only_first=[k for k in a if k not in b],
        only_second=[k for k in b if k not in a],
        status_changed=changed,
        targets=pairs,
        flipped=flipped,
        order_first=ranking(first),
        order_second=ranking(second),
        unaccounted=unaccounted,
        rows=[Row(k, a[k], b[k], row_problems(a[k], b[k])) for k in both],
    )


def _order(groups: List[List[Tuple[str, float]]]) -> str:
    if not groups:
        return "no tracer ran the open loop"
    return " > ".join(" = ".join(n for n, _ in g) + f" ({g[0][1]:,.0f}/s)" for g in groups)


def _pair(a: str, b: str) -> str:
    return a if a == b else f"{a} / {b}"


def _cells(r: Run) -> List[str]:
    """captured, argv/path ok, unaccounted, throughput, CPU of one run's row."""
    if r["status"] != "ok":
        return ["", "", "", "", ""]
    if r["tracer"] == "untraced":
        return ["-", "-", "-", f"{r['achieved_rate']:,.0f}/s", "-"]
    rel = r["throughput_relative"]
    return [pct(r["captured_share"]), pct(r["correct_share"]), f"{r['unaccounted']:,}",
            "-" if rel is None else f"{rel:.2f}x", num(r["cpu_s_per_100k"])]


def side_by_side(c: Comparison) -> str:
    head = ("tracer", "workload", "offered/s", "status", "captured", "argv/path ok",
            "unaccounted", "throughput (untraced: rate)", "CPU s/100k", "within tolerance")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in c.rows:
        pairs = [_pair(x, y) for x, y in zip(_cells(row.first), _cells(row.second))]
        verdict = ("-" if not (_traced_ok(row.first) and _traced_ok(row.second))
                   else ("**no**: " + "; ".join(row.problems)) if row.problems else "yes")
        lines.append("| " + " | ".join(cell(x) for x in [
            row.key[0] + (f" #{row.key[3] + 1}" if row.key[3] else ""), row.key[1],
            rate(row.key[2]), _pair(row.first["status"], row.second["status"]), *pairs,
            verdict]) + " |")
    return "\n".join(lines) + "\n"


def _run_line(doc: Dict[str, Any]) -> str:
    return (f"`{doc.get('command', '?')}`, {doc.get('started', '?')} to"
            f" {doc.get('finished', '?')}, commit"
            f" {doc.get('machine', {}).get('hybridtrace_commit', '?')}, load average"
            f" {doc.get('machine', {}).get('loadavg_start', '?')} at start")


def render_section(first: Dict[str, Any], second: Dict[str, Any], link: str) -> str:
    """The README's "Reproduction" section: ``link`` is the second run's README, relative."""
    c = compare(first["runs"], second["runs"])
    notes = []
    if second.get("reproduces") != first.get("started"):
        notes.append(f"**Stale**: the second run repeated the run started"
                     f" {second.get('reproduces', '(unknown)')}, not this one; run"
                     " `--reproduce` again to check this run.")
    if second.get("command") != first.get("command"):
        notes.append("**Different commands**: the two runs did not measure the same plan.")
    commits = [d.get("machine", {}).get("hybridtrace_commit") for d in (first, second)]
    if commits[0] != commits[1]:
        notes.append(f"The runs measured different commits ({commits[0]}, {commits[1]}).")
    if first.get("quick") or second.get("quick"):
        notes.append("Quick smoke runs: short and noisy.")
    shape = "**reproduced**" if c.shape_reproduced else "**not reproduced**"
    bullets = [
        "- rows (tracer x workload x rate): "
        + (f"the same {len(c.rows)} in both" if not (c.only_first or c.only_second) else
           "; ".join(x for x in (
               "only in the first: " + ", ".join(map(label, c.only_first))
               if c.only_first else "",
               "only in the second: " + ", ".join(map(label, c.only_second))
               if c.only_second else "") if x)),
        "- status per row (ok, cannot run, ...): "
        + ("the same in both ({} not ok)".format(
            sum(r.first["status"] != "ok" for r in c.rows)) if not c.status_changed else
           "changed: " + ", ".join(f"{label(k)} {x} -> {y}" for k, x, y in c.status_changed)),
        "- targets: " + (f"the same met/missed pattern for all {len(c.targets)}"
                         if not c.flipped else
                         f"{len(c.flipped)} of {len(c.targets)} changed:"),
    ]
    bullets += [f"  - first: {mark(x.met)}: {x.text}; second: {mark(y.met)}: {y.text}"
                for x, y in c.flipped]
    bullets += [
        "- order of tracers by lossless open rate: "
        + ("the same" if c.same_order else "**differs**")
        + f"; first: {_order(c.order_first)}; second: {_order(c.order_second)}",
        "- unaccounted events of ours: " + ("0 in every row of both runs" if not c.unaccounted
                                            else "; ".join(c.unaccounted)),
        "- numbers outside tolerance: " + ("; ".join(
            f"{label(r.key)} ({', '.join(r.problems)})" for r in c.outside)
            if c.outside else "none"),
    ]
    parts = [
        "## Reproduction\n",
        f"Second run: [{link}]({link}): {_run_line(second)}.\n",
        f"First run (this page): {_run_line(first)}.\n",
        *[n + "\n" for n in notes],
        f"Shape of the table {shape} (same rows with the same status, same met/missed per"
        " target, same order of tracers by lossless open rate, nothing of ours"
        f" unaccounted); numbers: {len(c.judged) - len(c.outside)} of {len(c.judged)}"
        f" traced rows within tolerance ({TOLERANCE}). Throughput and CPU are shown, not"
        " judged.\n",
        "\n".join(bullets) + "\n",
        "Each cell shows one value when both runs agree exactly, else first / second.\n",
        side_by_side(c),
    ]
    return "\n".join(parts)


def check(first: Dict[str, Any], second: Dict[str, Any]) -> Optional[str]:
    """A one-line problem if a document cannot be compared (hand-edited or truncated JSON)."""
    for name, doc in (("first", first), ("second", second)):
        runs = doc.get("runs") if isinstance(doc, dict) else None
        if not isinstance(runs, list) or not all(
                isinstance(r, dict) and {"tracer", "workload", "rate_offered", "status"} <= set(r)
                for r in runs):
            return f"the {name} run's results have no well-formed runs list"
    return None
