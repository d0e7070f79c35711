"""The rollout's checks end to end against a REAL Prometheus server (Debian's binary, 1 s scrape interval)
scraping a small exporter whose series this test controls: Seldon's executor histogram and the drift watcher's
per-predictor series, with the names and labels of ctloop.metric_names. Every PromQL expression the controller
sends is parsed and evaluated by Prometheus itself."""

from __future__ import annotations

import itertools
import shutil
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from ctloop import deployment_target
from ctloop.components.deploy import executor
from ctloop.contracts.rollout import Phase
from ctloop.metric_names import SCORE_BUCKETS, metric
from ctloop.services.rollout_controller import checks, sequential
from ctloop.services.rollout_controller.controller import Controller

from . import rollout_helpers as h

pytestmark = [pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus"),
              pytest.mark.timeout(180)]  # fmt: skip
DEPLOYMENT = "credit-risk"


class Exporter:
    """Simulated traffic, 40 requests a second per predictor; ``behaviour`` per predictor is changed by the test."""

    def __init__(self):
        self.registry = CollectorRegistry()

        def make(cls, name):
            m = metric(name)
            extra = {"buckets": m.buckets} if m.kind == "histogram" else {}
            return cls(m.name, m.help, list(m.labels), registry=self.registry, **extra)

        self.server_seconds = make(Histogram, "seldon_api_executor_server_requests_seconds")
        self.scores = make(Histogram, "ctloop_watcher_scores")
        self.feedback = make(Counter, "ctloop_watcher_feedback_total")
        self.agreement = make(Counter, "ctloop_watcher_agreement_total")
        self.paired = make(Counter, "ctloop_watcher_paired_feedback_total")
        self.behaviour = {p: {"error": 0.0, "latency": 0.02, "accuracy": 0.9} for p in ("main", "canary", "shadow")}
        self.stop = threading.Event()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = generate_latest(exporter.registry)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._traffic, daemon=True).start()

    def _traffic(self):
        scores = itertools.cycle([0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95])
        for i in itertools.count():
            if self.stop.wait(0.025):
                return
            score = next(scores)
            for pred, b in self.behaviour.items():
                version = "2" if pred != "main" else "1"
                failed = (i % 100) < b["error"] * 100
                self.server_seconds.labels(deployment_name=DEPLOYMENT, predictor_name=pred, predictor_version=version,
                                           service="predictions", method="predictions",
                                           code="500" if failed else "200").observe(b["latency"])  # fmt: skip
                labels = {"deployment": DEPLOYMENT, "predictor": pred, "model_version": version}
                self.scores.labels(**labels).observe(score)
                correct = (i % 100) < b["accuracy"] * 100
                self.feedback.labels(**labels, outcome="correct" if correct else "incorrect").inc()
                if pred == "shadow":
                    self.agreement.labels(**labels, agree="true").inc()
                    main_correct = (i % 100) < self.behaviour["main"]["accuracy"] * 100
                    vs = "same" if correct == main_correct else "better" if correct else "worse"
                    self.paired.labels(**labels, vs_main=vs).inc()

    def close(self):
        self.stop.set()
        self.server.shutdown()


def start_prometheus(folder: Path, target: str) -> tuple[str, subprocess.Popen]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder.mkdir(parents=True, exist_ok=True)
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [{"job_name": "exporter", "static_configs": [{"targets": [target]}]}]}  # fmt: skip
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        ["prometheus", f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=(folder / "log.txt").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError((folder / "log.txt").read_text()[-2000:])
    # wait until a few scrapes are in, so that rates over the window have samples
    source = checks.PrometheusSource(url)
    while time.monotonic() < deadline:
        try:
            if source.query("sum(increase(seldon_api_executor_server_requests_seconds_count[3s]))") > 0:
                return url, process
        except checks.NoData:
            pass
        time.sleep(0.3)
    raise RuntimeError("the exporter was not scraped in time")


@pytest.fixture
def exporter():
    e = Exporter()
    yield e
    e.close()


@pytest.fixture
def prometheus(tmp_path, exporter):
    url, process = start_prometheus(tmp_path / "prometheus", exporter.address)
    yield {"url": url, "process": process}
    if process.poll() is None:
        process.terminate()
        process.wait(10)


def run_rollout(tmp_path, prometheus_url, stop_when, timeout=60, **policy):
    policy = {"method": "threshold", "mode": "canary", "steps": [50, 100], "interval_s": 2, "window_s": 4,
              "min_requests": 20, "max_failed_checks": 0, "deadline_s": 60, "min_labelled_requests": 20,
              **policy}  # fmt: skip
    settings = h.settings(tmp_path / "state", **policy)
    target = deployment_target.connect(settings)
    registry = h.MemoryRegistry()
    executor.deploy(settings, target, registry, "1", "file:///m1")
    executor.deploy(settings, target, registry, "2", "file:///m2")
    controller = Controller(settings, target, checks.PrometheusSource(prometheus_url), lambda: registry)
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = controller.tick()
        if not seen or seen[-1] != (record.phase, record.weight, record.reason):
            seen.append((record.phase, record.weight, record.reason))
        if stop_when(record, seen):
            return record, seen, registry
        time.sleep(0.25)
    raise AssertionError(f"no outcome in {timeout}s: {seen}")


def test_real_prometheus_healthy_canary_is_promoted_with_every_check_passing(tmp_path, prometheus):
    record, seen, registry = run_rollout(tmp_path, prometheus["url"], lambda r, s: r.phase.terminal)
    assert record.phase == Phase.succeeded, seen
    weights = [w for p, w, _ in seen if p == Phase.progressing]
    assert weights == sorted(weights) and set(weights) == {50, 100}, seen
    assert record.checks == {"error_rate": "passed", "latency_p99": "passed", "latency_p99_ratio": "passed",
                             "score_divergence": "passed", "accuracy_delta": "passed"}  # fmt: skip
    assert registry.champion() == "2"


@pytest.mark.parametrize(
    ("behaviour", "failed"),
    [
        ({"error": 0.3}, "error_rate"),
        pytest.param({"latency": 0.9}, "latency_p99", marks=pytest.mark.slow),
        pytest.param({"accuracy": 0.6}, "accuracy_delta", marks=pytest.mark.slow),
    ],
    ids=["errors", "latency", "accuracy"],
)
def test_real_prometheus_bad_canary_is_rolled_back(tmp_path, prometheus, exporter, behaviour, failed):
    exporter.behaviour["canary"].update(behaviour)
    time.sleep(2)  # let the window see the bad canary
    record, seen, registry = run_rollout(tmp_path, prometheus["url"], lambda r, s: r.phase.terminal)
    assert record.phase == Phase.failed and failed in record.failed_checks, seen
    assert registry.version_tags["2"]["ctloop.rollout"] == "rejected" and registry.champion() == "1"


def test_real_prometheus_outage_pauses_then_rolls_back(tmp_path, prometheus):
    def stop_when(record, seen):
        if record.phase == Phase.progressing and prometheus["process"].poll() is None:
            prometheus["process"].terminate()  # Prometheus goes away mid-rollout
            prometheus["process"].wait(10)
        return record.phase.terminal

    record, seen, _ = run_rollout(tmp_path, prometheus["url"], stop_when, prometheus_outage_s=4, min_requests=10**9)
    assert any(reason.startswith("paused") for phase, _, reason in seen if phase == Phase.progressing), seen
    assert record.phase == Phase.failed and record.failed_checks == ["prometheus_unreachable"]
    assert record.outcome == "failed"


# Method sequential: the count queries on the same real Prometheus. Margins wider than the defaults so that the
# exporter's 40 requests a second decide within seconds; the decisions' error rates are tested in
# tests/dev/test_decisions_bench.py.
SEQUENTIAL = {"method": "sequential", "max_accuracy_drop": 0.1, "max_score_divergence": 0.3}


def test_real_prometheus_count_queries_return_the_exporters_histograms(prometheus):
    source = checks.PrometheusSource(prometheus["url"])
    promql = sequential.count_queries(DEPLOYMENT, 20)
    # increase() cannot count a counter's first scrape: wait until the "incorrect" series (it appears 2.25 s after
    # the exporter starts) has been scraped for longer than the range, so that the range holds only whole counts.
    deadline = time.monotonic() + 60
    scraped = 'min(count_over_time(ctloop_watcher_feedback_total{outcome="incorrect"}[30s]))'
    while time.monotonic() < deadline:
        try:
            if source.query(scraped) >= 23:
                break
        except checks.NoData:
            pass
        time.sleep(0.5)
    scores = source.vector(promql["score_buckets.main"])
    assert set(scores) == {*map(str, SCORE_BUCKETS), "+Inf"}
    per_bucket = sequential._per_bucket(scores)
    # the exporter cycles through ten scores, one per 0.1: the buckets of width 0.1 each hold a tenth
    tenth = per_bucket[3] / sum(per_bucket)
    assert tenth == pytest.approx(0.1, abs=0.02)
    assert source.query(promql["correct.main"]) / source.query(promql["labelled.main"]) == pytest.approx(0.9, abs=0.02)
    latency = sequential._per_bucket(source.vector(promql["latency_buckets.candidate"]))
    assert latency[2] == sum(latency) > 0  # every request took 0.02 s: the bucket (0.01, 0.025]
    # every labelled shadow answer is a pair, and with equal accuracy none is better or worse
    shadow_labelled = source.query('sum(increase(ctloop_watcher_feedback_total{predictor="shadow"}[20s]))')
    assert source.query(promql["paired.candidate"]) == pytest.approx(shadow_labelled, rel=0.05)
    with pytest.raises(checks.NoData):
        source.query(promql["worse.candidate"])


def test_real_prometheus_sequential_promotes_a_healthy_canary(tmp_path, prometheus):
    record, seen, registry = run_rollout(tmp_path, prometheus["url"], lambda r, s: r.phase.terminal, **SEQUENTIAL)
    assert record.phase == Phase.succeeded, seen
    assert set(record.checks.values()) == {"passed"} and set(record.checks) == set(sequential.CHECKS) - {"agreement"}
    assert record.figures["accuracy"]["source"] == "measured" and registry.champion() == "2"


def test_real_prometheus_sequential_rolls_back_a_shadow_less_accurate_on_its_pairs(tmp_path, prometheus, exporter):
    exporter.behaviour["shadow"].update({"accuracy": 0.6})  # wrong on 30 % of the requests main gets right
    record, seen, _ = run_rollout(tmp_path, prometheus["url"], lambda r, s: r.phase.terminal, mode="shadow-then-canary",
                                  shadow_duration_s=1, min_shadow_requests=20, **SEQUENTIAL)  # fmt: skip
    assert record.phase == Phase.failed and record.failed_checks == ["accuracy"], seen
    f = record.figures["accuracy"]
    # The exporter's cycle of 100 has its 30 worse answers in one block, and the rollout starts anywhere in it: n
    # pairs hold 0.3 n worse ones give or take 30, and increase() extrapolates by up to a scrape (40 requests).
    assert f["source"] == "paired" and f["lower"] > f["margin"]
    assert abs(f["estimate"] - 0.3) <= 70 / f["samples"], f


def test_real_prometheus_sequential_rolls_back_an_erroring_canary_at_once(tmp_path, prometheus, exporter):
    exporter.behaviour["canary"].update({"error": 0.3})
    record, seen, registry = run_rollout(tmp_path, prometheus["url"], lambda r, s: r.phase.terminal, **SEQUENTIAL)
    assert record.phase == Phase.failed and record.failed_checks == ["errors"], seen
    assert record.figures["errors"]["lower"] > record.figures["errors"]["margin"] == 0.01


def test_real_process_killed_mid_canary_resumes_where_it_was(tmp_path, prometheus, free_port):
    """The controller's own process, SIGKILLed at a canary step and started again: it carries on from that step
    (its state is on the deployment object), never back to an earlier weight, and promotes once."""
    path, settings = h.write_config(tmp_path, prometheus["url"], method="threshold", mode="canary",
                                    steps=[20, 40, 60, 80, 100], interval_s=1, window_s=4, min_requests=20,
                                    deadline_s=120, min_labelled_requests=20)  # fmt: skip
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "controller.log"

    def start():
        return h.start_controller(path, settings, port, log)

    seen: list[tuple[str, int]] = []

    def watch(until, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = httpx.get(f"{url}/v1/rollouts/ctloop/credit-risk", timeout=5).json()
            if (body["phase"], body["weight"]) not in seen[-1:]:
                seen.append((body["phase"], body["weight"]))
            if until(body):
                return body
            time.sleep(0.1)
        raise AssertionError(f"not reached in {timeout} s: {seen}; {log.read_text()[-2000:]}")

    target = deployment_target.connect(settings)
    registry = h.MemoryRegistry()
    executor.deploy(settings, target, registry, "1", "file:///m1")
    process = start()
    try:
        executor.deploy(settings, target, registry, "2", "file:///m2")
        killed_at = watch(lambda b: b["phase"] == Phase.progressing and 40 <= b["weight"] < 100)["weight"]
        process.send_signal(signal.SIGKILL)
        process.wait()
        predictors = target.get("ctloop", "credit-risk")["spec"]["predictors"]
        assert {p["name"]: p.get("traffic") for p in predictors} == {"main": 100 - killed_at, "canary": killed_at}
        process = start()
        resumed = watch(lambda b: True)  # its first tick may already have judged the step it was killed at
        assert resumed["phase"] == Phase.progressing and resumed["weight"] in (killed_at, killed_at + 20), seen
        # On to promotion: the champion alias is the local MLflow's, which is not running here, so Promoting is
        # as far as this process can go; the weights only ever went up.
        watch(lambda b: Phase(b["phase"]) in (Phase.promoting, Phase.succeeded, Phase.failed, Phase.rolling_back))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    canary = [w for phase, w in seen if phase == Phase.progressing]
    assert canary == [20, 40, 60, 80, 100], seen  # each step once, none again after the restart
    assert seen[-1][0] in (Phase.promoting, Phase.succeeded), seen
