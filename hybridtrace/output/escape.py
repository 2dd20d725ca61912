"""Make bytes from a traced process safe for a terminal and a one-line record.

A hostile process controls its name, argv and the paths it opens; none of
that may reach the terminal raw (escape sequences) or split a record
(newlines). Printable ASCII and valid non-control UTF-8 pass through; every
other byte is shown as a backslash escape, and a backslash itself is doubled
so the rendering stays unambiguous.

This runs for every string of every event the CLI prints (~45k/s), so the
common case (valid UTF-8, nothing to escape) costs a decode and one C-level
scan; ``escape_bytes_slow`` is the per-character definition, used for
everything else, and the unit tests check the two agree on hostile input.
"""

from __future__ import annotations

import unicodedata
from typing import Dict

_NAMED: Dict[int, str] = {0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r", 0x5C: "\\\\"}


def _byte_escape(b: int) -> str:
    return _NAMED.get(b) or f"\\x{b:02x}"


# For str.translate of ASCII text: every control byte, DEL and the backslash.
_ASCII_TABLE: Dict[int, str] = {
    b: _byte_escape(b) for b in range(0x80) if not 0x20 <= b < 0x7F or b == 0x5C
}


def _safe_char(ch: str) -> bool:
    # Cc (controls incl. C1), Cf (bidi overrides, zero-width), Cs, Co, Cn, Zl, Zp.
    return unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def escape_bytes(data: bytes) -> str:
    """Printable text for ``data``; the mapping is reversible."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return escape_bytes_slow(data)
    # str.isprintable() is False exactly for categories C* and Z* except the
    # ASCII space, so it implies _safe_char for every character (it also
    # rejects Zs such as U+00A0, which the slow path then keeps).
    if text.isprintable() and "\\" not in text:
        return text
    if text.isascii():
        return text.translate(_ASCII_TABLE)
    return escape_bytes_slow(data)


def escape_bytes_slow(data: bytes) -> str:
    """The definition of escape_bytes, one character at a time."""
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
