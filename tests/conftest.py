"""Shared by every environment's test suite: nothing here may import more than the shared core."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path
from urllib.request import urlopen

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_ctloop_environment(monkeypatch):
    """Settings come from the test, never from the shell that runs it."""
    for name in list(os.environ):
        if name.startswith("CTLOOP_"):
            monkeypatch.delenv(name)


@pytest.fixture
def free_port():
    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    return pick


@pytest.fixture
def example_config_text() -> str:
    return (ROOT / "ctloop.yaml").read_text()


# -- a real MLflow tracking server, started from the dev environment (the only one with the server)

MLFLOW = ROOT / ".venvs" / "dev" / "bin" / "mlflow"


def _wait(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            with urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer in {timeout}s: {log.read_text()[-2000:]}")


def start_mlflow(folder: Path, port: int, backend: str) -> tuple[str, subprocess.Popen]:
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "mlflow.log"
    argv = [str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", backend, "--default-artifact-root", (folder / "artifacts").as_uri(),
            "--no-serve-artifacts"]  # fmt: skip
    process = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/health", process, log)
    except BaseException:  # a server that missed its deadline must not outlive the test (it keeps using CPU)
        with contextlib.suppress(ProcessLookupError):  # its group may be gone already
            stop(process)
        raise
    return url, process


def stop(process: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def mlflow_on(tmp_path, free_port):
    """Start a tracking server on a given backend store URI (stopped after the test); returns its URL."""
    started = []

    def start(backend: str) -> str:
        url, process = start_mlflow(tmp_path / f"mlflow-{len(started)}", free_port(), backend)
        started.append(process)
        return url

    yield start
    for process in started:
        stop(process)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A tracking server with a SQLite backend and a file:// artifact root (the local stack's setup)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path_factory.mktemp("mlflow")
    url, process = start_mlflow(folder, port, f"sqlite:///{folder / 'mlflow.db'}")
    yield url
    stop(process)
