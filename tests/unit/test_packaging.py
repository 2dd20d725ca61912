"""The wheel a user installs: what it holds, and that it runs from a fresh venv.

Built with pip from a copy of the package's files (tools/vm/wheel_check.build: pip
fetches setuptools from the package index for the build, and attrs for the install).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Iterator, List

import pytest

from hybridtrace.backends.ebpf.core_stream import TRANSPORTS, object_name
from hybridtrace.request import Kind
from hybridtrace.vocabulary import CORE_ARCHES, CORE_ATTACH_MODES
from tools.vm import wheel_check

PAGES = ["hybridtrace", "hybridtrace-execsnoop", "hybridtrace-opensnoop",
         "hybridtrace-doctor", "hybridtrace-cleanup"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # The same build the kernel matrix installs in its arm64 guests.
    yield Path(wheel_check.build(str(tmp_path_factory.mktemp("dist"))))


def names(wheel: Path) -> List[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_wheel_holds_what_runs_and_nothing_that_only_builds(wheel: Path) -> None:
    files = names(wheel)
    bpf = "hybridtrace/backends/ebpf/bpf/"
    for kind, transport, attach, machine in itertools.product(
            Kind, TRANSPORTS, CORE_ATTACH_MODES, CORE_ARCHES):
        assert bpf + object_name(kind, transport, attach, machine) in files
    for name in ("common.c", "exec.c", "open.c"):  # BCC compiles them at run time
        assert f"hybridtrace/backends/ebpf/bcc/{name}" in files
    assert "hybridtrace/schemas/event.schema.json" in files and "hybridtrace/py.typed" in files
    assert not [f for f in files if f.startswith(bpf) and not f.endswith(".bpf.o")]
    assert not [f for f in files if f.startswith(("tests/", "tools/"))]
    assert any(f.endswith(".dist-info/licenses/LICENSE") for f in files)
    data = "hybridtrace-0.1.0.data/data/share/"
    for page in PAGES:
        assert f"{data}man/man1/{page}.1" in files
    assert f"{data}bash-completion/completions/hybridtrace.bash" in files
    assert f"{data}zsh/site-functions/_hybridtrace" in files
    with zipfile.ZipFile(wheel) as archive:
        meta = archive.read(next(f for f in files if f.endswith(".dist-info/METADATA")))
    assert b"\nLicense-Expression: Apache-2.0\n" in meta
    assert max(i.file_size for i in zipfile.ZipFile(wheel).infolist()) < 1_000_000
    # For any architecture: the optional C decoder is left out (setup.py), source and all.
    assert wheel.name.endswith("-py3-none-any.whl")
    assert not [f for f in files if "_ringpage" in f or "_jsonline" in f or "_opencalls" in f]


def installed(wheel: Path, venv: Path) -> Path:
    """A fresh venv at ``venv`` with ``wheel`` installed into it."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check",
                    str(wheel)], check=True, timeout=600)
    return venv


def test_compiled_wheel_holds_the_c_decoder_and_uses_it(tmp_path: Path) -> None:
    wheel = Path(wheel_check.build(str(tmp_path / "dist"), compiled=True))
    files = names(wheel)
    assert [f for f in files if f.startswith("hybridtrace/backends/ftrace/_ringpage")
            and f.endswith(".so")]
    assert [f for f in files if f.startswith("hybridtrace/output/_jsonline") and f.endswith(".so")]
    assert [f for f in files if f.startswith("hybridtrace/backends/ftrace/_opencalls")
            and f.endswith(".so")]
    assert "hybridtrace/backends/ftrace/_ringpage.c" not in files  # the sdist has it
    assert "hybridtrace/backends/ftrace/_opencalls.c" not in files
    assert "hybridtrace/output/_jsonline.c" not in files
    assert "hybridtrace/pycompat.h" not in files  # their shared header: build time only
    venv = installed(wheel, tmp_path / "venv")
    check = ("from hybridtrace.backends.ftrace import raw_records as r\n"
             "assert '/venv/' in r.c_loop().__file__, r.c_loop()\n"
             "from hybridtrace.output import jsonl\n"
             "assert jsonl.c_writer()\n"
             "from hybridtrace.backends.ftrace import correlate as c\n"
             "assert c.OPEN_CALLS is not None\n"
             "import hybridtrace.backends.ftrace._opencalls as m\n"
             "assert '/venv/' in m.__file__, m.__file__\n")
    subprocess.run([str(venv / "bin/python"), "-c", check], cwd=tmp_path, check=True,
                   timeout=60, env={k: v for k, v in os.environ.items()
                                    if k != "HYBRIDTRACE_PURE_PYTHON"})


def test_wheel_runs_from_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    venv = installed(wheel, tmp_path / "venv")
    version = subprocess.run([str(venv / "bin/hybridtrace"), "--version"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60, check=True)
    assert version.stdout.startswith("hybridtrace ")
    for page in PAGES:  # where man looks for a bin/ on PATH: ../share/man
        assert (venv / "share/man/man1" / f"{page}.1").read_text().startswith(".TH ")
    # Every shipped object loads from the installed package, not from this checkout.
    check = ("import hybridtrace, itertools\n"
             "from hybridtrace.backends.ebpf import core_stream as c\n"
             "from hybridtrace.request import Kind\n"
             "assert '/venv/' in hybridtrace.__file__, hybridtrace.__file__\n"
             "for k, t, a, m in itertools.product(Kind, c.TRANSPORTS, c.CORE_ATTACH_MODES,"
             " c.CORE_ARCHES):\n"
             "    assert c._object_image(c.object_name(k, t, a, m))[:4] == b'\\x7fELF'\n")
    subprocess.run([str(venv / "bin/python"), "-c", check], cwd=tmp_path, check=True,
                   timeout=60)
