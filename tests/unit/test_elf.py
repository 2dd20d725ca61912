"""ELF symbol -> file offset, checked against where the loader actually mapped the code
and against binutils' view of the same file."""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from hybridtrace.elf import ElfError, build_id, find_symbols, read_symbols

LIBC_FUNCTIONS = ["execve", "execveat", "open", "openat", "creat", "fexecve", "write"]


def _maps() -> List[Tuple[int, int, int, str]]:
    out = []
    with open("/proc/self/maps") as handle:
        for line in handle:
            parts = line.split(None, 5)
            if len(parts) < 6:
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append((lo, hi, int(parts[2], 16), parts[5].strip()))
    return out


def _mapped_offset(address: int) -> Tuple[str, int]:
    """(file, file offset) of a code address in this process, from /proc/self/maps."""
    for lo, hi, offset, path in _maps():
        if lo <= address < hi:
            return os.path.realpath(path), address - lo + offset
    raise AssertionError(f"{address:#x} is not mapped")


def _libc() -> str:
    """The C library this Python mapped (the test is skipped where it maps no glibc)."""
    for _lo, _hi, _off, path in _maps():
        if re.search(r"/libc[.-][^/]*so", path):
            return os.path.realpath(path)
    pytest.skip("this Python maps no glibc")


def _address(lib: ctypes.CDLL, name: str) -> int:
    value = ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
    assert value is not None
    return value


def test_libc_offsets_match_where_the_loader_put_them() -> None:
    libc_path = _libc()
    libc = ctypes.CDLL(libc_path)
    got = find_symbols(libc_path, LIBC_FUNCTIONS)
    assert {"execve", "open", "openat"} <= set(got)
    for name, offset in got.items():
        path, expected = _mapped_offset(_address(libc, name))
        assert path == libc_path
        assert offset == expected, name
        assert find_symbols(libc_path, [name]).get(name) == offset


def test_shared_object_built_here(tmp_path: Path) -> None:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler")
    src = tmp_path / "probe_me.c"
    src.write_text(
        "int ht_first(int x) { return x + 1; }\n"
        "static int hidden(int x) { return x * 3; }\n"
        "int ht_second(int x) { return hidden(x) + ht_first(x); }\n"
        "int ht_data = 7;\n"
    )
    lib = tmp_path / "libprobe me.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-o", str(lib), str(src)], check=True)
    got = find_symbols(str(lib), ["ht_first", "ht_second", "hidden", "ht_data", "missing"])
    assert set(got) == {"ht_first", "ht_second"}  # static and data symbols are no probe sites
    loaded = ctypes.CDLL(str(lib))
    for name in ("ht_first", "ht_second"):
        path, expected = _mapped_offset(_address(loaded, name))
        assert path == str(lib)
        assert got[name] == expected
    assert loaded.ht_second(2) == 9
    assert find_symbols(str(lib), ["missing"]) == {}


def _readelf_view(path: str) -> Dict[str, int]:
    """name -> file offset of defined FUNC symbols (default version) per readelf."""
    readelf = shutil.which("readelf")
    assert readelf is not None
    heads = subprocess.run([readelf, "-lW", path], capture_output=True, text=True,
                           check=True).stdout
    loads = []
    for line in heads.splitlines():
        fields = line.split()
        if fields and fields[0] == "LOAD":
            loads.append((int(fields[2], 16), int(fields[1], 16), int(fields[4], 16)))
    syms = subprocess.run([readelf, "-W", "--dyn-syms", path], capture_output=True,
                          text=True, check=True).stdout
    chosen: Dict[str, Tuple[bool, int, str]] = {}
    for line in syms.splitlines():
        fields = line.split()
        if len(fields) < 8 or fields[3] not in ("FUNC", "IFUNC") or fields[6] == "UND":
            continue
        value = int(fields[1], 16)
        name, _, version = fields[7].partition("@")
        default = not version or version.startswith("@")
        for vaddr, offset, filesz in loads:
            in_segment = vaddr <= value < vaddr + filesz
            if in_segment and (name not in chosen or (default and not chosen[name][0])):
                chosen[name] = (default, value - vaddr + offset, fields[3])
    return {name: offset for name, (_d, offset, kind) in chosen.items() if kind == "FUNC"}


@pytest.mark.skipif(shutil.which("readelf") is None, reason="binutils not installed")
def test_every_libc_function_agrees_with_readelf() -> None:
    libc_path = _libc()
    expected = _readelf_view(libc_path)
    assert len(expected) > 500
    got = find_symbols(libc_path, expected)
    assert got == expected
    symbols, _segments = read_symbols(libc_path)
    ifuncs = {s.name for s in symbols if s.type == 10}
    assert ifuncs and not ifuncs & set(find_symbols(libc_path, ifuncs))


def test_not_elf(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"#!/bin/sh\necho not elf\n")
    with pytest.raises(ElfError):
        find_symbols(str(junk), ["main"])
    short = tmp_path / "short"
    short.write_bytes(b"\x7fELF\x02\x01\x01")
    with pytest.raises(ElfError):
        find_symbols(str(short), ["main"])
    with pytest.raises(OSError):
        find_symbols(str(tmp_path / "absent"), ["main"])


@pytest.mark.skipif(shutil.which("readelf") is None, reason="binutils' readelf not installed")
@pytest.mark.parametrize("path", [sys.executable, "/lib/x86_64-linux-gnu/libc.so.6"])
def test_build_id_as_readelf_reads_it(path: str) -> None:
    if not os.path.exists(path):
        pytest.skip(f"{path} not on this machine")
    notes = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
    match = re.search(r"Build ID: ([0-9a-f]+)", notes)
    assert build_id(os.path.realpath(path)) == (match.group(1) if match else None)


def test_build_id_of_what_is_not_elf(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x7fELF" + b"\x00" * 10)
    assert build_id(str(junk)) is None
    assert build_id(str(tmp_path / "absent")) is None
