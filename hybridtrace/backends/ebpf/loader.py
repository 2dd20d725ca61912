"""Open a shipped BPF object with libbpf, configure it, load it and attach it.

Everything the object creates in the kernel (programs, maps, links) belongs
to a ``BpfObject`` and is released by ``close()``, which is idempotent: a
failure half-way through loading or attaching leaves nothing behind.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any, Callable, Dict, Iterable, List, Optional

from hybridtrace.backends.base import BackendError
from hybridtrace.backends.ebpf.libbpf import Libbpf, open_opts

SECTION_PREFIX = "tracepoint/"
TP_BTF_PREFIX = "tp_btf/"


class BpfObject:
    """One opened BPF object: configure while ``loaded`` is False, then load()."""

    def __init__(self, lib: Libbpf, image: bytes, name: str,
                 keep_user_reads: bool = False) -> None:
        """``keep_user_reads``: where kernel reads are refused, libbpf would turn the
        tp_btf programs' user-memory reads into refused helpers (user_reads.py)."""
        self._lib = lib
        handler = lib.tp_btf_handler(create=keep_user_reads)  # before open, or not at all
        self._image = ctypes.create_string_buffer(image, len(image))  # libbpf keeps a pointer
        self._opts = open_opts(name.encode())
        ctypes.set_errno(0)
        obj = lib.lib.bpf_object__open_mem(self._image, len(image), ctypes.byref(self._opts))
        if not obj:
            raise lib.errno_error(f"cannot open BPF object {name}")
        self._obj: Optional[int] = obj
        self._links: List[int] = []
        self.name = name
        self.skipped: List[str] = []  # tracepoints this kernel lacks, programs not loaded
        self._adopted: List[int] = []
        # Programs whose attach target this kernel lacks: an error only if they are
        # still to be loaded (a caller may disable them first).
        self._unresolved: Dict[int, str] = {}
        if handler is not None:  # every tp_btf program now goes through it
            for prog in self.programs():
                sec = self.section(prog)
                if sec.startswith(TP_BTF_PREFIX):
                    self._adopted.append(prog)
                    if handler.adopt(prog, sec) != 0:
                        self._unresolved[prog] = sec

    def _need(self) -> int:
        if self._obj is None:
            raise BackendError(f"BPF object {self.name} is closed")
        return self._obj

    def map(self, name: str) -> int:
        ptr = self._lib.lib.bpf_object__find_map_by_name(self._need(), name.encode())
        if not ptr:
            raise BackendError(f"BPF object {self.name} has no map {name}")
        return int(ptr)

    def set_rodata(self, data: bytes) -> None:
        """Write the read-only config; the object's .rodata must be exactly that struct."""
        size = ctypes.c_size_t(0)
        ptr = self._lib.lib.bpf_map__initial_value(self.map(".rodata"), ctypes.byref(size))
        if not ptr or size.value != len(data):
            raise BackendError(
                f"BPF object {self.name}: .rodata is {size.value} bytes, config is {len(data)}"
                " (the installed objects and code are out of step: reinstall hybridtrace)"
            )
        ctypes.memmove(ptr, data, len(data))

    def set_max_entries(self, map_name: str, entries: int) -> None:
        if self._lib.lib.bpf_map__set_max_entries(self.map(map_name), entries) != 0:
            raise BackendError(f"cannot size map {map_name} to {entries}")

    def leave_out_map(self, map_name: str) -> None:
        """Do not create this map (only code .rodata makes dead may use it): one fd less.

        A libbpf before 0.8 cannot: the map is created and stays unused."""
        setter = getattr(self._lib.lib, "bpf_map__set_autocreate", None)
        if setter is not None and setter(self.map(map_name), False) != 0:
            raise BackendError(f"cannot leave map {map_name} out")

    def reuse_map_fd(self, map_name: str, fd: int) -> None:
        """Use an existing map (a pinned one) in place of this one; libbpf checks it
        fits (type, key and value sizes) and keeps a duplicate of ``fd``."""
        ret = self._lib.lib.bpf_map__reuse_fd(self.map(map_name), fd)
        if ret != 0:
            raise BackendError(f"cannot use the given map as {map_name}:"
                               f" {os.strerror(-ret) if ret < 0 else ret}")

    def set_map_flags(self, map_name: str, flags: int) -> None:
        if self._lib.lib.bpf_map__set_map_flags(self.map(map_name), flags) != 0:
            raise BackendError(f"cannot set the flags of map {map_name}")

    def programs(self) -> List[int]:
        out: List[int] = []
        prog = self._lib.lib.bpf_object__next_program(self._need(), None)
        while prog:
            out.append(int(prog))
            prog = self._lib.lib.bpf_object__next_program(self._need(), prog)
        return out

    def section(self, prog: int) -> str:
        return (self._lib.lib.bpf_program__section_name(prog) or b"").decode()

    def skip_missing(self, present: Callable[[str], bool]) -> None:
        """Don't load programs whose tracepoint ("syscalls/sys_enter_open") is absent."""
        for prog in self.programs():
            sec = self.section(prog)
            if sec.startswith(SECTION_PREFIX) and not present(sec[len(SECTION_PREFIX):]):
                self._lib.lib.bpf_program__set_autoload(prog, False)
                self.skipped.append(sec[len(SECTION_PREFIX):])

    def leave_out(self, names: Iterable[str]) -> None:
        """Neither load nor attach these programs (by function name)."""
        wanted = {n.encode() for n in names}
        for prog in self.programs():
            if self._lib.lib.bpf_program__name(prog) in wanted:
                self._lib.lib.bpf_program__set_autoload(prog, False)

    def disable(self, unwanted: Callable[[str], bool]) -> None:
        """Don't load the programs whose section ``unwanted`` names."""
        for prog in self.programs():
            if unwanted(self.section(prog)):
                self._lib.lib.bpf_program__set_autoload(prog, False)

    def load(self) -> None:
        for prog, sec in self._unresolved.items():
            if self._lib.lib.bpf_program__autoload(prog):
                raise BackendError(f"BPF object {self.name}: cannot find the attach target"
                                   f" of {sec}")
        self._lib.log.clear()
        rc = self._lib.lib.bpf_object__load(self._need())
        if rc != 0:
            raise self._lib.errno_error(f"cannot load BPF object {self.name}", -rc)

    def attach_all(self) -> None:
        for prog in self.programs():
            sec = self.section(prog)
            if not self._lib.lib.bpf_program__autoload(prog):
                continue  # not loaded: skip_missing or disable said so
            ctypes.set_errno(0)
            link = self._lib.lib.bpf_program__attach(prog)
            if not link:
                raise self._lib.errno_error(f"cannot attach {sec}")
            self._links.append(int(link))

    def map_fd(self, name: str) -> int:
        fd = int(self._lib.lib.bpf_map__fd(self.map(name)))
        if fd < 0:
            raise BackendError(f"map {name} has no fd")
        return fd

    def detach(self) -> None:
        """Stop the programs running; maps (and what the ring holds) stay readable."""
        links, self._links = self._links, []
        for link in links:
            self._lib.lib.bpf_link__destroy(link)

    def close(self) -> None:
        self.detach()
        adopted, self._adopted = self._adopted, []
        handler = self._lib.tp_btf_handler(create=False)
        for prog in adopted:
            if handler is not None:
                handler.forget(prog)
        obj, self._obj = self._obj, None
        if obj is not None:
            self._lib.lib.bpf_object__close(obj)


def update_elem(lib: Libbpf, map_fd: int, key: Any, value: Any) -> None:
    """Set one map element (BPF_ANY); OSError on failure."""
    if lib.lib.bpf_map_update_elem(map_fd, ctypes.byref(key), ctypes.byref(value), 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def read_percpu_u64_sum(lib: Libbpf, map_fd: int, ncpus: int, slot: int = 0) -> int:
    """Sum over the CPUs of a per-CPU u64 array's ``slot`` (a loss counter)."""
    key = ctypes.c_uint32(slot)
    values = (ctypes.c_uint64 * ncpus)()
    if lib.lib.bpf_map_lookup_elem(map_fd, ctypes.byref(key), values) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return sum(values)
