"""Make bytes from a traced process safe for a terminal and a one-line record.

A hostile process controls its name, argv and the paths it opens; none of
that may reach the terminal raw (escape sequences) or split a record
(newlines). Printable ASCII and valid non-control UTF-8 pass through; every
other byte is shown as a backslash escape, and a backslash itself is doubled
so the rendering stays unambiguous.
"""

from __future__ import annotations

import unicodedata
from typing import Dict

_NAMED: Dict[int, str] = {0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r", 0x5C: "\\\\"}


def _byte_escape(b: int) -> str:
    return _NAMED.get(b) or f"\\x{b:02x}"


def _safe_char(ch: str) -> bool:
    # Cc (controls incl. C1), Cf (bidi overrides, zero-width), Cs, Co, Cn, Zl, Zp.
    return unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def escape_bytes(data: bytes) -> str:
    """Printable text for ``data``; the mapping is reversible."""
    if data.isascii():
        if all(0x20 <= b < 0x7F and b != 0x5C for b in data):
            return data.decode("ascii")
        return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else _byte_escape(b) for b in data)
    out = []
    text = data.decode("utf-8", errors="surrogateescape")
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # an invalid UTF-8 byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x80:
            out.append(ch if 0x20 <= code < 0x7F and code != 0x5C else _byte_escape(code))
        elif _safe_char(ch):
            out.append(ch)
        else:
            for b in ch.encode("utf-8"):
                out.append(f"\\x{b:02x}")
    return "".join(out)


def quote_arg(data: bytes) -> str:
    """Escaped and double-quoted, for `execsnoop -q`."""
    return '"' + escape_bytes(data).replace('"', '\\"') + '"'
