"""The versioned JSON form of events (schema: hybridtrace/schemas/event.schema.json).

Byte strings that are valid UTF-8 become JSON strings (JSON escapes control
characters itself); any other byte string becomes {"base64": "..."}, so the
exact bytes always round-trip and consumers that only want text still get
strings almost always.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Dict, Optional, Union

from hybridtrace.events import Event, ExecEvent, LostEvent, OpenEvent

EVENT_SCHEMA = "hybridtrace.event/1"

JsonBytes = Union[str, Dict[str, str], None]


def encode_bytes(data: Optional[bytes]) -> JsonBytes:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def decode_bytes(value: JsonBytes) -> Optional[bytes]:
    """Inverse of encode_bytes."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    return base64.b64decode(value["base64"])


def event_to_dict(event: Event) -> Dict[str, Any]:
    if isinstance(event, ExecEvent):
        return {
            "schema": EVENT_SCHEMA,
            "type": "exec",
            "timestamp_ns": event.timestamp_ns,
            "pid": event.pid,
            "tid": event.tid,
            "ppid": event.ppid,
            "uid": event.uid,
            "comm": encode_bytes(event.comm),
            "syscall": event.syscall,
            "filename": encode_bytes(event.filename),
            "filename_source": event.filename_source.value if event.filename_source else None,
            "argv": None if event.argv is None else [encode_bytes(a) for a in event.argv],
            "argv_source": event.argv_source.value if event.argv_source else None,
            "argv_truncated": event.argv_truncated,
            "retval": event.retval,
        }
    if isinstance(event, OpenEvent):
        return {
            "schema": EVENT_SCHEMA,
            "type": "open",
            "timestamp_ns": event.timestamp_ns,
            "pid": event.pid,
            "tid": event.tid,
            "uid": event.uid,
            "comm": encode_bytes(event.comm),
            "syscall": event.syscall,
            "dfd": event.dfd,
            "path": encode_bytes(event.path),
            "path_source": event.path_source.value if event.path_source else None,
            "path_truncated": event.path_truncated,
            "flags": event.flags,
            "mode": event.mode,
            "fd": event.fd,
            "errno": event.errno,
        }
    if isinstance(event, LostEvent):
        return {
            "schema": EVENT_SCHEMA,
            "type": "lost",
            "timestamp_ns": event.timestamp_ns,
            "count": event.count,
            "where": event.where,
            "cpu": event.cpu,
        }
    raise TypeError(f"not an event: {event!r}")


def event_to_json(event: Event) -> str:
    return json.dumps(event_to_dict(event), ensure_ascii=True, separators=(",", ":"))
