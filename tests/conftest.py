"""Shared by every environment's test suite: nothing here may import more than the shared core."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_ctloop_environment(monkeypatch):
    """Settings come from the test, never from the shell that runs it."""
    import os

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
