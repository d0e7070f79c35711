"""Where each image's code runs on this machine: the environments `make setup` builds from the image locks.

The local mode runs a component's entry program with its image's interpreter, so that what runs locally is
what runs in the container.
"""

from __future__ import annotations

from pathlib import Path

from ctloop.config import Settings
from ctloop.errors import NotReadyError

IMAGES = ("validate", "train", "serve", "control", "watch", "dev")


def python_for(settings: Settings, image: str) -> Path:
    if image not in IMAGES:
        raise ValueError(f"unknown image {image!r}")
    python = Path(settings.local.venvs_dir) / image / "bin" / "python"
    if not python.exists():
        raise NotReadyError(f"the {image} environment is missing ({python}): run `make setup`")
    return python
