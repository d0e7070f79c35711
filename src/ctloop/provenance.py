"""Lineage facts recorded with every run and model version: the code version and the image lock's hash."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from ctloop import __version__

# The images install their lock beside the environment (see images/*/Dockerfile).
IMAGE_LOCK_IN_ENV = "ctloop-image.lock"


def code_version() -> str:
    """ctloop's version, plus the git commit when known (CTLOOP_GIT_SHA in images, git in a checkout)."""
    sha = os.environ.get("CTLOOP_GIT_SHA")
    if not sha:
        root = Path(__file__).resolve().parents[2]
        try:
            sha = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                capture_output=True, text=True, timeout=5, check=True,
            ).stdout.strip()  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def image_lock_sha256(image: str) -> str | None:
    """sha256 of the image's requirements.lock: inside an image, the copy in the environment; in a checkout,
    images/<image>/requirements.lock (the local environment carries the same pins)."""
    candidates = [
        Path(sys.prefix) / IMAGE_LOCK_IN_ENV,
        Path(__file__).resolve().parents[2] / "images" / image / "requirements.lock",
    ]
    for path in candidates:
        if path.is_file():
            return hashlib.sha256(path.read_bytes()).hexdigest()
    return None
