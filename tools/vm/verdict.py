"""Does doctor's judgement of a backend match what really happened?

Three kinds of evidence per backend: doctor's "usable" (for exec and open),
the integration tests for that backend (which skip what the selector
refuses), and force_open (which opens the backend regardless and reports
whether it traced). "not usable" must meet a real failure to open; "usable"
must meet passing tests and a traced event.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from tools.vm.junit import EBPF_CORE


def _candidates(doctor: Optional[Dict[str, Any]], kind: str) -> List[Dict[str, Any]]:
    return list((doctor or {}).get("decisions", {}).get(kind, {}).get("candidates", []))


def legacy_ebpf_core(result: Dict[str, Any]) -> bool:
    """A row from before ebpf-core had two attach modes (doctor schema 1): its one
    ebpf-core candidate attached classic tracepoints, i.e. ebpf-core/tracepoint."""
    return any(c.get("label") == EBPF_CORE for c in _candidates(result.get("doctor"), "exec"))


def source_label(result: Dict[str, Any], label: str) -> Optional[str]:
    """The label ``label``'s evidence has in this row (None: the row has none)."""
    if legacy_ebpf_core(result) and label.startswith(EBPF_CORE + "/"):
        return EBPF_CORE if label == f"{EBPF_CORE}/tracepoint" else None
    return label


def ebpf_core_mode(doctor: Optional[Dict[str, Any]]) -> str:
    """The attach mode ``--backend ebpf-core`` gets here (the first usable one for exec):
    the column where tests that leave the mode to ebpf-core are counted."""
    modes = [c for c in _candidates(doctor, "exec")
             if str(c.get("label", "")).startswith(EBPF_CORE + "/")]
    usable = [c for c in modes if c.get("usable")]
    chosen = (usable or modes or [{"label": f"{EBPF_CORE}/tracepoint"}])[0]
    return str(chosen["label"])


def tests_of(result: Dict[str, Any], label: str) -> Dict[str, Any]:
    """The test group of ``label``, with ebpf-core's mode-less tests in the mode doctor picks."""
    empty: Dict[str, Any] = {"pass": 0, "fail": 0, "skip": 0, "failed": [], "skip_reason": None}
    groups = result.get("groups", {})
    source = source_label(result, label)
    if source is None:
        return empty
    parts = [groups.get(source)]
    if source != EBPF_CORE and label == ebpf_core_mode(result.get("doctor")):
        parts.append(groups.get(EBPF_CORE))
    merged = dict(empty)
    for part in parts:
        if not part:
            continue
        for key in ("pass", "fail", "skip"):
            merged[key] += part.get(key, 0)
        merged["failed"] = merged["failed"] + list(part.get("failed", []))
        if part.get("failures"):
            merged["failures"] = list(merged.get("failures", [])) + list(part["failures"])
        merged["skip_reason"] = merged["skip_reason"] or part.get("skip_reason")
    return merged


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
    source = source_label(result, label)
    if source is None:  # e.g. ebpf-core/tp_btf in a row run before it existed
        return {"doctor_usable": {"exec": None, "open": None},
                "forced": {"exec": None, "open": None}, "tests": tests_of(result, label),
                "agree": None, "problems": [], "notes": [], "blocking": [], "absent": True}
    usable = {k: doctor_usable(doctor, source, k) for k in ("exec", "open")}
    forced = (result.get("force_open") or {}).get("results", {}).get(source, {})
    traced = {k: (forced.get(k) or {}).get("outcome") for k in ("exec", "open")}
    group = tests_of(result, label)
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
            "problems": problems, "notes": notes, "blocking": blocking_reasons(doctor, source),
            "source": source}
