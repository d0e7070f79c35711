"""The local gateway (control environment) over real HTTP, with stand-in predictors (echo_predictor.py) so that
routing, mirroring, logging and swaps are measured on their own: traffic split within statistical tolerance,
shadow answers never returned, a slow or failing shadow changing neither live latency nor status, CloudEvents
with Seldon's headers, a predictor swap under steady load that drops no request."""

from __future__ import annotations

import asyncio
import json
import math
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import uvicorn

from ctloop import deployment_target
from ctloop.contracts import ingestion, seldon
from ctloop.local.gateway.app import Gateway, RequestLogger
from ctloop.local.gateway.predictors import Pool, free_port

ECHO = Path(__file__).with_name("echo_predictor.py")
pytestmark = pytest.mark.timeout(300)


def echo_launcher(tmp: Path):
    def launch(predictor: dict, port: int, folder: Path):
        params = {p["name"]: p["value"] for p in predictor["graph"].get("parameters", [])}
        env = {"ECHO_DELAY": params.get("delay", "0"), "ECHO_FAIL": params.get("fail", "0"),
               "ECHO_COUNT_FILE": str(tmp / f"count-{predictor['name']}")}  # fmt: skip
        return [sys.executable, str(ECHO), str(port), predictor["name"], seldon.model_version(predictor)], env

    return launch


def predictor(name: str, traffic: int | None = None, shadow: bool = False, logger: str | None = None, **params):
    graph = {"name": "model", "type": "MODEL", "modelUri": "file:///unused",
             "parameters": [{"name": k, "value": str(v), "type": "STRING"} for k, v in params.items()]}  # fmt: skip
    if logger:
        graph["logger"] = {"mode": "all", "url": logger}
    out = {"name": name, "graph": graph, "componentSpecs": []}
    if traffic is not None:
        out["traffic"] = traffic
    if shadow:
        out["shadow"] = True
    return out


def sdep(*predictors) -> dict:
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": "credit-risk", "namespace": "ctloop"},
        "spec": {"predictors": list(predictors)},
    }


def publish(root: Path, sdep: dict) -> None:
    """Create the SeldonDeployment, or replace its spec: what the deploy step and the controller do."""
    target = deployment_target.LocalTarget(root)
    namespace, name = sdep["metadata"]["namespace"], sdep["metadata"]["name"]
    if target.get(namespace, name) is None:
        target.create(sdep)
    else:
        deployment_target.update(target, namespace, name, lambda current: {**current, "spec": sdep["spec"]})


class Running:
    def __init__(self, tmp: Path, deployment: dict):
        self.tmp = tmp
        self.root = tmp / "deployments"
        publish(self.root, deployment)
        self.gateway = Gateway(self.root, Pool(echo_launcher(tmp), tmp / "predictors", drain_timeout=10),
                               poll_s=0.2, seed=7)  # fmt: skip
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(self.gateway.app(), host="127.0.0.1", port=self.port,
                                                    log_level="warning"))  # fmt: skip
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}/seldon/ctloop/credit-risk/api/v1.0/predictions"

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def count(self, name: str) -> int:
        path = self.tmp / f"count-{name}"
        return int(path.read_text()) if path.exists() else 0


def ask(client: httpx.Client, url: str, **headers) -> httpx.Response:
    return client.post(url, json={"data": {"ndarray": [[1.0]]}}, headers=headers, timeout=30)


@pytest.mark.timeout(3600)
def test_fuzz_predictions_and_feedback_never_get_a_5xx_from_the_gateway(tmp_path, fuzz):
    """Generated requests through the gateway to echo predictors (which answer anything): hostile bodies, puids and
    headers. What the predictors answer is theirs; the gateway itself may add no 5xx."""
    from hypothesis import given

    st = fuzz.st
    deployment = sdep(predictor("main", 80, model_version="1"), predictor("canary", 20, model_version="2"),
                      predictor("shadow", shadow=True, model_version="2"))  # fmt: skip
    statuses: Counter[int | None] = Counter()
    started = time.monotonic()
    with Running(tmp_path, deployment) as g, httpx.Client(timeout=30) as client:
        base = g.url.rsplit("/", 1)[0]

        @fuzz.settings()
        @given(data=st.data())
        def one(data):
            path = data.draw(st.sampled_from(["predictions", "feedback"]))
            names = data.draw(st.lists(st.sampled_from(["Seldon-Puid", "Content-Type", "X-Fuzz"]), unique=True))
            headers = {name: data.draw(fuzz.header) for name in names}
            body = data.draw(fuzz.body())
            status = fuzz.post(client, f"{base}/{path}", body, headers)
            statuses[status] += 1
            assert status is None or status < 500, headers

        one()
        assert ask(client, g.url).status_code == 200
        assert client.get(f"http://127.0.0.1:{g.port}/health").status_code == 200
    fuzz.record("gateway", statuses, time.monotonic() - started)


def test_a_body_over_the_limit_is_a_413_before_it_is_read(tmp_path):
    import socket

    from ctloop.contracts.seldon_message import MAX_BYTES

    with Running(tmp_path, sdep(predictor("main", 100, model_version="1"))) as g, httpx.Client() as client:
        path = g.url.split(f":{g.port}", 1)[1]
        with socket.create_connection(("127.0.0.1", g.port), timeout=20) as s:
            s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {MAX_BYTES + 1}\r\n\r\n{{".encode())  # fmt: skip
            assert " 413 " in s.makefile("rb").readline().decode()  # answered with the body never sent
        assert g.count("main") == 0  # nothing reached the predictor
        assert ask(client, g.url).status_code == 200


def test_traffic_is_split_by_weight(tmp_path):
    with (
        Running(
            tmp_path, sdep(predictor("main", 70, model_version="1"), predictor("canary", 30, model_version="2"))
        ) as g,
        httpx.Client() as client,
    ):
        answers = [ask(client, g.url).json()["data"]["ndarray"][0][0] for _ in range(1000)]
    share = answers.count("canary") / len(answers)
    assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / len(answers)), share  # within 4 standard errors
    assert set(answers) == {"main", "canary"}


def test_shadow_answers_are_never_returned_and_a_slow_or_failing_shadow_changes_nothing(tmp_path):
    deployment = sdep(predictor("main", 100, model_version="1"), predictor("shadow", shadow=True, delay="2", fail="1"))
    with Running(tmp_path, deployment) as g, httpx.Client() as client:
        times, statuses, names = [], [], []
        for _ in range(20):
            started = time.perf_counter()
            response = ask(client, g.url)
            times.append(time.perf_counter() - started)
            statuses.append(response.status_code)
            names.append(response.json()["data"]["ndarray"][0][0])
        deadline = time.monotonic() + 10
        while g.count("shadow") < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        mirrored = g.count("shadow")
    assert statuses == [200] * 20 and set(names) == {"main"}
    assert max(times) < 1.0  # the shadow takes 2 s and then fails; no live answer waited for it
    assert mirrored == 20


class Sink:
    """A request-logger endpoint for the CloudEvents the gateway sends; ``open`` cleared holds every answer."""

    def __init__(self):
        self.events: list[tuple[dict, bytes]] = []
        self.open, self.lock = threading.Event(), threading.Lock()
        self.open.set()
        self.in_flight = self.most_in_flight = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with sink.lock:
                    sink.in_flight += 1
                    sink.most_in_flight = max(sink.most_in_flight, sink.in_flight)
                sink.open.wait(30)
                with sink.lock:
                    sink.in_flight -= 1
                sink.events.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_slow_request_logger_gets_a_few_events_at_a_time_and_a_full_queue_drops_the_rest():
    # Seldon's executor: a buffered queue and a fixed number of logger workers. With the logger stalled, 2 workers
    # hold 2 events, the queue 3, and the other 5 are dropped instead of piling up as tasks.
    sink = Sink()
    sink.open.clear()

    async def play():
        logger = RequestLogger(workers=2, capacity=3)
        await logger.start()
        for i in range(2):
            logger.put(sink.url, b"{}", {"ce-id": str(i)})
        deadline = time.monotonic() + 10
        while sink.in_flight < 2 and time.monotonic() < deadline:  # both workers wait on the logger
            await asyncio.sleep(0.05)
        for i in range(2, 10):
            logger.put(sink.url, b"{}", {"ce-id": str(i)})
        sink.open.set()
        await logger.stop(drain_s=10)  # sends what is queued before it stops
        return logger.dropped

    assert asyncio.run(play()) == 5
    assert len(sink.events) == 5 and sink.most_in_flight == 2
    assert sorted(h["ce-id"] for h, _ in sink.events) == ["0", "1", "2", "3", "4"]


def test_cloudevents_carry_seldons_headers_and_correlation_and_the_loggers_token(tmp_path):
    sink = Sink()
    # As the deploy step writes it: the watcher's ingestion token in the URL's user information.
    token = "ingest-token-0123456789"
    logger = seldon.logger_url(sink.url.removesuffix(seldon.EVENTS_PATH), token)
    deployment = sdep(predictor("main", 100, logger=logger, model_version="1"),
                      predictor("shadow", shadow=True, logger=logger, model_version="2"))  # fmt: skip
    with Running(tmp_path, deployment) as g, httpx.Client() as client:
        response = ask(client, g.url, **{"Seldon-Puid": "puid-123"})
        assert response.headers["Seldon-Puid"] == "puid-123"
        deadline = time.monotonic() + 10
        while len(sink.events) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    sink.server.shutdown()
    seen = {(h["ce-endpoint"], h["ce-type"]) for h, _ in sink.events}
    assert seen == {("main", "io.seldon.serving.inference.request"), ("main", "io.seldon.serving.inference.response"),
                    ("shadow", "io.seldon.serving.inference.request"),
                    ("shadow", "io.seldon.serving.inference.response")}  # fmt: skip
    for headers, _ in sink.events:
        assert headers["ce-requestid"] == "puid-123" and headers["ce-specversion"] == "1.0"
        assert headers["ce-inferenceservicename"] == "credit-risk" and headers["ce-namespace"] == "ctloop"
        assert headers["ce-modelid"] == "model" and headers["ce-protocol"] == "seldon"
        assert ingestion.authorized(headers["authorization"], token)  # sent as Basic credentials
    assert len({h["ce-id"] for h, _ in sink.events}) == 4  # a new id per event
    request_body = next(b for h, b in sink.events if h["ce-type"].endswith("request"))
    assert json.loads(request_body) == {"data": {"ndarray": [[1.0]]}}


def test_swapping_a_predictor_under_load_drops_no_request(tmp_path):
    with Running(tmp_path, sdep(predictor("main", 100, model_version="1", delay="0.05"))) as g:
        results: list[tuple[int, str]] = []
        stop = threading.Event()

        def load():
            with httpx.Client() as client:
                while not stop.is_set():
                    response = ask(client, g.url)
                    version = response.json()["data"]["ndarray"][0][1] if response.status_code == 200 else ""
                    results.append((response.status_code, version))

        def wait_for(condition, timeout=60):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not condition():
                time.sleep(0.05)

        workers = [threading.Thread(target=load) for _ in range(4)]
        for w in workers:
            w.start()
        # Conditions, not durations: a loaded machine answers fewer requests a second, not fewer requests.
        wait_for(lambda: len(results) >= 50)
        publish(g.root, sdep(predictor("main", 100, model_version="2", delay="0.05")))
        wait_for(lambda: sum(v == "2" for _, v in results[-50:]) == 50 and len(results) > 100)
        stop.set()
        for w in workers:
            w.join()
    statuses = {status for status, _ in results}
    versions = [v for _, v in results]
    assert statuses == {200}, f"{sum(s != 200 for s, _ in results)} of {len(results)} failed"
    assert versions[0] == "1" and versions[-1] == "2"
    assert len(results) > 100


def test_a_request_whose_predictor_leaves_between_routing_and_forwarding_is_routed_again(tmp_path):
    """The reconcile thread can switch the table and stop a predictor between the moment a request reads the table
    and the moment it takes the predictor's process (a canary removed by a rollback). That moment is made to
    happen here: the request, routed to the canary, finds it gone and is answered by the predictor left."""
    with Running(
        tmp_path, sdep(predictor("main", 0, model_version="1"), predictor("canary", 100, model_version="2"))
    ) as g:
        pool, gateway, after = g.gateway.pool, g.gateway, sdep(predictor("main", 100, model_version="1"))
        acquire, asked = pool.acquire, []

        def rollback_in_between(key):
            asked.append(key[2])
            if key[2] == "canary":  # what Gateway.reconcile does, in its order: the table, then the processes
                gateway.deployments = {("ctloop", "credit-risk"): after}
                pool.prune("ctloop", "credit-risk", {"main"})
            return acquire(key)

        pool.acquire = rollback_in_between
        with httpx.Client() as client:
            response = ask(client, g.url)
        assert response.status_code == 200, response.text
        assert response.json()["data"]["ndarray"][0] == ["main", "1"]
        assert asked == ["canary", "main"]
        assert g.count("canary") == 0


def test_a_process_taken_for_a_request_is_stopped_only_once_the_request_gives_it_back(tmp_path):
    """Taking a process and counting it in flight is one step under the pool's lock: a process removed from the
    pool is never handed out again, and one handed out is stopped only after it is given back."""
    pool = Pool(echo_launcher(tmp_path), tmp_path / "predictors", drain_timeout=60)
    try:
        pool.reconcile("ctloop", "credit-risk", [predictor("main", 100, model_version="1")])
        key = ("ctloop", "credit-risk", "main")
        taken = pool.acquire(key)
        pool.remove("ctloop", "credit-risk")
        assert pool.acquire(key) is None
        assert httpx.post(f"{taken.url}/api/v1.0/predictions", json={}, timeout=10).status_code == 200
        pool.release(taken)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and taken.process.poll() is None:
            time.sleep(0.05)
        assert taken.process.poll() is not None  # stopped once given back, well before the drain deadline
    finally:
        pool.stop_all()


def test_unknown_deployment_is_a_404_and_metrics_use_seldons_names(tmp_path):
    with Running(tmp_path, sdep(predictor("main", model_version="3"))) as g, httpx.Client() as client:
        assert ask(client, g.url).status_code == 200
        missing = client.post(g.url.replace("credit-risk", "nope"), json={})
        assert missing.status_code == 404 and "ctloop/nope" in missing.text
        metrics = client.get(f"http://127.0.0.1:{g.port}/metrics").text
    assert 'seldon_api_executor_server_requests_seconds_count{code="200",deployment_name="credit-risk",' in metrics
    assert 'predictor_name="main",predictor_version="3"' in metrics
    assert "seldon_api_executor_client_requests_seconds_bucket" in metrics


@pytest.mark.slow
def test_real_model_servers_behind_the_gateway(tmp_path):
    """The serve environment's model server, started by the gateway as Seldon's operator would configure it."""
    import subprocess

    from ctloop.local.gateway.predictors import seldon_launcher

    root = Path(__file__).resolve().parents[2]
    subprocess.run([str(root / ".venvs" / "train" / "bin" / "python"), str(root / "tests" / "serve" / "make_model.py"),
                    str(tmp_path / "trained")], check=True, capture_output=True)  # fmt: skip
    rows = json.loads((tmp_path / "trained" / "rows.json").read_text())
    model_uri = (tmp_path / "trained" / "model").as_uri()
    main = predictor("main", 100, model_version="4")
    main["graph"]["modelUri"] = model_uri
    deployments = tmp_path / "deployments"
    publish(deployments, sdep(main))
    gateway = Gateway(deployments, Pool(seldon_launcher(root / ".venvs"), tmp_path / "predictors"), poll_s=0.5)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(gateway.app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not server.started:
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/seldon/ctloop/credit-risk/api/v1.0/predictions"
        answer = httpx.post(url, json={"jsonData": rows["rows"][:3]}, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert [r[0] for r in body["data"]["ndarray"]] == pytest.approx(rows["scores"][:3], abs=1e-6)
        assert body["meta"]["tags"]["model_version"] == "4"
        bad = httpx.post(url, json={"jsonData": dict(rows["rows"][0], channel="fax")}, timeout=30)
        assert bad.status_code == 400 and "channel" in bad.text
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_an_async_call_of_the_gateways_http_client_imports_nothing():
    """httpcore imports sniffio at each lock and connection step of an async call; where sniffio is missing the
    import fails, is not remembered, and Python searches its whole path again, six times a request (some 0.3 ms of
    CPU a call). The control environment carries sniffio, so a call after the first imports nothing."""

    class Finder:  # sees every import that sys.modules does not answer
        def __init__(self):
            self.names: list[str] = []

        def find_spec(self, name, path=None, target=None):
            self.names.append(name)
            return None

    async def answer(reader, writer):  # HTTP/1.1, one request a connection, as the sync model server answers
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        await writer.drain()
        writer.close()

    async def calls() -> list[str]:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        finder = Finder()
        async with server, httpx.AsyncClient() as client:
            assert (await client.post(url, content=b"{}")).status_code == 200  # the first call's imports
            sys.meta_path.insert(0, finder)
            try:
                for _ in range(3):
                    assert (await client.post(url, content=b"{}")).status_code == 200
            finally:
                sys.meta_path.remove(finder)
        return finder.names

    assert asyncio.run(calls()) == []
