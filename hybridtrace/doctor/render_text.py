"""doctor's report for people: checks, then the decision per kind, then fixes."""

from __future__ import annotations

from typing import List

from hybridtrace.doctor.report import Report
from hybridtrace.selector import Decision

_MARK = {True: "ok", False: "NO", None: "--"}


def _decision_lines(decision: Decision) -> List[str]:
    chosen = decision.chosen
    lines = [f"{decision.kind}: " + (f"{chosen.label}" if chosen else "NOTHING USABLE")]
    for cand in decision.candidates:
        mark = "*" if cand is chosen else ("+" if cand.usable else "-")
        state = "usable" if cand.usable else "not usable"
        lines.append(f"  {mark} {cand.label:<19} {state}")
        for reason in cand.reasons:
            lines.append(f"      {'x' if reason.blocking else 'i'} {reason.message}")
            if reason.blocking and reason.remedy:
                lines.append(f"        fix: {reason.remedy}")
    if chosen:
        lines.append("    fields: " + "; ".join(f"{k} {v}" for k, v in chosen.fields.items()))
    return lines


def render_text(report: Report) -> str:
    caps = report.caps
    width = max(len(c.title) for c in report.checks)
    out = [f"hybridtrace doctor: kernel {caps.kernel.release} ({caps.kernel.arch})", "", "checks"]
    for check in report.checks:
        out.append(f"  [{_MARK[check.ok]:>2}] {check.title:<{width}}  {check.value}")
        out.append(f"  {'':4} {'':<{width}}  ({check.why})")
    if caps.unchecked:
        out += ["", "could not check"] + [f"  - {item}" for item in caps.unchecked]
    out += ["", "decisions  (* chosen, + usable, - not usable; x blocker, i note)"]
    for decision in report.decisions.values():
        out += _decision_lines(decision)
    remedies = []
    for decision in report.decisions.values():
        if decision.chosen is None:
            remedies.append(decision.failure())
    if remedies:
        out += ["", "to make it work"] + [f"  - {r}" for r in remedies]
    out += ["", f"exit status {report.exit_status}: "
            + ("exec and open tracing both have a backend" if report.exit_status == 0
               else "some tracing kind has no usable backend")]
    return "\n".join(out) + "\n"
