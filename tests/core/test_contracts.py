"""The loop's hand-offs (ctloop.contracts), in every environment: each image that produces or consumes one must be
able to load it, and the rules each hand-off carries (what a span URI may be, what is a blessing, what a retrain
request may hold, how a logged event is read) are the same everywhere."""

from __future__ import annotations

import base64
import hashlib
import json
import math

import pytest

from ctloop.contracts import (
    cloudevents,
    ingestion,
    registry,
    retrain,
    rollout,
    seldon,
    seldon_message,
    serving_data,
    span,
    verdicts,
)
from ctloop.errors import BadInputError

# -- span


def test_span_uris_must_name_the_data_from_anywhere():
    for good in ("/data/spans/2026-02", "file:///data/spans/x.parquet", "s3://spans/2026-02"):
        assert span.check_uri(good) == good
    for bad in ("spans/2026-02", "./x.csv", "gs://bucket/x", "http://host/x", ""):
        with pytest.raises(ValueError, match="absolute path"):
            span.check_uri(bad)


def test_the_fingerprint_covers_names_and_contents_and_reads_back():
    contents = {"s3://b/span/a.csv": b"x,y\n1,2\n", "s3://b/span/b.csv": b"x,y\n3,4\n"}
    fp = span.fingerprint(contents, "s3://b/span", rows=2)
    # an independent computation of the documented digest: sorted relative names, each with its content's sha256
    expected = hashlib.sha256()
    for name in ("a.csv", "b.csv"):
        expected.update(name.encode() + b"\0" + hashlib.sha256(contents[f"s3://b/span/{name}"]).digest())
    assert fp == span.Fingerprint(expected.hexdigest(), 2, 2)
    copied = {k.replace("s3://b/span", "/local/copy"): v for k, v in contents.items()}
    moved = span.fingerprint(copied, "/local/copy", 2)
    assert moved == fp  # the same files elsewhere
    renamed = span.fingerprint({"s3://b/span/c.csv": contents["s3://b/span/a.csv"]}, "s3://b/span", 1)
    assert renamed.sha256 != span.fingerprint({"s3://b/span/a.csv": contents["s3://b/span/a.csv"]}, "s3://b/span", 1)
    assert span.Fingerprint.from_json(fp.to_json()) == fp
    with pytest.raises(BadInputError, match="--fingerprint: not a span fingerprint"):
        span.Fingerprint.from_json('{"sha256": "x"}', "--fingerprint")


# -- verdicts


def _check(passed: bool) -> dict:
    return {"check": "floor", "segment": "region", "value": "north", "metric": "roc_auc", "passed": passed}


def test_a_blessing_is_blessed_only_without_a_failed_check():
    assert verdicts.blessing([_check(True)], [], champion=False)["blessed"] is True
    judged = verdicts.blessing([_check(True), _check(False)], [], champion=True)
    assert judged["blessed"] is False and judged["failed"] == [_check(False)]


def test_nothing_judged_is_no_blessing_unless_allowed():
    refused = verdicts.no_gates_check("no gates configured", allowed=False)
    assert refused["check"] == verdicts.NO_GATES and refused["passed"] is False
    assert "allow_ungated" in refused["detail"]
    assert verdicts.blessing([refused], [], champion=False)["blessed"] is False
    assert verdicts.no_gates_check("no gates configured", allowed=True)["passed"] is True


@pytest.mark.parametrize(
    "data, words",
    [
        (b"{not json", "not JSON"),
        (b'{"checks": []}', "no true or false 'blessed'"),
        (b'{"blessed": "yes", "checks": [{"passed": true}]}', "no true or false 'blessed'"),
        (b'{"blessed": true, "checks": []}', "lists none"),
        (json.dumps({"blessed": True, "checks": [_check(False)]}).encode(), "although a check failed"),
    ],
)
def test_what_is_not_a_blessing_is_refused_naming_the_file(data, words):
    with pytest.raises(BadInputError, match=words) as excinfo:
        verdicts.read_blessing(data, "s3://runs/1/blessing")
    assert str(excinfo.value).startswith("s3://runs/1/blessing: ")


def test_the_data_verdict_is_json():
    verdict = verdicts.DataVerdict(False, 1, 0, [{"feature": "age", "kind": "range", "severity": "ERROR",
                                                  "description": "d"}], "pinned (s)", {"drift": "x", "skew": "y"},
                                   {"sha256": "a", "rows": 3, "files": 1})  # fmt: skip
    assert json.loads(verdict.to_json())["anomalies"][0]["feature"] == "age"


# -- registry


class _MlflowError(Exception):
    def __init__(self, error_code: str, message: str):
        super().__init__(message)
        self.error_code, self.message = error_code, message


def test_registry_errors_that_mean_not_found():
    assert registry.is_not_found(_MlflowError("RESOURCE_DOES_NOT_EXIST", "no version 3"))
    assert registry.is_not_found(_MlflowError("INVALID_PARAMETER_VALUE", "Registered model alias champion not found."))
    assert not registry.is_not_found(_MlflowError("INVALID_PARAMETER_VALUE", "bad name"))
    assert not registry.is_not_found(_MlflowError("INTERNAL_ERROR", "not found"))


# -- the SeldonDeployment and the rollout's status


def test_rollout_status_keeps_its_outcome_through_the_annotation():
    written = rollout.RolloutStatus(phase=rollout.Phase.failed, candidate="3", outcome=rollout.Outcome.rolled_back)
    sdep = rollout.write({"metadata": {}}, written)
    assert json.loads(sdep["metadata"]["annotations"][rollout.ANNOTATION])["outcome"] == "rolled_back"
    read = rollout.read(sdep)
    assert read == written and read.outcome is rollout.Outcome.rolled_back
    assert rollout.read(None).outcome == "" and rollout.read(None).phase == rollout.Phase.idle


def test_predictors_log_to_the_watchers_events_path_with_its_token():
    token = "tok_0123456789-abcdef"
    assert seldon.logger_url("http://watcher:8080/", token) == f"http://ctloop:{token}@watcher:8080/v1/events"
    # The request logger's HTTP client sends the URL's user information as Basic credentials (tests/control's
    # gateway test sends them with httpx, as Go's client in Seldon's executor does).
    assert ingestion.authorized("Basic " + base64.b64encode(f"ctloop:{token}".encode()).decode(), token)
    assert ingestion.authorized(f"Bearer {token}", token)
    for wrong in (
        None,
        "",
        f"Bearer {token}x",
        "Bearer",
        f"Token {token}",
        "Basic !!!",
        "Basic " + "é" * 4,
        f"Bearer {token[:-1]}é",
        "Basic " + base64.b64encode(b"ctloop:" + token.encode()[:-1]).decode(),
    ):
        assert not ingestion.authorized(wrong, token), wrong
    with pytest.raises(BadInputError, match="CTLOOP_WATCHER_TOKEN: the watcher's ingestion token"):
        ingestion.read("CTLOOP_WATCHER_TOKEN", {"CTLOOP_WATCHER_TOKEN": "has space and is long"})
    assert ingestion.read("T", {"T": token}) == token
    assert seldon.PREDICTORS == (seldon.MAIN, seldon.CANARY, seldon.SHADOW)


# -- Seldon's messages and the request logger's events


def test_request_rows_in_every_form_the_model_server_accepts():
    names = ["age", "region"]
    assert seldon_message.rows({"data": {"names": names, "ndarray": [[30, "north"]]}}) == (names, [[30, "north"]])
    assert seldon_message.rows({"data": {"names": names, "ndarray": [30, "north"]}}) == (names, [[30, "north"]])
    assert seldon_message.rows({"jsonData": {"age": 30, "region": "north"}}) == (names, [[30, "north"]])
    assert seldon_message.rows({"jsonData": [{"age": 1, "region": "a"}, {"region": "b", "age": 2}]}) == (
        names,
        [[1, "a"], [2, "b"]],
    )


@pytest.mark.parametrize(
    "payload, words",
    [
        ([1, 2], "JSON object"),
        ({}, "data.ndarray"),
        ({"data": {"ndarray": "x"}}, "data.ndarray"),
        ({"jsonData": [{"age": 1}, {"income": 2}]}, "jsonData row 1"),
        ({"jsonData": []}, "jsonData must be"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(payload, words):
    with pytest.raises(BadInputError, match=words):
        seldon_message.rows(payload)


def test_answers_and_feedback_are_read_as_the_model_server_writes_them():
    answer = {"data": {"names": ["score", "decision"], "ndarray": [[0.8, "decline"], [0.1, "approve"]]},
              "meta": {"tags": {"model_version": "4"}}}  # fmt: skip
    assert seldon_message.answer(answer) == {"model_version": "4", "scores": [0.8, 0.1],
                                             "decisions": ["decline", "approve"]}  # fmt: skip
    multiclass = seldon_message.answer({"data": {"names": ["a", "b", "c"], "ndarray": [[0.2, 0.7, 0.1]]}})
    assert multiclass["classes"] == [1] and multiclass["scores"] == [0.7]
    assert seldon_message.truths({"truth": {"data": {"ndarray": [[1], [0]]}}}) == [1.0, 0.0]


@pytest.mark.parametrize("truth", [[float("nan")], ["NaN"], [float("inf")], ["x"], [], None])
def test_feedback_without_a_usable_label_is_refused(truth):
    with pytest.raises(BadInputError, match="truth.data.ndarray"):
        seldon_message.truths({"truth": {"data": {"ndarray": truth}}})


def test_an_event_the_gateway_sends_is_the_record_the_watcher_reads():
    body = json.dumps({"data": {"names": ["age", "income"], "ndarray": [[30, math.inf]]}}).encode()
    headers = cloudevents.headers(cloudevents.REQUEST, "puid-1", "credit-risk", "ctloop", seldon.CANARY, "model")
    record = cloudevents.parse(headers, body, received=100.0)
    assert record["kind"] == "request" and record["puid"] == "puid-1" and record["predictor"] == "canary"
    assert record["deployment"] == "credit-risk" and record["namespace"] == "ctloop"
    assert record["rows"] == [{"age": 30, "income": None}]  # not a finite number: kept as missing
    assert record["id"] == headers["Ce-Id"] and record["time"] != 100.0
    answered = cloudevents.headers(cloudevents.RESPONSE, "puid-1", "credit-risk", "ctloop", "canary", "model")
    again = cloudevents.headers(cloudevents.RESPONSE, "puid-1", "credit-risk", "ctloop", "canary", "model")
    assert answered["Ce-Id"] != again["Ce-Id"]  # a new id per event: readers deduplicate on it


# -- the retrain request


def test_the_retrain_request_names_every_bad_field():
    good = {"reason": "drift", "data_uri": "s3://spans/x", "idempotency_key": "k"}
    request = retrain.parse(retrain.RetrainRequest, json.dumps(good).encode())
    assert request.source == "api" and request.force is False and request.parameters.schema_uri == ""
    cases = [
        ({**good, "colour": "red"}, "colour: unknown field"),
        ({k: v for k, v in good.items() if k != "reason"}, "reason: Field required"),
        ({**good, "force": "yes"}, "force:"),
        ({**good, "reason": 7}, "reason:"),
        ({**good, "data_uri": "gs://b/x"}, "data_uri: must be an absolute path"),
        ({**good, "parameters": {"eta": 1}}, "parameters.eta: unknown field"),
    ]
    for body, words in cases:
        with pytest.raises(BadInputError, match=words):
            retrain.parse(retrain.RetrainRequest, json.dumps(body).encode())
    with pytest.raises(BadInputError, match="body: not valid JSON"):
        retrain.parse(retrain.RetrainRequest, b"{not json")


@pytest.mark.parametrize(
    "status, outcome", [(202, "accepted"), (200, "accepted"), (429, "cooldown"), (401, "refused"), (409, "refused"),
                        (400, "refused"), (500, "retry"), (503, "retry")],
)  # fmt: skip
def test_what_each_webhook_answer_means_to_a_sender(status, outcome):
    assert retrain.Answer(status).outcome == outcome
    if status >= 400:
        with pytest.raises(Exception, match=str(status)):
            retrain.Answer(status, {"error": "no"}).raise_for_refusal()


def test_the_days_of_logged_requests_are_found_where_the_watcher_writes(tmp_path):
    root = str(tmp_path)
    assert serving_data.requests(root, "ctloop", "credit-risk") is None
    base = serving_data.base(root, "ctloop", "credit-risk")
    assert base == f"{root}/serving/ctloop/credit-risk"
    for day in ("2026-11-30", "2026-11-29"):
        folder = tmp_path / "serving" / "ctloop" / "credit-risk" / "requests" / f"date={day}"
        folder.mkdir(parents=True)
        (folder / "window-00000001.parquet").write_bytes(b"PAR1")
    assert serving_data.requests(root, "ctloop", "credit-risk") == f"{base}/requests"
    assert serving_data.days(f"{base}/requests") == {
        "2026-11-29": f"{base}/requests/date=2026-11-29",
        "2026-11-30": f"{base}/requests/date=2026-11-30",
    }
    assert list(serving_data.days(f"{base}/requests")) == ["2026-11-29", "2026-11-30"]  # oldest first
    assert serving_data.days(f"{base}/requests/date=2026-11-30") == {}  # a folder of request files itself
    assert serving_data.requests(root, "ctloop", "other") is None
