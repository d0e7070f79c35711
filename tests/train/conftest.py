"""PostgreSQL from Debian's package, for the test that runs the registry on it (the MLflow server fixtures are in
tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest


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
