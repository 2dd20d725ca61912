"""Where an event came from, in JSON: the fast path equals json.dumps, and the schema holds."""

from __future__ import annotations

import json
import os
import random
from typing import Any, Dict, List

import attrs
import jsonschema
import pytest

from hybridtrace.events import EXEC_ORIGIN_FIELDS, ORIGIN_FIELDS, Event, ExecEvent, OpenEvent
from hybridtrace.output.jsonl import event_to_json, event_to_json_slow

with open(os.path.join(os.path.dirname(__file__), "..", "..", "hybridtrace", "schemas",
                       "event.schema.json")) as _f:
    SCHEMA = json.load(_f)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
CID = "5eab84e369aa24b6ad0ef015bd597add0a926bbb891c68b507cf24ebd31fcafa"


def _origin(rng: random.Random, exec_: bool) -> Dict[str, Any]:
    def num() -> Any:
        return None if rng.random() < 0.3 else rng.randrange(1 << 40)

    out: Dict[str, Any] = {
        "cgroup_id": num(), "mntns": num(), "pidns": num(), "ns_pid": num(), "ns_tid": num(),
        "cgroup": rng.choice([None, b"/", b"/libpod_parent/libpod-" + CID.encode(),
                              b"/odd\xff\n\"name"]),
        "container_id": rng.choice([None, CID]),
    }
    if exec_:
        out["ns_ppid"] = rng.choice([None, 0, 1, 4242])
    return out


def _events() -> List[Event]:
    rng = random.Random(11)
    events: List[Event] = []
    for _ in range(500):
        events.append(OpenEvent(1, 2, 3, 0, b"cat", b"/etc/passwd", 0, 0, 3, None,
                                **_origin(rng, False)))
        events.append(ExecEvent(1, 2, 2, 1, 0, b"sh", b"/bin/sh", (b"sh",), 0,
                                **_origin(rng, True)))
    return events


def test_fast_path_equals_definition_and_validates() -> None:
    for event in _events():
        line = event_to_json(event)
        assert line == event_to_json_slow(event)
        record = json.loads(line)
        VALIDATOR.validate(record)
        fields = EXEC_ORIGIN_FIELDS if isinstance(event, ExecEvent) else ORIGIN_FIELDS
        for name in fields:
            assert name in record


@pytest.mark.parametrize("change", [{"cgroup_id": True}, {"mntns": 1.0}, {"cgroup": "str"},
                                    {"container_id": b"bytes"}, {"ns_pid": False}])
def test_unexpected_types_take_the_slow_path(change: Dict[str, Any]) -> None:
    event = OpenEvent(1, 2, 3, 0, b"cat", b"/x", 0, 0, 3, None)
    odd = attrs.evolve(event, **change)
    if "container_id" in change or "cgroup" in change:
        with pytest.raises((TypeError, AttributeError)):
            event_to_json_slow(odd)
        return
    assert event_to_json(odd) == event_to_json_slow(odd)


def test_a_bad_container_id_does_not_validate() -> None:
    event = ExecEvent(1, 2, 2, 1, 0, b"sh", b"/bin/sh", None, 0, container_id="abc")
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(json.loads(event_to_json(event)))
