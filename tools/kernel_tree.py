"""Kernel trees on disk: tests/fixtures/kernels/<name>/{root/, live.json, doctor.json}.

Shared by record_kernel_tree.py (record a live kernel) and
derive_kernel_trees.py (variants of a recorded tree). Run directly, it
rewrites each tree's doctor.json after doctor's report changed:

    python tools/kernel_tree.py [--out tests/fixtures/kernels] [NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hybridtrace.capabilities import probe
from hybridtrace.capabilities.live import RecordedLive
from hybridtrace.capabilities.model import Capabilities
from hybridtrace.doctor import build_report
from hybridtrace.doctor.render_json import report_to_dict


def load_live(tree_dir: str) -> Dict[str, Any]:
    with open(os.path.join(tree_dir, "live.json")) as f:
        data: Dict[str, Any] = json.load(f)
    return data


def write_json(path: str, data: Any) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")


def doctor_dict(caps: Capabilities) -> Dict[str, Any]:
    """doctor --json as recorded: the root is where the tree came from, not a path here."""
    data = report_to_dict(build_report(caps))
    data["root"] = "/"
    return data


def replay(tree_dir: str) -> Capabilities:
    """probe() over a recorded tree with its recorded live results."""
    return probe(os.path.join(tree_dir, "root"), RecordedLive(load_live(tree_dir)))


def differences(a: Capabilities, b: Capabilities) -> List[str]:
    """Fields (other than root) in which two probes disagree."""
    out = []
    for field in a.__attrs_attrs__:  # type: ignore[attr-defined]
        if field.name != "root" and getattr(a, field.name) != getattr(b, field.name):
            out.append(f"{field.name}: {getattr(a, field.name)!r} != {getattr(b, field.name)!r}")
    return out


def write_doctor(tree_dir: str) -> Dict[str, Any]:
    data = doctor_dict(replay(tree_dir))
    write_json(os.path.join(tree_dir, "doctor.json"), data)
    return data


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="rewrite doctor.json of kernel trees")
    parser.add_argument("--out", default="tests/fixtures/kernels", help="trees directory")
    parser.add_argument("names", nargs="*", help="trees (default: all)")
    args = parser.parse_args(argv)
    names = args.names or sorted(
        n for n in os.listdir(args.out) if os.path.isfile(os.path.join(args.out, n, "live.json")))
    for name in names:
        write_doctor(os.path.join(args.out, name))
        print(f"doctor.json of {name} rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
