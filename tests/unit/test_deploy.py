"""deploy/daemonset.yaml without a cluster: Kubernetes' own schemas (kubernetes-validate
ships them, strict: an unknown field fails) from the oldest to the newest version it
has, and what the manifest asks of hybridtrace held against the code: its arguments
parse, and its privileges are the ones doctor names as the remedy."""

from __future__ import annotations

import copy
import pathlib
import re
from typing import Any, Dict

import pytest

from hybridtrace.cli.main import build_parser
from hybridtrace.doctor.container import CAP_REMEDY

kubernetes_validate = pytest.importorskip("kubernetes_validate")
yaml = pytest.importorskip("yaml")

MANIFEST = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "daemonset.yaml"


def _manifest() -> Dict[str, Any]:
    with MANIFEST.open() as f:
        doc = yaml.safe_load(f)
    assert isinstance(doc, dict)
    return doc


def _versions() -> list:
    from kubernetes_validate.utils import all_versions  # type: ignore[import-untyped]

    found = sorted(all_versions(), key=lambda v: tuple(int(x) for x in v.split(".")))
    return [found[0], found[-1]]


@pytest.mark.parametrize("version", _versions())
def test_the_daemonset_is_valid_kubernetes(version: str) -> None:
    kubernetes_validate.validate(_manifest(), version, strict=True)


def test_the_schema_check_can_fail() -> None:
    """A misspelt field (strict) and a wrong type are refused: the check above means it."""
    wrong = copy.deepcopy(_manifest())
    ctr = wrong["spec"]["template"]["spec"]["containers"][0]
    ctr["securityContext"]["capabilites"] = ctr["securityContext"].pop("capabilities")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, kubernetes_validate.latest_version(), strict=True)
    wrong = copy.deepcopy(_manifest())
    wrong["spec"]["template"]["spec"]["hostPID"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, kubernetes_validate.latest_version(), strict=True)


def test_the_container_runs_a_hybridtrace_command_line() -> None:
    spec = _manifest()["spec"]["template"]["spec"]
    for ctr in spec["containers"]:
        args = build_parser().parse_args(ctr["args"])  # exits (SystemExit) if it would
        assert args.command == ctr["args"][0]


def test_the_privileges_are_the_ones_doctor_names() -> None:
    spec = _manifest()["spec"]["template"]["spec"]
    named = re.search(r"capabilities\.add \[([^]]*)\]", CAP_REMEDY)
    assert named is not None
    for ctr in spec["containers"]:
        sec = ctr["securityContext"]
        assert sec["capabilities"]["drop"] == ["ALL"]
        assert set(sec["capabilities"]["add"]) == {c.strip() for c in named.group(1).split(",")}
        assert sec.get("privileged") is not True and sec["allowPrivilegeEscalation"] is False
        mounts = {m["mountPath"]: m for m in ctr["volumeMounts"]}
        assert mounts["/sys/kernel/btf"]["readOnly"] is True  # ebpf-core's CO-RE
    # ftrace and BCC need the host's pids (requirements_common); ebpf-core works either way
    assert spec["hostPID"] is True
