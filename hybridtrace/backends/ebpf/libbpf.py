"""ctypes bindings to the system libbpf (libbpf.so.1): only what the engine uses.

libbpf's log goes through one process-wide print callback; we keep the recent
lines so a failed load can say why (the verifier's complaint) in one message,
instead of libbpf writing to the user's stderr.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import os
import threading
from typing import TYPE_CHECKING, Deque, Dict, List, Optional, Sequence, Tuple

from hybridtrace.backends.base import BackendError

if TYPE_CHECKING:
    from hybridtrace.backends.ebpf.user_reads import TpBtfHandler

# include/uapi/linux/btf.h
BTF_KIND_INT, BTF_KIND_PTR, BTF_KIND_STRUCT, BTF_KIND_TYPEDEF = 1, 2, 4, 8
BTF_KIND_VOLATILE, BTF_KIND_CONST, BTF_KIND_RESTRICT, BTF_KIND_FUNC_PROTO = 9, 10, 11, 13
_SEE_THROUGH = (BTF_KIND_TYPEDEF, BTF_KIND_VOLATILE, BTF_KIND_CONST, BTF_KIND_RESTRICT)
_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


class _BtfType(ctypes.Structure):
    # struct btf_type; a FUNC_PROTO's struct btf_param array follows it.
    _fields_ = [("name_off", ctypes.c_uint32), ("info", ctypes.c_uint32),
                ("type", ctypes.c_uint32)]


class _BtfParam(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("type", ctypes.c_uint32)]


class _OpenOpts(ctypes.Structure):
    # The head of struct bpf_object_open_opts; ``sz`` tells libbpf how much we pass.
    _fields_ = [("sz", ctypes.c_size_t), ("object_name", ctypes.c_char_p)]


class Libbpf:
    """The loaded library with typed prototypes; use ``get()`` for the shared one."""

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path, use_errno=True)
        vp, ci, cs = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p

        def proto(name: str, restype: object, *argtypes: object) -> None:
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = list(argtypes)

        proto("bpf_object__open_mem", vp, vp, ctypes.c_size_t, ctypes.POINTER(_OpenOpts))
        proto("bpf_object__load", ci, vp)
        proto("bpf_object__close", None, vp)
        proto("bpf_object__find_map_by_name", vp, vp, cs)
        proto("bpf_object__next_program", vp, vp, vp)
        proto("bpf_program__section_name", cs, vp)
        proto("bpf_program__name", cs, vp)
        proto("bpf_program__set_autoload", ci, vp, ctypes.c_bool)
        proto("bpf_program__autoload", ctypes.c_bool, vp)
        proto("btf__load_vmlinux_btf", vp)
        proto("btf__find_by_name_kind", ctypes.c_int32, vp, cs, ctypes.c_uint32)
        proto("btf__free", None, vp)
        proto("btf__parse", vp, cs, vp)
        proto("btf__type_by_id", ctypes.POINTER(_BtfType), vp, ctypes.c_uint32)
        proto("btf__name_by_offset", cs, vp, ctypes.c_uint32)
        proto("bpf_program__attach", vp, vp)
        proto("bpf_link__destroy", ci, vp)
        proto("bpf_map__fd", ci, vp)
        proto("bpf_map__set_max_entries", ci, vp, ctypes.c_uint32)
        proto("bpf_map__set_map_flags", ci, vp, ctypes.c_uint32)
        proto("bpf_map__reuse_fd", ci, vp, ci)
        proto("bpf_map__initial_value", vp, vp, ctypes.POINTER(ctypes.c_size_t))
        proto("bpf_map_lookup_elem", ci, ci, vp, vp)
        proto("bpf_map_update_elem", ci, ci, vp, vp, ctypes.c_uint64)
        proto("libbpf_num_possible_cpus", ci)
        proto("libbpf_set_print", vp, _PRINT_FN)
        # For user_reads.TpBtfHandler (libbpf 1.0+), and to leave unused maps uncreated
        # (0.8+); absent from older libbpf.
        for name, restype, *argtypes in (
                ("bpf_map__set_autocreate", ci, vp, ctypes.c_bool),
                ("libbpf_register_prog_handler", ci, cs, ci, ci, vp),
                ("bpf_program__insns", vp, vp),
                ("bpf_program__insn_cnt", ctypes.c_size_t, vp),
                ("bpf_program__set_insns", ci, vp, vp, ctypes.c_size_t),
                ("bpf_program__set_attach_target", ci, vp, ci, cs),
                ("bpf_program__attach_trace", vp, vp)):
            if hasattr(lib, name):
                proto(name, restype, *argtypes)
        self._tp_btf_handler: Optional[TpBtfHandler] = None
        self._handler_lock = threading.Lock()
        self.lib = lib
        self.path = path
        self.log: Deque[str] = collections.deque(maxlen=64)
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        self._libc.vsnprintf.argtypes = [vp, ctypes.c_size_t, cs, vp]
        self._print_buf = ctypes.create_string_buffer(1 << 20)
        self._print_lock = threading.Lock()
        self._printer = _PRINT_FN(self._print)  # kept alive as long as we are
        lib.libbpf_set_print(self._printer)

    def tp_btf_handler(self, create: bool) -> Optional[TpBtfHandler]:
        """The process's "tp_btf/" handler that keeps user-memory reads (user_reads.py);
        with ``create``, registered now if it is not yet (before the object is opened)."""
        from hybridtrace.backends.ebpf.user_reads import REQUIRED, TpBtfHandler

        with self._handler_lock:  # not the print lock: registering may print
            if self._tp_btf_handler is None and create:
                missing = [name for name in REQUIRED if not hasattr(self.lib, name)]
                if missing:
                    raise BackendError(f"libbpf {self.path} lacks {', '.join(missing)}: "
                                       "cannot keep user-memory reads where kernel reads are "
                                       "refused (needs libbpf 1.0+)")
                handler = TpBtfHandler(self.lib)
                if handler.id < 0:
                    raise BackendError(f"libbpf_register_prog_handler: {os.strerror(-handler.id)}")
                self._tp_btf_handler = handler
            return self._tp_btf_handler

    def missing_btf_types(self, names: Sequence[str], kind: int) -> Optional[List[str]]:
        """The names in ``names`` of which the kernel's BTF has no type of ``kind``
        (BTF_KIND_*); None when the BTF cannot be loaded."""
        btf = self.lib.btf__load_vmlinux_btf()
        if not btf:
            return None
        try:
            return [n for n in names if self.lib.btf__find_by_name_kind(btf, n.encode(), kind) < 0]
        finally:
            self.lib.btf__free(btf)

    def tracepoint_args(self, events: Sequence[str], path: Optional[str] = None
                        ) -> Optional[Dict[str, List[str]]]:
        """The argument types of each of ``events`` the kernel's BTF (or the BTF file
        at ``path``) has (its btf_trace_EVENT typedef, less the leading ``void *``), as
        C text ("struct io_kiocb *", "void *", "int" for any integer); None when the
        BTF cannot be loaded. What a tp_btf program on the event may read depends on them."""
        btf = (self.lib.btf__parse(path.encode(), None) if path is not None
               else self.lib.btf__load_vmlinux_btf())
        if not btf:
            return None
        try:
            found = {}
            for event in events:
                tid = self.lib.btf__find_by_name_kind(btf, f"btf_trace_{event}".encode(),
                                                      BTF_KIND_TYPEDEF)
                if tid >= 0:
                    found[event] = self._proto_args(btf, tid)
            return found
        finally:
            self.lib.btf__free(btf)

    def _resolve(self, btf: int, tid: int) -> Tuple[int, int, str]:
        """(id, kind, name) of ``tid`` past typedefs and qualifiers (id 0: void)."""
        while tid:
            t = self.lib.btf__type_by_id(btf, tid).contents
            kind = (t.info >> 24) & 0x1F
            if kind not in _SEE_THROUGH:
                return tid, kind, (self.lib.btf__name_by_offset(btf, t.name_off) or b"").decode()
            tid = t.type
        return 0, 0, "void"

    def _proto_args(self, btf: int, typedef: int) -> List[str]:
        pid, kind, _ = self._resolve(btf, self.lib.btf__type_by_id(btf, typedef).contents.type)
        if kind == BTF_KIND_PTR:
            pid, kind, _ = self._resolve(btf, self.lib.btf__type_by_id(btf, pid).contents.type)
        if kind != BTF_KIND_FUNC_PROTO:
            return []
        head = self.lib.btf__type_by_id(btf, pid)
        params = ctypes.cast(ctypes.addressof(head.contents) + ctypes.sizeof(_BtfType),
                             ctypes.POINTER(_BtfParam))
        args = []
        for i in range(head.contents.info & 0xFFFF):
            tid, kind, name = self._resolve(btf, params[i].type)
            if kind == BTF_KIND_PTR:
                _, kind, name = self._resolve(btf, self.lib.btf__type_by_id(btf, tid).contents.type)
                args.append(f"struct {name} *" if kind == BTF_KIND_STRUCT else
                            "void *" if name == "void" else "pointer")
            else:
                args.append("int" if kind == BTF_KIND_INT else name or "?")
        return args[1:]  # the tracepoint's own data pointer

    def _print(self, level: int, fmt: Optional[bytes], args: Optional[int]) -> int:
        # Big enough for a whole verifier log, which libbpf prints in one call
        # (its verdict is at the end); allocated once, shared under a lock.
        with self._print_lock:
            buf = self._print_buf
            self._libc.vsnprintf(buf, len(buf), fmt, args)
            text = buf.value.decode(errors="replace")
        self.log.extend(ln.strip() for ln in text.splitlines() if ln.strip())
        return 0

    def recent_log(self, lines: int = 6) -> str:
        """The last log lines worth showing a user, joined into one line."""
        useful: List[str] = [ln for ln in self.log if not ln.startswith("libbpf: -- ")
                             and "END PROG LOAD LOG" not in ln]
        return " | ".join(useful[-lines:])

    def errno_error(self, what: str, err: Optional[int] = None) -> BackendError:
        code = ctypes.get_errno() if err is None else err
        detail = self.recent_log()
        msg = f"{what}: {os.strerror(code) if code else 'failed'}"
        exc = BackendError(msg + (f" ({detail})" if detail else ""))
        exc.errno = code or None
        return exc


_shared: Optional[Libbpf] = None
_lock = threading.Lock()


def find_library() -> Optional[str]:
    """libbpf.so.1 as the dynamic loader would find it."""
    name = ctypes.util.find_library("bpf")
    if name and name.endswith(".so.1"):
        return name
    for cand in ("libbpf.so.1",):
        try:
            ctypes.CDLL(cand)
        except OSError:
            continue
        return cand
    return None


def get() -> Libbpf:
    """The process-wide libbpf binding; BackendError when libbpf.so.1 is missing."""
    global _shared
    with _lock:
        if _shared is None:
            path = find_library()
            if path is None:
                raise BackendError("libbpf.so.1 not found (apt-get install libbpf1)")
            try:
                _shared = Libbpf(path)
            except (OSError, AttributeError) as exc:
                raise BackendError(f"cannot use {path}: {exc}") from None
        return _shared


def open_opts(name: bytes) -> _OpenOpts:
    return _OpenOpts(ctypes.sizeof(_OpenOpts), name)
