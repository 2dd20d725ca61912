"""`opensnoop -F`: make a relative path absolute from the process's cwd or dirfd.

Read from /proc after the fact, so it can fail (the process is gone, or has
moved on); then the path is shown as captured rather than guessed.
"""

from __future__ import annotations

import os
from typing import Optional

AT_FDCWD = -100


def full_path(pid: Optional[int], dfd: Optional[int],
              path: Optional[bytes]) -> Optional[bytes]:
    if path is None or path.startswith(b"/") or pid is None:
        return path
    base = f"/proc/{pid}/cwd" if dfd in (None, AT_FDCWD) else f"/proc/{pid}/fd/{dfd}"
    try:
        directory = os.readlink(base.encode())
    except OSError:
        return path
    return os.path.join(directory, path)
