"""A local stack for the end-to-end tests that run the pipeline on it: a settings file on free ports, `ctloop up`
and `ctloop down`, and `ctloop pipeline run --local`. Real processes and real HTTP; no cluster."""

from __future__ import annotations

import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
CTLOOP = [sys.executable, "-m", "ctloop.local.cli"]
SERVICES = ("mlflow", "prometheus", "gateway", "webhook", "watcher", "rollout")


def free() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path: Path, local: dict, **changes) -> Path:
    raw = yaml.safe_load((ROOT / "ctloop.yaml").read_text())
    raw["local"].update(local)
    raw["endpoints"]["mlflow"]["tracking_uri"] = f"http://127.0.0.1:{local['mlflow_port']}"
    raw["endpoints"]["prometheus"]["url"] = f"http://127.0.0.1:{local['prometheus_port']}"
    # Small spans keep these tests short; gates judged on so few rows are noisy, so only the floor stays strict.
    raw["gates"]["segments"].update(bootstrap=50, min_rows=150, ceilings={})
    raw["gates"]["segments"]["fairness"]["max_tpr_gap"] = 0.6
    _merge(raw, changes)
    path.write_text(yaml.safe_dump(raw))
    return path


def _merge(into: dict, changes: dict) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


@contextmanager
def running(folder: Path, **changes):
    """A stack whose state lives in ``folder``; yields (config path, local settings)."""
    local = {"state_dir": str(folder / "state"), "venvs_dir": str(ROOT / ".venvs"),
             **{f"{name}_port": free() for name in SERVICES}}  # fmt: skip
    config = write_config(folder / "ctloop.yaml", local, **changes)
    up = subprocess.run([*CTLOOP, "up", "-c", str(config)], capture_output=True, text=True)
    assert up.returncode == 0, up.stderr
    try:
        yield config, local
    finally:
        subprocess.run([*CTLOOP, "down", "-c", str(config)], capture_output=True)


def run_pipeline(config: Path, data: str, *extra: str):
    return subprocess.run([*CTLOOP, "pipeline", "run", "--local", "--data", data, "-c", str(config), *extra],
                          capture_output=True, text=True)  # fmt: skip


def versions(local: dict, name: str = "ctloop-credit-risk") -> list:
    client = MlflowClient(f"http://127.0.0.1:{local['mlflow_port']}")
    return client.search_model_versions(f"name='{name}'")
