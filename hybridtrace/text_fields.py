"""The "Name: value" line format of /proc/PID/status, fdinfo and tracefs stats files."""

from __future__ import annotations

from typing import Dict


def colon_fields(text: str) -> Dict[str, str]:
    """Each "name: value" line as name -> value, both stripped; other lines are skipped."""
    fields: Dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return fields
