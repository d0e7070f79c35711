"""Where each image's code runs on this machine: the environments `make setup` builds from the image locks.

The local mode runs a component's entry program with its image's interpreter, so that what runs locally is
what runs in the container.
"""

from __future__ import annotations

import os
from pathlib import Path

from ctloop.config import Settings
from ctloop.errors import NotReadyError

IMAGES = ("validate", "train", "serve", "control", "watch", "dev")


def python_for(settings: Settings, image: str) -> Path:
    return python_in(Path(settings.local.venvs_dir), image)


def python_in(venvs_dir: Path, image: str) -> Path:
    """The interpreter of ``image``'s environment under ``venvs_dir``; one clear error when it is not there."""
    if image not in IMAGES:
        raise ValueError(f"unknown image {image!r}")
    # Absolute, as tasks and services run in folders of their own; not resolved, as a venv's python is a link.
    python = Path(os.path.abspath(venvs_dir)) / image / "bin" / "python"
    if not python.exists():
        raise NotReadyError(
            f"the {image} environment is missing ({python}): set local.venvs_dir to the folder of the per-image "
            "environments `make setup` builds (its .venvs), or run `make setup` there"
        )
    return python
