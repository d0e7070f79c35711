"""`ctloop up`, `status` and `down` with the real servers: MLflow (SQLite), Prometheus (Debian's package), the
gateway, the retrain webhook, the drift watcher and the rollout controller. Run as a user would: from a folder
outside the repository that holds a ctloop.yaml of its own, with the environments found beside the running one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import httpx
import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CTLOOP = [sys.executable, "-m", "ctloop.local.cli"]


@pytest.fixture
def stack_config(tmp_path, free_port, example_config_text):
    raw = yaml.safe_load(example_config_text)
    raw["local"].update(
        mlflow_port=free_port(),
        prometheus_port=free_port(),
        gateway_port=free_port(),
        webhook_port=free_port(),
        watcher_port=free_port(),
        rollout_port=free_port(),
        scrape_interval_s=1,
    )
    path = tmp_path / "ctloop.yaml"
    path.write_text(yaml.safe_dump(raw))
    yield path, raw["local"]
    subprocess.run([*CTLOOP, "down"], capture_output=True, cwd=tmp_path)


def ctloop(*args, check=True, cwd=None, env=None):
    result = subprocess.run([*CTLOOP, *args], capture_output=True, text=True, cwd=cwd, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"ctloop {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def pids(state: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text().split()[0]) for p in (state / "stack").glob("*.pid")}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def group_members(pgid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def test_up_status_down(stack_config):
    path, local = stack_config
    state = path.parent / ".ctloop"
    mlflow = f"http://127.0.0.1:{local['mlflow_port']}"
    prometheus = f"http://127.0.0.1:{local['prometheus_port']}"

    assert ctloop("status", "-c", str(path), check=False).returncode == 1  # nothing runs yet

    ctloop("up", cwd=path.parent)  # ./ctloop.yaml, in a folder of the user's
    # up returns only once both answer their health endpoints
    assert urlopen(f"{mlflow}/health", timeout=5).read().strip() == b"OK"
    assert urlopen(f"{prometheus}/-/ready", timeout=5).status == 200
    first = pids(state)
    assert set(first) == {"mlflow", "prometheus", "gateway", "webhook", "watcher", "rollout"}
    gateway = f"http://127.0.0.1:{local['gateway_port']}"
    assert json.loads(urlopen(f"{gateway}/health", timeout=5).read()) == {"deployments": []}

    listing = ctloop("status", "-c", str(path)).stdout
    assert "mlflow" in listing and mlflow in listing and prometheus in listing and "healthy" in listing

    # MLflow is a real tracking server: create an experiment over its REST API
    created = httpx.post(f"{mlflow}/api/2.0/mlflow/experiments/create", json={"name": "stack-test"}, timeout=10)
    assert created.status_code == 200 and created.json()["experiment_id"]

    # Prometheus scrapes the generated targets, itself and MLflow's exporter
    deadline = time.monotonic() + 60
    up = {}
    while time.monotonic() < deadline and set(up.values()) != {"1"}:
        with urlopen(f"{prometheus}/api/v1/query?query=up", timeout=5) as response:
            up = {r["metric"]["job"]: r["value"][1] for r in json.load(response)["data"]["result"]}
        time.sleep(1)
    jobs = ("prometheus", "mlflow", "gateway", "retrain-webhook", "drift-watcher", "rollout-controller")
    assert up == dict.fromkeys(jobs, "1")
    # the chart's alert rules are loaded
    with urlopen(f"{prometheus}/api/v1/rules", timeout=5) as response:
        groups = json.load(response)["data"]["groups"]
    assert any(rule["name"] == "CtloopDriftConfirmed" for g in groups for rule in g["rules"])

    # a second up starts nothing new
    ctloop("up", "-c", str(path))
    assert pids(state) == first

    # `ctloop retrain` as the README shows it, with no secret exported: it signs with the stack's own
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTLOOP_")}
    asked = ctloop("retrain", "--reason", "tried from the README", "--data", str(path.parent / "no-span"),
                   cwd=path.parent, env=env)  # fmt: skip
    assert asked.stdout.startswith("202 ") and json.loads(asked.stdout[4:])["decision"] == "accepted"

    groups = {name: group_members(pid) for name, pid in first.items()}
    ctloop("down", "-c", str(path))
    assert not any(alive(pid) for members in groups.values() for pid in members)
    assert pids(state) == {}
    assert ctloop("status", "-c", str(path), check=False).returncode == 1


def test_up_refuses_a_taken_port_and_leaves_nothing_running(stack_config):
    import socket

    path, local = stack_config
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", local["prometheus_port"]))
        blocker.listen()
        result = ctloop("up", "-c", str(path), check=False)
    assert result.returncode != 0
    assert f"port {local['prometheus_port']}" in result.stderr and "prometheus" in result.stderr
    assert pids(path.parent / ".ctloop") == {}


def test_missing_environments_are_one_line_naming_the_setting(stack_config):
    path, _ = stack_config
    raw = yaml.safe_load(path.read_text())
    raw["local"]["venvs_dir"] = str(path.parent / "no-venvs")
    path.write_text(yaml.safe_dump(raw))
    result = ctloop("up", check=False, cwd=path.parent)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "local.venvs_dir" in line and str(path.parent / "no-venvs" / "control" / "bin" / "python") in line
    assert pids(path.parent / ".ctloop") == {}


def test_stale_pid_file_is_not_trusted(stack_config):
    """A PID file left by a crash, whose number now belongs to another process, is not mistaken for ours."""
    path, _ = stack_config
    stack = path.parent / ".ctloop" / "stack"
    stack.mkdir(parents=True)
    (stack / "mlflow.pid").write_text(f"{os.getpid()} 12345\n")
    result = ctloop("status", "-c", str(path), check=False)
    assert "stopped" in result.stdout and str(os.getpid()) not in result.stdout
    ctloop("down", "-c", str(path))
    assert alive(os.getpid())
