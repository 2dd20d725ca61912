"""Loading the trace_pipe recordings made by tools/record_trace_pipe.py, and decoding
recorded trace_pipe_raw pages as the raw reader does."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, List, Sequence, Tuple

from hybridtrace.backends.ftrace.format import EventFormat, read_format
from hybridtrace.backends.ftrace.pipe import PipeParser
from hybridtrace.backends.ftrace.raw_records import RawRecord, RecordDecoder
from hybridtrace.backends.ftrace.ring_page import PageLayout
from hybridtrace.backends.ftrace.trace_record import TraceLine

# Another directory of recordings can be checked before it is copied in.
ROOT = os.environ.get("HYBRIDTRACE_TRACE_PIPE_FIXTURES") or os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "fixtures", "trace_pipe")
O_LARGEFILE = 0o100000  # some C libraries add it; the kernel ignores it on 64-bit


def split_at(data: bytes, sizes: Iterable[int]) -> List[bytes]:
    """``data`` cut into consecutive pieces of ``sizes`` bytes; what is left over is not
    among them."""
    out, pos = [], 0
    for size in sizes:
        out.append(data[pos : pos + size])
        pos += size
    return out


def decode_all(formats: Sequence[EventFormat], layout: PageLayout,
               pages: Iterable[Tuple[int, bytes]]) -> Tuple[RecordDecoder, List[RawRecord]]:
    """Every record of ``pages`` ((cpu, page) as read), and the decoder with its counts."""
    decoder = RecordDecoder(formats, layout)
    records: List[RawRecord] = []
    for cpu, page in pages:
        decoder.decode_page(page, cpu, records)
    return decoder, records


class Recording:
    """One recorded kernel: manifest, formats, and per-phase pipe bytes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = os.path.join(ROOT, name)
        with open(os.path.join(self.path, "manifest.json"), encoding="utf-8") as handle:
            self.manifest: Dict[str, Any] = json.load(handle)
        self.formats_dir = os.path.join(self.path, "formats")
        self.formats: List[EventFormat] = [
            read_format(self.formats_dir, f["system"], f["name"])
            for f in self.manifest["formats"]
        ]

    @property
    def phases(self) -> List[str]:
        return [p["name"] for p in self.manifest["phases"]]

    def phase(self, name: str) -> Dict[str, Any]:
        return next(p for p in self.manifest["phases"] if p["name"] == name)

    def data(self, phase: str) -> bytes:
        with open(os.path.join(self.path, f"trace_pipe.{phase}.bin"), "rb") as handle:
            return handle.read()

    def expected(self, phase: str) -> Dict[str, Any]:
        with open(os.path.join(self.path, f"expected.{phase}.json"), encoding="utf-8") as handle:
            result: Dict[str, Any] = json.load(handle)
        return result

    def reads(self, phase: str) -> List[bytes]:
        """The phase's bytes cut as the recorder's read() calls returned them."""
        data = self.data(phase)
        with open(os.path.join(self.path, f"reads.{phase}.json"), encoding="utf-8") as handle:
            sizes: List[int] = json.load(handle)
        assert sum(sizes) == len(data)
        return split_at(data, sizes)

    def stats(self, phase: str) -> Dict[str, Dict[str, str]]:
        with open(os.path.join(self.path, f"stats.{phase}.json"), encoding="utf-8") as handle:
            result: Dict[str, Dict[str, str]] = json.load(handle)
        return result

    def parse(self, phase: str, hinted: bool = True) -> List[TraceLine]:
        parser = PipeParser(self.formats if hinted else ())
        return parser.feed(self.data(phase)) + parser.flush()

    def probe_names(self, suffix: str) -> List[str]:
        return [p["name"] for p in self.manifest["probes"] if p["name"].endswith(suffix)
                and p["kind"] in ("uprobe", "kprobe", "eprobe")]


def recordings() -> List[Recording]:
    return [Recording(name) for name in sorted(os.listdir(ROOT))
            if os.path.exists(os.path.join(ROOT, name, "manifest.json"))]


def phase_params() -> List[Tuple[Recording, str]]:
    return [(rec, phase) for rec in recordings() for phase in rec.phases]


def workload_params() -> List[Tuple[Recording, str]]:
    return [(rec, p["name"]) for rec in recordings() for p in rec.manifest["phases"]
            if p["workload"] and not p.get("lossy")]


def s64(text: bytes) -> int:
    """A syscall return value as printed (0x... two's complement) -> int."""
    value = int(text, 16)
    return value - (1 << 64) if value >= 1 << 63 else value
