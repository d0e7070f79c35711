"""One model-server process per predictor, swapped without dropping a request.

A changed predictor gets a new process; it takes traffic only once it answers its readiness check, and the old
one is stopped only after its last in-flight request has finished. How a process is started is a ``Launcher``:
the real one runs the serve image's environment; tests pass their own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from ctloop.contracts import seldon
from ctloop.errors import NotReadyError

log = logging.getLogger(__name__)

Launcher = Callable[[dict, int, Path], tuple[list[str], dict]]  # predictor, port, folder -> argv, extra env


@dataclass
class Endpoint:
    predictor: str
    url: str
    spec_hash: str
    process: subprocess.Popen | None
    version: str = ""
    inflight: int = 0  # counted under the pool's lock: see Pool.acquire


def spec_hash(predictor: dict) -> str:
    """What makes a new process necessary: the graph and the containers, not the traffic weight."""
    relevant = {k: predictor.get(k) for k in ("graph", "componentSpecs", "labels")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def seldon_launcher(venvs_dir: Path) -> Launcher:
    """The serve image's environment running the ctloop model server, as Seldon's operator would configure it."""
    bin_dir = Path(os.path.abspath(venvs_dir)) / "serve" / "bin"

    def launch(predictor: dict, port: int, folder: Path) -> tuple[list[str], dict]:
        graph = predictor["graph"]
        parameters = [p for p in graph.get("parameters", []) if p["name"] != "model_uri"]
        # Locally there is no storage initializer: the model server reads modelUri itself.
        parameters.append({"name": "model_uri", "value": graph["modelUri"], "type": "STRING"})
        env = {
            "PREDICTIVE_UNIT_PARAMETERS": json.dumps(parameters),
            "PREDICTIVE_UNIT_ID": graph["name"],
            "PREDICTOR_ID": predictor["name"],
            "PREDICTOR_LABELS": json.dumps(predictor.get("labels", {})),
            "PREDICTIVE_UNIT_HTTP_SERVICE_PORT": str(port),
            "PREDICTIVE_UNIT_GRPC_SERVICE_PORT": str(free_port()),
            "PREDICTIVE_UNIT_METRICS_SERVICE_PORT": str(free_port()),
            "OMP_NUM_THREADS": "1",
        }
        argv = [
            str(bin_dir / "seldon-core-microservice"),
            "ctloop.services.model_server.seldon_model.SeldonModel",
            "--service-type",
            "MODEL",
            "--workers",
            "1",
        ]
        return argv, env

    return launch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pool:
    def __init__(self, launcher: Launcher, folder: Path, ready_timeout: float = 120.0, drain_timeout: float = 30.0):
        self.launcher = launcher
        self.folder = folder
        self.ready_timeout = ready_timeout
        self.drain_timeout = drain_timeout
        self.endpoints: dict[tuple[str, str, str], Endpoint] = {}  # (namespace, deployment, predictor)
        # The reconcile thread swaps and removes endpoints while the event loop takes them for requests: taking one
        # and counting it in flight must be one step, or a process could be retired between the two and stopped
        # under a request that was already on its way to it.
        self.lock = threading.Lock()

    def acquire(self, key: tuple[str, str, str]) -> Endpoint | None:
        """The process serving ``key``, counted in flight until ``release``; None once it has left the pool."""
        with self.lock:
            endpoint = self.endpoints.get(key)
            if endpoint is not None:
                endpoint.inflight += 1
            return endpoint

    def release(self, endpoint: Endpoint) -> None:
        with self.lock:
            endpoint.inflight -= 1

    def _start(self, key: tuple[str, str, str], predictor: dict) -> Endpoint:
        port = free_port()
        folder = self.folder / "/".join(key)
        folder.mkdir(parents=True, exist_ok=True)
        argv, env = self.launcher(predictor, port, folder)
        with open(folder / "server.log", "ab") as log_file:
            process = subprocess.Popen(
                argv,
                env={**os.environ, **env},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=folder,
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = (folder / "server.log").read_text(errors="replace")[-1500:]
                raise NotReadyError(f"predictor {'/'.join(key)} exited during start: {tail}")
            try:
                if httpx.get(f"{url}/health/status", timeout=2.0).status_code == 200:
                    return Endpoint(key[2], url, spec_hash(predictor), process, seldon.model_version(predictor))
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self._stop(process)
        raise NotReadyError(f"predictor {'/'.join(key)} did not become ready in {self.ready_timeout}s")

    def _stop(self, process: subprocess.Popen | None) -> None:
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def _retire(self, endpoint: Endpoint) -> None:
        """Stop an endpoint, already out of the pool, once nothing is in flight on it (or the drain deadline passes)."""
        deadline = time.monotonic() + self.drain_timeout
        while endpoint.inflight > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop(endpoint.process)

    def reconcile(self, namespace: str, deployment: str, predictors: list[dict], prune: bool = True) -> None:
        """Make the running processes match ``predictors``; new ones are ready before the old ones go.

        ``prune=False`` keeps the processes of predictors that left: the caller prunes them once it no longer
        routes to them (a request routed by the old table must still find its predictor).
        """
        wanted = {p["name"]: p for p in predictors}
        retired = []
        for name, predictor in wanted.items():
            key = (namespace, deployment, name)
            current = self.endpoints.get(key)
            if current is not None and current.spec_hash == spec_hash(predictor):
                continue
            started = self._start(key, predictor)
            with self.lock:
                self.endpoints[key] = started  # the switch
            if current is not None:
                retired.append(current)
        for endpoint in retired:
            threading.Thread(target=self._retire, args=(endpoint,), daemon=True).start()
        if prune:
            self.prune(namespace, deployment, set(wanted))

    def prune(self, namespace: str, deployment: str, keep: set[str]) -> None:
        """Stop (after their in-flight requests) the processes of this deployment's predictors not in ``keep``."""
        with self.lock:
            left = [
                self.endpoints.pop(k)
                for k in list(self.endpoints)
                if k[:2] == (namespace, deployment) and k[2] not in keep
            ]
        for endpoint in left:
            threading.Thread(target=self._retire, args=(endpoint,), daemon=True).start()

    def remove(self, namespace: str, deployment: str) -> None:
        self.prune(namespace, deployment, set())

    def stop_all(self) -> None:
        with self.lock:
            endpoints, self.endpoints = list(self.endpoints.values()), {}
        for endpoint in endpoints:
            self._stop(endpoint.process)
