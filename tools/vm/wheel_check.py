"""The wheel a user installs, checked in a guest of another architecture (arm64).

Host: ``build(out)`` makes the wheel from a copy of the package's files with
``pip wheel`` (tests/unit/test_packaging.py's wheel is built the same way).
Guest (a step of tools/vm/guest_run.py):

    python3 -m tools.vm.wheel_check WHEEL WORKDIR

makes a venv that sees the system's packages (attrs comes from there, so no
index is reached), ``pip install --no-index WHEEL``, and then, with this checkout
off the path and the venv's own ``hybridtrace``: ``doctor --json`` and a short
``execsnoop --json`` that must show every marker exec run while it traced, each
with the argv it was given (or None, never another). Prints one JSON object;
exit 0 when all of that held.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# What pip needs to build the wheel: the package, its metadata and what the build reads.
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "LICENSE", "README.md", "hybridtrace",
           "tools/build_bpf.py", "man", "completions")
MARKERS = 8  # marker execs while the tracer runs
READY_S = 600.0  # TCG: a cold venv's first start compiles its byte code
TRUE = "/bin/true"


def build(out: str, repo: str = REPO, compiled: bool = False) -> str:
    """The wheel of ``repo``'s package, built in ``out`` (pip fetches setuptools for the
    build from the package index); returns its path. Without ``compiled``, the wheel
    leaves the optional C decoder out (setup.py) and installs on any architecture."""
    src = tempfile.mkdtemp(prefix="ht-wheel-src-")
    try:
        for name in SOURCES:
            path = os.path.join(repo, name)
            dest = os.path.join(src, name)
            if os.path.isdir(path):
                shutil.copytree(path, dest, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
            else:
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                shutil.copy2(path, dest)
        os.makedirs(out, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                        "--disable-pip-version-check", "-w", out, src], check=True,
                       timeout=900, env={**os.environ,
                                         "HYBRIDTRACE_PURE_PYTHON": "0" if compiled else "1"})
    finally:
        shutil.rmtree(src, ignore_errors=True)
    wheels = sorted(n for n in os.listdir(out) if n.startswith("hybridtrace-")
                    and n.endswith(".whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"pip wheel left {wheels or 'no wheel'} in {out}")
    return os.path.join(out, wheels[0])


class _Steps:
    """Commands run with the checkout off the path; each one's rc, time and error tail."""

    def __init__(self, work: str, venv: str) -> None:
        self.work = work
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.env["PATH"] = f"{venv}/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        self.record: Dict[str, Dict[str, Any]] = {}

    def run(self, name: str, argv: List[str], timeout: float) -> Optional[str]:
        """stdout, or None when the command failed (its record says how)."""
        start = time.monotonic()
        try:
            done = subprocess.run(argv, cwd=self.work, env=self.env, capture_output=True,
                                  text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.record[name] = {"rc": None, "error": str(exc)[-300:],
                                 "seconds": round(time.monotonic() - start, 1)}
            return None
        self.record[name] = {"rc": done.returncode, "seconds": round(time.monotonic() - start, 1)}
        if done.returncode != 0:
            self.record[name]["error"] = done.stderr.strip()[-300:]
            return None
        return done.stdout


def trace_markers(exe: str, steps: _Steps) -> Dict[str, Any]:
    """``execsnoop --json`` from the installed wheel while MARKERS execs of /bin/true
    run, each with its own argv[1]; stopped with SIGINT after the last one."""
    out_path = os.path.join(steps.work, "execsnoop.json")
    err_path = os.path.join(steps.work, "execsnoop.err")
    start = time.monotonic()
    with open(out_path, "wb") as o, open(err_path, "wb") as e:
        proc = subprocess.Popen([exe, "execsnoop", "--json"], cwd=steps.work, env=steps.env,
                                stdout=o, stderr=e, start_new_session=True)
    try:
        while proc.poll() is None and time.monotonic() - start < READY_S \
                and b"tracing exec with" not in _read(err_path):
            time.sleep(0.5)
        ready = round(time.monotonic() - start, 1)
        ran = []
        if proc.poll() is None:
            for i in range(MARKERS):
                marker = f"htwheel-{os.getpid()}-{i}"
                subprocess.run([TRUE, marker], check=False)
                ran.append(marker)
                time.sleep(0.3)
            time.sleep(3.0)  # the tail: events still in the buffers
            proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    events = [json.loads(line) for line in _read(out_path).splitlines() if line.strip()]
    seen: Dict[str, int] = {}
    wrong: List[str] = []
    for ev in events:
        argv = ev.get("argv")
        marker = next((a for a in argv or [] if a in ran), None)
        if marker is None:
            continue
        seen[marker] = seen.get(marker, 0) + 1
        if argv != [TRUE, marker] or ev.get("filename") not in (None, TRUE):
            wrong.append(f"{marker}: filename {ev.get('filename')!r} argv {argv!r}")
    return {"rc": rc, "ready_seconds": ready, "banner": _read(err_path).decode(
                "utf-8", "replace").strip().splitlines()[:1],
            "markers": len(ran), "seen": len(seen), "duplicates": sum(seen.values()) - len(seen),
            "wrong": wrong, "events": len(events)}


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def check(wheel: str, work: str) -> Dict[str, Any]:
    """Install ``wheel`` into a fresh venv under ``work`` and run it (see the module doc)."""
    venv = os.path.join(work, "venv")
    steps = _Steps(work, venv)
    result: Dict[str, Any] = {"wheel": os.path.basename(wheel), "steps": steps.record}
    exe = os.path.join(venv, "bin", "hybridtrace")
    installed = (steps.run("venv", [sys.executable, "-m", "venv", "--system-site-packages",
                                    venv], 900) is not None
                 and steps.run("pip install", [os.path.join(venv, "bin", "pip"), "install",
                                               "--no-index", "--disable-pip-version-check",
                                               wheel], 900) is not None)
    if installed:
        where = steps.run("import", [os.path.join(venv, "bin", "python"), "-c",
                                     "import hybridtrace, platform; print(hybridtrace.__file__);"
                                     " print(platform.machine())"], 300)
        module, machine = (where or "\n").splitlines()[:2] if where else (None, None)
        result["module"], result["machine"] = module, machine
        doctor = steps.run("doctor", [exe, "doctor", "--json"], 600)
        if doctor is not None:
            data = json.loads(doctor)
            result["doctor"] = {kind: data.get("decisions", {}).get(kind, {}).get("chosen")
                                for kind in ("exec", "open")}
        result["trace"] = trace_markers(exe, steps)
    result["passed"] = passed(result, venv)
    return result


def passed(result: Dict[str, Any], venv: str) -> bool:
    """Installed from the wheel (not this checkout), doctor ran and chose a backend,
    and the trace showed every marker exec once, with nothing wrong."""
    trace = result.get("trace") or {}
    doctor = result.get("doctor") or {}
    return (all(s.get("rc") == 0 for s in result["steps"].values())
            and str(result.get("module") or "").startswith(venv + "/")
            and all(doctor.get(k) for k in ("exec", "open"))
            and trace.get("rc") == 0 and trace.get("markers", 0) > 0
            and trace.get("seen") == trace.get("markers")
            and not trace.get("duplicates") and not trace.get("wrong"))


def summary(result: Optional[Dict[str, Any]]) -> str:
    """One line for the report."""
    if not result:
        return "no result (the step did not finish)"
    steps = ", ".join(f"{n} rc {s.get('rc')} in {s.get('seconds')} s"
                      for n, s in result["steps"].items())
    trace = result.get("trace") or {}
    doctor = result.get("doctor") or {}
    return (f"{'passed' if result.get('passed') else '**FAILED**'}: {result['wheel']}"
            f" installed with pip --no-index on {result.get('machine') or '?'}"
            f" ({steps}); doctor chose exec {doctor.get('exec')}, open {doctor.get('open')};"
            f" execsnoop from the wheel ready in {trace.get('ready_seconds')} s saw"
            f" {trace.get('seen')} of {trace.get('markers')} marker execs"
            f" ({len(trace.get('wrong') or [])} with a wrong field"
            + (f": {'; '.join(trace['wrong'][:3])}" if trace.get("wrong") else "") + ")")


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m tools.vm.wheel_check WHEEL WORKDIR", file=sys.stderr)
        return 2
    os.makedirs(argv[1], exist_ok=True)
    result = check(argv[0], argv[1])
    print(json.dumps(result, indent=1))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
