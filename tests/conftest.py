"""Shared by every environment's test suite: nothing here may import more than the shared core."""

from __future__ import annotations

import contextlib
import json
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


# -- hostile input for the services' fuzz tests (test_fuzz_*, over real HTTP)

# Bytes an HTTP/1.1 client may put in a header value (h11 refuses the rest before sending): visible ASCII, space
# and every byte above 0x7f, which servers read as Latin-1.
_HEADER_BYTES = [b for b in range(0x20, 0x100) if b != 0x7F]


class Fuzz:
    """Strategies for what a broken or hostile client sends, and where the figures go.

    FUZZ_EXAMPLES: requests per service (200 unless set; `make fuzz` sets 10,000); FUZZ_RESULTS: a folder that gets
    one <service>.json of status counts per fuzz test (`make fuzz` merges them into bench/results/fuzz.*)."""

    OVERSIZED = b'"' + b"x" * (5 << 20) + b'"'  # above every service's body limit

    def __init__(self):
        from hypothesis import strategies as st  # only the environments whose services are fuzzed carry it

        self.st = st
        self.examples = int(os.environ.get("FUZZ_EXAMPLES", "200"))
        self.results = os.environ.get("FUZZ_RESULTS")
        huge = st.integers(min_value=-(10**400), max_value=10**400)
        leaf = st.none() | st.booleans() | st.floats() | huge | st.text(max_size=12)  # floats: NaN, ±Infinity too
        self.value = self.recursive(leaf)
        # What a protobuf Struct can carry (gRPC): its numbers are doubles, so no integer beyond a double's.
        self.proto_value = self.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=12))
        self.deep = st.integers(1_000, 100_000).flatmap(
            lambda n: st.sampled_from([b"[" * n + b"]" * n, b'{"a":' * n + b"1" + b"}" * n])
        )
        self.header = st.lists(st.sampled_from(_HEADER_BYTES), max_size=40).map(lambda b: bytes(b).strip())

    def recursive(self, leaf):
        st = self.st
        return st.recursive(
            leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
            max_leaves=16,
        )  # fmt: skip

    @staticmethod
    def dump(value) -> bytes:
        return json.dumps(value, allow_nan=True).encode()  # NaN and Infinity as the JSON that is not JSON

    def body(self, shaped=None):
        """A request body: JSON with hostile values, in the service's own shape where ``shaped`` gives one; deep
        nesting; bytes that are no UTF-8; and now and then a body over 5 MiB (drawn for 0 of 0-99, which hypothesis,
        favouring the ends of a range, picks far more often than one time in a hundred)."""
        st = self.st
        kinds = [self.value.map(self.dump), st.binary(max_size=512), self.deep]
        kinds += [shaped.map(self.dump)] if shaped is not None else []
        return st.integers(0, 99).flatmap(lambda i: st.just(self.OVERSIZED) if i == 0 else st.one_of(kinds))

    def post(self, client, url: str, body: bytes, headers: dict) -> int | None:
        """The answer's status; None where the server refused a body over 4 MiB before it was all sent and closed
        the connection (HTTP/1.1 allows it; the client then cannot read the 413)."""
        import httpx

        try:
            return client.post(url, content=body, headers=headers).status_code
        except (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError):
            if len(body) > 4 << 20:
                return None
            raise

    def settings(self):
        from hypothesis import HealthCheck, settings

        return settings(max_examples=self.examples, deadline=None, database=None,
                        suppress_health_check=list(HealthCheck))  # fmt: skip

    def record(self, service: str, statuses: dict, seconds: float) -> None:
        if self.results:
            folder = Path(self.results)
            folder.mkdir(parents=True, exist_ok=True)
            figures = {"service": service, "requests": sum(statuses.values()), "seconds": round(seconds, 1),
                       "statuses": {str(k or "closed"): v for k, v in sorted(statuses.items(), key=str)}}  # fmt: skip
            (folder / f"{service}.json").write_text(json.dumps(figures, indent=2))


@pytest.fixture(scope="session")
def fuzz() -> Fuzz:
    return Fuzz()
