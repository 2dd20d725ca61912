#!/usr/bin/env python3
"""Record real trace_pipe output, event formats and buffer stats as parser fixtures.

Run as root on the kernel to record (needs only this package and the stdlib):

    sudo python3 tools/record_trace_pipe.py --name 6.18-host
    # inside a VM: python3 tools/record_trace_pipe.py --name 6.1-vm --out /tmp/rec

It creates its own tracefs instance and probe group, both named
``hybridtrace_<pid>_record``, enables the exec/open syscall tracepoints,
sched_process_exec/fork, uprobes on the C library's execve/open/openat (and
kprobes or eprobes where the kernel has them), then runs a workload with
hostile names (tools/trace_pipe_workload.py) in several phases (see
tests/fixtures/trace_pipe/README.md). The workload writes what it actually ran
to expected.<phase>.json beside the raw trace_pipe bytes. Everything created
is removed on every exit path (exceptions, SIGINT, SIGTERM, SIGHUP); the old
recording is replaced only when the new one succeeded.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import errno
import json
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trace_pipe_workload import ARGV_SLOTS, WORKLOAD_COMM, hexb

from hybridtrace import tracefs
from hybridtrace.backends.ftrace.instance import read_file as read_text
from hybridtrace.backends.ftrace.instance import write_file
from hybridtrace.elf import find_symbols
from hybridtrace.vocabulary import owned_name

WORKLOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "trace_pipe_workload.py")
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "tests", "fixtures", "trace_pipe")
SYSCALL_EVENTS = ("execve", "execveat", "open", "openat", "openat2", "creat")
SCHED_EVENTS = ("sched_process_exec", "sched_process_fork")
SYSTEM_WINDOW_S = 0.5
BUFFER_KB = 4096
LOSSY_BUFFER_KB = 8
SYSTEM_CAP_BYTES = 512 * 1024

# Argument registers, and pt_regs offsets of the syscall wrappers (4.17+ on
# x86_64: __x64_sys_* receive a struct pt_regs * in %di; arm64: in %x0).
REGS = {
    "x86_64": {"args": ("%di", "%si", "%dx", "%r10"), "ptregs": ("0x70", "0x68", "0x60", "0x38"),
               "ptr": "%di", "wrapper": "__x64_sys_"},
    "aarch64": {"args": ("%x0", "%x1", "%x2", "%x3"), "ptregs": ("0", "8", "16", "24"),
                "ptr": "%x0", "wrapper": "__arm64_sys_"},
}


class Fail(Exception):
    """A clear one-line reason the recording cannot go on."""


class Recorder:
    """Owns every kernel resource of one recording and undoes it in reverse order."""

    def __init__(self, out_dir: str) -> None:
        self.pid = os.getpid()
        self.group = owned_name("record")
        self.out_dir = out_dir
        self.undo: List[Tuple[str, Callable[[], None]]] = []
        self.notes: List[str] = []
        self.probes: List[Dict[str, str]] = []
        self.events: List[Tuple[str, str]] = []
        self.root = ""
        self.inst = ""
        self.readme = ""
        self.libc: Optional[Dict[str, Any]] = None
        self.made_instance = False

    # -- setup

    def setup(self) -> None:
        try:
            self.root, mounted = tracefs.ensure_mounted()
        except tracefs.TracefsUnavailable as exc:
            raise Fail(str(exc)) from None
        if mounted:
            self.undo.append(("unmount tracefs", lambda: _umount(self.root)))
        self.readme = read_text(os.path.join(self.root, "README"))
        self.inst = os.path.join(self.root, "instances", self.group)
        os.mkdir(self.inst)
        self.made_instance = True
        for name in SYSCALL_EVENTS:
            for prefix in ("sys_enter_", "sys_exit_"):
                if os.path.isdir(os.path.join(self.inst, "events", "syscalls", prefix + name)):
                    self.events.append(("syscalls", prefix + name))
        self.events += [("sched", name) for name in SCHED_EVENTS]
        self._add_uprobes()
        self._add_kprobes()
        self._add_eprobes()

    def _string_type(self) -> str:
        return "ustring" if "ustring" in self.readme else "string"

    def _add_probe(self, control: str, kind: str, definition: str) -> None:
        name = definition.split()[0].split("/", 1)[1]
        path = os.path.join(self.root, control)
        try:
            write_file(path, definition, append=True)
        except OSError as exc:
            detail = _error_log_tail(self.root)
            self.notes.append(f"{kind} rejected ({exc.strerror}): {definition}"
                              + (f" [error_log: {detail}]" if detail else ""))
            return
        self.undo.append((f"remove {kind} {name}",
                          lambda: write_file(path, f"-:{self.group}/{name}", append=True)))
        self.probes.append({"kind": kind, "name": name,
                            "definition": definition.replace(self.group, "GROUP")})
        self.events.append((self.group, name))

    def _add_uprobes(self) -> None:
        if not os.path.exists(os.path.join(self.root, "uprobe_events")):
            self.notes.append("no uprobe_events")
            return
        regs = REGS.get(platform.machine())
        libc = _libc_path()
        if regs is None or libc is None:
            self.notes.append(f"uprobes skipped: arch {platform.machine()} libc {libc}")
            return
        offsets = find_symbols(libc, ["execve", "execveat", "open", "openat"])
        self.libc = {"path": libc, "offsets": {k: hex(v) for k, v in offsets.items()}}
        st = self._string_type()
        a = regs["args"]
        argv = " ".join(f"a{i}=+0(+{8 * i}({a[1]})):{st}" for i in range(ARGV_SLOTS))
        argv_at = " ".join(f"a{i}=+0(+{8 * i}({a[2]})):{st}" for i in range(ARGV_SLOTS))
        defs = {
            "u_execve": f"filename=+0({a[0]}):{st} {argv}",
            "u_execveat": f"dfd={a[0]}:s32 filename=+0({a[1]}):{st} {argv_at}",
            "u_open": f"path=+0({a[0]}):{st} flags={a[1]}:x32 mode={a[2]}:x32",
            "u_openat": f"dfd={a[0]}:s32 path=+0({a[1]}):{st} flags={a[2]}:x32",
        }
        symbol = {"u_execve": "execve", "u_execveat": "execveat", "u_open": "open",
                  "u_openat": "openat"}
        for name, args in defs.items():
            off = offsets.get(symbol[name])
            if off is None:
                self.notes.append(f"{symbol[name]} not found in {libc}")
                continue
            self._add_probe("uprobe_events", "uprobe",
                            f"p:{self.group}/{name} {libc}:{off:#x} {args}")
        if "open" in offsets:
            self._add_probe("uprobe_events", "uretprobe",
                            f"r:{self.group}/u_open_ret {libc}:{offsets['open']:#x}"
                            " ret=$retval:s32")

    def _add_kprobes(self) -> None:
        if not os.path.exists(os.path.join(self.root, "kprobe_events")):
            self.notes.append("no kprobe_events")
            return
        regs = REGS.get(platform.machine())
        if regs is None:
            self.notes.append(f"kprobes skipped: arch {platform.machine()}")
            return
        st = self._string_type()
        user = "+u" if "+u" in self.readme or "ustring" in self.readme else "+"
        wrapper = regs["wrapper"]
        if _kallsyms_has(wrapper + "execve"):
            ptr = regs["ptr"]
            arg = [f"+{off}({ptr})" for off in regs["ptregs"]]
            prefix = wrapper
        else:
            arg = list(regs["args"])
            prefix = "sys_"
        argv = " ".join(f"a{i}=+0({user}{8 * i}({arg[1]})):{st}" for i in range(ARGV_SLOTS))
        self._add_probe("kprobe_events", "kprobe",
                        f"p:{self.group}/k_execve {prefix}execve filename=+0({arg[0]}):{st}"
                        f" {argv}")
        self._add_probe("kprobe_events", "kprobe",
                        f"p:{self.group}/k_openat {prefix}openat dfd={arg[0]}:s32"
                        f" path=+0({arg[1]}):{st} flags={arg[2]}:x32")
        self._add_probe("kprobe_events", "kretprobe",
                        f"r:{self.group}/k_openat_ret {prefix}openat ret=$retval:s64")

    def _add_eprobes(self) -> None:
        if "e[:[<group>/][<event>]]" not in self.readme:
            self.notes.append("no eprobes")
            return
        st = self._string_type()
        self._add_probe("dynamic_events", "eprobe",
                        f"e:{self.group}/e_openat syscalls.sys_enter_openat"
                        f" path=+0($filename):{st}")
        argv = " ".join(f"a{i}=+0(+u{8 * i}($argv)):{st}" for i in range(ARGV_SLOTS))
        self._add_probe("dynamic_events", "eprobe",
                        f"e:{self.group}/e_execve syscalls.sys_enter_execve"
                        f" filename=+0($filename):{st} {argv}")

    def _stop(self) -> None:
        for path, value in (("tracing_on", "0"), ("set_event_pid", ""),
                            ("options/event-fork", "0"), ("options/record-tgid", "0")):
            with contextlib.suppress(OSError):
                write_file(os.path.join(self.inst, path), value)
        for system, name in self.events:
            with contextlib.suppress(OSError):
                write_file(os.path.join(self.inst, "events", system, name, "enable"), "0")

    # -- phases

    def enable(self, with_probes: bool) -> None:
        for system, name in self.events:
            if system == self.group and not with_probes:
                continue
            write_file(os.path.join(self.inst, "events", system, name, "enable"), "1")

    def option(self, name: str, value: str) -> None:
        path = os.path.join(self.inst, "options", name)
        if os.path.exists(path):
            write_file(path, value)
        else:
            self.notes.append(f"no option {name}")

    def run_phase(self, phase: str, clock: str, irq_info: str, workload: bool,
                  overwrite: Optional[str] = None, tgid: str = "0") -> Dict[str, Any]:
        """One recording; ``overwrite`` set = a tiny buffer read only at the end (losses)."""
        self._stop()
        buffer_kb = LOSSY_BUFFER_KB if overwrite is not None else BUFFER_KB
        write_file(os.path.join(self.inst, "buffer_size_kb"), str(buffer_kb))
        self.option("overwrite", overwrite if overwrite is not None else "1")
        write_file(os.path.join(self.inst, "trace"), "")  # empty the buffer
        clocks = read_text(os.path.join(self.inst, "trace_clock"))
        if clock not in clocks.replace("[", " ").replace("]", " ").split():
            self.notes.append(f"phase {phase}: no trace_clock {clock}, using local")
            clock = "local"
        write_file(os.path.join(self.inst, "trace_clock"), clock)
        self.option("irq-info", irq_info)
        self.option("record-tgid", tgid)
        stats_before = self._stats()
        pipe_fd = os.open(os.path.join(self.inst, "trace_pipe"), os.O_RDONLY | os.O_NONBLOCK)
        data: List[bytes] = []
        try:
            if workload:
                self._workload_phase(phase, pipe_fd, data, live=overwrite is None)
            else:
                self.enable(with_probes=False)
                write_file(os.path.join(self.inst, "tracing_on"), "1")
                _drain(pipe_fd, data, time.monotonic() + SYSTEM_WINDOW_S, SYSTEM_CAP_BYTES)
                write_file(os.path.join(self.inst, "tracing_on"), "0")
            stats_after = self._stats()
            _drain(pipe_fd, data, time.monotonic() + 0.3, SYSTEM_CAP_BYTES * 8)
        finally:
            os.close(pipe_fd)
            self._stop()
        raw = b"".join(data)
        with open(os.path.join(self.out_dir, f"trace_pipe.{phase}.bin"), "wb") as handle:
            handle.write(raw)
        with open(os.path.join(self.out_dir, f"reads.{phase}.json"), "w") as handle:
            json.dump([len(chunk) for chunk in data], handle)  # size of each read()
        with open(os.path.join(self.out_dir, f"stats.{phase}.json"), "w") as handle:
            json.dump({"before": stats_before, "after": stats_after}, handle, indent=1)
        return {"name": phase, "trace_clock": clock, "irq_info": irq_info,
                "workload": workload, "bytes": len(raw), "buffer_kb": buffer_kb,
                "overwrite": overwrite if overwrite is not None else "1",
                "lossy": overwrite is not None, "record_tgid": tgid}

    def _workload_phase(self, phase: str, pipe_fd: int, data: List[bytes],
                        live: bool) -> None:
        tmpdir = tempfile.mkdtemp(prefix="ht-rec ")
        expected = os.path.join(self.out_dir, f"expected.{phase}.json")
        child = subprocess.Popen(
            [sys.executable, WORKLOAD, expected, tmpdir],
            stdin=subprocess.PIPE,
        )
        try:
            write_file(os.path.join(self.inst, "set_event_pid"), str(child.pid))
            self.option("event-fork", "1")
            self.enable(with_probes=True)
            write_file(os.path.join(self.inst, "tracing_on"), "1")
            assert child.stdin is not None
            child.stdin.write(b"g")
            child.stdin.close()
            while child.poll() is None:
                if live:
                    _drain(pipe_fd, data, time.monotonic() + 0.1, SYSTEM_CAP_BYTES * 8)
                else:
                    time.sleep(0.05)
            if child.returncode != 0:
                raise Fail(f"workload failed with exit status {child.returncode}")
            time.sleep(0.1)
            write_file(os.path.join(self.inst, "tracing_on"), "0")
        finally:
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
                child.wait()
            shutil.rmtree(tmpdir, ignore_errors=True)

    def _stats(self) -> Dict[str, str]:
        base = os.path.join(self.inst, "per_cpu")
        return {cpu: read_text(os.path.join(base, cpu, "stats"))
                for cpu in sorted(os.listdir(base)) if cpu.startswith("cpu")}

    def save_formats(self) -> List[Dict[str, str]]:
        out: List[Dict[str, str]] = []
        for system, name in self.events:
            saved_system = "probes" if system == self.group else system
            target = os.path.join(self.out_dir, "formats", saved_system, name)
            os.makedirs(target, exist_ok=True)
            text = read_text(os.path.join(self.inst, "events", system, name, "format"))
            with open(os.path.join(target, "format"), "w", encoding="utf-8",
                      errors="surrogateescape") as handle:
                handle.write(text.replace(self.group, "GROUP"))
            out.append({"system": saved_system, "name": name})
        return out

    def cleanup(self) -> List[str]:
        """Disable, remove the instance, then the probes (an enabled probe is busy)."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut this short
        errors: List[str] = []
        if self.made_instance:
            self._stop()
            try:
                os.rmdir(self.inst)
                self.made_instance = False
            except OSError as exc:
                errors.append(f"remove instance {self.inst}: {exc.strerror}")
        while self.undo:
            what, action = self.undo.pop()
            try:
                action()
            except OSError as exc:
                errors.append(f"{what}: {exc.strerror}")
        return errors


def _error_log_tail(root: str) -> str:
    """The kernel's last words on a rejected probe (tracefs error_log, 5.4+)."""
    try:
        lines = read_text(os.path.join(root, "error_log")).strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in lines[-3:])


def _drain(fd: int, data: List[bytes], deadline: float, cap: int) -> None:
    """Read trace_pipe until the deadline (or the byte cap), without blocking."""
    total = sum(len(d) for d in data)
    while total < cap:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        ready, _, _ = select.select([fd], [], [], min(left, 0.05))
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        data.append(chunk)
        total += len(chunk)


def _umount(path: str) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.umount2(path.encode(), 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)


def _libc_path() -> Optional[str]:
    """The C library this Python maps (its children map the same one)."""
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            path = line.split(None, 5)[-1].strip()
            base = os.path.basename(path)
            if base.startswith("libc.so") or base.startswith("libc-") or "ld-musl" in base:
                return os.path.realpath(path)
    return None


def _kallsyms_has(symbol: str) -> bool:
    try:
        with open("/proc/kallsyms", encoding="utf-8", errors="replace") as handle:
            return any(line.rstrip("\n").split(" ")[2:3] == [symbol] for line in handle)
    except OSError:
        return False


def _on_signal(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def record(name: str, out_root: str, force: bool) -> int:
    final_dir = os.path.join(out_root, name)
    if os.path.exists(final_dir) and not force:
        raise Fail(f"{final_dir} exists (use --force to replace it)")
    out_dir = final_dir + ".partial"  # replaces the old recording only on success
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    rec = Recorder(out_dir)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    errors: List[str] = []
    try:
        rec.setup()
        phases = [
            rec.run_phase("default", "local", "1", True),
            rec.run_phase("noirq", "local", "0", True),
            rec.run_phase("counter", "counter", "1", True),
            rec.run_phase("tgid", "mono", "1", True, tgid="1"),
            rec.run_phase("system", "mono", "1", False),
            rec.run_phase("overrun", "local", "1", True, overwrite="1"),
            rec.run_phase("dropped", "local", "1", True, overwrite="0"),
        ]
        formats = rec.save_formats()
        uname = os.uname()
        manifest = {
            "name": name, "release": uname.release, "version": uname.version,
            "machine": uname.machine, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                    time.gmtime()),
            "phases": phases, "formats": formats, "probes": rec.probes,
            "libc": rec.libc, "notes": [n.replace(rec.group, "GROUP") for n in rec.notes],
            "workload_comm": hexb(WORKLOAD_COMM), "argv_slots": ARGV_SLOTS,
        }
        with open(os.path.join(out_dir, "manifest.json"), "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=1, sort_keys=True)
    finally:
        errors = rec.cleanup()
        for line in errors:
            print(f"record_trace_pipe: cleanup: {line}", file=sys.stderr)
    for note in rec.notes:
        print(f"record_trace_pipe: note: {note}", file=sys.stderr)
    shutil.rmtree(final_dir, ignore_errors=True)
    os.rename(out_dir, final_dir)
    print(f"recorded into {final_dir}")
    return 1 if errors else 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", default=os.uname().release,
                        help="directory name under the fixtures (default: kernel release)")
    parser.add_argument("--out", default=FIXTURES, help="fixtures root directory")
    parser.add_argument("--force", action="store_true", help="replace an existing recording")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("record_trace_pipe: must run as root", file=sys.stderr)
        return 2
    try:
        return record(args.name, args.out, args.force)
    except Fail as exc:
        print(f"record_trace_pipe: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("record_trace_pipe: interrupted; cleaned up", file=sys.stderr)
        return 130
    except OSError as exc:
        err = errno.errorcode.get(exc.errno or 0, "?")
        print(f"record_trace_pipe: {exc.filename}: {exc.strerror} ({err})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
