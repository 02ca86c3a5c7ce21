"""What a run records about where it ran: the code version, the command, Python, packages and host.

The code version is the git commit of the working directory plus a SHA-256 of its uncommitted changes
(``git diff HEAD``, untracked files listed by name), so "the same commit" cannot hide an edited file.
"""

from __future__ import annotations

import hashlib
import platform
import socket
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

GIT_TIMEOUT = 10


def capture(cwd: Path | None = None) -> dict[str, Any]:
    packages = sorted({f"{d.metadata['Name']}=={d.version}" for d in distributions() if d.metadata["Name"]})
    return {
        "code": code_version(cwd or Path.cwd()),
        "command": list(sys.argv)[:64],
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "packages": packages,
        "packages_digest": "sha256:" + hashlib.sha256("\n".join(packages).encode()).hexdigest(),
    }


def code_version(cwd: Path) -> dict[str, Any]:
    """The commit and a digest of uncommitted changes, or why there is none (not a git checkout)."""
    commit = _git(cwd, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "note": "not in a git checkout"}
    diff = _git(cwd, "diff", "HEAD", "--no-ext-diff", "--binary") or ""
    untracked = _git(cwd, "ls-files", "--others", "--exclude-standard") or ""
    dirty = bool(diff or untracked)
    digest = "sha256:" + hashlib.sha256((diff + "\0" + untracked).encode()).hexdigest() if dirty else None
    return {"commit": commit.strip(), "dirty": digest}


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            ["git", *args],  # noqa: S607 - git from PATH, as the user runs it
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,  # noqa: S607
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None
