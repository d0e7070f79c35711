"""The local deployment target's store: SeldonDeployment objects as YAML files, one per deployment, under
``<state_dir>/gateway/deployments/<namespace>/<name>.yaml`` (what `kubectl apply` would send)."""

from __future__ import annotations

from pathlib import Path

import yaml

from ctloop import artifacts
from ctloop.errors import BadInputError


def path_for(root: Path, namespace: str, name: str) -> Path:
    return root / namespace / f"{name}.yaml"


def write(root: Path, sdep: dict) -> Path:
    namespace = sdep["metadata"].get("namespace", "default")
    path = path_for(root, namespace, sdep["metadata"]["name"])
    artifacts.write_bytes(str(path), yaml.safe_dump(sdep, sort_keys=False).encode())
    return path


def load_all(root: Path) -> dict[tuple[str, str], dict]:
    out = {}
    for path in sorted(root.glob("*/*.yaml")):
        try:
            sdep = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise BadInputError(f"{path}: not YAML: {e}") from None
        if not isinstance(sdep, dict) or sdep.get("kind") != "SeldonDeployment":
            raise BadInputError(f"{path}: not a SeldonDeployment")
        out[(path.parent.name, sdep["metadata"]["name"])] = sdep
    return out


def signature(root: Path) -> tuple:
    """Changes when a file is added, removed or rewritten: what the reconcile loop polls."""
    return tuple(sorted((str(p), p.stat().st_mtime_ns) for p in root.glob("*/*.yaml")))
