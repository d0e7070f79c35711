"""The retrain webhook (control environment) over real HTTP: uvicorn on a free port with the real store, worker,
audit log and metrics. Most tests launch through ``RecordingLauncher``, a test double that records launches in
memory; the restart test runs the service as a process, kills it with SIGKILL and launches through the real local
launcher pointed at a FAKE `ctloop` script that only records its arguments; the KFP tests use the real kfp.Client
against the KFP REST emulator of tests/dev (an emulator, not a KFP server)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
import yaml

from ctloop import config, metric_names
from ctloop.contracts import signing
from ctloop.metric_names import series_names
from ctloop.services.retrain_webhook import launchers
from ctloop.services.retrain_webhook.app import build
from ctloop.services.retrain_webhook.launchers import KfpLauncher, LaunchError, LocalLauncher, RunState
from ctloop.services.retrain_webhook.store import Store

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-for-tests-0123456789"
TOKEN = "alertmanager-token-for-tests"
ENV = {"CTLOOP_WEBHOOK_SECRET": SECRET, "CTLOOP_ALERTMANAGER_TOKEN": TOKEN}
pytestmark = pytest.mark.timeout(120)


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def raw_settings(tmp: Path, webhook: dict | None = None, **sections) -> dict:
    raw = yaml.safe_load((ROOT / "ctloop.yaml").read_text())
    raw["local"]["state_dir"] = str(tmp / "state")
    raw["webhook"] = {"cooldown_s": 0, "launch_backoff_s": 0.05, "run_poll_s": 0.1, **(webhook or {})}
    for key, value in sections.items():
        raw[key] = value if not isinstance(raw.get(key), dict) else {**raw[key], **value}
    return raw


def write_config(tmp: Path, raw: dict) -> Path:
    path = tmp / "ctloop.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


class Clock:
    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class RecordingLauncher:
    """Test double: records launches in memory; fails the first ``failures`` tries; runs end when told."""

    name = "recording"

    def __init__(self, failures: int = 0):
        self.failures = failures
        self.launched: list = []
        self.states: dict[str, RunState] = {}

    def launch(self, trigger) -> str:
        if self.failures > 0:
            self.failures -= 1
            raise LaunchError("the pipeline endpoint refused")
        self.launched.append(trigger)
        return f"run-{len(self.launched)}"

    def find(self, trigger) -> str | None:
        return next((f"run-{i + 1}" for i, t in enumerate(self.launched) if t.id == trigger.id), None)

    def state(self, run_id: str) -> RunState:
        return self.states.get(run_id, RunState.running)


class Served:
    """The webhook in a uvicorn thread on a free port."""

    def __init__(self, tmp: Path, raw: dict, launcher=None, clock=None, environ=None):
        self.tmp = tmp
        self.clock = clock or time.time
        self.config_path = write_config(tmp, raw)
        settings = config.load(self.config_path, environ={})
        self.state = tmp / "state" / "webhook"
        self.webhook = build(settings, self.config_path, self.state, launcher=launcher,
                             environ=ENV if environ is None else environ, clock=self.clock)  # fmt: skip
        self.launcher = self.webhook.worker.launcher
        with __import__("socket").socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.webhook.app(), host="127.0.0.1", port=self.port,
                                                    log_level="warning"))  # fmt: skip
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.http.close()
        self.server.should_exit = True
        self.thread.join(10)
        self.webhook.store.close()

    def retrain(self, body, secret: str = SECRET, now: float | None = None, headers: dict | None = None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        signed = signing.sign(secret.encode(), data, now=self.clock() if now is None else now)
        return self.http.post("/v1/retrain", content=data, headers={**signed, **(headers or {})})

    def alert(self, payload, token: str | None = TOKEN):
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.http.post("/v1/alertmanager", json=payload, headers=headers)

    def metric(self, name: str, **labels) -> float:
        text = self.http.get("/metrics").text
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
                if all(found.get(k) == v for k, v in labels.items()):
                    return float(line.rsplit(" ", 1)[1])
        return 0.0

    def audit(self) -> list[dict]:
        return [json.loads(line) for line in (self.state / "audit.jsonl").read_text().splitlines()]


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} not met in {timeout} s")


def worker_idle(served: Served) -> None:
    """Two launcher turns begun after this call: whatever was queued before it has been launched (the test's
    launcher launches within the turn), so a count read now is final, however loaded the machine."""
    worker = served.webhook.worker
    start = worker.turns

    def two_more_turns() -> bool:
        worker.notify()
        return worker.turns >= start + 2

    wait_for(two_more_turns, what="two launcher turns")


def request(key: str = "k-1", **changes) -> dict:
    return {"reason": "drift in income (p=0.001)", "data_uri": "s3://spans/2026-02", "idempotency_key": key,
            "source": "drift-watcher", **changes}  # fmt: skip


@pytest.fixture
def served(tmp_path):
    with Served(tmp_path, raw_settings(tmp_path), launcher=RecordingLauncher()) as s:
        yield s
        # whatever the test sent, the webhook counted only label values the alert rules may select
        assert metric_names.undeclared(s.webhook.metrics.registry) == []


# ---------------------------------------------------------------------------------------------------------------
# /v1/retrain: acceptance, auth, schema, size


def test_accepted_request_is_queued_launched_and_audited(served):
    body = request(parameters={"previous_statistics_uri": "s3://runs/1/stats.pb"})
    answer = served.retrain(body)
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert accepted["decision"] == "accepted" and accepted["status"] == "queued" and accepted["trigger_id"]
    (trigger,) = wait_for(lambda: served.launcher.launched)
    assert trigger.id == accepted["trigger_id"] and trigger.data_uri == "s3://spans/2026-02"
    assert trigger.parameters == {"previous_statistics_uri": "s3://runs/1/stats.pb", "schema_uri": ""}
    assert trigger.source == "drift-watcher" and trigger.reason.startswith("drift in income")
    # the same request again answers with the first decision, now launched
    wait_for(lambda: served.webhook.store.get(accepted["trigger_id"]).status == "started")
    again = served.retrain(body)
    assert again.status_code == 200 and again.json() == {"trigger_id": accepted["trigger_id"], "run_id": "run-1",
                                                          "status": "started", "decision": "duplicate"}  # fmt: skip
    assert len(served.launcher.launched) == 1
    events = [e["event"] for e in served.audit()]
    assert events == ["accepted", "launched", "duplicate"]
    assert served.metric("ctloop_webhook_decisions_total", decision="accepted") == 1
    assert served.metric("ctloop_webhook_requests_total", endpoint="retrain", code="202") == 1
    assert served.metric("ctloop_webhook_launches_total", outcome="started") == 1


def test_finished_runs_are_counted_once_by_state(served):
    served.retrain(request("a"))
    served.retrain(request("b"))
    wait_for(lambda: len(served.launcher.launched) == 2)
    served.launcher.states.update({"run-1": RunState.succeeded, "run-2": RunState.failed})
    wait_for(lambda: served.metric("ctloop_pipeline_runs_total", state="failed") == 1)
    checks = served.webhook.worker.run_checks
    wait_for(lambda: served.webhook.worker.run_checks >= checks + 3)  # three more checks: still counted once
    assert served.metric("ctloop_pipeline_runs_total", pipeline="credit-risk", state="succeeded") == 1
    assert served.metric("ctloop_pipeline_runs_total", pipeline="credit-risk", state="failed") == 1
    assert served.retrain(request("a")).json()["status"] == "succeeded"


@pytest.mark.timeout(3600)
def test_fuzz_retrain_and_alertmanager_never_get_a_5xx_and_the_webhook_stays_healthy(served, fuzz):
    """Generated requests over real HTTP: retrain requests signed with the right secret (so that they reach the
    schema) or with hostile signature headers, and Alertmanager payloads with the right token, in their own shape
    with hostile values or not JSON at all, deep or oversized. None may answer 5xx."""
    from hypothesis import given

    st = fuzz.st
    retrain = st.fixed_dictionaries(
        {"reason": fuzz.value, "data_uri": st.sampled_from(["s3://spans/a", "/spans/b", "gs://x"]) | fuzz.value,
         "idempotency_key": st.text(max_size=10) | fuzz.value},
        optional={"parameters": fuzz.value, "force": fuzz.value, "source": fuzz.value, "extra": fuzz.value},
    )  # fmt: skip
    alerts = st.lists(st.fixed_dictionaries({"status": st.sampled_from(["firing", "resolved"]) | fuzz.value,
                                             "labels": fuzz.value | st.just({"ctloop_retrain": "true"}),
                                             "annotations": fuzz.value, "startsAt": fuzz.value,
                                             "fingerprint": fuzz.value}), max_size=3)  # fmt: skip
    payload = st.fixed_dictionaries({"version": fuzz.value, "groupKey": fuzz.value, "status": fuzz.value,
                                     "alerts": alerts | fuzz.value})  # fmt: skip
    statuses: Counter[int | None] = Counter()
    started = time.monotonic()

    @fuzz.settings()
    @given(data=st.data())
    def one(data):
        if data.draw(st.booleans()):
            body = data.draw(fuzz.body(retrain))
            headers = {k: v.encode() for k, v in signing.sign(SECRET.encode(), body).items()}
            for name in data.draw(st.lists(st.sampled_from(sorted(headers)), max_size=2, unique=True)):
                headers[name] = data.draw(fuzz.header)
            status = fuzz.post(served.http, "/v1/retrain", body, headers)
        else:
            body = data.draw(fuzz.body(payload))
            token = data.draw(st.just(TOKEN.encode()) | fuzz.header)
            status = fuzz.post(served.http, "/v1/alertmanager", body, {"Authorization": (b"Bearer " + token).strip()})
        statuses[status] += 1
        assert status is None or status < 500, body[:200]

    one()
    assert served.http.get("/readyz").status_code == 200 and served.webhook.worker.alive()
    assert served.retrain(request("after-fuzz")).status_code in (202, 429)  # still deciding (429: cooling down)
    fuzz.record("retrain-webhook", statuses, time.monotonic() - started)


@pytest.mark.parametrize(
    "case, reason",
    [("missing", "missing"), ("wrong secret", "mismatch"), ("stale", "stale"), ("future", "stale"),
     ("body changed after signing", "mismatch"), ("malformed", "malformed"),
     ("non-ASCII signature", "malformed"), ("superscript timestamp", "malformed")],
)  # fmt: skip
def test_unauthenticated_requests_are_refused_and_launch_nothing(served, case, reason):
    data = json.dumps(request()).encode()
    headers = signing.sign(SECRET.encode(), data)
    if case == "missing":
        headers = {}
    elif case == "wrong secret":
        headers = signing.sign(b"another-secret-0123456789", data)
    elif case in ("stale", "future"):
        # A minute beyond the limit: the timestamp is whole seconds and the server reads its clock later, so one
        # second beyond it let a slow run's "future" request age back inside the limit.
        off = config.WebhookPolicy().max_clock_skew_s + 60
        headers = signing.sign(SECRET.encode(), data, now=time.time() + (off if case == "future" else -off))
    elif case == "body changed after signing":
        data = data.replace(b"2026-02", b"2026-03")
    elif case == "malformed":
        headers[signing.SIGNATURE_HEADER] = headers[signing.SIGNATURE_HEADER].replace("sha256=", "md5=")
    elif case == "non-ASCII signature":  # header bytes are read as Latin-1: 64 times "é"
        headers[signing.SIGNATURE_HEADER] = b"sha256=" + b"\xe9" * 64
    elif case == "superscript timestamp":  # "²": str.isdigit() says yes, int() says no
        headers[signing.TIMESTAMP_HEADER] = b"\xb2"
    answer = served.http.post("/v1/retrain", content=data, headers=headers)
    assert answer.status_code == 401, answer.text
    assert "error" in answer.json()
    assert served.metric("ctloop_webhook_auth_failures_total", endpoint="retrain", reason=reason) == 1
    assert served.audit()[-1]["event"] == "refused" and served.audit()[-1]["code"] == 401
    worker_idle(served)
    assert served.launcher.launched == []


def test_a_replayed_request_is_a_duplicate_not_a_second_run(served):
    data = json.dumps(request()).encode()
    headers = signing.sign(SECRET.encode(), data)
    first = served.http.post("/v1/retrain", content=data, headers=headers)
    replay = served.http.post("/v1/retrain", content=data, headers=headers)
    assert first.status_code == 202 and replay.status_code == 200
    assert replay.json()["decision"] == "duplicate" and replay.json()["trigger_id"] == first.json()["trigger_id"]
    wait_for(lambda: served.launcher.launched)
    worker_idle(served)
    assert len(served.launcher.launched) == 1


@pytest.mark.parametrize(
    "body, field",
    [
        ({"data_uri": "s3://x", "idempotency_key": "k"}, "reason: Field required"),
        ({"reason": "r", "idempotency_key": "k"}, "data_uri: Field required"),
        ({"reason": "r", "data_uri": "s3://x"}, "idempotency_key: Field required"),
        ({**request(), "colour": "red"}, "colour: unknown field"),
        ({**request(), "parameters": {"learning_rate": 0.1}}, "parameters.learning_rate: unknown field"),
        ({**request(), "force": "yes"}, "force:"),
        ({**request(), "reason": 7}, "reason:"),
        ({**request(), "data_uri": "spans/relative"}, "data_uri:"),
        ({**request(), "reason": ""}, "reason:"),
        (b"{not json", "body: not valid JSON"),
        (b"[1, 2]", "body:"),
    ],
)
def test_schema_errors_answer_400_naming_the_field(served, body, field):
    answer = served.retrain(body)
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["error"]


def test_bodies_over_the_limit_are_refused_with_413(served):
    big = request(reason="x" * 70_000)  # max_body_bytes defaults to 65536
    assert served.retrain(big).status_code == 413

    def chunks():  # no Content-Length: the limit holds on the stream too
        data = json.dumps(big).encode()
        for i in range(0, len(data), 8192):
            yield data[i : i + 8192]

    headers = signing.sign(SECRET.encode(), json.dumps(big).encode())
    answer = served.http.post("/v1/retrain", content=chunks(), headers=headers)
    assert answer.status_code == 413 and "webhook.max_body_bytes" in answer.json()["error"]
    assert served.launcher.launched == []


def test_an_idempotency_key_reused_for_another_request_is_a_conflict(served):
    assert served.retrain(request("k")).status_code == 202
    answer = served.retrain(request("k", data_uri="s3://spans/other"))
    assert answer.status_code == 409 and "idempotency_key" in answer.json()["error"]


# ---------------------------------------------------------------------------------------------------------------
# Cooldown


def test_cooldown_answers_429_with_retry_after_and_force_bypasses_it(tmp_path):
    clock = Clock()
    raw = raw_settings(tmp_path, {"cooldown_s": 900})
    with Served(tmp_path, raw, launcher=RecordingLauncher(), clock=clock) as served:
        assert served.retrain(request("first")).status_code == 202
        clock.now += 100
        refused = served.retrain(request("second"))
        assert refused.status_code == 429 and refused.headers["retry-after"] == "800"
        assert "cooling down" in refused.json()["error"]
        # a duplicate of the accepted request is still answered with its decision, not with 429
        assert served.retrain(request("first")).status_code == 200
        clock.now += 799.5
        assert served.retrain(request("third")).headers["retry-after"] == "1"
        forced = served.retrain(request("forced", force=True))
        assert forced.status_code == 202
        # the forced run restarts the cooldown
        clock.now += 1
        assert served.retrain(request("fourth")).status_code == 429
        clock.now += 900
        assert served.retrain(request("fifth")).status_code == 202
        wait_for(lambda: len(served.launcher.launched) == 3)
        assert [t.forced for t in served.launcher.launched] == [False, True, False]
        assert served.metric("ctloop_webhook_decisions_total", decision="cooldown") == 3
        assert [e["event"] for e in served.audit()].count("cooldown") == 3


# ---------------------------------------------------------------------------------------------------------------
# Launch retries


def test_failed_launches_are_retried_with_backoff(tmp_path):
    with Served(tmp_path, raw_settings(tmp_path, {"launch_attempts": 3}), launcher=RecordingLauncher(2)) as served:
        trigger_id = served.retrain(request()).json()["trigger_id"]
        wait_for(lambda: served.webhook.store.get(trigger_id).status == "started")
        assert served.metric("ctloop_webhook_launches_total", outcome="retried") == 2
        assert served.metric("ctloop_webhook_launches_total", outcome="started") == 1
        assert served.webhook.store.get(trigger_id).attempts == 3
        assert [e["event"] for e in served.audit()] == ["accepted", "launch_retry", "launch_retry", "launched"]


def test_a_launch_that_never_succeeds_is_marked_failed_and_does_not_hold_the_cooldown(tmp_path):
    raw = raw_settings(tmp_path, {"launch_attempts": 2, "cooldown_s": 900})
    with Served(tmp_path, raw, launcher=RecordingLauncher(2)) as served:
        trigger_id = served.retrain(request("a")).json()["trigger_id"]
        wait_for(lambda: served.webhook.store.get(trigger_id).status == "launch_failed")
        assert served.metric("ctloop_webhook_launches_total", outcome="failed") == 1
        assert served.retrain(request("a")).json()["status"] == "launch_failed"
        assert served.retrain(request("b")).status_code == 202  # the failed trigger started nothing to cool down


def test_a_failed_run_does_not_hold_the_cooldown_and_a_succeeded_one_does(tmp_path):
    raw = raw_settings(tmp_path, {"cooldown_s": 900})
    with Served(tmp_path, raw, launcher=RecordingLauncher()) as served:
        first = served.retrain(request("a")).json()["trigger_id"]
        wait_for(lambda: served.webhook.store.get(first).status == "started")
        assert served.retrain(request("b")).status_code == 429  # running: it holds the cooldown
        served.launcher.states[served.webhook.store.get(first).run_id] = RunState.failed
        wait_for(lambda: served.webhook.store.get(first).status == "failed")
        second = served.retrain(request("c"))
        assert second.status_code == 202, second.text  # the failed run retrained nothing
        trigger = second.json()["trigger_id"]
        wait_for(lambda: served.webhook.store.get(trigger).status == "started")
        served.launcher.states[served.webhook.store.get(trigger).run_id] = RunState.succeeded
        wait_for(lambda: served.webhook.store.get(trigger).status == "succeeded")
        assert served.retrain(request("d")).status_code == 429


# ---------------------------------------------------------------------------------------------------------------
# /v1/alertmanager


def alert_payload(*alerts, status="firing", group='{}:{alertname="DriftConfirmed"}', common=None) -> dict:
    return {"version": "4", "groupKey": group, "truncatedAlerts": 0, "status": status, "receiver": "ctloop",
            "groupLabels": {"alertname": "DriftConfirmed"}, "commonLabels": {}, "commonAnnotations": common or {},
            "externalURL": "http://alertmanager:9093", "alerts": list(alerts)}  # fmt: skip


def alert(fingerprint="f1", status="firing", label="true", starts="2026-11-23T10:00:00Z", data_uri="s3://spans/a"):
    labels = {"alertname": "DriftConfirmed", "severity": "warning"}
    if label is not None:
        labels["ctloop_retrain"] = label
    annotations = {"summary": "drift confirmed on income"}
    if data_uri:
        annotations["data_uri"] = data_uri
    return {"status": status, "labels": labels, "annotations": annotations, "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus/graph",
            "fingerprint": fingerprint}  # fmt: skip


def test_a_firing_labelled_alert_starts_one_run_and_resends_are_duplicates(served):
    first = served.alert(alert_payload(alert()))
    assert first.status_code == 202 and first.json()["decision"] == "accepted"
    for _ in range(3):  # Alertmanager resends the group every group_interval
        again = served.alert(alert_payload(alert()))
        assert again.status_code == 200 and again.json()["decision"] == "duplicate"
        assert again.json()["trigger_id"] == first.json()["trigger_id"]
    (trigger,) = wait_for(lambda: served.launcher.launched)
    assert trigger.source == "alertmanager" and trigger.data_uri == "s3://spans/a"
    assert trigger.reason == "alert DriftConfirmed: drift confirmed on income"
    # the same alert firing again later (a new startsAt) is a new trigger
    later = served.alert(alert_payload(alert(starts="2026-11-23T12:00:00Z")))
    assert later.status_code == 202
    wait_for(lambda: len(served.launcher.launched) == 2)


@pytest.mark.parametrize(
    "payload",
    [alert_payload(alert(label=None)), alert_payload(alert(label="false")),
     alert_payload(alert(status="resolved"), status="resolved"), alert_payload()],
    ids=["no label", "label false", "resolved", "no alerts"],
)  # fmt: skip
def test_alerts_that_do_not_ask_for_a_retrain_are_ignored_with_2xx(served, payload):
    answer = served.alert(payload)
    assert answer.status_code == 200 and answer.json()["decision"] == "ignored"
    assert served.metric("ctloop_webhook_decisions_total", decision="ignored") == 1
    worker_idle(served)
    assert served.launcher.launched == []


def test_alertmanager_token_is_required(served):
    missing = served.alert(alert_payload(alert()), token=None)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = served.alert(alert_payload(alert()), token="not-the-token")
    assert wrong.status_code == 403
    assert served.metric("ctloop_webhook_auth_failures_total", endpoint="alertmanager", reason="mismatch") == 1
    assert served.launcher.launched == []


def test_alertmanager_receiver_is_off_without_a_token(tmp_path):
    environ = {"CTLOOP_WEBHOOK_SECRET": SECRET}
    with Served(tmp_path, raw_settings(tmp_path), launcher=RecordingLauncher(), environ=environ) as served:
        answer = served.alert(alert_payload(alert()), token="anything")
        assert answer.status_code == 403 and "CTLOOP_ALERTMANAGER_TOKEN" in answer.json()["error"]


def test_alert_data_uri_comes_from_the_annotation_else_the_default(tmp_path):
    raw = raw_settings(tmp_path, {"default_data_uri": "s3://spans/latest"})
    with Served(tmp_path, raw, launcher=RecordingLauncher()) as served:
        assert served.alert(alert_payload(alert("f1", data_uri=None))).status_code == 202
        assert served.alert(alert_payload(alert("f2", data_uri=None), common={"data_uri": "/spans/c"})).is_success
        assert served.alert(alert_payload(alert("f3", data_uri="relative/x"))).status_code == 400
        wait_for(lambda: len(served.launcher.launched) == 2)
        assert [t.data_uri for t in served.launcher.launched] == ["s3://spans/latest", "/spans/c"]


def test_alert_without_any_data_uri_or_a_bad_payload_is_400(served):
    answer = served.alert(alert_payload(alert(data_uri=None)))
    assert answer.status_code == 400 and "data_uri" in answer.json()["error"]
    bad = served.alert({**alert_payload(alert()), "version": "3"})
    assert bad.status_code == 400 and "version" in bad.json()["error"]
    no_fingerprint = alert_payload(alert())
    del no_fingerprint["alerts"][0]["fingerprint"]
    answer = served.alert(no_fingerprint)
    assert answer.status_code == 400 and "alerts[0].fingerprint" in answer.json()["error"]


def test_alerts_respect_the_cooldown_and_answer_2xx(tmp_path):
    raw = raw_settings(tmp_path, {"cooldown_s": 900})
    with Served(tmp_path, raw, launcher=RecordingLauncher()) as served:
        assert served.retrain(request()).status_code == 202
        answer = served.alert(alert_payload(alert()))
        assert answer.status_code == 200 and answer.json()["decision"] == "cooldown"
        assert 890 <= answer.json()["retry_after_s"] <= 900


# ---------------------------------------------------------------------------------------------------------------
# Health, metrics, start-up


def test_health_readiness_and_metrics_use_the_shared_names(served):
    assert served.http.get("/healthz").status_code == 200
    assert served.http.get("/readyz").json() == {"ready": True}
    served.retrain(request())
    text = served.http.get("/metrics").text
    exported = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line.startswith("ctloop_")}
    exported = {name for name in exported if not name.endswith("_created")}  # prometheus-client's own timestamps
    assert exported and exported <= series_names()
    assert "ctloop_webhook_queue_depth" in exported


def test_the_service_refuses_to_start_without_the_secret(tmp_path):
    settings = config.load(write_config(tmp_path, raw_settings(tmp_path)), environ={})
    with pytest.raises(Exception, match="CTLOOP_WEBHOOK_SECRET"):
        build(settings, tmp_path / "ctloop.yaml", tmp_path / "state", launcher=RecordingLauncher(), environ={})


def test_backend_is_chosen_by_the_settings(tmp_path):
    local = config.parse(raw_settings(tmp_path), base=ROOT, environ={})
    assert isinstance(launchers.for_settings(local, tmp_path / "c.yaml", tmp_path), LocalLauncher)
    kube = raw_settings(tmp_path, mode="kubernetes", endpoints={"kfp": {"host": "http://kfp:8888"}})
    chosen = launchers.for_settings(config.parse(kube, base=ROOT, environ={}), tmp_path / "c.yaml", tmp_path)
    assert isinstance(chosen, KfpLauncher) and chosen.host == "http://kfp:8888"
    no_host = config.parse(raw_settings(tmp_path, mode="kubernetes"), base=ROOT, environ={})
    with pytest.raises(config.ConfigError, match="endpoints.kfp.host"):
        launchers.for_settings(no_host, tmp_path / "c.yaml", tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# The local launcher, restarts and kill -9 (a FAKE `ctloop` that records its arguments instead of running a pipeline)

FAKE_CTLOOP = """#!/bin/sh
# FAKE ctloop for tests: records the launch instead of running a pipeline.
printf '%s secret=%s\\n' "$*" "${CTLOOP_WEBHOOK_SECRET:-none}" >> "$FAKE_PIPELINE_LAUNCHES"
exit "${FAKE_PIPELINE_EXIT:-0}"
"""


def fake_venvs(tmp: Path) -> Path:
    script = tmp / "venvs" / "dev" / "bin" / "ctloop"
    script.parent.mkdir(parents=True)
    script.write_text(FAKE_CTLOOP)
    script.chmod(0o755)
    return tmp / "venvs"


def launches(record: Path) -> list[str]:
    return record.read_text().splitlines() if record.exists() else []


def test_local_launcher_runs_ctloop_detached_and_reads_its_exit_status(tmp_path, monkeypatch):
    record = tmp_path / "launches.txt"
    monkeypatch.setenv("FAKE_PIPELINE_LAUNCHES", str(record))
    raw = raw_settings(tmp_path, local={"venvs_dir": str(fake_venvs(tmp_path))})
    with Served(tmp_path, raw) as served:
        assert isinstance(served.launcher, LocalLauncher)
        body = request(data_uri="/spans/one", parameters={"schema_uri": "/runs/1/schema.pbtxt"})
        trigger_id = served.retrain(body).json()["trigger_id"]
        wait_for(lambda: served.webhook.store.get(trigger_id).status == "succeeded")
        (line,) = launches(record)
        assert line == (f"pipeline run --local --data /spans/one --config {served.config_path.resolve()} "
                        "--schema /runs/1/schema.pbtxt secret=none")  # fmt: skip
        assert served.metric("ctloop_pipeline_runs_total", state="succeeded") == 1
        monkeypatch.setenv("FAKE_PIPELINE_EXIT", "3")
        failing = served.retrain(request("k-2", data_uri="/spans/two")).json()["trigger_id"]
        wait_for(lambda: served.webhook.store.get(failing).status == "failed")
        assert (served.state / "runs" / f"local-{failing}" / "exit_status").read_text().strip() == "3"


def test_a_trigger_caught_mid_launch_is_not_launched_again_after_a_restart(tmp_path, monkeypatch):
    """The process died after the launch but before recording it: the run folder is the proof of the launch."""
    record = tmp_path / "launches.txt"
    monkeypatch.setenv("FAKE_PIPELINE_LAUNCHES", str(record))
    raw = raw_settings(tmp_path, local={"venvs_dir": str(fake_venvs(tmp_path))})
    state = tmp_path / "state" / "webhook"
    store = Store(state / "queue.sqlite")
    decided = store.decide(keys=["retrain:x"], body_sha256=None, pipeline="credit-risk", source="test", reason="r",
                           data_uri="/spans/x", parameters={}, force=False, cooldown_s=0, now=time.time())  # fmt: skip
    settings = config.parse(raw, base=ROOT, environ={})
    launcher = launchers.for_settings(settings, tmp_path / "ctloop.yaml", state)
    store.mark_launching(decided.trigger.id, 1, time.time())
    launcher.launch(store.get(decided.trigger.id))  # ... and then the process was killed
    store.close()
    wait_for(lambda: launches(record))
    with Served(tmp_path, raw) as served:
        wait_for(lambda: served.webhook.store.get(decided.trigger.id).status == "succeeded")
    assert len(launches(record)) == 1


def test_a_launch_cut_off_before_the_process_started_is_launched_after_a_restart(tmp_path, monkeypatch):
    """The process died between preparing the run folder and forking: no run holds the lock, none started."""
    record = tmp_path / "launches.txt"
    monkeypatch.setenv("FAKE_PIPELINE_LAUNCHES", str(record))
    raw = raw_settings(tmp_path, local={"venvs_dir": str(fake_venvs(tmp_path))})
    state = tmp_path / "state" / "webhook"
    store = Store(state / "queue.sqlite")
    decided = store.decide(keys=["retrain:x"], body_sha256=None, pipeline="credit-risk", source="test", reason="r",
                           data_uri="/spans/x", parameters={}, force=False, cooldown_s=0, now=time.time())  # fmt: skip
    store.mark_launching(decided.trigger.id, 1, time.time())
    folder = state / "runs" / f"local-{decided.trigger.id}"
    folder.mkdir(parents=True)
    (folder / "command.json").write_text("{}")
    (folder / "lock").touch()
    store.close()
    with Served(tmp_path, raw) as served:
        wait_for(lambda: served.webhook.store.get(decided.trigger.id).status == "succeeded")
    assert len(launches(record)) == 1


def test_kill_9_mid_stream_loses_nothing_and_launches_nothing_twice(tmp_path, free_port):
    record = tmp_path / "launches.txt"
    raw = raw_settings(tmp_path, local={"venvs_dir": str(fake_venvs(tmp_path))})
    config_path = write_config(tmp_path, raw)
    port = free_port()
    env = {**os.environ, **ENV, "FAKE_PIPELINE_LAUNCHES": str(record)}
    argv = [sys.executable, "-m", "ctloop.services.retrain_webhook", "--config", str(config_path), "--port",
            str(port), "--state", str(tmp_path / "state" / "webhook")]  # fmt: skip
    log = (tmp_path / "service.log").open("ab")

    def start() -> subprocess.Popen:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: _ready(port) or process.poll() is not None, timeout=120, what="service ready")
        assert process.poll() is None, (tmp_path / "service.log").read_text()
        return process

    answers: dict[str, list[int]] = {}
    total = 40

    def client() -> None:
        with httpx.Client(timeout=5) as http:
            for i in range(total):
                data = json.dumps(request(f"key-{i}", data_uri=f"/spans/{i}")).encode()
                while True:  # a client that retries until it gets an answer, as the drift watcher does
                    try:
                        answer = http.post(f"http://127.0.0.1:{port}/v1/retrain", content=data,
                                           headers=signing.sign(SECRET.encode(), data))  # fmt: skip
                    except httpx.HTTPError:
                        time.sleep(0.05)
                        continue
                    answers.setdefault(f"key-{i}", []).append(answer.status_code)
                    break

    process = start()
    sender = threading.Thread(target=client)
    sender.start()
    wait_for(lambda: len(answers) >= 12, timeout=60, what="12 answers")
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_after = len(answers)
    process = start()
    try:
        sender.join(120)
        assert not sender.is_alive()
        wait_for(lambda: len(launches(record)) >= total, timeout=120, what=f"{total} launches")
        # Every trigger's run has ended, so none is queued or launching and each run has written its line: a
        # second launch of any of them would be among the lines by now.
        wait_for(lambda: statuses(tmp_path / "state" / "webhook") == {"succeeded": total}, timeout=120,
                 what="every run ended")  # fmt: skip
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert killed_after < total, "the kill came after the stream ended"
    data_uris = sorted(int(line.split("--data /spans/")[1].split()[0]) for line in launches(record))
    assert data_uris == list(range(total))  # every request launched, exactly once
    assert all(set(codes) <= {200, 202} for codes in answers.values()), answers
    assert all("secret=none" in line for line in launches(record))  # the secret is not handed to pipelines


def statuses(state: Path) -> dict[str, int]:
    """Trigger statuses in the webhook's queue, read beside the running service."""
    with contextlib.closing(sqlite3.connect(f"file:{state / 'queue.sqlite'}?mode=ro", uri=True)) as db:
        return dict(db.execute("SELECT status, COUNT(*) FROM triggers GROUP BY status").fetchall())


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# ---------------------------------------------------------------------------------------------------------------
# KFP launcher: the real kfp.Client against the KFP REST emulator (tests/dev/kfp_emulator.py, not a KFP server)


@pytest.fixture
def kfp():
    """The emulator, plus the two run look-ups the launcher needs (list runs by name, get a run)."""
    emulator = _load(ROOT / "tests" / "dev" / "kfp_emulator.py", "kfp_emulator")
    from http.server import ThreadingHTTPServer

    base = emulator.handler_for(state := emulator.State())

    class Handler(base):
        def do_GET(self):
            parts = urlsplit(self.path)
            if parts.path == "/apis/v2beta1/runs":
                state.requests.append(("GET", parts.path, {}))
                name = emulator._name_filter(parse_qs(parts.query))
                found = [r for r in state.runs if name is None or r.get("display_name") == name]
                return self._send({"runs": found, "total_size": len(found)} if found else {})
            match = re.fullmatch(r"/apis/v2beta1/runs/([^/]+)", parts.path)
            if match:
                run = next((r for r in state.runs if r["run_id"] == match.group(1)), None)
                return self._send(run) if run else self._send({"error": "no such run"}, 404)
            return super().do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.state = state
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def test_kfp_launcher_starts_finds_and_follows_a_run(kfp, tmp_path):
    raw = raw_settings(tmp_path, mode="kubernetes", endpoints={"kfp": {"host": kfp.url}})
    with Served(tmp_path, raw) as served:
        assert isinstance(served.launcher, KfpLauncher)
        body = request(parameters={"previous_statistics_uri": "s3://runs/1/stats.pb"})
        trigger_id = served.retrain(body).json()["trigger_id"]
        wait_for(lambda: served.webhook.store.get(trigger_id).status == "started", timeout=30)
        (run,) = kfp.state.runs
        assert run["display_name"] == f"ctloop-retrain-{trigger_id}"
        assert run["service_account"] == "ctloop-pipeline"  # ctloop's own, not KFP's shared pipeline-runner
        parameters = run["runtime_config"]["parameters"]
        assert parameters["data_uri"] == "s3://spans/2026-02"
        assert parameters["previous_statistics_uri"] == "s3://runs/1/stats.pb" and parameters["schema_uri"] == ""
        assert json.loads(parameters["config"])["name"] == "credit-risk"
        assert served.webhook.store.get(trigger_id).run_id == run["run_id"]
        assert served.launcher.find(served.webhook.store.get(trigger_id)) == run["run_id"]
        run["state"] = "SUCCEEDED"
        wait_for(lambda: served.webhook.store.get(trigger_id).status == "succeeded", timeout=10)
        assert served.metric("ctloop_pipeline_runs_total", state="succeeded") == 1


def test_kfp_launcher_looks_up_before_retrying_so_a_lost_answer_is_not_a_second_run(kfp, tmp_path):
    raw = raw_settings(tmp_path, mode="kubernetes", endpoints={"kfp": {"host": kfp.url}})
    settings = config.parse(raw, base=ROOT, environ={})
    launcher = launchers.for_settings(settings, write_config(tmp_path, raw), tmp_path)
    store = Store(tmp_path / "queue.sqlite")
    decided = store.decide(keys=["retrain:x"], body_sha256=None, pipeline="credit-risk", source="test", reason="r",
                           data_uri="s3://spans/x", parameters={}, force=False, cooldown_s=0, now=0.0)  # fmt: skip
    trigger = decided.trigger
    assert launcher.find(trigger) is None
    run_id = launcher.launch(trigger)
    assert launcher.find(trigger) == run_id and launcher.state(run_id) is RunState.running
    kfp.shutdown()
    kfp.server_close()  # refused connections from here on
    with pytest.raises(LaunchError, match="KFP"):
        launcher.launch(trigger)


# ---------------------------------------------------------------------------------------------------------------
# `ctloop retrain` (the CLI lives in the dev environment: run there, against this webhook)

DEV_PYTHON = ROOT / ".venvs" / "dev" / "bin" / "python"


def test_ctloop_retrain_signs_sends_and_reports(tmp_path):
    raw = raw_settings(tmp_path, {"cooldown_s": 900})
    with Served(tmp_path, raw, launcher=RecordingLauncher()) as served:
        cli_config = tmp_path / "cli.yaml"
        # mode local: the CLI talks to the local stack's webhook, at local.webhook_port
        cli_config.write_text(yaml.safe_dump({**raw, "local": {**raw.get("local", {}), "webhook_port": served.port}}))

        def ctloop(*args, secret=SECRET):
            env = {k: v for k, v in os.environ.items() if not k.startswith("CTLOOP_")}
            env["CTLOOP_WEBHOOK_SECRET"] = secret
            return subprocess.run([str(DEV_PYTHON), "-m", "ctloop.local.cli", "retrain", "-c", str(cli_config), *args],
                                  capture_output=True, text=True, env=env, timeout=60)  # fmt: skip

        first = ctloop("--reason", "new span landed", "--data", "s3://spans/2026-03", "--key", "manual-1")
        assert first.returncode == 0, first.stderr
        assert first.stdout.startswith("202 ") and json.loads(first.stdout[4:])["decision"] == "accepted"
        again = ctloop("--reason", "new span landed", "--data", "s3://spans/2026-03", "--key", "manual-1")
        assert again.returncode == 0 and again.stdout.startswith("200 ") and '"duplicate"' in again.stdout
        cooling = ctloop("--reason", "another", "--data", "s3://spans/2026-03")
        assert cooling.returncode != 0 and "429" in cooling.stderr and "retry after" in cooling.stderr
        forced = ctloop("--reason", "urgent fix", "--force")  # no --data: the settings' data.uri
        assert forced.returncode == 0, forced.stderr
        bad_secret = ctloop("--reason", "x", "--data", "s3://x", secret="not-the-secret-at-all")
        assert bad_secret.returncode != 0 and "401" in bad_secret.stderr
        bad_input = ctloop("--reason", "x", "--data", "relative/path", "--force")
        assert bad_input.returncode == 2 and "data_uri" in bad_input.stderr
        wait_for(lambda: len(served.launcher.launched) == 2)
        manual, urgent = served.launcher.launched
        assert manual.source == "cli" and manual.data_uri == "s3://spans/2026-03"
        assert urgent.forced and urgent.data_uri == str((tmp_path / ".ctloop/demo/spans/2026-01").resolve())


# ---------------------------------------------------------------------------------------------------------------
# End to end: a signed request reaches the local launcher and a REAL local pipeline run registers a model


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_a_retrain_request_starts_a_real_local_pipeline_run(tmp_path, mlflow_server):
    span = tmp_path / "spans" / "clean"
    generate = subprocess.run([str(DEV_PYTHON), "-m", "ctloop.local.cli", "data", "generate", "--rows", "8000", "--out",
                               str(span), "--seed", "3"], capture_output=True, text=True)  # fmt: skip
    assert generate.returncode == 0, generate.stderr
    raw = raw_settings(tmp_path, {"run_poll_s": 1.0}, local={"venvs_dir": str(ROOT / ".venvs")})
    raw["endpoints"]["mlflow"]["tracking_uri"] = mlflow_server
    # Small spans keep this test short; gates judged on so few rows are noisy, so only the floor stays strict.
    raw["gates"]["segments"].update(bootstrap=50, min_rows=150, ceilings={})
    raw["gates"]["segments"]["fairness"]["max_tpr_gap"] = 0.6
    with Served(tmp_path, raw) as served:
        answer = served.retrain(request("e2e", data_uri=str(span), reason="end-to-end test"))
        assert answer.status_code == 202, answer.text
        trigger_id = answer.json()["trigger_id"]
        wait_for(lambda: served.webhook.store.get(trigger_id).status in ("succeeded", "failed"), 1200)
        run = served.state / "runs" / f"local-{trigger_id}"
        log = (run / "run.log").read_text()
        # the pipeline really ran: trained and registered a model in the real MLflow server
        from mlflow.tracking import MlflowClient

        versions = MlflowClient(mlflow_server).search_model_versions("name='ctloop-credit-risk'")
        assert len(versions) == 1 and "registered version 1" in log, log[-3000:]
        # ... and the webhook followed it to its end
        assert (run / "exit_status").read_text().strip() == "0", log[-3000:]
        assert served.webhook.store.get(trigger_id).status == "succeeded"
        assert served.metric("ctloop_pipeline_runs_total", state="succeeded") == 1
