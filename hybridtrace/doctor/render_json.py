"""doctor --json: one document, schema hybridtrace/schemas/doctor.schema.json."""

from __future__ import annotations

import json
from typing import Any, Dict

from hybridtrace import __version__
from hybridtrace.backends.base import Assessment
from hybridtrace.doctor.report import Report
from hybridtrace.selector import Decision

DOCTOR_SCHEMA = "hybridtrace.doctor/2"


def assessment_to_dict(cand: Assessment) -> Dict[str, Any]:
    return {
        "backend": cand.backend,
        "tier": cand.tier,
        "label": cand.label,
        "usable": cand.usable,
        "reasons": [
            {"code": r.code, "message": r.message, "blocking": r.blocking, "remedy": r.remedy}
            for r in cand.reasons
        ],
        "fields": dict(cand.fields),
    }


def decision_to_dict(decision: Decision) -> Dict[str, Any]:
    chosen = decision.chosen
    return {
        "choice": decision.choice,
        "chosen": chosen.label if chosen else None,
        "backend": chosen.backend if chosen else None,
        "tier": chosen.tier if chosen else None,
        "why": decision.why,
        "candidates": [assessment_to_dict(c) for c in decision.candidates],
    }


def report_to_dict(report: Report) -> Dict[str, Any]:
    return {
        "schema": DOCTOR_SCHEMA,
        "hybridtrace_version": __version__,
        "root": report.caps.root,
        "checks": [
            {"id": c.id, "title": c.title, "value": c.value, "ok": c.ok, "why": c.why,
             "data": c.data}
            for c in report.checks
        ],
        "decisions": {kind: decision_to_dict(d) for kind, d in report.decisions.items()},
        "unchecked": list(report.caps.unchecked),
        "exit_status": report.exit_status,
    }


def render_json(report: Report) -> str:
    return json.dumps(report_to_dict(report), indent=2, sort_keys=False)
