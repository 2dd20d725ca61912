"""The Markdown table of a run: one row per tracer x workload x rate."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

HEADER = ("tracer", "workload", "offered/s", "produced", "captured", "lost", "unaccounted",
          "argv/path ok", "throughput", "CPU s/100k", "peak RSS MB", "first event s")


def pct(value: Optional[float]) -> str:
    if value is None:
        return "-"
    text = f"{100 * value:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def num(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def rate(value: int) -> str:
    return "max" if value == 0 else f"{value:,}"


def cell(text: str) -> str:
    """Keep a reason string from breaking the table."""
    return text.replace("|", "\\|").replace("\n", " ")


def row(r: Dict[str, Any]) -> List[str]:
    head = [r["tracer"], r["workload"], rate(r["rate_offered"])]
    if r["status"] != "ok":  # the reason is listed under the table (it is long)
        return [*head, f"**{r['status']}**", *[""] * 8]
    if r["tracer"] == "untraced":
        return [*head, f"{r['produced']:,} ({r['achieved_rate']:,.0f}/s)", *["-"] * 8]
    return [
        *head,
        f"{r['produced']:,}",
        f"{r['captured']:,} ({pct(r['captured_share'])})",
        f"{r['lost_reported']:,}",
        f"{r['unaccounted']:,}",
        pct(r["correct_share"]),
        "-" if r["throughput_relative"] is None else f"{r['throughput_relative']:.2f}x",
        num(r["cpu_s_per_100k"]),
        num(r["peak_rss_kb"] / 1024, 1),
        num(r["first_event_s"]),
    ]


def render_table(runs: List[Dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in runs:
        lines.append("| " + " | ".join(row(r)) + " |")
    return "\n".join(lines) + "\n"


WORKLOADS = ("open-loop", "uring-open-loop", "exec-loop", "shell-loop")


def workload_tables(runs: List[Dict[str, Any]], title_suffix: str = "") -> List[str]:
    """A section per workload that ran: its heading, then its table."""
    parts: List[str] = []
    for workload in WORKLOADS:
        chosen = [r for r in runs if r["workload"] == workload]
        if chosen:
            parts += [f"## {workload}{title_suffix}\n", render_table(chosen)]
    return parts
