"""Lineage facts recorded with every run and model version: the code version and the image lock's hash."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from ctloop import __version__

# Every environment carries the lock it was installed from: the images at /opt/venv (images/Dockerfile), the local
# environments in .venvs/<image> (`make setup` copies it there), so what ran can be named the same way in both.
IMAGE_LOCK_IN_ENV = "ctloop-image.lock"


def code_version() -> str:
    """ctloop's version, plus the git commit when known (CTLOOP_GIT_SHA in images; in a checkout, the commit of
    the repository the running code was loaded from)."""
    sha = os.environ.get("CTLOOP_GIT_SHA")
    if not sha:
        try:
            sha = subprocess.run(
                ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short=12", "HEAD"],
                capture_output=True, text=True, timeout=5, check=True,
            ).stdout.strip()  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def image_lock_sha256() -> str | None:
    """sha256 of the lock the running environment was installed from, or None when it carries none."""
    path = Path(sys.prefix) / IMAGE_LOCK_IN_ENV
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
