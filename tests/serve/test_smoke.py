"""Smoke test of the serve image's environment: seldon-core 1.17.1 serves a model over HTTP and gRPC.

The model class is tests/serve/echo_model.py; the microservice imports it from its working directory.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(300)

HERE = Path(__file__).resolve().parent
MICROSERVICE = Path(sys.executable).parent / "seldon-core-microservice"
STARTUP_TIMEOUT_S = 90


def _get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read().decode()


def _post_json(url: str, payload: dict, timeout: float = 10.0) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        assert response.status == 200
        return json.loads(response.read())


def _stop(process: subprocess.Popen) -> None:
    """Stop the microservice and every process it forked (gunicorn, gRPC, metrics server)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    # The group may outlive its leader: make sure nothing of it is left.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=15)


@pytest.fixture
def microservice(free_port, tmp_path):
    # free_port comes from tests/conftest.py; the three ports must also differ from each other.
    picked: list[int] = []
    while len(picked) < 3:
        port = free_port()
        if port not in picked:
            picked.append(port)
    ports = dict(zip(("http", "grpc", "metrics"), picked))
    env = {
        **os.environ,
        "PREDICTIVE_UNIT_HTTP_SERVICE_PORT": str(ports["http"]),
        "PREDICTIVE_UNIT_GRPC_SERVICE_PORT": str(ports["grpc"]),
        "PREDICTIVE_UNIT_METRICS_SERVICE_PORT": str(ports["metrics"]),
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "microservice.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(MICROSERVICE),
                "echo_model.EchoModel",  # module.Class, imported from cwd
                "--service-type",
                "MODEL",
                "--http-port",
                str(ports["http"]),
                "--grpc-port",
                str(ports["grpc"]),
                "--metrics-port",
                str(ports["metrics"]),
                "--workers",
                "1",
            ],
            cwd=HERE,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        ping = f"http://127.0.0.1:{ports['http']}/health/ping"
        while True:
            if process.poll() is not None:
                pytest.fail(f"microservice exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if _get(ping, timeout=2)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"microservice not ready after {STARTUP_TIMEOUT_S}s:\n{log_path.read_text()}")
            time.sleep(0.25)
        yield ports
    finally:
        _stop(process)


def test_microservice_predicts_over_http_and_grpc_and_exposes_metrics(microservice):
    http = f"http://127.0.0.1:{microservice['http']}"

    status, body = _get(f"{http}/health/ping")
    assert (status, body.strip()) == (200, "pong")

    reply = _post_json(f"{http}/api/v1.0/predictions", {"data": {"names": ["a", "b"], "ndarray": [[1.0, 2.0]]}})
    assert reply["data"]["ndarray"] == [[2.0, 4.0]]

    # Feedback with a reward: the wrapper counts it as seldon_api_model_feedback(_reward).
    _post_json(
        f"{http}/api/v1.0/feedback",
        {
            "request": {"data": {"ndarray": [[1.0, 2.0]]}},
            "response": {"data": {"ndarray": [[2.0, 4.0]]}},
            "reward": 1.0,
        },
    )

    import grpc
    from seldon_core.proto import prediction_pb2_grpc
    from seldon_core.utils import json_to_seldon_message, seldon_message_to_json

    with grpc.insecure_channel(f"127.0.0.1:{microservice['grpc']}") as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = prediction_pb2_grpc.ModelStub(channel)
        message = json_to_seldon_message({"data": {"names": ["a", "b"], "ndarray": [[3.0, 5.0]]}})
        grpc_reply = seldon_message_to_json(stub.Predict(message, timeout=10))
    assert grpc_reply["data"]["ndarray"] == [[6.0, 10.0]]

    _, metrics = _get(f"http://127.0.0.1:{microservice['metrics']}/metrics")
    assert "seldon_api_model_feedback_total" in metrics
    assert "seldon_api_model_feedback_reward_total" in metrics
    predict_counts = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("ctloop_echo_predictions_total{") and 'method="predict"' in line
    ]
    # One HTTP and one gRPC prediction, possibly counted by different worker processes.
    assert sum(predict_counts) == 2.0, metrics


def test_xgboost_predicts_with_numpy_1():
    import xgboost as xgb

    assert np.__version__.startswith("1."), "seldon-core 1.17.1 needs numpy<2"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    booster = xgb.train(
        {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 2, "nthread": 1},
        xgb.DMatrix(x, label=y),
        num_boost_round=5,
    )
    proba = booster.predict(xgb.DMatrix(x))
    assert proba.shape == (200,)
    assert ((proba > 0.5) == (y > 0.5)).mean() > 0.95
