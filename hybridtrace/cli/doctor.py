"""Probe the kernel and our privileges, and explain which backend traces exec and open
here and why. Exit status: 0 when both exec and open tracing have a usable backend,
1 when one of them has none, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys

from hybridtrace.capabilities import default_live, probe
from hybridtrace.cli.common import UsageError
from hybridtrace.doctor import build_report
from hybridtrace.doctor.render_json import render_json
from hybridtrace.doctor.render_text import render_text
from hybridtrace.selector import CHOICES

NAME = "doctor"
HELP = "report what this kernel supports and which backend would be used"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON document (schema"
                        " hybridtrace.doctor/2) for comparing a fleet")
    parser.add_argument("--root", default="/", help="probe a recorded kernel tree (its directory"
                        " or its root/) instead of this machine; live checks come from its"
                        " live.json")
    parser.add_argument("--backend", choices=CHOICES, default="auto",
                        help="judge this backend choice (default auto)")


def run(args: argparse.Namespace) -> int:
    if not os.path.isdir(args.root):
        raise UsageError(f"doctor: --root {args.root}: not a directory")
    if os.path.isfile(os.path.join(args.root, "live.json")) and os.path.isdir(
        os.path.join(args.root, "root")
    ):
        args.root = os.path.join(args.root, "root")  # a kernel tree's directory
    try:
        live = default_live(args.root)
    except (OSError, ValueError) as exc:
        raise UsageError(f"doctor: --root {args.root}: no readable live.json next to it or"
                         f" inside it ({exc.__class__.__name__}): --root takes a recorded"
                         " kernel tree") from None
    report = build_report(probe(args.root, live), args.backend)
    sys.stdout.write((render_json(report) + "\n") if args.json else render_text(report))
    return report.exit_status
