"""A private apt configuration per Debian suite, so fetching a kernel from
bullseye or bookworm-backports never touches the host's apt sources or lists."""

from __future__ import annotations

import os
import subprocess
from typing import List, Optional, Sequence

MIRROR = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class PrivateApt:
    """apt-get / apt-cache with their own sources.list, lists and archives under ``root``."""

    def __init__(self, root: str, lines: Sequence[str], arch: Optional[str] = None) -> None:
        self.root = root
        self.lines = list(lines)
        self.arch = arch  # a Debian architecture (arm64); None: the host's

    @classmethod
    def for_suite(cls, cache: str, suite: str, security: Optional[str],
                  arch: Optional[str] = None) -> PrivateApt:
        """The suite's apt; another architecture's gets its own lists directory."""
        lines = [f"deb [signed-by={KEYRING}] {MIRROR} {suite} main"]
        if security:
            lines.append(f"deb [signed-by={KEYRING}] {SECURITY} {security} main")
        where = suite if arch is None else f"{suite}-{arch}"
        return cls(os.path.join(cache, "apt", where), lines, arch)

    def options(self) -> List[str]:
        r = self.root
        return [
            "-o", f"Dir::Etc::SourceList={r}/sources.list",
            "-o", "Dir::Etc::SourceParts=/nonexistent",
            "-o", f"Dir::State::Lists={r}/lists",
            "-o", f"Dir::Cache={r}/cache",
            # The sandbox user (_apt) cannot write into a root-owned private dir.
            "-o", "APT::Sandbox::User=root",
            "-q",
            *self.arch_options(),
        ]

    def arch_options(self) -> List[str]:
        """Only ``arch``'s packages, without dpkg --add-architecture on the host."""
        if self.arch is None:
            return []
        return ["-o", f"APT::Architecture={self.arch}",
                "-o", f"APT::Architectures={self.arch}"]

    def update(self) -> None:
        """Write the sources list and refresh the private package lists."""
        os.makedirs(os.path.join(self.root, "lists", "partial"), exist_ok=True)
        os.makedirs(os.path.join(self.root, "cache", "archives", "partial"), exist_ok=True)
        with open(os.path.join(self.root, "sources.list"), "w") as f:
            f.write("\n".join(self.lines) + "\n")
        self._run(["apt-get", *self.options(), "update"])

    def depends(self, package: str, prefix: str) -> Optional[str]:
        """The first dependency of ``package`` whose name starts with ``prefix``."""
        out = self._run(["apt-cache", *self.options(), "depends", package])
        for line in out.splitlines():
            word = line.strip().split()
            if len(word) == 2 and word[0] == "Depends:" and word[1].startswith(prefix):
                return word[1]
        return None

    def version(self, package: str) -> str:
        """The candidate version apt would download."""
        out = self._run(["apt-cache", *self.options(), "policy", package])
        for line in out.splitlines():
            if line.strip().startswith("Candidate:"):
                return line.split(":", 1)[1].strip()
        raise RuntimeError(f"apt knows no candidate for {package}")

    def download(self, packages: Sequence[str], dest: str) -> List[str]:
        """Download .debs into ``dest``; returns their paths."""
        os.makedirs(dest, exist_ok=True)
        self._run(["apt-get", *self.options(), "download", *packages], cwd=dest)
        return sorted(os.path.join(dest, n) for n in os.listdir(dest) if n.endswith(".deb"))

    @staticmethod
    def _run(argv: Sequence[str], cwd: Optional[str] = None) -> str:
        proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:1])} failed: {proc.stderr.strip()[-400:]}")
        return proc.stdout
