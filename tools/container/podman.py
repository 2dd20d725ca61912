"""podman, as the container tests drive it: runc, no default ulimits, a root directory.

On these machines cgroups are in hybrid v1/v2 mode: crun and podman's default
ulimits fail there, so every container runs with ``--runtime runc`` and a
``CONTAINERS_CONF`` whose ``[containers]`` table sets ``default_ulimits = []``.
No image registry is reachable, so ``--rootfs`` names a directory (rootfs.py).
Containers are named by the caller and removed by that name (``remove``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any, Dict, List, Optional, Sequence

import attrs

CONF = "[containers]\ndefault_ulimits = []\n"


@attrs.frozen
class Container:
    """A running container as `podman inspect` reports it."""

    name: str
    id: str  # 64 hex digits
    pid: int  # its first process, in this (the host's) pid namespace


@attrs.frozen
class Podman:
    """Runs containers from ``rootfs``; ``workdir`` holds the containers.conf."""

    rootfs: str
    workdir: str

    @property
    def env(self) -> Dict[str, str]:
        conf = os.path.join(self.workdir, "containers.conf")
        if not os.path.exists(conf):
            with open(conf, "w") as f:
                f.write(CONF)
        return dict(os.environ, CONTAINERS_CONF=conf)

    def command(self, name: str, argv: Sequence[str], options: Sequence[str] = (),
                detach: bool = False) -> List[str]:
        # --network none: nothing here needs one, and no network plugin need be installed.
        return ["podman", "run", *(["-d"] if detach else ["--rm"]), "--runtime", "runc",
                "--network", "none", "--name", name, *options, "--rootfs", self.rootfs, *argv]

    def run(self, name: str, argv: Sequence[str], options: Sequence[str] = (),
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run to the end (removed afterwards); stdout and stderr captured."""
        try:
            return subprocess.run(self.command(name, argv, options), capture_output=True,
                                  text=True, env=self.env, timeout=timeout)
        finally:
            self.remove(name)

    def start(self, name: str, argv: Sequence[str], options: Sequence[str] = ()) -> Container:
        """Start detached; returns once podman reports its first process."""
        proc = subprocess.run(self.command(name, argv, options, detach=True),
                              capture_output=True, text=True, env=self.env, timeout=60)
        if proc.returncode != 0:
            self.remove(name)
            raise RuntimeError(f"podman run {name}: {proc.stderr.strip()[-300:]}")
        info = self.inspect(name)
        return Container(name, info["Id"], int(info["State"]["Pid"]))

    def inspect(self, name: str) -> Dict[str, Any]:
        proc = subprocess.run(["podman", "inspect", "--type", "container", name],
                              capture_output=True, text=True, env=self.env, timeout=60,
                              check=True)
        found: List[Dict[str, Any]] = json.loads(proc.stdout)
        return found[0]

    def wait(self, name: str, timeout: float) -> int:
        proc = subprocess.run(["podman", "wait", name], capture_output=True, text=True,
                              env=self.env, timeout=timeout, check=True)
        return int(proc.stdout.strip().splitlines()[-1])

    def logs(self, name: str) -> str:
        proc = subprocess.run(["podman", "logs", name], capture_output=True, text=True,
                              env=self.env, timeout=60)
        return proc.stdout + proc.stderr

    def remove(self, name: str) -> None:
        """Remove the container by its name (and with it its cgroup); absent is fine."""
        subprocess.run(["podman", "rm", "-f", "-t", "0", "--ignore", name],
                       capture_output=True, env=self.env, timeout=120)


def why_not(workdir: str) -> Optional[str]:
    """Why podman cannot run containers here, or None (tried with a throwaway one)."""
    for tool in ("podman", "runc", "dpkg-deb", "apt-get"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{tool} is not installed (tools/setup.sh installs it)"
    if os.geteuid() != 0:
        return "rootful podman needs root"
    from tools.container import rootfs
    try:
        root = rootfs.build()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        return f"no container root filesystem: {exc}"
    podman = Podman(root, workdir)
    done = podman.run(f"hybridtrace-probe-{os.getpid()}", ["/bin/true"])
    if done.returncode != 0:
        return f"podman run --runtime runc --rootfs {root} fails: {done.stderr.strip()[-200:]}"
    return None
