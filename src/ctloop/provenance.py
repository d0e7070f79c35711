"""Lineage facts recorded with every run and model version: the code version and the image lock's hash.

`python -m ctloop.provenance` prints what an environment runs (its code's and its lock's sha256) as JSON: the local
runner keys its cache on it, as KFP's cache key holds the image.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from ctloop import __version__

# Every environment carries the lock it was installed from: the images at /opt/venv (images/Dockerfile), the local
# environments in .venvs/<image> (`make setup` copies it there), so what ran can be named the same way in both.
IMAGE_LOCK_IN_ENV = "ctloop-image.lock"
# The rooms an image carries (setup.py mounts them under ctloop): a pipeline step's code is all in these.
CODE_PACKAGES = ("ctloop", "ctloop.components", "ctloop.services", "ctloop.pipelines")


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


def code_sha256() -> str:
    """sha256 of the ctloop code this interpreter imports: every file of its packages, by package-relative name.

    Unlike code_version(), it changes with an edit that is not committed, and with an upgrade installed over a
    checkout."""
    h = hashlib.sha256()
    for package in CODE_PACKAGES:
        try:
            spec = importlib.util.find_spec(package)
        except ModuleNotFoundError:
            spec = None
        for folder in (spec.submodule_search_locations or []) if spec else []:
            root = Path(folder)
            for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
                h.update(f"{package}/{path.relative_to(root).as_posix()}".encode() + b"\0")
                h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def environment_identity() -> dict:
    return {"code_sha256": code_sha256(), "image_lock_sha256": image_lock_sha256()}


if __name__ == "__main__":
    print(json.dumps(environment_identity()))
