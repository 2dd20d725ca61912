"""The versioned JSON form of events (schema: hybridtrace/schemas/event.schema.json).

Byte strings that are valid UTF-8 become JSON strings (JSON escapes control
characters itself); any other byte string becomes {"base64": "..."}, so the
exact bytes always round-trip and consumers that only want text still get
strings almost always.

``event_to_json`` writes exec and open records by hand (the schema is fixed),
which costs a fraction of building a dict for json.dumps; the bytes are those
of ``event_to_json_slow`` (json.dumps of event_to_dict): strings go through
the same C escaper json.dumps uses, and any field of an unexpected type sends
the event to the slow path. The optional C module _jsonline.c does the same
again for a third of the CPU. The unit tests compare all three on hostile events.
"""

from __future__ import annotations

import base64
import binascii
import json
import typing
from json.encoder import encode_basestring_ascii
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import attrs

from hybridtrace import compiled
from hybridtrace.events import ORIGIN_FIELDS, Event, ExecEvent, LostEvent, OpenEvent, Source

EVENT_SCHEMA = "hybridtrace.event/6"

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
            **_head("exec", event),
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
            **_origin_dict(event),
            "ns_ppid": event.ns_ppid,
        }
    if isinstance(event, OpenEvent):
        return {
            **_head("open", event),
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
            "via": event.via,
            **_origin_dict(event),
        }
    if isinstance(event, LostEvent):
        return {
            "schema": EVENT_SCHEMA,
            "type": "lost",
            "timestamp_ns": event.timestamp_ns,
            "count": event.count,
            "where": event.where,
            "cpu": event.cpu,
            "exact": event.exact,
        }
    raise TypeError(f"not an event: {event!r}")


def _head(kind: str, event: Union[ExecEvent, OpenEvent]) -> Dict[str, Any]:
    """The keys every exec and open record starts with, in the order they are written."""
    return {"schema": EVENT_SCHEMA, "type": kind, "timestamp_ns": event.timestamp_ns,
            "pid": event.pid, "tid": event.tid}


def _origin_dict(event: Union[ExecEvent, OpenEvent]) -> Dict[str, Any]:
    """Where an event came from (events.ORIGIN_FIELDS), the same keys on both types."""
    fields = {name: getattr(event, name) for name in ORIGIN_FIELDS}
    fields["cgroup"] = encode_bytes(event.cgroup)
    return fields


# ---- reading records back (the inverse of event_to_dict) ----

class RecordError(ValueError):
    """A JSON record that is not one event_to_dict could have written; one line."""


def _read_int(value: Any) -> int:
    if type(value) is not int:  # JSON true/false arrive as bool, a subclass of int
        raise RecordError(f"expected an integer, got {value!r:.80}")
    return value


def _read_bytes(value: Any) -> bytes:
    """decode_bytes, strictly: the one form encode_bytes gives these bytes, or RecordError."""
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
    elif isinstance(value, dict) and set(value) == {"base64"} and isinstance(value["base64"], str):
        try:
            data = base64.b64decode(value["base64"], validate=True)
        except binascii.Error as exc:
            raise RecordError(f"bad base64 {value['base64']!r:.80}: {exc}") from None
    else:
        raise RecordError(f"expected a string or {{\"base64\": ...}}, got {value!r:.80}")
    if encode_bytes(data) != value:  # valid UTF-8 as base64, or a lone surrogate as text
        raise RecordError(f"not the form encode_bytes gives these bytes: {value!r:.80}")
    return data


def _read_str(value: Any) -> str:
    if type(value) is not str:
        raise RecordError(f"expected a string, got {value!r:.80}")
    return value


def _read_bool(value: Any) -> bool:
    if type(value) is not bool:
        raise RecordError(f"expected true or false, got {value!r:.80}")
    return value


def _read_source(value: Any) -> Source:
    try:
        return Source(_read_str(value))
    except ValueError:
        raise RecordError(f"not a source: {value!r:.80}") from None


def _read_argv(value: Any) -> Tuple[bytes, ...]:
    if type(value) is not list:
        raise RecordError(f"expected an array, got {value!r:.80}")
    return tuple(_read_bytes(item) for item in value)


_READERS: Dict[Any, Callable[[Any], Any]] = {
    int: _read_int, bytes: _read_bytes, str: _read_str, bool: _read_bool,
    Source: _read_source, Tuple[bytes, ...]: _read_argv}


def _field_readers(cls: type) -> List[Tuple[str, Callable[[Any], Any]]]:
    """(name, reader) per field of ``cls``, from its annotations: a field added to an
    event class is read back with no change here (an unknown type fails at import)."""
    hints = typing.get_type_hints(cls)
    out = []
    for field in attrs.fields(cls):
        hint = hints[field.name]
        args = typing.get_args(hint)
        optional = typing.get_origin(hint) is Union and type(None) in args
        base = next(a for a in args if a is not type(None)) if optional else hint
        read = _READERS[base]
        out.append((field.name, _nullable(read) if optional else read))
    return out


def _nullable(read: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else read(value)


_RECORD_TYPES: Dict[str, Tuple[type, List[Tuple[str, Callable[[Any], Any]]]]] = {}


def _record_types() -> Dict[str, Tuple[type, List[Tuple[str, Callable[[Any], Any]]]]]:
    """Built on first use: the writers import this module at every start, readers are few."""
    if not _RECORD_TYPES:
        _RECORD_TYPES.update({kind: (cls, _field_readers(cls)) for kind, cls in (
            ("exec", ExecEvent), ("open", OpenEvent), ("lost", LostEvent))})
    return _RECORD_TYPES


def event_from_dict(record: Any) -> Event:
    """The event a record of ``EVENT_SCHEMA`` describes (json.loads of one line).

    Strict, to prove a writer right: exactly the keys event_to_dict writes for the
    type, each of its field's JSON type, byte strings in encode_bytes' own form;
    anything else raises RecordError saying which key and why.
    """
    if not isinstance(record, dict):
        raise RecordError(f"not a JSON object: {record!r:.80}")
    if record.get("schema") != EVENT_SCHEMA:
        raise RecordError(f"schema {record.get('schema')!r:.80}, expected {EVENT_SCHEMA!r}")
    kind = record.get("type")
    types = _record_types()
    if not isinstance(kind, str) or kind not in types:
        raise RecordError(f"unknown type {kind!r:.80}")
    cls, readers = types[kind]
    want = {"schema", "type", *(name for name, _ in readers)}
    if set(record) != want:
        missing, extra = sorted(want - set(record)), sorted(set(record) - want)
        raise RecordError(f"{kind} record: missing keys {missing}, unexpected keys {extra}")
    values = {}
    for name, read in readers:
        try:
            values[name] = read(record[name])
        except RecordError as exc:
            raise RecordError(f"{kind} record: {name}: {exc}") from None
    event: Event = cls(**values)
    return event


def event_from_json(line: Union[str, bytes]) -> Event:
    """event_from_dict of one JSON Lines record; RecordError for one that does not parse."""
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise RecordError(f"not JSON: {exc}") from None
    return event_from_dict(record)


def event_to_json_slow(event: Event) -> str:
    """The definition of the JSON line: json.dumps of event_to_dict."""
    return json.dumps(event_to_dict(event), ensure_ascii=True, separators=(",", ":"))


def event_to_json(event: Event) -> str:
    """One JSON Lines record (ASCII only, no newline)."""
    fast = _FAST.get(type(event))
    text = None if fast is None else fast(event)
    return event_to_json_slow(event) if text is None else text


_SCHEMA_JSON = encode_basestring_ascii(EVENT_SCHEMA)
_Int = (int, type(None))  # exactly these types: bool and int subclasses go the slow way
_Str = (str, type(None))


def _json_bytes(data: Optional[bytes]) -> str:
    """encode_bytes(data) as JSON text."""
    if data is None:
        return "null"
    try:
        return encode_basestring_ascii(data.decode("utf-8"))
    except UnicodeDecodeError:
        return '{"base64":"' + base64.b64encode(data).decode("ascii") + '"}'


_SOURCE_JSON: Dict[Optional[Source], str] = {
    None: "null", **{src: encode_basestring_ascii(src.value) for src in Source}
}
_COMM_CACHE_MAX = 4096
_comm_json: Dict[bytes, str] = {}
_str_json: Dict[str, str] = {}


def _json_source(source: Optional[Source]) -> Optional[str]:
    """JSON of ``source.value``; None (slow path) when it is not a Source at all."""
    return _SOURCE_JSON[source] if source is None or type(source) is Source else None


def _json_comm(comm: Optional[bytes]) -> str:
    """_json_bytes for the few process names that recur in every event."""
    if type(comm) is not bytes:
        return _json_bytes(comm)
    return _cached(_comm_json, comm, _json_bytes)


def _json_str(value: str) -> str:
    """JSON of a str field drawn from a handful of names (the syscall)."""
    return _cached(_str_json, value, encode_basestring_ascii)


def _cached(table: Dict[Any, str], key: Any, make: Callable[[Any], str]) -> str:
    """``make(key)``, remembered in ``table`` (emptied when it grows too big)."""
    text = table.get(key)
    if text is None:
        if len(table) >= _COMM_CACHE_MAX:
            table.clear()
        text = table[key] = make(key)
    return text


def _origin_json(ev: Union[ExecEvent, OpenEvent]) -> Optional[str]:
    """_origin_dict as JSON text after a comma; None (slow path) for an unexpected type."""
    cgid, cgroup, cid, mntns, pidns = ev.cgroup_id, ev.cgroup, ev.container_id, ev.mntns, ev.pidns
    ns_pid, ns_tid = ev.ns_pid, ev.ns_tid
    if not (type(cgid) in _Int and type(mntns) in _Int and type(pidns) in _Int
            and type(ns_pid) in _Int and type(ns_tid) in _Int
            and (cgroup is None or type(cgroup) is bytes)
            and (cid is None or type(cid) is str)):
        return None
    n = "null"
    return (f',"cgroup_id":{n if cgid is None else cgid},'
            f'"cgroup":{n if cgroup is None else _cached(_comm_json, cgroup, _json_bytes)},'
            f'"container_id":{n if cid is None else _json_str(cid)},'
            f'"mntns":{n if mntns is None else mntns},"pidns":{n if pidns is None else pidns},'
            f'"ns_pid":{n if ns_pid is None else ns_pid},'
            f'"ns_tid":{n if ns_tid is None else ns_tid}')


def _open_json(ev: OpenEvent) -> Optional[str]:
    ts, pid, tid, uid, dfd = ev.timestamp_ns, ev.pid, ev.tid, ev.uid, ev.dfd
    flags, mode, fd, errno = ev.flags, ev.mode, ev.fd, ev.errno
    truncated, syscall, via = ev.path_truncated, ev.syscall, ev.via
    if not (type(ts) is int and type(pid) in _Int and type(tid) in _Int
            and type(uid) in _Int and type(dfd) in _Int and type(flags) in _Int
            and type(mode) in _Int and type(fd) in _Int and type(errno) in _Int
            and type(truncated) is bool and type(syscall) in _Str and type(via) is str):
        return None
    source = _json_source(ev.path_source)
    origin = _origin_json(ev)
    if source is None or origin is None:
        return None
    n = "null"
    return (f'{{"schema":{_SCHEMA_JSON},"type":"open","timestamp_ns":{ts},'
            f'"pid":{n if pid is None else pid},'
            f'"tid":{n if tid is None else tid},"uid":{n if uid is None else uid},'
            f'"comm":{_json_comm(ev.comm)},'
            f'"syscall":{n if syscall is None else _json_str(syscall)},'
            f'"dfd":{n if dfd is None else dfd},'
            f'"path":{_json_bytes(ev.path)},"path_source":{source},'
            f'"path_truncated":{"true" if truncated else "false"},'
            f'"flags":{n if flags is None else flags},"mode":{n if mode is None else mode},'
            f'"fd":{n if fd is None else fd},"errno":{n if errno is None else errno},'
            f'"via":{_json_str(via)}{origin}}}')


def _exec_json(ev: ExecEvent) -> Optional[str]:
    ts, pid, tid, ppid, uid, retval = ev.timestamp_ns, ev.pid, ev.tid, ev.ppid, ev.uid, ev.retval
    argv, truncated, syscall = ev.argv, ev.argv_truncated, ev.syscall
    if not (type(ts) is int and type(pid) in _Int and type(tid) in _Int
            and type(ppid) in _Int and type(uid) in _Int and type(retval) in _Int
            and type(truncated) is bool and type(syscall) is str
            and (argv is None or type(argv) is tuple)):
        return None
    filename_source = _json_source(ev.filename_source)
    argv_source = _json_source(ev.argv_source)
    origin = _origin_json(ev)
    ns_ppid = ev.ns_ppid
    if (filename_source is None or argv_source is None or origin is None
            or type(ns_ppid) not in _Int):
        return None
    n = "null"
    args = n if argv is None else "[" + ",".join(map(_json_bytes, argv)) + "]"
    return (f'{{"schema":{_SCHEMA_JSON},"type":"exec","timestamp_ns":{ts},'
            f'"pid":{n if pid is None else pid},"tid":{n if tid is None else tid},'
            f'"ppid":{n if ppid is None else ppid},"uid":{n if uid is None else uid},'
            f'"comm":{_json_comm(ev.comm)},"syscall":{_json_str(syscall)},'
            f'"filename":{_json_bytes(ev.filename)},"filename_source":{filename_source},'
            f'"argv":{args},"argv_source":{argv_source},'
            f'"argv_truncated":{"true" if truncated else "false"},'
            f'"retval":{n if retval is None else retval}{origin},'
            f'"ns_ppid":{n if ns_ppid is None else ns_ppid}}}')


# The Python writers above, and the C module's when it is built (hybridtrace/output/
# _jsonline.c: the same text at about a third of the CPU, for every backend's output).
FAST_PYTHON: Dict[type, Callable[[Any], Optional[str]]] = {
    OpenEvent: _open_json, ExecEvent: _exec_json}
_jsonline = compiled.load("hybridtrace.output._jsonline")
if _jsonline is not None:
    _jsonline.configure(_SCHEMA_JSON, Source,
                        {src: text for src, text in _SOURCE_JSON.items() if src is not None},
                        OpenEvent, ExecEvent)
FAST_C: Optional[Dict[type, Callable[[Any], Optional[str]]]] = None if _jsonline is None else {
    OpenEvent: _jsonline.open_json, ExecEvent: _jsonline.exec_json}
_FAST = FAST_C or FAST_PYTHON


def c_writer() -> bool:
    """Whether exec and open records are written by the C module."""
    return FAST_C is not None
