"""Helpers for tests over the kernel trees in tests/fixtures/kernels."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterator, List

import pytest

from hybridtrace.capabilities import probe
from hybridtrace.capabilities.live import RecordedLive
from hybridtrace.capabilities.model import Capabilities

# Variables that make the selector look beyond the Capabilities value (BCC's
# borrowed headers): tests over recorded trees must not depend on them.
HOST_ENV = ("HYBRIDTRACE_BCC_HEADERS", "BCC_KERNEL_SOURCE")

TREES_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "kernels")


def tree_names() -> List[str]:
    return sorted(d for d in os.listdir(TREES_DIR)
                  if os.path.isfile(os.path.join(TREES_DIR, d, "live.json")))


def tree_root(name: str) -> str:
    return os.path.join(TREES_DIR, name, "root")


def tree_json(name: str, what: str) -> Dict[str, Any]:
    with open(os.path.join(TREES_DIR, name, what)) as f:
        data: Dict[str, Any] = json.load(f)
    return data


def probe_tree(name: str) -> Capabilities:
    return probe(tree_root(name), RecordedLive(tree_json(name, "live.json")))


def tree_file(name: str, machine_path: str) -> str:
    return os.path.join(tree_root(name), machine_path.lstrip("/"))


@pytest.fixture(autouse=True)
def hermetic_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Import into a test module to judge trees independently of this host's env."""
    for var in HOST_ENV:
        monkeypatch.delenv(var, raising=False)
    yield
