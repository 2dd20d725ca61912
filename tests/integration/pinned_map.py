"""A BPF hash map pinned in a bpf filesystem, as a BCC user makes one for --cgroupmap or
--mntnsmap (bpftool map create ... type hash key 8 value 8), through raw bpf(2)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import subprocess
import tempfile
from typing import Iterator, Optional

from hybridtrace.capabilities.bpf_probes import ATTR_SIZE, bpf_syscall

_MAP_CREATE, _MAP_UPDATE_ELEM, _MAP_DELETE_ELEM, _OBJ_PIN = 0, 2, 3, 6
_HASH = 1


def _call(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    ret = bpf_syscall(cmd, attr, platform.machine())
    if ret < 0:
        raise OSError(-ret, os.strerror(-ret))
    return ret


class PinnedMap:
    """A hash map of ``key_size``-byte keys pinned at ``path``; removed by close()."""

    def __init__(self, path: str, key_size: int = 8, value_size: int = 8,
                 map_type: int = _HASH) -> None:
        attr = ctypes.create_string_buffer(ATTR_SIZE)
        fields = (ctypes.c_uint32 * 4).from_buffer(attr)
        fields[0], fields[1], fields[2], fields[3] = map_type, key_size, value_size, 128
        self.fd = _call(_MAP_CREATE, attr)
        self.path, self.key_size, self.value_size = path, key_size, value_size
        name = ctypes.create_string_buffer(os.fsencode(path))
        attr = ctypes.create_string_buffer(ATTR_SIZE)
        ctypes.c_uint64.from_buffer(attr, 0).value = ctypes.addressof(name)
        ctypes.c_uint32.from_buffer(attr, 8).value = self.fd
        try:
            _call(_OBJ_PIN, attr)
        except OSError:
            os.close(self.fd)
            raise

    def _elem(self, cmd: int, key: int, value: Optional[int]) -> None:
        k = ctypes.create_string_buffer(key.to_bytes(self.key_size, "little"), self.key_size)
        v = ctypes.create_string_buffer((value or 0).to_bytes(self.value_size, "little"),
                                        self.value_size)
        attr = ctypes.create_string_buffer(ATTR_SIZE)
        ctypes.c_uint32.from_buffer(attr, 0).value = self.fd
        ctypes.c_uint64.from_buffer(attr, 8).value = ctypes.addressof(k)
        ctypes.c_uint64.from_buffer(attr, 16).value = ctypes.addressof(v)
        _call(cmd, attr)

    def add(self, key: int) -> None:
        self._elem(_MAP_UPDATE_ELEM, key, 1)

    def remove(self, key: int) -> None:
        self._elem(_MAP_DELETE_ELEM, key, None)

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self.fd)


@contextlib.contextmanager
def bpf_directory() -> Iterator[str]:
    """A directory of a bpf filesystem for our pins: /sys/fs/bpf where it is mounted,
    else a bpf filesystem of our own on a temporary directory, unmounted afterwards."""
    if _is_bpffs("/sys/fs/bpf"):
        yield "/sys/fs/bpf"
        return
    with tempfile.TemporaryDirectory(prefix="ht-bpffs-") as where:
        subprocess.run(["mount", "-t", "bpf", "bpf", where], check=True)
        try:
            yield where
        finally:
            subprocess.run(["umount", where], check=True)


def _is_bpffs(path: str) -> bool:
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1:3] == [path, "bpf"] for line in mounts)
