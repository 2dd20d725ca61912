"""Turn pytest's JUnit XML into pass/fail/skip counts per backend label."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any, Dict, List, Optional

from hybridtrace.vocabulary import CORE_ATTACH_MODES, FTRACE_TIERS

# ebpf-core's attach modes are each their own candidate (and column): classic
# tracepoints (tracefs ids), raw tracepoints by BTF name (tp_btf, no tracefs) and
# raw tracepoints without BTF (raw_tp).
EBPF_CORE = "ebpf-core"
EBPF_ATTACH = list(CORE_ATTACH_MODES)
LABELS = [*(f"{EBPF_CORE}/{mode}" for mode in EBPF_ATTACH), "ebpf-bcc", "ftrace/kprobe",
          "ftrace/eprobe", "ftrace/uprobe", "ftrace/tracepoint"]
TIERS = list(FTRACE_TIERS)
# Our execsnoop/opensnoop beside BCC's own tools (not a backend of ours: not a column).
BCC_TOOLS = "bcc-tools"
# test_least_privilege asserts doctor's choice of tp_btf and traces with it.
MODULES = {"test_ebpf_core": EBPF_CORE, "test_ebpf_bcc": "ebpf-bcc", "test_ftrace": "ftrace",
           "test_least_privilege": f"{EBPF_CORE}/tp_btf", "test_ebpf_raw_tp": f"{EBPF_CORE}/raw_tp",
           "test_cli_vs_bcc": BCC_TOOLS}
GENERAL = "general"


def label_of(classname: str, name: str) -> str:
    """The backend a test exercises: from its parameter, else from its module.

    A bare ``ebpf-core`` (a test that lets ebpf-core pick its attach mode) stays
    ``ebpf-core``; verdict.py counts it for the mode doctor picks."""
    module = classname.rsplit(".", 1)[-1]
    match = re.search(r"\[(.*)\]$", name)
    param = match.group(1) if match else ""
    for label in [*LABELS, EBPF_CORE]:
        if re.search(rf"(^|[-_\[]){re.escape(label)}($|[-_\]])", param):
            return label
    owner = MODULES.get(module)
    if owner in ("ftrace", EBPF_CORE):
        for tier in TIERS if owner == "ftrace" else EBPF_ATTACH:
            if re.search(rf"(^|[-_]){tier}($|[-_])", param):
                return f"{owner}/{tier}"
    return owner or GENERAL


def outcome(case: ET.Element) -> Dict[str, Optional[str]]:
    for kind, word in (("failure", "fail"), ("error", "fail"), ("skipped", "skip")):
        found = case.find(kind)
        if found is not None:
            message = (found.get("message") or "").strip().splitlines()
            return {"outcome": word, "message": message[0][:300] if message else None}
    return {"outcome": "pass", "message": None}


def parse(path: str) -> List[Dict[str, Optional[str]]]:
    """Every test case: id, backend label, outcome and its first message line."""
    cases: List[Dict[str, Optional[str]]] = []
    for case in ET.parse(path).getroot().iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        cases.append({"id": f"{classname}::{name}", "label": label_of(classname, name),
                      **outcome(case)})
    return cases


VERBOSE = re.compile(r"^(\S+\.py)::(\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)")


def parse_verbose(text: str) -> List[Dict[str, Optional[str]]]:
    """Test cases from pytest -v progress lines (when no JUnit file was written)."""
    words = {"PASSED": "pass", "XPASS": "pass", "FAILED": "fail", "ERROR": "fail",
             "SKIPPED": "skip", "XFAIL": "skip"}
    cases: List[Dict[str, Optional[str]]] = []
    for line in text.splitlines():
        m = VERBOSE.match(line)
        if m:
            module = m.group(1)[: -len(".py")].replace("/", ".")
            cases.append({"id": f"{module}::{m.group(2)}", "label": label_of(module, m.group(2)),
                          "outcome": words[m.group(3)], "message": None})
    return cases


def summarise(cases: List[Dict[str, Optional[str]]]) -> Dict[str, Dict[str, Any]]:
    """Per label: counts, and the failing ids / first skip reason."""
    groups: Dict[str, Dict[str, Any]] = {}
    for case in cases:
        label = case["label"] or GENERAL
        group = groups.setdefault(label, {"pass": 0, "fail": 0, "skip": 0, "failed": [],
                                          "skip_reason": None})
        word = case["outcome"] or "pass"
        group[word] += 1
        if word == "fail":
            group["failed"].append(case["id"])
            group.setdefault("failures", []).append({"id": case["id"],
                                                     "message": case["message"]})
        elif word == "skip" and group["skip_reason"] is None:
            group["skip_reason"] = case["message"]
    return groups
