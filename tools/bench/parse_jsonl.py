"""Parse hybridtrace's ``--json`` output (schema hybridtrace.event/6)."""

from __future__ import annotations

import json
import re
from typing import Any, Dict, Iterable, Optional, Tuple

from hybridtrace.output.jsonl import decode_bytes
from tools.bench.observed import Observed, Parsed

# The CLI's closing line on stderr: "hybridtrace: N events shown, M lost, ...".
_SUMMARY_RE = re.compile(rb"hybridtrace: (\d+) events shown, (\d+) lost")


def _argv(value: Any) -> Optional[Tuple[bytes, ...]]:
    if value is None:
        return None
    return tuple(decode_bytes(a) or b"" for a in value)


def observed_from_dict(record: Dict[str, Any]) -> Optional[Observed]:
    """An exec/open record -> Observed; anything else (lost, unknown) -> None."""
    kind = record.get("type")
    if kind == "exec":
        retval = record.get("retval")
        return Observed(kind="exec", pid=record.get("pid"), comm=decode_bytes(record.get("comm")),
                        path=decode_bytes(record.get("filename")),
                        argv=_argv(record.get("argv")), ok=retval is None or retval == 0)
    if kind == "open":
        return Observed(kind="open", pid=record.get("pid"), comm=decode_bytes(record.get("comm")),
                        path=decode_bytes(record.get("path")),
                        ok=record.get("errno") is None and record.get("fd") is not None)
    return None


def summary_lost(stderr: Iterable[bytes]) -> Optional[int]:
    """Losses in the CLI's closing summary, if it printed one."""
    found = None
    for line in stderr:
        m = _SUMMARY_RE.search(line)
        if m:
            found = int(m.group(2))
    return found


def parse_jsonl(stdout: Iterable[bytes], stderr: Iterable[bytes]) -> Parsed:
    """Events and the larger of the two loss reports (lost records, closing summary)."""
    events = []
    lost = reports = unparsed = 0
    for line in stdout:
        try:
            record = json.loads(line)
        except ValueError:
            unparsed += 1
            continue
        if not isinstance(record, dict):
            unparsed += 1
            continue
        if record.get("type") == "lost":
            lost += int(record.get("count") or 0)
            reports += 1
            continue
        event = observed_from_dict(record)
        if event is None:
            unparsed += 1
        else:
            events.append(event)
    in_summary = summary_lost(stderr)
    if in_summary is not None and in_summary > lost:
        lost = in_summary
    return Parsed(events=events, lost=lost, lost_reports=reports, unparsed_lines=unparsed)
