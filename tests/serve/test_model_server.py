"""The model server in the serve environment: the scoring logic directly, then a real `seldon-core-microservice`
process over HTTP and over Seldon's gRPC API, and payload fuzzing with zero 5xx answers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ctloop.contracts import seldon_message
from ctloop.errors import BadInputError
from ctloop.services.model_server.scoring import ScoringModel

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(600)


def _rows(json_data):
    return seldon_message.rows({"jsonData": json_data})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    subprocess.run([str(ROOT / ".venvs" / "train" / "bin" / "python"), str(Path(__file__).parent / "make_model.py"),
                    str(out)], check=True, capture_output=True)  # fmt: skip
    return {"folder": str(out / "model"), **json.loads((out / "rows.json").read_text())}


@pytest.fixture(scope="module")
def model(trained):
    return ScoringModel(trained["folder"])


def table(trained, n=None):
    rows = trained["rows"][:n]
    return trained["features"], [[r[f] for f in trained["features"]] for r in rows]


def test_scores_and_decisions_match_the_training_code(model, trained):
    names, rows = table(trained)
    scored = model.score(names, rows)
    assert np.allclose(scored.scores, trained["scores"], atol=1e-6)  # numpy codes == pandas categoricals
    assert scored.decisions.tolist() == trained["decisions"]
    assert scored.rules.tolist() == trained["rules"] and "large-loan-review" in trained["rules"]


def test_column_order_and_json_rows_do_not_matter(model, trained):
    names, rows = table(trained, 5)
    reordered = list(reversed(names))
    assert np.allclose(model.score(reordered, [list(reversed(r)) for r in rows]).scores, trained["scores"][:5])
    json_names, json_rows = _rows(trained["rows"][:5])
    assert np.allclose(model.score(json_names, json_rows).scores, trained["scores"][:5])


def test_contributions_add_up_to_the_margin(model, trained):
    names, rows = table(trained, 3)
    scored = model.score(names, rows, explain=True)
    for contribution, p in zip(scored.contributions, scored.scores):
        margin = sum(contribution.values())
        assert 1 / (1 + np.exp(-margin)) == pytest.approx(p, abs=1e-4)


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda r: r.pop("age"), "missing feature(s) ['age']"),
        (lambda r: r.update(colour="red"), "unknown feature(s) ['colour']"),
        (lambda r: r.update(age="old"), "feature 'age' is numeric"),
        (lambda r: r.update(age=True), "feature 'age' is numeric"),
        (lambda r: r.update(income=float("inf")), "feature 'income': infinity"),
        (lambda r: r.update(channel="fax"), "feature 'channel': category 'fax' was never seen"),
        (lambda r: r.update(channel=3), "feature 'channel' is categorical"),
        (lambda r: r.update(income=10**400), "feature 'income': a number too large for a float"),
    ],
)
def test_bad_rows_name_the_feature(model, trained, change, words):
    row = dict(trained["rows"][0])
    change(row)
    with pytest.raises(BadInputError) as excinfo:
        model.score(*_rows(row))
    assert words in str(excinfo.value)


def test_missing_values_are_allowed_and_unseen_categories_can_be_missing(model, trained):
    row = dict(trained["rows"][0], income=None, region=None)
    assert np.isfinite(model.score(*_rows(row)).scores).all()
    model.spec["unseen_category"] = "missing"
    try:
        unseen = model.score(*_rows(dict(trained["rows"][0], channel="fax"))).scores
        absent = model.score(*_rows(dict(trained["rows"][0], channel=None))).scores
        assert unseen == pytest.approx(absent)
    finally:
        model.spec["unseen_category"] = "reject"


# ---------------------------------------------------------------------------------------------------------------
# The real microservice


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    http, grpc, metrics = free_port(), free_port(), free_port()
    parameters = [{"name": "model_uri", "value": trained["folder"], "type": "STRING"},
                  {"name": "model_version", "value": "7", "type": "STRING"}]  # fmt: skip
    env = {**os.environ, "PREDICTIVE_UNIT_PARAMETERS": json.dumps(parameters),
           "PREDICTIVE_UNIT_HTTP_SERVICE_PORT": str(http), "PREDICTIVE_UNIT_GRPC_SERVICE_PORT": str(grpc),
           "PREDICTIVE_UNIT_METRICS_SERVICE_PORT": str(metrics), "OMP_NUM_THREADS": "1"}  # fmt: skip
    log = (tmp_path_factory.mktemp("server") / "server.log").open("wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "seldon-core-microservice"),
         "ctloop.services.model_server.seldon_model.SeldonModel", "--service-type", "MODEL", "--workers", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{http}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health/status", timeout=2)
            break
        except OSError:
            assert process.poll() is None, Path(log.name).read_text()
            time.sleep(0.5)
    yield {"url": url, "metrics": f"http://127.0.0.1:{metrics}", "grpc": f"127.0.0.1:{grpc}"}
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def post(url: str, body) -> tuple[int, dict]:
    data = json.dumps(body).encode() if not isinstance(body, bytes) else body
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except json.JSONDecodeError:
            return e.code, {"raw": text.decode(errors="replace")}


def test_predictions_over_http(server, trained):
    names, rows = table(trained, 4)
    status, body = post(f"{server['url']}/api/v1.0/predictions", {"data": {"names": names, "ndarray": rows}})
    assert status == 200, body
    assert [r[0] for r in body["data"]["ndarray"]] == pytest.approx(trained["scores"][:4], abs=1e-6)
    assert [r[1] for r in body["data"]["ndarray"]] == trained["decisions"][:4]
    assert body["meta"]["tags"]["model_version"] == "7" and len(body["meta"]["tags"]["policy_version"]) == 12
    status, body = post(f"{server['url']}/api/v1.0/predictions", {"jsonData": trained["rows"][0]})
    assert status == 200 and body["data"]["names"] == ["score", "decision"]


def test_bad_request_is_a_400_naming_the_feature(server, trained):
    row = dict(trained["rows"][0], channel="fax")
    status, body = post(f"{server['url']}/api/v1.0/predictions", {"jsonData": row})
    assert status == 400
    assert "channel" in json.dumps(body) and "fax" in json.dumps(body)


@pytest.mark.parametrize(
    "meta, field",
    [(None, None), ("x", "meta"), ([1], "meta"), ({"tags": None}, None), ({"tags": ["explain"]}, "meta.tags")],
)
def test_meta_of_the_wrong_shape_is_a_400_naming_it(server, trained, meta, field):
    status, body = post(f"{server['url']}/api/v1.0/predictions", {"jsonData": trained["rows"][0], "meta": meta})
    if field is None:
        assert status == 200, body
    else:
        assert status == 400 and f"{field}: expected an object" in json.dumps(body), body


def test_a_body_over_the_limit_is_a_413(server, trained):
    from ctloop.contracts.seldon_message import MAX_BYTES

    # Werkzeug drains a body declared larger than the limit in chunks, holding none of it, and answers 413.
    for path in ("/api/v1.0/predictions", "/api/v1.0/feedback"):
        status, body = post(f"{server['url']}{path}", b" " * (MAX_BYTES + 1))
        assert status == 413 and f"larger than {MAX_BYTES} bytes" in body["status"]["info"], body
    status, _ = post(f"{server['url']}/api/v1.0/predictions", {"jsonData": trained["rows"][0]})
    assert status == 200


def post_chunked(url: str, chunks) -> tuple[int, dict]:
    """POST with Transfer-Encoding: chunked, no Content-Length."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
    try:
        connection.request("POST", where.path, body=iter(chunks), encode_chunked=True,
                           headers={"Content-Type": "application/json"})  # fmt: skip
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_chunked_body_is_read_up_to_the_limit_and_no_further(server, trained):
    """A chunked body has no Content-Length to refuse it by; Werkzeug alone reads it whole, however large."""
    from ctloop.contracts.seldon_message import MAX_BYTES

    mib = 1 << 20
    over = [b" " * mib] * (MAX_BYTES // mib) + [b" "]
    for path in ("/api/v1.0/predictions", "/api/v1.0/feedback"):
        status, body = post_chunked(f"{server['url']}{path}", over)
        assert status == 413 and f"larger than {MAX_BYTES} bytes" in body["status"]["info"], body
    message = json.dumps({"jsonData": trained["rows"][0]}).encode()
    status, body = post_chunked(f"{server['url']}/api/v1.0/predictions", [message[:10], message[10:]])
    assert status == 200 and body["data"]["ndarray"][0][0] == pytest.approx(trained["scores"][0], abs=1e-6)


def test_feedback_counts_right_and_wrong_per_served_version(server, trained):
    names, rows = table(trained, 2)
    _, answered = post(f"{server['url']}/api/v1.0/predictions", {"data": {"names": names, "ndarray": rows}})
    truth = [[1], [0]]
    status, body = post(f"{server['url']}/api/v1.0/feedback",
                        {"request": {"data": {"names": names, "ndarray": rows}}, "response": answered,
                         "truth": {"data": {"ndarray": truth}}, "reward": 1})  # fmt: skip
    assert status == 200, body
    expected = sum(int((r[0] >= 0.3) == bool(t[0])) for r, t in zip(answered["data"]["ndarray"], truth))
    assert body["data"]["ndarray"] == [[expected, 2]]
    metrics = wait_for_metrics(server, lambda text: "ctloop_feedback_total{" in text)
    assert 'served_version="7"' in metrics
    assert "ctloop_decisions_total{" in metrics and 'decision="approve"' in metrics
    assert "ctloop_scores_total{" in metrics


def test_every_scored_row_is_counted_once_on_the_metrics_port(server, trained):
    """The workers write their counts to the wrapper's store in the background (seldon_metrics.py): each row is
    counted, once, by decision and by score bucket."""
    names, rows = table(trained, 5)
    before = scraped(server)
    answers = [post(f"{server['url']}/api/v1.0/predictions", {"data": {"names": names, "ndarray": rows[:n]}})[1]
               for n in (1, 2, 5)]  # fmt: skip
    decided = Counter(row[1] for answer in answers for row in answer["data"]["ndarray"])
    expected = {("decisions", d): before.get(("decisions", d), 0) + n for d, n in decided.items()}
    expected[("scores", "all")] = before.get(("scores", "all"), 0) + 8

    def counted(text: str) -> bool:
        now = scraped(server, text)
        return all(now.get(key, 0) >= n for key, n in expected.items())

    wait_for_metrics(server, counted)
    now = scraped(server)
    assert {key: now.get(key, 0) for key in expected} == expected


def grpc_call(server, method: str, message: dict, kind: str = "SeldonMessage") -> dict:
    """Calls ``seldon.protos.Model/<method>`` on the server's gRPC port with ``message`` as the proto ``kind``; the
    answer as a dict (grpc.RpcError as raised)."""
    import grpc
    from google.protobuf import json_format
    from seldon_core.proto import prediction_pb2, prediction_pb2_grpc

    with grpc.insecure_channel(server["grpc"]) as channel:
        grpc.channel_ready_future(channel).result(timeout=60)
        stub = prediction_pb2_grpc.ModelStub(channel)
        request = json_format.ParseDict(message, getattr(prediction_pb2, kind)())
        return json_format.MessageToDict(getattr(stub, method)(request, timeout=30))


def test_predictions_over_grpc_are_those_of_the_training_code(server, trained):
    """Seldon's executor calls the model over gRPC for a SeldonDeployment with transport grpc: the same messages
    as protos get the same scores, decisions and tags as over HTTP, and are counted on the metrics port."""
    names, rows = table(trained, 4)
    before = scraped(server).get(("scores", "all"), 0)
    body = grpc_call(server, "Predict", {"data": {"names": names, "ndarray": rows}})
    assert body["data"]["names"] == ["score", "decision"]
    assert [r[0] for r in body["data"]["ndarray"]] == pytest.approx(trained["scores"][:4], abs=1e-6)
    assert [r[1] for r in body["data"]["ndarray"]] == trained["decisions"][:4]
    assert body["meta"]["tags"]["model_version"] == "7" and len(body["meta"]["tags"]["policy_version"]) == 12
    body = grpc_call(server, "Predict", {"jsonData": trained["rows"][1]})
    assert body["data"]["ndarray"][0][0] == pytest.approx(trained["scores"][1], abs=1e-6)
    wait_until_scored(server, before + 5)


def wait_until_scored(server, rows: float) -> None:
    """Waits until the metrics port has counted ``rows`` scored rows in all, and asserts it counted no more. Each
    worker writes its counts up to a second late (seldon_metrics.py), so the tests that count rows run after the
    last HTTP test that counts, and each waits for its own rows: the next one starts from settled counts."""
    wait_for_metrics(server, lambda text: scraped(server, text).get(("scores", "all"), 0) >= rows)
    assert scraped(server)[("scores", "all")] == rows


def test_a_bad_grpc_request_is_refused_with_a_client_error_naming_the_feature(server, trained):
    import grpc

    for message, code, words in [
        ({"jsonData": dict(trained["rows"][0], channel="fax")}, grpc.StatusCode.INVALID_ARGUMENT, ["channel", "fax"]),
        ({"strData": "x"}, grpc.StatusCode.INVALID_ARGUMENT, ["data.ndarray"]),
        ({"strData": "x" * (5 * 1024 * 1024)}, grpc.StatusCode.RESOURCE_EXHAUSTED, ["larger than max"]),
    ]:
        with pytest.raises(grpc.RpcError) as refused:
            grpc_call(server, "Predict", message)
        assert refused.value.code() == code, refused.value
        assert all(w in refused.value.details() for w in words), refused.value.details()
    before = scraped(server).get(("scores", "all"), 0)
    assert grpc_call(server, "Predict", {"jsonData": trained["rows"][0]})["data"]["ndarray"]
    wait_until_scored(server, before + 1)


def test_bytes_that_are_no_message_are_refused_over_grpc_as_invalid(server, trained):
    """gRPC answers a deserializer's exception INTERNAL, a server error; bytes that are no message of the method's
    type are the client's error: INVALID_ARGUMENT naming the method and protobuf's reason, on every service the
    wrapper registers, and the server answers afterwards."""
    import grpc

    with grpc.insecure_channel(server["grpc"]) as channel:
        grpc.channel_ready_future(channel).result(timeout=60)
        for method in ("/seldon.protos.Model/Predict", "/seldon.protos.Model/SendFeedback",
                       "/seldon.protos.Seldon/Predict", "/seldon.protos.Model/Metadata"):  # fmt: skip
            for unreadable in (b"\xff\xff\xff", b"\x0a\x05ab"):  # a truncated varint; a field shorter than it says
                with pytest.raises(grpc.RpcError) as refused:
                    channel.unary_unary(method)(unreadable, timeout=30)
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, refused.value)
                assert method in refused.value.details() and "DecodeError" in refused.value.details()
    before = scraped(server).get(("scores", "all"), 0)
    assert grpc_call(server, "Predict", {"jsonData": trained["rows"][0]})["data"]["ndarray"]
    wait_until_scored(server, before + 1)


def test_feedback_over_grpc_counts_right_and_wrong(server, trained):
    import grpc

    names, rows = table(trained, 2)
    before = scraped(server).get(("scores", "all"), 0)
    answered = grpc_call(server, "Predict", {"data": {"names": names, "ndarray": rows}})
    wait_until_scored(server, before + 2)
    truth = [[1], [0]]
    feedback = {"request": {"data": {"names": names, "ndarray": rows}}, "response": answered,
                "truth": {"data": {"ndarray": truth}}, "reward": 1}  # fmt: skip
    body = grpc_call(server, "SendFeedback", feedback, kind="Feedback")
    expected = sum(int((r[0] >= 0.3) == bool(t[0])) for r, t in zip(answered["data"]["ndarray"], truth))
    assert body["data"]["ndarray"] == [[expected, 2]]
    with pytest.raises(grpc.RpcError) as refused:
        grpc_call(server, "SendFeedback", {**feedback, "truth": {"data": {"ndarray": [[1]]}}}, kind="Feedback")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "1 truths for 2" in refused.value.details()


def test_the_benchmarks_grpc_client_reports_the_calls_the_server_scored(server, trained):
    """bench/grpc_load.py stands in for wrk on the gRPC port: the calls it reports are the rows the server counted,
    and a run with failed calls fails."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("grpc_load", ROOT / "bench" / "grpc_load.py")
    grpc_load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grpc_load)
    names, rows = table(trained, 1)
    body = json.dumps({"data": {"names": names, "ndarray": rows}})
    before = scraped(server).get(("scores", "all"), 0)
    assert grpc_load.answer(server["grpc"], body)["data"]["ndarray"][0][0] == pytest.approx(trained["scores"][0])
    result = grpc_load.load(server["grpc"], body, 4, 1.0)
    assert result["requests"] > 0 and 0 < result["p50_ms"] <= result["p99_ms"]
    wait_until_scored(server, before + 1 + result["requests"])
    with pytest.raises(RuntimeError, match="failed calls"):
        grpc_load.load(server["grpc"], json.dumps({"strData": "x"}), 2, 0.5)


def scraped(server, text: str | None = None) -> dict[tuple[str, str], float]:
    """The model server's prediction counters, summed over workers and buckets."""
    from prometheus_client.parser import text_string_to_metric_families

    if text is None:
        text = urllib.request.urlopen(f"{server['metrics']}/metrics", timeout=10).read().decode()
    totals: Counter = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "ctloop_decisions_total":
                totals[("decisions", sample.labels["decision"])] += sample.value
            elif sample.name == "ctloop_scores_total":
                totals[("scores", "all")] += sample.value
    return dict(totals)


def wait_for_metrics(server, condition, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = urllib.request.urlopen(f"{server['metrics']}/metrics", timeout=10).read().decode()
        if condition(text):
            return text
        assert time.monotonic() < deadline, f"metrics never showed what was expected:\n{text[-2000:]}"
        time.sleep(0.2)


def test_feedback_on_one_row_is_answered(server, trained):
    """One row is either right or wrong: the other count is 0, which the wrapper's metrics must not choke on."""
    names, rows = table(trained, 1)
    for truth in (0, 1):
        _, answered = post(f"{server['url']}/api/v1.0/predictions", {"data": {"names": names, "ndarray": rows}})
        status, body = post(f"{server['url']}/api/v1.0/feedback",
                            {"response": answered, "truth": {"data": {"ndarray": [[truth]]}}})  # fmt: skip
        assert status == 200, body
        assert body["data"]["ndarray"] == [[int((answered["data"]["ndarray"][0][0] >= 0.3) == bool(truth)), 1]]


@pytest.mark.timeout(3600)
def test_fuzz_predictions_and_feedback_never_get_a_5xx_and_the_server_stays_healthy(server, trained, fuzz):
    """Generated requests over real HTTP (Seldon's own Flask app in front of the model): messages in the model's
    shape (named rows, ndarray, feedback) whose values are hostile (NaN, infinities, 400-digit integers, wrong
    types), other JSON, bytes that are not UTF-8, deep nesting and bodies over 5 MiB. None may answer 5xx."""
    from hypothesis import given

    st = fuzz.st
    names = list(trained["features"])
    row = st.fixed_dictionaries({n: fuzz.value | st.just(trained["rows"][0][n]) for n in names})
    ndarray = st.fixed_dictionaries({"names": st.just(names) | fuzz.value, "ndarray": fuzz.value})
    feedback = st.fixed_dictionaries({"truth": fuzz.value, "response": fuzz.value, "reward": fuzz.value})
    message = (st.fixed_dictionaries({"jsonData": row}) | st.fixed_dictionaries({"data": ndarray, "meta": fuzz.value})
               | feedback)  # fmt: skip
    statuses: Counter = Counter()
    started = time.monotonic()

    @fuzz.settings()
    @given(data=st.data())
    def one(data):
        path = data.draw(st.sampled_from(["predictions", "feedback"]))
        body = data.draw(fuzz.body(message))
        try:
            status, _ = post(f"{server['url']}/api/v1.0/{path}", body)
        except (ConnectionError, urllib.error.URLError):
            status = None  # a body the server did not read, the connection closed after the answer
            assert len(body) > 4 << 20
        statuses[status] += 1
        assert status is None or status < 500, body[:200]

    one()
    status, _ = post(f"{server['url']}/api/v1.0/predictions", {"jsonData": trained["rows"][0]})
    assert status == 200
    fuzz.record("model-server", statuses, time.monotonic() - started)


@pytest.mark.timeout(3600)
def test_fuzz_grpc_predictions_and_feedback_are_answered_or_refused_as_invalid(server, trained, fuzz):
    """Generated messages over real gRPC, in the model's shapes with hostile values (NaN, infinities, wrong types,
    other structures): every one a proto can carry is answered, or refused with INVALID_ARGUMENT; none gets UNKNOWN
    or INTERNAL, and the server answers afterwards. Some requests are arbitrary bytes, sent as they are: answered
    or refused the same way."""
    import grpc
    from google.protobuf import json_format
    from hypothesis import given
    from seldon_core.proto import prediction_pb2, prediction_pb2_grpc

    st, value = fuzz.st, fuzz.proto_value
    names = list(trained["features"])
    text = st.text(max_size=8)
    # Messages as the proto's schema has them (nothing else can be sent), with hostile contents.
    row = st.fixed_dictionaries({n: value | st.just(trained["rows"][0][n]) for n in names})
    data = st.fixed_dictionaries(
        {
            "names": st.just(names) | st.lists(text, max_size=16),
            "ndarray": st.lists(st.lists(value, max_size=16) | value, max_size=4),
        }
    )
    meta = st.fixed_dictionaries({}, optional={"tags": st.dictionaries(text, value, max_size=3), "puid": text})
    message = (
        st.fixed_dictionaries({"jsonData": row | value}, optional={"meta": meta})
        | st.fixed_dictionaries({"data": data}, optional={"meta": meta})
        | st.fixed_dictionaries({"strData": text})
    )
    feedback = st.fixed_dictionaries(
        {"truth": message, "response": message}, optional={"request": message, "reward": st.floats()}
    )
    messages = {"Predict": (prediction_pb2.SeldonMessage, message), "SendFeedback": (prediction_pb2.Feedback, feedback)}
    statuses: Counter = Counter()
    started = time.monotonic()
    with grpc.insecure_channel(server["grpc"]) as channel:
        stub = prediction_pb2_grpc.ModelStub(channel)
        as_bytes = {method: channel.unary_unary(f"/seldon.protos.Model/{method}") for method in messages}

        @fuzz.settings()
        @given(data=st.data())
        def one(data):
            method = data.draw(st.sampled_from(sorted(messages)))
            kind, shape = messages[method]
            if data.draw(st.integers(0, 3)) == 0:  # a quarter: bytes as they come, most of them no message
                call, request = as_bytes[method], data.draw(st.binary(max_size=64))
                message = request
            else:
                message = data.draw(shape)
                try:
                    call, request = getattr(stub, method), json_format.ParseDict(message, kind())
                except (json_format.ParseError, TypeError, ValueError, AttributeError):
                    statuses["no proto"] += 1  # what a proto cannot carry, no gRPC client can send
                    return
            try:
                call(request, timeout=30)
                statuses["OK"] += 1
            except grpc.RpcError as e:
                statuses[e.code().name] += 1
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (message, e.code(), e.details())

        one()
        answer = stub.Predict(json_format.ParseDict({"jsonData": trained["rows"][0]}, prediction_pb2.SeldonMessage()))
        assert len(answer.data.ndarray) == 1
    assert statuses["OK"] and statuses["INVALID_ARGUMENT"], statuses
    fuzz.record("model-server-grpc", statuses, time.monotonic() - started)
