"""Real servers for the train-image tests: an MLflow tracking server (SQLite, or PostgreSQL from Debian's
package), started from the dev environment, which carries the server; the train image has only the client."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.request import urlopen

import pytest

ROOT = Path(__file__).resolve().parents[2]
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
    _wait(f"{url}/health", process, log)
    return url, process


def stop(process: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A tracking server with a SQLite backend and a file:// artifact root (the local stack's setup)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path_factory.mktemp("mlflow")
    url, process = start_mlflow(folder, port, f"sqlite:///{folder / 'mlflow.db'}")
    yield url
    stop(process)


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster from Debian's package, trust auth on loopback; yields its URI."""
    import socket

    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.fail("PostgreSQL's server is not installed: run `make setup` (installs Debian's postgresql)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Not under pytest's temporary folder: that one is private to this user, and the server may run as another.
    folder = Path(tempfile.mkdtemp(prefix="ctloop-postgres-"))
    data = folder / "data"
    # PostgreSQL refuses to run as root: as root, run it as Debian's postgres user.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(folder, "postgres")
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)  # fmt: skip
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "pg.log"),
                    "-w", "start"], check=True, capture_output=True)  # fmt: skip
    yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)
