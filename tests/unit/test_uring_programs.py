"""Which ebpf-core io_uring programs load where: tracepoint shapes recorded from
Debian's kernels' BTF and this host's (tools/record_uring_shapes.py)."""

from __future__ import annotations

import json
import os
from typing import Dict, List

import pytest

from hybridtrace.backends.ebpf.uring_programs import PROGRAMS, choose

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures",
                       "io_uring_shapes.json")


def _shapes(name: str) -> Dict[str, List[str]]:
    with open(FIXTURE) as f:
        shapes: Dict[str, Dict[str, List[str]]] = json.load(f)
    return shapes[name]


# Which programs each kernel's signatures leave out: 6.18 gives the completion entry and
# has no io_uring_submit_sqe; 6.12 has io_uring_submit_req and the older completion;
# 6.1 has io_uring_submit_sqe, given the request.
@pytest.mark.parametrize(("kernel", "left"), [
    ("host-6.18", ["ht_uring_complete_fields", "ht_uring_submit_sqe"]),
    ("debian-6.12-arm64", ["ht_uring_complete", "ht_uring_submit_sqe"]),
    ("debian-6.1-arm64", ["ht_uring_complete", "ht_uring_submit_req"]),
])
def test_each_kernel_loads_the_programs_its_signatures_fit(kernel: str,
                                                          left: List[str]) -> None:
    unseen, left_out = choose(_shapes(kernel))
    assert unseen is None
    assert left_out == left


def test_5_10_gives_no_typed_request_so_nothing_loads() -> None:
    unseen, left_out = choose(_shapes("debian-5.10-arm64"))
    assert unseen is not None and "untyped pointer" in unseen
    assert sorted(left_out) == sorted(PROGRAMS)


def test_a_complete_of_unknown_shape_or_none_at_all_is_said() -> None:
    shapes = dict(_shapes("debian-6.1-arm64"))
    shapes["io_uring_complete"] = ["void *", "int"]
    unseen, _ = choose(shapes)
    assert unseen is not None and "known shape" in unseen
    del shapes["io_uring_complete"]
    unseen, _ = choose(shapes)
    assert unseen is not None and "absent" in unseen
    assert choose(None)[0] is not None
