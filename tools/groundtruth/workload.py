"""The ground-truth workload: a seeded plan of opens and execs, run by gt.c, logged exactly.

``make_plan(seed, ops)`` draws scenarios (one forked process each, some with
threads) from ``random.Random(seed)``; ``Workload`` builds gt/gt-static, lays
out the work directory the plan refers to (files, exec symlinks, shebang
scripts) and runs the plan; ``parse_log`` turns the log gt wrote into
``OpenOp``/``ExecOp`` values: what each operation really did, as exact bytes.

Every operation carries a unique marker: ``o<nonce>-<seq>`` in an open's path,
``x<nonce>-<seq>`` in an exec's path and ``a<nonce>-<seq>`` in its argv[1].

A plan is drawn for one architecture (this machine's unless told): a raw open
syscall it does not have (aarch64 has no ``open`` or ``creat``) is never drawn,
so the same seed gives another plan there; open flags are this machine's values
(``os.O_*``: a plan runs where it is made).
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import subprocess
import tempfile
from typing import Dict, Iterator, List, Optional, Tuple

import attrs

from hybridtrace.cgroups import cgroup2_root
from hybridtrace.vocabulary import syscalls_on

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "gt.c")
NOBODY = 65534
LONG_ARG = 256  # backends keep this many bytes of an argument (request.ARG_SIZE)

O_RDONLY, O_WRONLY, O_RDWR = os.O_RDONLY, os.O_WRONLY, os.O_RDWR
O_CREAT, O_EXCL, O_TRUNC, O_APPEND = os.O_CREAT, os.O_EXCL, os.O_TRUNC, os.O_APPEND
# O_NOFOLLOW differs between architectures (x86_64 0o400000, aarch64 0o100000)
O_NONBLOCK, O_NOFOLLOW, O_CLOEXEC = os.O_NONBLOCK, os.O_NOFOLLOW, os.O_CLOEXEC

# sys_<name>: the raw syscall <name> (no libc); libc_*: whichever syscall the C
# library makes for it on this architecture (gt.c logs which).
OPEN_METHODS = ("libc_open", "libc_openat", "libc_creat", "sys_open", "sys_openat",
                "sys_openat2", "sys_creat")
# Opens through io_uring (IORING_OP_OPENAT/OPENAT2): no open syscall at all. _async
# runs on an io-wq worker, _sqpoll is submitted by the kernel's poller thread,
# _direct opens into a fixed file slot (no fd). See gt.c.
URING_METHODS = ("uring_openat", "uring_openat2", "uring_openat_async", "uring_openat2_async",
                 "uring_openat_sqpoll", "uring_openat2_sqpoll", "uring_openat_direct")
URING_WEIGHTS = (4, 3, 3, 2, 1, 1, 1)
URING_SHARE = 0.3  # of all opens
HOSTILE = (b"\n", b"\x1b[31m", b"\xff", b"\xff\xfe", b" ", b"\t", b"\\", b"\x7f")


class WorkloadError(Exception):
    pass


def open_methods(arch: str) -> Tuple[str, ...]:
    """The open methods a plan for ``arch`` draws from, in OPEN_METHODS' order (so an
    x86_64 seed draws what it always drew): no raw syscall the architecture lacks."""
    have = syscalls_on(arch)
    return tuple(m for m in OPEN_METHODS if not m.startswith("sys_") or m[4:] in have)


@attrs.frozen(slots=True)
class Origin:
    """Where a thread was when it logged a record, as the kernel told it then (gt.c's
    rec_origin): what the event's origin fields (events.ORIGIN_FIELDS) must be."""

    pidns: int
    mntns: int
    cgroup: Optional[bytes]  # the v2 path; None: the thread had none ("0::" missing)
    cgroup_id: Optional[int]  # its directory's inode; None: no cgroup2 mount to stat
    ns_pid: int  # the ids in the thread's own pid namespace (NStgid, NSpid)
    ns_tid: int


def _origin(rec: Dict[str, object]) -> Optional[Origin]:
    """A record's origin; None for a log from a gt that did not write one."""
    if "pidns" not in rec:
        return None
    cgroup, cgid = rec.get("cgroup"), rec.get("cgid")
    return Origin(int(rec["pidns"]), int(rec["mntns"]),  # type: ignore[call-overload]
                  None if cgroup is None else _b(cgroup),
                  None if cgid is None else int(cgid),  # type: ignore[call-overload]
                  int(rec["nspid"]), int(rec["nstid"]))  # type: ignore[call-overload]


@attrs.frozen(slots=True)
class Image:
    """What a new image saw when it started (the exec's result)."""

    pid: int
    tid: int
    ppid: int
    uid: int
    comm: bytes
    argv: Tuple[bytes, ...]
    origin: Optional[Origin] = None


@attrs.frozen(slots=True)
class OpenOp:
    seq: int
    pid: int
    tid: int
    ppid: int
    uid: int
    comm: bytes
    syscall: Optional[str]  # None: no open syscall was made (io_uring)
    method: str
    dfd: int
    path: bytes
    flags: int
    mode: int
    fd: Optional[int]  # None for a failure, and for an io_uring open into a fixed slot
    errno: Optional[int]
    resolved: Optional[bytes]  # /proc/self/fd/N right after the open
    t0: int  # CLOCK_MONOTONIC ns just before the call (io_uring: before submitting)
    t1: int  # and just after it (io_uring: after the completion was reaped)
    via: str = "syscall"  # or "io_uring"
    origin: Optional[Origin] = None  # the caller's, logged right after the call

    @property
    def sqpoll(self) -> bool:
        """Submitted by the kernel's SQPOLL thread: no thread of ours made the call."""
        return self.method.endswith("_sqpoll")


@attrs.frozen(slots=True)
class ExecOp:
    seq: int
    pid: int
    tid: int
    ppid: int
    uid: int
    comm: bytes
    syscall: str
    method: str
    dfd: int
    at_flags: int
    path: bytes  # the path argument exactly as passed
    argv: Tuple[bytes, ...]
    retval: Optional[int]  # 0, -errno, or None if neither result was logged
    image: Optional[Image]
    t0: int  # CLOCK_MONOTONIC ns just before the call
    t1: Optional[int]  # when the new image started or the call had failed
    origin: Optional[Origin] = None  # the caller's, logged just before the call

    @property
    def kernel_filename(self) -> bytes:
        """bprm->filename: what sched_process_exec records for this call."""
        if self.syscall == "execve" or self.path.startswith(b"/") or self.dfd == -100:
            return self.path
        if self.at_flags & 0x1000 and self.path == b"":  # AT_EMPTY_PATH
            return b"/dev/fd/%d" % self.dfd
        return b"/dev/fd/%d/%s" % (self.dfd, self.path)


Op = object  # OpenOp | ExecOp (kept loose for Python 3.7+ attrs)


@attrs.frozen(slots=True)
class Plan:
    seed: int
    nonce: str
    lines: Tuple[str, ...]  # one scenario per line, as gt reads it
    ops: int
    # files the plan expects: name -> (kind, detail)
    files: Tuple[Tuple[bytes, str, str], ...]
    arch: str  # the machine (uname -m) it was drawn for


def _hex(b: bytes) -> str:
    return b.hex()


class _Gen:
    """Draws one plan; the file layout it needs is collected as it goes."""

    def __init__(self, seed: int, nonce: str, base: bytes, arch: str) -> None:
        self.base = base + b"/"
        self.open_methods = open_methods(arch)
        self.rnd = random.Random(seed)
        self.nonce = nonce
        self.seq = 0
        self.files: List[Tuple[bytes, str, str]] = []

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def marker(self, prefix: str, seq: int) -> bytes:
        return f"{prefix}{self.nonce}-{seq}".encode()

    def hostile(self) -> bytes:
        return self.rnd.choice(HOSTILE) + b"h"

    # -- opens --

    def open_op(self, thread: int) -> str:
        r = self.rnd
        seq = self.next_seq()
        name = self.marker("o", seq)
        if r.random() < 0.25:
            name += self.hostile()
        if r.random() < URING_SHARE:
            method = r.choices(URING_METHODS, URING_WEIGHTS)[0]
        else:
            method = r.choice(self.open_methods)
        at = method.startswith("uring_") or method in ("libc_openat", "sys_openat",
                                                          "sys_openat2")
        relative = at and r.random() < 0.5
        what = r.choices(["create", "existing", "private", "missing", "long"],
                         [4, 4, 1, 2, 1])[0]
        mode = 0
        if method in ("libc_creat", "sys_creat"):
            what = r.choice(["create", "existing", "private"])
        if what == "long":
            # > PATH_SIZE (512) bytes, marker first: the directory does not exist (ENOENT)
            name = name + b".d/" + b"/".join(b"L" * r.randint(150, 250) for _ in range(3)) + b"/f"
            if r.random() < 0.3:
                name += b"/" + b"M" * r.randint(100, 200)
        if what in ("existing", "private"):
            self.files.append((name, "file", "600" if what == "private" else "666"))
        acc = r.choice([O_RDONLY, O_WRONLY, O_RDWR])
        flags = acc | r.choice([0, O_CLOEXEC, O_NONBLOCK, O_APPEND, O_CLOEXEC | O_NOFOLLOW])
        if what == "create":
            flags |= O_CREAT | r.choice([0, O_EXCL, O_TRUNC])
            mode = r.choice([0o600, 0o644, 0o640, 0o666, 0o755, 0o4755 & 0o7777])
        elif (method in ("sys_open", "sys_openat") or method.startswith("uring_openat_")
              or method == "uring_openat") and r.random() < 0.2:
            mode = r.choice([0o600, 0o777])  # a mode the kernel ignores, passed all the same
        if method in ("libc_creat", "sys_creat"):
            flags, mode = 0, r.choice([0o600, 0o644, 0o666])
        if method.startswith(("sys_openat2", "uring_openat2")) and not flags & O_CREAT:
            mode = 0  # openat2 refuses a mode without O_CREAT/O_TMPFILE
        path = name if relative else self.base + name
        return f"O:{thread}:{seq}:{method}:{'d' if relative else 'c'}:{_hex(path)}:{flags}:{mode}"

    # -- execs --

    def argv(self, seq: int, argv0: bytes) -> List[bytes]:
        r = self.rnd
        args = [argv0, self.marker("a", seq)]
        for _ in range(r.choice([0, 0, 1, 2, 3, 5])):
            kind = r.choices(["plain", "empty", "long", "hostile", "edge"], [4, 2, 2, 2, 1])[0]
            if kind == "plain":
                args.append(b"arg%d" % r.randint(0, 999))
            elif kind == "empty":
                args.append(b"")
            elif kind == "long":
                args.append(bytes([r.choice(b"abcdefXYZ")]) * r.randint(257, 1500))
            elif kind == "hostile":
                args.append(b"h" + self.hostile() + b"\n\x1b\xff")
            else:
                args.append(b"E" * r.choice([255, 256, 257]))
        if r.random() < 0.05:
            args += [b"many%d" % i for i in range(r.randint(18, 30))]  # past max_args (20)
        return args

    def exec_op(self, thread: int, depth: int = 0) -> Tuple[str, int]:
        """One exec op; returns (op text, ops it accounts for, including its image's job)."""
        r = self.rnd
        seq = self.next_seq()
        name = self.marker("x", seq)
        count = 1
        method = r.choices(["execve", "sys_execve", "sys_execveat", "fexecve", "sys_emptypath",
                            "memfd"], [4, 3, 2, 1, 1, 1])[0]
        target = r.choices(["dynamic", "static", "script", "missing", "noexec", "long"],
                           [4, 3, 2, 1, 1, 1])[0]
        if method in ("fexecve", "sys_emptypath") and target in ("missing", "long"):
            target = "static"
        if method == "memfd":
            target = "static"
        if target == "long":
            name = name + b".d/" + b"/".join(b"P" * r.randint(150, 250) for _ in range(3))
        elif target != "missing":
            self.files.append((name, target, ""))
        relative = method == "sys_execveat"
        path = name if relative else self.base + name
        if method == "memfd":
            path = b"mfd-" + name
        argv0 = path if r.random() < 0.7 else r.choice([b"", b"argv0-" + name, b"-sh"])
        job = ""
        if target in ("dynamic", "static", "script") and depth < 2:
            kind = r.choices(["none", "opens", "exec", "threads", "linger"], [4, 3, 1, 1, 2])[0]
            if kind == "opens":
                ops = [self.open_op(0) for _ in range(r.randint(1, 3))]
                count += len(ops)
                job = "1 " + " ".join(ops)
            elif kind == "exec":
                op, n = self.exec_op(0, depth + 1)
                count += n
                job = "1 " + op
            elif kind == "threads":
                ops = [self.open_op(r.randint(0, 1)) for _ in range(r.randint(2, 4))]
                count += len(ops)
                job = "2 " + " ".join(ops)
            elif kind == "linger":
                ops = ["P" + self.open_op(0)[1:] for _ in range(r.randint(0, 2))]
                count += len(ops)
                job = "1 " + " ".join([*ops, f"S:0:{r.randint(5, 40)}"])
        argv_text = ",".join("x" + _hex(a) for a in self.argv(seq, argv0))
        return f"E:{thread}:{seq}:{method}:{_hex(path)}:{argv_text}:{_hex(job.encode())}", count

    # -- scenarios --

    def scenario(self) -> Tuple[str, int]:
        r = self.rnd
        kind = r.choices(["opens", "threads", "setuid", "exec", "thread-exec", "fail-exec",
                          "fork", "linger"], [3, 3, 1, 4, 2, 1, 1, 2])[0]
        ops: List[str] = []
        count = 0
        nthreads = 1
        if kind == "opens":
            ops = [self.open_op(0) for _ in range(r.randint(1, 4))]
        elif kind == "threads":
            nthreads = r.randint(2, 4)
            ops = [self.open_op(r.randrange(nthreads)) for _ in range(r.randint(3, 8))]
        elif kind == "setuid":
            nthreads = r.randint(1, 3)
            t = r.randrange(nthreads)
            ops = [self.open_op(r.randrange(nthreads))]
            ops.append(f"{r.choice('UR')}:{t}")
            ops += [self.open_op(r.randrange(nthreads)) for _ in range(r.randint(1, 3))]
            if r.random() < 0.5:
                op, n = self.exec_op(t)
                ops.append(op)
                count += n - 1
        elif kind in ("exec", "fail-exec"):
            if r.random() < 0.15:
                ops.append("U:0")
            if kind == "fail-exec":
                ops.append(self.open_op(0))
            op, n = self.exec_op(0)
            ops.append(op)
            count += n - 1
        elif kind == "thread-exec":
            nthreads = r.randint(2, 3)
            ops = [self.open_op(r.randrange(nthreads)) for _ in range(r.randint(0, 3))]
            op, n = self.exec_op(r.randrange(1, nthreads))
            ops.append(op)
            count += n - 1
        elif kind == "linger":
            # fds kept open, closed and reused by other threads, then a pause: /proc is
            # readable while the process lives, and what it shows may be a later file.
            nthreads = r.randint(1, 3)
            for _ in range(r.randint(2, 6)):
                op = self.open_op(r.randrange(nthreads))
                ops.append(("P" if r.random() < 0.4 else "O") + op[1:])
            ops.append(f"S:0:{r.randint(5, 40)}")
        else:
            ops = ["K:0", self.open_op(0)]
        count += sum(1 for op in ops if op[0] in "OPE")
        return f"{count} {nthreads} " + " ".join(ops), count


def make_plan(seed: int, ops: int, base: bytes, nonce: Optional[str] = None,
              arch: Optional[str] = None) -> Plan:
    """A plan of at least ``ops`` operations drawn from ``seed``, in work directory ``base``,
    for machine ``arch`` (default: this one's).

    The nonce (random unless given) only makes markers unique to this run.
    """
    if nonce is None:
        nonce = os.urandom(3).hex()
    arch = arch or platform.machine()
    gen = _Gen(seed, nonce, base, arch)
    lines: List[str] = []
    total = 0
    while total < ops:
        line, n = gen.scenario()
        lines.append(line)
        total += n
    return Plan(seed, nonce, tuple(lines), total, tuple(gen.files), arch)


def _build(outdir: str) -> Tuple[str, str]:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise WorkloadError("gcc not found (apt-get install gcc libc6-dev)")
    dyn, static = os.path.join(outdir, "gt"), os.path.join(outdir, "gt-static")
    for out, extra in ((dyn, []), (static, ["-static"])):
        done = subprocess.run([gcc, "-O2", "-Wall", *extra, "-o", out, SOURCE, "-lpthread"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise WorkloadError(f"gcc failed: {done.stderr.strip()[:500]}")
        os.chmod(out, 0o755)
    return dyn, static


class Workload:
    """A built workload in a private work directory; ``run()`` executes a plan."""

    def __init__(self, seed: int, ops: int) -> None:
        self.dir = tempfile.mkdtemp(prefix="ht-groundtruth-")
        os.chmod(self.dir, 0o777)  # uid 65534 works here too
        self.base = os.fsencode(self.dir)
        self.plan = make_plan(seed, ops, self.base)
        self.bin_dir = os.path.join(self.dir, "bin")
        os.mkdir(self.bin_dir)
        os.chmod(self.bin_dir, 0o755)
        self.gt, self.gt_static = _build(self.bin_dir)
        self.log_path = os.path.join(self.dir, "log.jsonl")
        self._lay_out()

    def _lay_out(self) -> None:
        gt, gts = os.fsencode(self.gt), os.fsencode(self.gt_static)
        rnd = random.Random(self.plan.seed ^ 0x5EED)
        for name, kind, detail in self.plan.files:
            path = self.base + b"/" + name
            if kind == "file":
                with open(path, "wb") as f:
                    f.write(b"ground truth\n")
                os.chmod(path, int(detail, 8))
            elif kind in ("dynamic", "static"):
                os.symlink(gt if kind == "dynamic" else gts, path)
            elif kind == "script":
                interp = rnd.choice([gt, gts])
                arg = rnd.choice([b"", b" optarg", b" -x"])
                with open(path, "wb") as f:
                    f.write(b"#!" + interp + arg + b"\n")
                os.chmod(path, 0o755)
            elif kind == "noexec":
                with open(path, "wb") as f:
                    f.write(b"not a program\n")
                os.chmod(path, 0o644)

    def plan_text(self) -> str:
        return "\n".join(self.plan.lines) + "\n"

    def run(self, rate: float = 0.0, jobs: int = 1, timeout: float = 3600.0) -> None:
        """Run the plan: ``rate`` operations per second (0: flat out), ``jobs``
        scenarios at once."""
        plan_path = os.path.join(self.dir, "plan.txt")
        with open(plan_path, "w") as f:
            f.write(self.plan_text())
        with open(self.log_path, "wb"):
            pass
        os.chmod(self.log_path, 0o666)  # uid 65534 appends through the inherited fd anyway
        env = {"PATH": "/usr/bin:/bin"}
        cgroup2 = cgroup2_root()  # where gt stats each record's cgroup (its cgroup_id)
        if cgroup2 is not None:
            env["GT_CGMOUNT"] = cgroup2[0]
            env["GT_CGPREFIX"] = "" if cgroup2[1] in ("/", "") else cgroup2[1].rstrip("/")
        done = subprocess.run([self.gt, plan_path, str(rate), self.log_path, self.dir,
                               self.gt_static, str(jobs)], cwd=self.dir, capture_output=True,
                              timeout=timeout, env=env)
        if done.returncode != 0:
            raise WorkloadError(f"gt exited {done.returncode}: {done.stderr.decode()[-800:]}")

    def operations(self) -> List[object]:
        with open(self.log_path, "rb") as f:
            return parse_log(f.read())

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _records(raw: bytes) -> Iterator[Dict[str, object]]:
    for line in raw.splitlines():
        if line.strip():
            yield json.loads(line)


def _b(value: object) -> bytes:
    assert isinstance(value, str)
    return bytes.fromhex(value)


def parse_log(raw: bytes) -> List[object]:
    """The log's records -> OpenOp/ExecOp values, in log order of their first record."""
    opens: List[OpenOp] = []
    execs: Dict[int, Dict[str, Dict[str, object]]] = {}
    order: List[Tuple[str, int]] = []
    for rec in _records(raw):
        kind = rec["k"]
        seq = int(rec["seq"])  # type: ignore[call-overload]
        if kind == "open":
            ret = int(rec["ret"])  # type: ignore[call-overload]
            resolved = rec.get("resolved")
            sys = rec.get("sys")
            direct = bool(rec.get("direct"))  # a fixed slot: the result is no fd
            opens.append(OpenOp(
                seq, int(rec["pid"]), int(rec["tid"]), int(rec["ppid"]),  # type: ignore
                int(rec["uid"]), _b(rec["comm"]), None if sys is None else str(sys),  # type: ignore
                str(rec["method"]),
                int(rec["dfd"]), _b(rec["path"]), int(rec["flags"]), int(rec["mode"]),  # type: ignore
                ret if ret >= 0 and not direct else None, -ret if ret < 0 else None,
                _b(resolved) if resolved is not None else None,
                int(rec["t0"]), int(rec["t1"]), str(rec.get("via", "syscall")),  # type: ignore
                _origin(rec)))
            order.append(("open", len(opens) - 1))
        elif kind in ("exec", "execfail", "image"):
            if kind == "exec":
                order.append(("exec", seq))
            execs.setdefault(seq, {})[kind] = rec
    out: List[object] = []
    for what, key in order:
        if what == "open":
            out.append(opens[key])
            continue
        parts = execs[key]
        rec = parts["exec"]
        image = None
        if "image" in parts:
            im = parts["image"]
            image = Image(int(im["pid"]), int(im["tid"]), int(im["ppid"]),  # type: ignore
                          int(im["uid"]), _b(im["comm"]),  # type: ignore
                          tuple(_b(a) for a in im["argv"]), _origin(im))  # type: ignore
        retval: Optional[int] = None
        t1: Optional[int] = None
        if image is not None:
            retval, t1 = 0, int(parts["image"]["t1"])  # type: ignore[call-overload]
        elif "execfail" in parts:
            retval = int(parts["execfail"]["ret"])  # type: ignore[call-overload]
            t1 = int(parts["execfail"]["t1"])  # type: ignore[call-overload]
        out.append(ExecOp(
            key, int(rec["pid"]), int(rec["tid"]), int(rec["ppid"]),  # type: ignore
            int(rec["uid"]), _b(rec["comm"]), str(rec["sys"]), str(rec["method"]),  # type: ignore
            int(rec["dfd"]), int(rec["atflags"]), _b(rec["path"]),  # type: ignore
            tuple(_b(a) for a in rec["argv"]), retval, image,  # type: ignore
            int(rec["t0"]), t1, _origin(rec)))  # type: ignore[call-overload]
    return out
