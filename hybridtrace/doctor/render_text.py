"""doctor's report for people: checks, then the decision per kind, then fixes."""

from __future__ import annotations

from typing import Dict, List

from hybridtrace.doctor.report import (
    Report,
    ftrace_decoder,
    ftrace_open_calls,
    json_writer,
    unchecked_meaning,
)
from hybridtrace.selector import Decision
from hybridtrace.vocabulary import FIELD_IO_URING, FIELD_IO_URING_TEXT_READER

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
        if cand.usable:  # what forcing it would give, not only the chosen one
            lines.append("      fields: " + "; ".join(f"{k} {v}" for k, v in cand.fields.items()))
    return lines


def _remedies(report: Report) -> Dict[str, List[str]]:
    """Each distinct fix for a kind with no backend, and which candidates it unblocks."""
    fixes: Dict[str, List[str]] = {}
    for decision in report.decisions.values():
        if decision.chosen is not None:
            continue
        for cand in filter(decision.allows, decision.candidates):
            for reason in cand.reasons:
                if reason.blocking and reason.remedy:
                    labels = fixes.setdefault(reason.remedy, [])
                    if cand.label not in labels:
                        labels.append(cand.label)
    return fixes


def render_text(report: Report) -> str:
    caps = report.caps
    width = max(len(c.title) for c in report.checks)
    out = [f"hybridtrace doctor: kernel {caps.kernel.release} ({caps.kernel.arch})", "", "checks"]
    for check in report.checks:
        out.append(f"  [{_MARK[check.ok]:>2}] {check.title:<{width}}  {check.value}")
        out.append(f"  {'':4} {'':<{width}}  ({check.why})")
        out += [f"  {'':4} {'':<{width}}  fix: {fix}" for fix in check.fixes]
    if caps.unchecked:
        out += ["", "could not check"]
        for item in caps.unchecked:
            meaning = unchecked_meaning(item)
            out += [f"  - {item}"] + ([f"      so: {meaning}"] if meaning else [])
    out += ["", "decisions  (* chosen, + usable, - not usable; x blocker, i note)"]
    for decision in report.decisions.values():
        out += _decision_lines(decision)
    opens = report.decisions.get("open")
    if opens is not None:
        out += ["", "io_uring opens  (made with no open syscall; per open candidate)"]
        for cand in opens.candidates:
            claim = cand.fields.get(FIELD_IO_URING, "none: not assessed")
            out.append(f"  {cand.label:<19} {claim}")
            text_reader = cand.fields.get(FIELD_IO_URING_TEXT_READER)
            if text_reader is not None and text_reader != cand.fields.get(FIELD_IO_URING):
                out.append(f"  {'  text reader':<19} {text_reader}")
    out += ["", f"ftrace page decoder: {ftrace_decoder()}",
            f"ftrace open calls: {ftrace_open_calls()}", f"JSON writer: {json_writer()}"]
    remedies = _remedies(report)
    if remedies:
        out += ["", "to make it work"]
        out += [f"  - {fix}  [needed by {', '.join(labels)}]" for fix, labels in remedies.items()]
    out += ["", f"exit status {report.exit_status}: "
            + ("exec and open tracing both have a backend" if report.exit_status == 0
               else "some tracing kind has no usable backend")]
    return "\n".join(out) + "\n"
