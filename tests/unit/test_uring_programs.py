"""Which ebpf-core io_uring programs load where: tracepoint shapes recorded from
Debian's kernels' BTF and this host's (tools/record_uring_shapes.py)."""

from __future__ import annotations

import json
import os
from typing import Dict, List

from hybridtrace.backends.ebpf.uring_programs import PROGRAMS, choose

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures",
                       "io_uring_shapes.json")


def _shapes(name: str) -> Dict[str, List[str]]:
    with open(FIXTURE) as f:
        shapes: Dict[str, Dict[str, List[str]]] = json.load(f)
    return shapes[name]


def test_6_18_gives_the_cqe_and_has_no_io_uring_submit_sqe() -> None:
    unseen, left_out = choose(_shapes("host-6.18"))
    assert unseen is None
    assert left_out == ["ht_uring_complete_fields", "ht_uring_submit_sqe"]


def test_6_12_has_io_uring_submit_req_and_the_older_complete() -> None:
    unseen, left_out = choose(_shapes("debian-6.12-arm64"))
    assert unseen is None
    assert left_out == ["ht_uring_complete", "ht_uring_submit_sqe"]


def test_6_1_has_io_uring_submit_sqe_given_the_request() -> None:
    unseen, left_out = choose(_shapes("debian-6.1-arm64"))
    assert unseen is None
    assert left_out == ["ht_uring_complete", "ht_uring_submit_req"]


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
