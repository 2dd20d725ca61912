"""Does doctor's judgement of a backend match what really happened?

Three kinds of evidence per backend: doctor's "usable" (for exec and open),
the integration tests for that backend (which skip what the selector
refuses), and force_open (which opens the backend regardless and reports
whether it traced). "not usable" must meet a real failure to open; "usable"
must meet passing tests and a traced event.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional


def doctor_usable(doctor: Optional[Dict[str, Any]], label: str, kind: str) -> Optional[bool]:
    if not doctor:
        return None
    for cand in doctor.get("decisions", {}).get(kind, {}).get("candidates", []):
        if cand.get("label") == label:
            return bool(cand.get("usable"))
    return None


def doctor_choice(doctor: Optional[Dict[str, Any]], kind: str) -> Optional[str]:
    if not doctor:
        return None
    chosen = doctor.get("decisions", {}).get(kind, {}).get("chosen")
    return str(chosen) if chosen else "none"


def blocking_reasons(doctor: Optional[Dict[str, Any]], label: str) -> List[str]:
    for kind in ("exec", "open"):
        for cand in (doctor or {}).get("decisions", {}).get(kind, {}).get("candidates", []):
            if cand.get("label") == label:
                return [r["code"] for r in cand.get("reasons", []) if r.get("blocking")]
    return []


def judge(result: Dict[str, Any], label: str) -> Dict[str, Any]:
    """One backend on one kernel x variant: evidence and whether it agrees."""
    doctor = result.get("doctor")
    usable = {k: doctor_usable(doctor, label, k) for k in ("exec", "open")}
    forced = (result.get("force_open") or {}).get("results", {}).get(label, {})
    traced = {k: (forced.get(k) or {}).get("outcome") for k in ("exec", "open")}
    group = result.get("groups", {}).get(label, {"pass": 0, "fail": 0, "skip": 0})
    problems: List[str] = []
    for kind in ("exec", "open"):
        if usable[kind] is None or traced[kind] is None:
            continue
        if usable[kind] and traced[kind] != "traced":
            problems.append(f"doctor: usable for {kind}, but forced open: {traced[kind]}")
        if not usable[kind] and traced[kind] == "traced":
            problems.append(f"doctor: not usable for {kind}, but it traced when forced")
    if any(usable.values()) and group["fail"]:
        problems.append(f"doctor: usable, but {group['fail']} test(s) failed")
    if any(usable.values()) and group["skip"] and not group["pass"]:
        problems.append("doctor: usable, but every test skipped")
    notes: List[str] = []
    if not any(usable.values()) and group["pass"]:
        notes.append(f"{group['pass']} test(s) passed under their own setup (e.g. borrowed "
                     "headers) although doctor says not usable as this system is configured")
    if None in usable.values():
        agree: Optional[bool] = None
    elif None in traced.values() and not (group["pass"] or group["fail"]):
        agree = None
    else:
        agree = not problems
    return {"doctor_usable": usable, "forced": traced, "tests": group, "agree": agree,
            "problems": problems, "notes": notes, "blocking": blocking_reasons(doctor, label)}
