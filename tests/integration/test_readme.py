"""The Python API example in README.md runs as written against real execs."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README.md has no Python example"
    return blocks[0]


def test_readme_example_runs() -> None:
    proc = subprocess.Popen([sys.executable, "-c", readme_example()], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            subprocess.run(["/bin/true", "readme-example"], check=True)
            time.sleep(0.05)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert "chosen for exec" in lines[0]
    assert sum("ExecEvent(" in line for line in lines) >= 3
    assert "captured=" in lines[-1]
