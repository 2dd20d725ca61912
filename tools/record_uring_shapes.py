#!/usr/bin/env python3
"""Record the shapes of io_uring's tracepoints (their argument types, from BTF) for
uring_programs' unit tests: which ebpf-core io_uring programs fit which kernel.

    python tools/kernel_btf.py --arch arm64 --out /tmp/6.1.btf
    python tools/kernel_btf.py --arch arm64 --suite bookworm-backports --out /tmp/6.12.btf
    python tools/record_uring_shapes.py debian-6.1=/tmp/6.1.btf debian-6.12=/tmp/6.12.btf \\
        host-6.18=/sys/kernel/btf/vmlinux

Rewrites tests/fixtures/io_uring_shapes.json with the kernels named (NAME=BTF), and
each kernel's release where the BTF is this machine's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hybridtrace.backends.ebpf import libbpf
from hybridtrace.vocabulary import IO_URING_EVENTS

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   "tests", "fixtures", "io_uring_shapes.json")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kernels", nargs="+", metavar="NAME=BTF")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args(argv)
    lib = libbpf.get()
    shapes: Dict[str, Any] = {}
    for item in args.kernels:
        name, sep, path = item.partition("=")
        if not sep or not name:
            print(f"record_uring_shapes: {item!r} is not NAME=BTF", file=sys.stderr)
            return 2
        found = lib.tracepoint_args(IO_URING_EVENTS, path)
        if found is None:
            print(f"record_uring_shapes: cannot read BTF from {path}", file=sys.stderr)
            return 1
        shapes[name] = found
    with open(args.out, "w") as f:
        json.dump(shapes, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {args.out}: {', '.join(shapes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
